//! Feldman-Zhang memorization and influence of each zoo (`results/<zoo>/memorization.json`): the
//! most memorized training samples with their pixels, the high-influence pairs, convergence.

use std::path::{Path, PathBuf};

use super::figures::{GREY, RED, Tile, gallery};
use super::svg::{Axis, Series, line_chart};
use super::{Cell, Report, Section, Table, html};
use crate::data::Dataset;
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
use crate::measure::memorization::mem_order;
use crate::measure::zoo_report::MemorizationReport;
use crate::train::zoo::ZooManifest;

/// Folders of `results/` that hold other measurements than zoos.
const NOT_ZOOS: [&str; 4] = ["diffusion", "inversion", "layermem", "exposure"];

/// `results/<zoo>/` folders, sorted.
pub(super) fn zoo_dirs(results: &Path) -> Vec<PathBuf> {
    super::list(results, |p| {
        p.is_dir()
            && !p
                .file_name()
                .is_some_and(|n| NOT_ZOOS.contains(&n.to_string_lossy().as_ref()))
    })
}

/// The zoo's data set as it trained on it (planted labels applied), and its manifest.
pub(super) fn zoo_data(study_root: &Path, zoo: &str) -> CoreResult<(Dataset, ZooManifest)> {
    let mp = study_root.join("zoos").join(zoo).join("zoo.json");
    let text = std::fs::read_to_string(&mp).map_err(|e| CoreError::io(&mp, e))?;
    let m: ZooManifest =
        serde_json::from_str(&text).map_err(|e| CoreError::format(&mp, format!("bad zoo manifest: {e}")))?;
    let ds = crate::data::load(&m.dataset.name)?;
    if ds.hash != m.dataset.hash {
        return Err(CoreError::Mismatch(format!(
            "zoo '{zoo}' was trained on '{}' with hash {}, which now has hash {}",
            m.dataset.name, m.dataset.hash, ds.hash
        )));
    }
    let dir = study_root.join("zoos").join(zoo);
    Ok((crate::train::zoo::zoo_data(&ds, &dir, &m)?, m))
}

/// Samples shown in the gallery.
const GALLERY: usize = 24;
/// High-influence pairs shown as images.
const PAIRS: usize = 8;

/// Adds one section per zoo with a memorization report.
pub(super) fn add(r: &mut Report<'_>, ctx: &JobCtx<'_>) -> CoreResult<()> {
    for dir in zoo_dirs(&r.study.results_dir()) {
        ctx.checkpoint()?;
        let path = dir.join("memorization.json");
        if !path.is_file() {
            continue;
        }
        let zoo = super::name_of(&dir);
        let mut body = String::new();
        if let Some(rep) = r.load::<MemorizationReport>(&path, &mut body) {
            section(r, &zoo, &rep, &mut body)?;
        }
        r.sections.push(Section {
            id: format!("memorization-{}", super::slug(&zoo)),
            title: format!("Memorization: {zoo}"),
            body,
        });
    }
    Ok(())
}

fn section(r: &mut Report<'_>, zoo: &str, rep: &MemorizationReport, body: &mut String) -> CoreResult<()> {
    let (data, original) = match zoo_data(&r.study.root, zoo) {
        Ok((d, m)) => (Some(d), m.planted),
        Err(e) => {
            body.push_str(&r.note(format!("{zoo}: labels and images left out ({e})")));
            (None, Vec::new())
        }
    };
    // The label before planting, for planted samples.
    let original_label =
        |i: usize| -> Cell { original.iter().find(|p| p.0 as usize == i).map(|p| p.1).into() };
    let label = |i: usize| -> Cell { data.as_ref().and_then(|d| d.labels.get(i)).copied().into() };
    let planted = |i: usize| rep.planted.binary_search(&i).is_ok();
    body.push_str(&html::figures(&[
        ("models in the zoo", rep.models.to_string()),
        (
            "training / test samples",
            format!("{} / {}", rep.n_train, rep.n_test),
        ),
        ("mean mem (training split)", format!("{:.4}", rep.mem_mean)),
        (
            "samples with mem >= threshold",
            format!("{} (threshold {})", rep.n_high_mem, rep.thresholds.mem),
        ),
        (
            "high-influence pairs",
            format!(
                "{} over {} test samples (mem >= {}, infl >= {}{})",
                rep.n_pairs,
                rep.n_pair_tests,
                rep.thresholds.mem,
                rep.thresholds.infl,
                if rep.thresholds.same_class {
                    ", same class"
                } else {
                    ""
                }
            ),
        ),
        ("planted mislabels", rep.planted.len().to_string()),
        (
            "planted recall (top-|planted| mem)",
            rep.planted_recall.map_or("n/a".into(), |v| format!("{v:.3}")),
        ),
    ]));

    let order = mem_order(&rep.mem.mem, &rep.held_out_loss);
    let mut t = Table::new(&[
        "rank",
        "index",
        "label",
        "planted",
        "original_label",
        "mem",
        "se",
        "p_in",
        "p_out",
        "n_in",
        "n_out",
        "held_out_loss",
    ]);
    let m = &rep.mem;
    let at = |v: &[f32], i: usize| v.get(i).copied().unwrap_or(f32::NAN);
    for (rank, &i) in order.iter().enumerate() {
        t.push(vec![
            (rank + 1).into(),
            i.into(),
            label(i),
            planted(i).into(),
            original_label(i),
            at(&m.mem, i).into(),
            at(&m.se, i).into(),
            at(&m.p_in, i).into(),
            at(&m.p_out, i).into(),
            m.n_in.get(i).copied().into(),
            m.n_out.get(i).copied().into(),
            at(&rep.held_out_loss, i).into(),
        ]);
    }
    let name = format!("memorization-{zoo}");
    let f = r.csv(
        &name,
        &format!("{zoo}: mem per training sample, most memorized first"),
        &t,
    )?;
    body.push_str(&html::h3("Most memorized training samples"));
    if let Some(ds) = &data {
        let tiles: Vec<Tile> = order
            .iter()
            .take(GALLERY)
            .map(|&i| Tile::from_dataset(ds, i, if planted(i) { RED } else { GREY }))
            .collect();
        let png = r.png(
            &name,
            &format!("{zoo}: the {GALLERY} most memorized training samples"),
            &gallery(&tiles, 12, 12),
        )?;
        body.push_str(&html::img(
            &png,
            &format!(
                "The {} most memorized training samples, in the order of the table (row-major); \
                 red frames mark planted mislabels.",
                tiles.len()
            ),
        ));
    }
    body.push_str(&html::table(&t, 20, Some(&f)));

    let mut pt = Table::new(&[
        "rank",
        "train",
        "test",
        "train_label",
        "test_label",
        "mem",
        "infl",
        "se",
    ]);
    for (k, p) in rep.influence.pairs.iter().enumerate() {
        pt.push(vec![
            (k + 1).into(),
            p.train.into(),
            p.test.into(),
            label(p.train),
            label(p.test),
            p.mem.into(),
            p.infl.into(),
            p.se.into(),
        ]);
    }
    body.push_str(&html::h3("High-influence pairs"));
    if pt.rows.is_empty() {
        body.push_str(&html::p("No pair passes the thresholds."));
    } else {
        let name = format!("influence-pairs-{zoo}");
        let f = r.csv(
            &name,
            &format!(
                "{zoo}: high-influence (training, test) pairs, strongest first ({} stored of {})",
                rep.influence.pairs.len(),
                rep.n_pairs
            ),
            &pt,
        )?;
        if let Some(ds) = &data {
            let tiles: Vec<Tile> = rep
                .influence
                .pairs
                .iter()
                .take(PAIRS)
                .flat_map(|p| {
                    [
                        Tile::from_dataset(ds, p.train, GREY),
                        Tile::from_dataset(ds, p.test, GREY),
                    ]
                })
                .collect();
            let png = r.png(
                &name,
                &format!("{zoo}: the strongest high-influence pairs"),
                &gallery(&tiles, 8, 2),
            )?;
            body.push_str(&html::img(
                &png,
                "The strongest pairs, in the order of the table: each pair is the training sample, \
                 then the test sample it influences.",
            ));
        }
        body.push_str(&html::table(&pt, 10, Some(&f)));
    }

    if !rep.convergence.is_empty() {
        let mut ct = Table::new(&["models", "mean_abs_mem_change"]);
        for p in &rep.convergence {
            ct.push(vec![p[0].into(), p[1].into()]);
        }
        let f = r.csv(
            &format!("convergence-{zoo}"),
            &format!("{zoo}: mean |mem(K) - mem(all models)| against K"),
            &ct,
        )?;
        let ymax = rep.convergence.iter().map(|p| p[1]).fold(0.0, f64::max);
        let xmax = rep.convergence.iter().map(|p| p[0]).fold(1.0, f64::max);
        body.push_str(&html::h3("Convergence"));
        body.push_str(&html::chart(
            &line_chart(
                &[Series::new("mean |mem(K) - mem(final)|", rep.convergence.clone())],
                &Axis::linear("models K", 0.0, xmax),
                &Axis::linear("mean absolute change", 0.0, ymax * 1.05),
            ),
            "How much the estimates still move as models are added.",
        ));
        body.push_str(&format!("<p class=\"file\">data: {}</p>\n", html::link(&f)));
    }
    Ok(())
}
