//! The subcommands.

use serde_json::json;

use super::{CliSink, Command, TrainArgs};
use crate::data::{self, BundledKind, bundled_all};
use crate::error::{CoreError, CoreResult};
use crate::gpu::nearest_neighbours;
use crate::job::{CancelToken, JobCtx};
use crate::study::Study;
use crate::train::{TrainConfig, train_into_study};

pub(super) fn print(json: bool, value: &serde_json::Value, text: impl FnOnce() -> String) {
    if json {
        println!("{value}");
    } else {
        println!("{}", text());
    }
}

/// Runs one subcommand (everything except opening the window).
pub fn run_command(cmd: Command, json: bool) -> CoreResult<()> {
    match cmd {
        Command::Datasets => datasets(json),
        Command::Train(args) => train_cmd(args, json),
        Command::Nn {
            data,
            index,
            k,
            train_only,
            cpu,
        } => nn(&data, index, k, train_only, !cpu, json),
        Command::Models { study } => models(&study, json),
        Command::Zoo(args) => super::zoo::zoo(args, json),
        Command::Memorization {
            study,
            zoo,
            mem_thr,
            infl_thr,
            any_class,
            compare,
        } => super::zoo::memorization(
            &study,
            zoo.as_deref(),
            (mem_thr, infl_thr, !any_class),
            compare.as_deref(),
            json,
        ),
        Command::Mia {
            study,
            zoo,
            attack,
            fix_variance,
            offline,
            targets,
        } => super::zoo::mia(
            &study,
            zoo.as_deref(),
            &attack,
            fix_variance,
            offline,
            targets,
            json,
        ),
        Command::Demo {
            rebuild,
            zoo,
            diffusion,
            ssl,
            lm,
            gpt,
            update_assets,
            out,
        } => demo(
            &out,
            rebuild.then_some(crate::demo::Rebuild {
                zoo,
                diffusion,
                ssl,
                lm,
                gpt,
                update_assets,
            }),
            json,
        ),
        Command::Extract(args) => super::diffusion::extract(args, json),
        Command::Sample(args) => super::sample::sample(args, json),
        Command::Inpaint(args) => super::diffusion::inpaint(args, json),
        Command::MiaDiffusion(args) => super::diffusion::mia_diffusion(args, json),
        Command::ImportDiffusers(args) => super::import::import_diffusers(args, json),
        Command::Sharpness(args) => super::sharpness::sharpness(args, json),
        Command::Invert(args) => super::invert::invert(args, json),
        Command::SslPair(args) => super::ssl::ssl_pair(args, json),
        Command::Layermem(args) => super::ssl::layermem(args, json),
        Command::Unitmem(args) => super::ssl::unitmem(args, json),
        Command::TrainLm(args) => super::canary::train_lm(args, json),
        Command::Exposure(args) => super::canary::exposure(args, json),
        Command::ExtractSecret(args) => super::canary::extract_secret(args, json),
        Command::LmScore(args) => super::lm::lm_score(args, json),
        Command::LmGenerate(args) => super::lm::lm_generate(args, json),
        Command::LmExtract(args) => super::lm_measure::lm_extract(args, json),
        Command::LmMia(args) => super::lm_measure::lm_mia(args, json),
        Command::LmDatasetTest(args) => super::lm_dataset_test::lm_dataset_test(args, json),
        Command::LmProbe(args) => super::lm_probe::lm_probe(args, json),
        Command::DpEpsilon(args) => super::dp::dp_epsilon(args, json),
        Command::Defences(args) => super::defences::defences(args, json),
        Command::Mat(args) => super::mat::mat(args, json),
        Command::Fairness(args) => super::fairness::fairness(args, json),
        Command::TrainTabular(args) => super::tabular::train_tabular_cmd(args, json),
        Command::TabMemorization(args) => super::tabular::tab_memorization(args, json),
        Command::Icl(args) => super::icl::icl(args, json),
        Command::Bench { which } => super::bench::run(which, json),
        Command::Report { study, out } => super::report::report(&study, &out, json),
        Command::Present(args) => super::present::present(args, json),
        Command::Screenshot {
            view,
            out,
            study,
            width,
            height,
            sort,
        } => screenshot(&view, &out, study, [width, height], sort),
    }
}

#[cfg(feature = "gui")]
fn screenshot(
    view: &str,
    out: &std::path::Path,
    study: Option<std::path::PathBuf>,
    size: [f32; 2],
    sort: Option<String>,
) -> CoreResult<()> {
    crate::ui::screenshot::render_view(view, out, study, size, sort)
}

#[cfg(not(feature = "gui"))]
fn screenshot(
    _: &str,
    _: &std::path::Path,
    _: Option<std::path::PathBuf>,
    _: [f32; 2],
    _: Option<String>,
) -> CoreResult<()> {
    Err(CoreError::Invalid(
        "this build has no GUI (built without the 'gui' feature)".into(),
    ))
}

fn datasets(json: bool) -> CoreResult<()> {
    let mut rows = Vec::new();
    for b in bundled_all() {
        let mut row =
            json!({"name": b.name, "kind": b.kind, "description": b.description, "credit": b.credit});
        if b.kind == BundledKind::Images {
            let ds = data::load_bundled(b.name)?;
            row["n"] = json!(ds.n);
            row["shape"] = json!([ds.c, ds.h, ds.w]);
            row["classes"] = json!(ds.n_classes());
            row["n_train"] = json!(ds.train_indices().len());
            row["n_test"] = json!(ds.test_indices().len());
            row["hash"] = json!(ds.hash);
        }
        rows.push(row);
    }
    let value = json!({ "datasets": rows });
    print(json, &value, || {
        let mut s = String::new();
        for (b, r) in bundled_all().iter().zip(&rows) {
            let shape = r.get("shape").map(|v| format!(" {v}")).unwrap_or_default();
            s.push_str(&format!(
                "{:<14} {:<7}{shape}  {}\n",
                b.name,
                format!("{:?}", b.kind).to_lowercase(),
                b.description
            ));
        }
        s.trim_end().to_string()
    });
    Ok(())
}

fn train_cmd(args: TrainArgs, json: bool) -> CoreResult<()> {
    let family = match args.family {
        super::TrainFamily::Mlp => crate::model::Family::Mlp,
        super::TrainFamily::Cnn => crate::model::Family::Cnn,
        super::TrainFamily::Softmax => crate::model::Family::Softmax,
        super::TrainFamily::Ddpm => return super::diffusion::train_ddpm(args, json),
    };
    let cfg = TrainConfig {
        family,
        data: args.data,
        epochs: args.epochs,
        batch_size: args.batch_size,
        optimizer: args.optimizer,
        lr: args.lr,
        momentum: args.momentum,
        weight_decay: args.weight_decay,
        subset_ratio: args.subset_ratio,
        seed: args.seed,
        device: args.device,
        id: args.id.unwrap_or_default(),
    };
    let ds = data::load(&cfg.data)?;
    let mut study = Study::open_or_create(&args.out)?;
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let ctx = JobCtx::new(&cancel, &sink);
    let outcome = train_into_study(&cfg, &ds, &mut study, &ctx);
    sink.finish();
    let outcome = outcome?;
    let card = &outcome.card;
    let path = study.models_dir().join(&card.id);
    let value = json!({
        "model_id": card.id,
        "path": path,
        "n_train": card.metrics.n_train,
        "n_test": card.metrics.n_test,
        "train_acc": card.metrics.train_acc,
        "test_acc": card.metrics.test_acc,
        "seconds": card.metrics.seconds,
        "dataset_hash": card.dataset.hash,
    });
    print(json, &value, || {
        format!(
            "trained {} on {} samples in {:.1}s: train acc {:.4}, test acc {:.4}\nsaved to {}",
            card.id,
            card.metrics.n_train,
            card.metrics.seconds,
            card.metrics.train_acc,
            card.metrics.test_acc,
            path.display()
        )
    });
    Ok(())
}

fn nn(
    data_name: &str,
    index: usize,
    k: usize,
    train_only: bool,
    prefer_gpu: bool,
    json: bool,
) -> CoreResult<()> {
    let ds = data::load(data_name)?;
    if index >= ds.n {
        return Err(CoreError::Invalid(format!(
            "index {index} is out of range: {data_name} has {} images",
            ds.n
        )));
    }
    let refs: Vec<usize> = if train_only {
        ds.train_indices()
    } else {
        (0..ds.n).collect()
    };
    let (mut found, backend) = nearest_neighbours(&ds, &[index], &refs, k, prefer_gpu, None)?;
    let found = found.pop().unwrap_or_default();
    let rows: Vec<_> = found
        .iter()
        .map(|nb| {
            json!({
                "index": nb.index,
                "label": ds.labels[nb.index],
                "class": ds.class_names[ds.labels[nb.index] as usize],
                "split": ds.split[nb.index],
                "distance": nb.distance,
                "sq_l2": nb.sq_l2,
            })
        })
        .collect();
    let value = json!({
        "data": data_name,
        "index": index,
        "label": ds.labels[index],
        "k": k,
        "backend": backend.to_string(),
        "neighbours": rows,
    });
    print(json, &value, || {
        let mut s = format!(
            "neighbours of {data_name}[{index}] (label {}) by {backend}:\n",
            ds.labels[index]
        );
        for nb in &found {
            s.push_str(&format!(
                "  {:>6}  label {:<3} distance {:.4}\n",
                nb.index, ds.labels[nb.index], nb.distance
            ));
        }
        s.trim_end().to_string()
    });
    Ok(())
}

fn models(path: &std::path::Path, json: bool) -> CoreResult<()> {
    let study = Study::open(path)?;
    let (good, bad) = crate::study::inventory(&study);
    let rows: Vec<_> = good
        .iter()
        .map(|m| {
            json!({
                "kind": m.kind,
                "id": m.id,
                "family": m.family,
                "dataset": m.dataset,
                "path": m.path,
                "metric": m.metric,
                "value": m.value,
            })
        })
        .collect();
    let problems: Vec<String> = bad.iter().map(ToString::to_string).collect();
    let value = json!({ "study": path, "models": rows, "problems": problems });
    print(json, &value, || {
        let mut s = String::new();
        if !good.is_empty() {
            let width = |f: &dyn Fn(&crate::study::ModelEntry) -> usize, head: &str| {
                good.iter().map(f).max().unwrap_or(0).max(head.len())
            };
            let wk = width(&|m| m.kind.as_str().len(), "kind");
            let wi = width(&|m| m.id.len(), "id");
            let wf = width(&|m| m.family.len(), "family");
            let wd = width(&|m| m.dataset.len(), "dataset");
            s.push_str(&format!(
                "{:<wk$}  {:<wi$}  {:<wf$}  {:<wd$}  headline\n",
                "kind", "id", "family", "dataset"
            ));
            for m in &good {
                s.push_str(&format!(
                    "{:<wk$}  {:<wi$}  {:<wf$}  {:<wd$}  {} {}\n",
                    m.kind.as_str(),
                    m.id,
                    m.family,
                    m.dataset,
                    m.metric,
                    fmt_metric(m.value)
                ));
            }
        }
        for p in &problems {
            s.push_str(&format!("problem: {p}\n"));
        }
        if s.is_empty() {
            s = "no models".into();
        }
        s.trim_end().to_string()
    });
    Ok(())
}

/// A headline value: counts as integers, the rest with four decimals.
fn fmt_metric(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e12 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

fn demo(out: &std::path::Path, rebuild: Option<crate::demo::Rebuild>, json: bool) -> CoreResult<()> {
    let t0 = std::time::Instant::now();
    let study = if let Some(what) = rebuild {
        let cancel = CancelToken::new();
        let sink = CliSink::new(json);
        let ctx = JobCtx::new(&cancel, &sink);
        let s = crate::demo::rebuild_demo(out, what, &ctx);
        sink.finish();
        s?
    } else {
        crate::demo::write_demo(out)?
    };
    let (models, _) = crate::study::inventory(&study);
    let ids: Vec<&str> = models.iter().map(|m| m.id.as_str()).collect();
    let value = json!({ "study": out, "models": ids, "rebuilt": rebuild.is_some(), "seconds": t0.elapsed().as_secs_f64() });
    print(json, &value, || {
        format!("demo study at {} with models {}", out.display(), ids.join(", "))
    });
    Ok(())
}
