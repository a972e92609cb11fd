//! `rote train --family ddpm`, `rote extract` and `rote inpaint`.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::commands::print;
use super::{CliSink, TrainArgs};
use crate::diffusion::attack::{AttackSpec, inpaint_attack, pick_images};
use crate::diffusion::denoiser::{Denoiser, is_diffusers_folder};
use crate::diffusion::extract::{GenSpec, run_extraction_with};
use crate::diffusion::inpaint::{InpaintConfig, InpaintMethod, MaskKind};
use crate::diffusion::sample::Sampler;
use crate::diffusion::{DdpmTrainConfig, DiffusionCard, diffusion_dir, train_into_study};
use crate::error::{CoreError, CoreResult};
use crate::job::{CancelToken, JobCtx};
use crate::measure::extraction::{Criterion, Distance, ExtractionConfig};

/// Options of `rote extract`.
#[derive(Debug, clap::Args)]
pub struct ExtractArgs {
    /// cpu or cuda (the model; the distance kernels use wgpu unless --cpu).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Diffusion model folder: rote's (STUDY/diffusion/ID) or a diffusers UNet2DModel.
    pub model: PathBuf,
    /// The training images the generations are compared against (any loader: image folder,
    /// NPY, CIFAR batches, IDX, a bundled name); default: the data set a rote model's card names.
    #[arg(long)]
    pub train_data: Option<String>,
    /// Generations.
    #[arg(long, default_value_t = 256)]
    pub samples: usize,
    /// Seed of the generations.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sampler steps (respaced).
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// Use ancestral sampling instead of DDIM.
    #[arg(long)]
    pub ancestral: bool,
    /// Extraction threshold delta on the criterion.
    #[arg(long, default_value_t = 1.0 / 3.0)]
    pub delta: f64,
    /// Absolute l2 <= delta instead of Carlini's relative l2 <= delta.
    #[arg(long)]
    pub absolute: bool,
    /// Use the tiled l2 (max over 4x4 tiles) for neighbours and scores.
    #[arg(long)]
    pub tiled: bool,
    /// Force the CPU twin instead of the GPU kernel.
    #[arg(long)]
    pub cpu: bool,
    /// Also measure the sharpness (Jeon et al.) of every generation.
    #[arg(long)]
    pub sharpness: bool,
}

/// Options of `rote inpaint`.
#[derive(Debug, clap::Args)]
pub struct InpaintArgs {
    /// cpu or cuda (the model; the distance kernels use wgpu unless --cpu).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Model A (folder).
    #[arg(long)]
    pub in_model: PathBuf,
    /// Model B (folder); per image, whichever trained on it is IN. Without it, --in-model's
    /// members are attacked against held-out images (--train-data, --heldout-data).
    #[arg(long)]
    pub out_model: Option<PathBuf>,
    /// One model: its training images (default: a rote model's card).
    #[arg(long)]
    pub train_data: Option<String>,
    /// One model: images it did not train on (default: a rote model's data set minus its
    /// training images).
    #[arg(long)]
    pub heldout_data: Option<String>,
    /// Hidden region.
    #[arg(long, value_enum, default_value_t = MaskKind::Right)]
    pub mask: MaskKind,
    /// Data-set indices to attack (comma-separated); default: --count images balanced between
    /// the two models.
    #[arg(long, value_delimiter = ',')]
    pub images: Vec<usize>,
    /// Images when --images is not given.
    #[arg(long, default_value_t = 16)]
    pub count: usize,
    /// Method.
    #[arg(long, value_enum, default_value_t = InpaintMethod::Repaint)]
    pub method: InpaintMethod,
    /// Respaced steps.
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// RePaint jump length.
    #[arg(long, default_value_t = 5)]
    pub jump_length: usize,
    /// RePaint resamplings (1 = none).
    #[arg(long, default_value_t = 3)]
    pub resamplings: usize,
    /// Completions per image and model (best of N).
    #[arg(long, default_value_t = 4)]
    pub samples: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Options of `rote mia-diffusion`.
#[derive(Debug, clap::Args)]
pub struct MiaDiffusionArgs {
    /// cpu or cuda (the model; the distance kernels use wgpu unless --cpu).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Diffusion model folders of one family (each image is a member of some, not others), or
    /// one model (rote's or diffusers') with --train-data and --heldout-data.
    #[arg(required = true, num_args = 1..)]
    pub models: Vec<PathBuf>,
    /// One model: its training images (default: a rote model's card).
    #[arg(long)]
    pub train_data: Option<String>,
    /// One model: images it did not train on (default: a rote model's data set minus its
    /// training images).
    #[arg(long)]
    pub heldout_data: Option<String>,
    /// One model: images evaluated from each side at most (seeded choice).
    #[arg(long, default_value_t = 256)]
    pub count: usize,
    /// Timesteps (of T) to evaluate, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec![10, 50, 100, 200, 300, 500, 800])]
    pub timesteps: Vec<usize>,
    /// Noise draws averaged per image and timestep (the same draws for every model).
    #[arg(long, default_value_t = 4)]
    pub draws: usize,
    /// Seed of the noise draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// `rote train --family ddpm`.
pub fn train_ddpm(args: TrainArgs, json: bool) -> CoreResult<()> {
    if crate::data::bundled(&args.data).is_some_and(|b| b.kind == crate::data::BundledKind::Table) {
        return Err(crate::error::CoreError::Invalid(format!(
            "{} is a table: rote's DDPM is an image UNet; train a tabular diffusion model with \
             `rote train-tabular --data {}`",
            args.data, args.data
        )));
    }
    let subset_ratio = if args.models > 1 && args.subset_ratio >= 1.0 {
        0.5
    } else {
        args.subset_ratio
    };
    let cfg = DdpmTrainConfig {
        data: args.data,
        images: args.images,
        plant_duplicates: args.plant_duplicates,
        dup_factor: args.dup_factor,
        base: args.base,
        schedule: args.schedule,
        t_max: args.t_max,
        steps: args.steps,
        batch_size: args.batch_size,
        lr: args.lr,
        seed: args.seed,
        device: args.device,
        models: args.models,
        subset_ratio,
        id: args.id.unwrap_or_default(),
        dedup: args.dedup.then_some(args.dedup_threshold),
    };
    let study = crate::study::Study::open_or_create(&args.out)?;
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let ctx = JobCtx::new(&cancel, &sink);
    let done = train_into_study(&cfg, &study.root, &command_line(), args.force, &ctx);
    sink.finish();
    let done = done?;
    let dir = diffusion_dir(&study.root);
    let mut models = Vec::new();
    for (id, trained) in &done {
        let card_path = dir.join(id).join("card.json");
        let text = std::fs::read_to_string(&card_path).map_err(|e| CoreError::io(&card_path, e))?;
        let card: crate::diffusion::DiffusionCard =
            serde_json::from_str(&text).map_err(|e| CoreError::format(&card_path, e.to_string()))?;
        models.push(json!({
            "model_id": id,
            "path": dir.join(id),
            "trained_now": trained,
            "n_train": card.train_indices.len(),
            "n_duplicated": card.duplicated.len(),
            "n_params": card.n_params,
            "final_loss": card.final_loss,
            "seconds": card.seconds,
        }));
    }
    let value = json!({ "models": models });
    print(json, &value, || {
        models
            .iter()
            .map(|m| {
                format!(
                    "{} ({}): {} images, {} planted duplicates, {} parameters, final loss {:.4}, {:.1}s",
                    m["model_id"].as_str().unwrap_or(""),
                    if m["trained_now"].as_bool().unwrap_or(false) {
                        "trained"
                    } else {
                        "already there"
                    },
                    m["n_train"],
                    m["n_duplicated"],
                    m["n_params"],
                    m["final_loss"].as_f64().unwrap_or(f64::NAN),
                    m["seconds"].as_f64().unwrap_or(0.0)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

/// The card of a model [`model_data`] opened (it has one).
fn card(m: &dyn Denoiser) -> CoreResult<&DiffusionCard> {
    m.card()
        .ok_or_else(|| CoreError::Invalid(format!("{} has no card", m.id())))
}

/// A study's diffusion model (rote's, or a diffusers model imported with its training set) and
/// the data set its card names, checked against the card's hash.
pub(super) fn model_data(dir: &Path, device: &str) -> CoreResult<(Box<dyn Denoiser>, crate::data::Dataset)> {
    let m = crate::diffusion::denoiser::open(dir, &crate::model::device(device)?)?;
    let card = m.card().ok_or_else(|| {
        CoreError::Invalid(format!(
            "{} has no card naming its training set: give it with --train-data PATH",
            dir.display()
        ))
    })?;
    let ds = crate::data::load(&card.dataset.name)?;
    if ds.hash != card.dataset.hash {
        return Err(CoreError::Mismatch(format!(
            "{}: trained on '{}' with hash {}, which now has hash {}",
            dir.display(),
            card.dataset.name,
            card.dataset.hash,
            ds.hash
        )));
    }
    Ok((m, ds))
}

/// The diffusion model in `dir` (rote's or diffusers') and its training data: `train_data` when
/// given (any loader), else the data set a rote model's card names.
pub(super) fn open_with_data(
    dir: &Path,
    train_data: Option<&str>,
    device: &str,
) -> CoreResult<(Box<dyn Denoiser>, crate::data::Dataset)> {
    let Some(path) = train_data else {
        if is_diffusers_folder(dir) {
            return Err(CoreError::Invalid(format!(
                "{} is a diffusers model, which names no training set: give the images it was \
                 trained on with --train-data PATH (an image folder, NPY, CIFAR batches or IDX)",
                dir.display()
            )));
        }
        return model_data(dir, device);
    };
    let model = crate::diffusion::denoiser::open(dir, &crate::model::device(device)?)?;
    let ds = crate::data::load(path)?;
    crate::diffusion::extract::check_shape(model.as_ref(), &ds)?;
    Ok((model, ds))
}

/// Where a model's results go: STUDY/results/diffusion/<model id>/ for rote's models,
/// ./rote-results/<model id>/ for a diffusers folder (which may be read-only).
pub(super) fn results_dir(model_dir: &Path, model: &dyn Denoiser) -> PathBuf {
    if model.card().is_none() {
        return PathBuf::from("rote-results").join(model.id());
    }
    let study = model_dir.parent().and_then(Path::parent).unwrap_or(model_dir);
    study.join("results").join("diffusion").join(model.id())
}

/// `rote extract`.
pub fn extract(args: ExtractArgs, json: bool) -> CoreResult<()> {
    let (model, ds) = open_with_data(&args.model, args.train_data.as_deref(), &args.device)?;
    let sampler = if args.ancestral {
        Sampler::Ancestral { steps: args.steps }
    } else {
        Sampler::Ddim {
            steps: args.steps,
            eta: 0.0,
        }
    };
    let cfg = ExtractionConfig {
        distance: if args.tiled { Distance::Tiled } else { Distance::L2 },
        criterion: if args.absolute {
            Criterion::Absolute
        } else {
            Criterion::Relative
        },
        delta: args.delta,
        ..ExtractionConfig::default()
    };
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let ctx = JobCtx::new(&cancel, &sink);
    let spec = GenSpec {
        n: args.samples,
        seed: args.seed,
        sampler,
    };
    let run = run_extraction_with(model.as_ref(), &args.model, &ds, &spec, &cfg, !args.cpu, &ctx).and_then(
        |mut run| {
            if args.sharpness {
                let scfg = crate::diffusion::sharpness::SharpnessConfig::default();
                run.measure_sharpness(model.as_ref(), &args.model, ds.max_value, &scfg, &ctx)?;
            }
            Ok(run)
        },
    );
    sink.finish();
    let run = run?;
    let out = results_dir(&args.model, model.as_ref())
        .join(format!("extraction-s{}-n{}.json", args.seed, args.samples));
    crate::study::write_json_atomic(&out, &run)?;
    let s = &run.report.summary;
    let value = json!({
        "model": run.model,
        "n_samples": s.n_samples,
        "n_extracted": s.n_extracted,
        "unique_train_extracted": s.unique_train_extracted,
        "planted_dup_extracted_frac": s.planted_dup_extracted_frac,
        "singleton_extracted_frac": s.singleton_extracted_frac,
        "n_cliques": run.report.cliques.len(),
        "sampler": run.sampler.label(),
        "backend": run.report.backend,
        "generations_cached": run.cached,
        "sharpness": run.sharpness.as_ref().map(|g| json!({
            "auc_extracted": g.auc_extracted,
            "mean_extracted": g.mean_extracted,
            "mean_other": g.mean_other,
            "t": g.config.t,
        })),
        "report": out,
    });
    // rote's own models had duplicates planted; in a user's training set they are found.
    let planted = model
        .card()
        .is_some_and(|c| c.format == crate::diffusion::model::DiffusionFormat::Rote);
    let dups = if planted {
        "planted duplicates"
    } else {
        "images duplicated in the training data"
    };
    print(json, &value, || {
        let frac = |f: Option<f64>| f.map_or("n/a".to_string(), |v| format!("{:.1}%", v * 100.0));
        format!(
            "{}: {} of {} generations are extractions of {} distinct training images\n\
             {dups} extracted: {}; singletons extracted: {}\n\
             {} cliques of near-identical generations; distances on {}{}{}\nreport: {}",
            run.model,
            s.n_extracted,
            s.n_samples,
            s.unique_train_extracted,
            frac(s.planted_dup_extracted_frac),
            frac(s.singleton_extracted_frac),
            run.report.cliques.len(),
            run.report.backend,
            if s.n_extracted == 0 {
                format!(
                    "\nno generation is within relative l2 {:.3} of a training image: copies are rare \
                     and Carlini et al. sampled far more images per CIFAR-10 model than this; sample \
                     more (--samples), and check that --train-data is what the model trained on",
                    args.delta
                )
            } else {
                String::new()
            },
            run.sharpness.as_ref().map_or(String::new(), |g| {
                let f = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
                format!(
                    "\nsharpness (Jeon et al.): extracted generations {} vs others {} (AUC {})",
                    f(g.mean_extracted),
                    f(g.mean_other),
                    f(g.auc_extracted)
                )
            }),
            out.display()
        )
    });
    Ok(())
}

/// `rote inpaint`.
pub fn inpaint(args: InpaintArgs, json: bool) -> CoreResult<()> {
    let Some(out_model) = &args.out_model else {
        return super::diffusion_single::inpaint(&args, json);
    };
    let (a, ds) = model_data(&args.in_model, &args.device)?;
    let (b, _) = model_data(out_model, &args.device)?;
    let (ca, cb) = (card(a.as_ref())?, card(b.as_ref())?);
    if ca.dataset.hash != cb.dataset.hash {
        return Err(CoreError::Mismatch(
            "the two models were trained on different data sets".into(),
        ));
    }
    let images = if args.images.is_empty() {
        pick_images(ca, cb, args.count, args.seed)
    } else {
        args.images.clone()
    };
    if images.is_empty() {
        return Err(CoreError::Invalid(
            "no image is in exactly one of the two models' training sets".into(),
        ));
    }
    let cfg = InpaintConfig {
        method: args.method,
        steps: args.steps,
        jump_length: args.jump_length,
        jump_n_sample: args.resamplings,
    };
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let ctx = JobCtx::new(&cancel, &sink);
    let spec = AttackSpec {
        mask: args.mask,
        config: cfg,
        samples: args.samples,
        seed: args.seed,
    };
    let report = inpaint_attack(a.as_ref(), b.as_ref(), &ds, &images, &spec, &ctx);
    sink.finish();
    let report = report?;
    let out = results_dir(&args.in_model, a.as_ref()).join(format!("inpaint-{}.json", b.id()));
    crate::study::write_json_atomic(&out, &report)?;
    let per_image: Vec<serde_json::Value> = report
        .rows
        .iter()
        .map(|r| json!({"index": r.index, "in_model": r.in_model, "err_in": r.err_in, "err_out": r.err_out}))
        .collect();
    let value = json!({
        "auc": report.auc,
        "tpr_at_1pct_fpr": report.tpr_at_1pct_fpr,
        "tpr_at_0.1pct_fpr": report.tpr_at_0_1pct_fpr,
        "mean_err_in": report.mean_err_in,
        "mean_err_out": report.mean_err_out,
        "method": report.config.method,
        "mask": report.mask,
        "images": per_image,
        "report": out,
    });
    print(json, &value, || {
        format!(
            "{} images, mask {:?}, {:?}: AUC {:.3}, TPR@1%FPR {:.3}; mean hidden-region l2 IN {:.4} vs OUT {:.4}\nreport: {}",
            report.rows.len(),
            report.mask,
            report.config.method,
            report.auc,
            report.tpr_at_1pct_fpr,
            report.mean_err_in,
            report.mean_err_out,
            out.display()
        )
    });
    Ok(())
}

/// `rote mia-diffusion`.
pub fn mia_diffusion(args: MiaDiffusionArgs, json: bool) -> CoreResult<()> {
    if args.models.len() == 1 {
        return super::diffusion_single::mia(&args, json);
    }
    let mut models = Vec::new();
    let mut ds: Option<crate::data::Dataset> = None;
    for dir in &args.models {
        let (m, d) = model_data(dir, &args.device)?;
        if let Some(prev) = &ds
            && prev.hash != d.hash
        {
            return Err(CoreError::Mismatch(format!(
                "{}: trained on a different data set than the first model",
                dir.display()
            )));
        }
        ds.get_or_insert(d);
        models.push(m);
    }
    let Some(ds) = ds else {
        return Err(CoreError::Invalid("no models given".into()));
    };
    let cfg = crate::diffusion::mia::DiffusionMiaConfig {
        timesteps: args.timesteps.clone(),
        draws: args.draws,
        seed: args.seed,
    };
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let ctx = JobCtx::new(&cancel, &sink);
    let family: Vec<&dyn Denoiser> = models.iter().map(AsRef::as_ref).collect();
    let report = crate::diffusion::mia::diffusion_mia_family(&family, &ds, &cfg, &ctx);
    sink.finish();
    let report = report?;
    let first = &args.models[0];
    let out = results_dir(first, family[0]).join("mia-diffusion.json");
    crate::study::write_json_atomic(&out, &report)?;
    print_mia(&report, &out, json);
    Ok(())
}

/// Prints a diffusion MIA report (per-timestep LOSS figures and the file).
pub(super) fn print_mia(report: &crate::diffusion::mia::DiffusionMiaReport, out: &Path, json: bool) {
    let per_t: Vec<serde_json::Value> = report
        .per_t
        .iter()
        .map(|r| {
            let attacks: serde_json::Map<String, serde_json::Value> = r
                .attacks
                .iter()
                .map(|a| {
                    (
                        a.attack.slug().to_string(),
                        json!({"auc": a.auc, "tpr_at_1pct_fpr": a.tpr_at_1pct_fpr, "tpr_at_0.1pct_fpr": a.tpr_at_0_1pct_fpr}),
                    )
                })
                .collect();
            json!({"t": r.t, "attacks": attacks})
        })
        .collect();
    let value =
        json!({ "models": report.models, "n_images": report.pool.len(), "per_t": per_t, "report": out });
    print(json, &value, || {
        let mut lines = vec![format!(
            "{} models, {} images; loss attack by timestep (AUC, TPR@1%FPR):",
            report.models.len(),
            report.pool.len()
        )];
        for (t, auc, tpr) in report.curve(crate::measure::mia::Attack::Loss) {
            lines.push(format!("  t = {t:>4}: AUC {auc:.3}, TPR@1%FPR {tpr:.3}"));
        }
        lines.push(format!("report: {}", out.display()));
        lines.join("\n")
    });
}
