//! Training images extracted from diffusion models (`results/diffusion/<model>/extraction-*.json`):
//! the closest generations next to their nearest training images with the distances, planted
//! duplicates marked, the extracted images and the cliques of near-identical generations.

use std::path::Path;

use super::figures::{GREEN, GREY, Tile, gallery};
use super::{Cell, Report, Section, Table, html};
use crate::data::Dataset;
use crate::diffusion::DiffusionCard;
use crate::diffusion::extract::{ExtractionRun, cache_path};
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
use crate::measure::extraction::Criterion;

/// Generation / nearest pairs shown.
const PAIRS: usize = 24;

/// The data set of a diffusion model folder (checked against its card's hash), and the card.
pub(super) fn model_data(model_dir: &Path) -> CoreResult<(DiffusionCard, Dataset)> {
    let cp = model_dir.join("card.json");
    let text = std::fs::read_to_string(&cp).map_err(|e| CoreError::io(&cp, e))?;
    let card = DiffusionCard::from_json(&cp, &text)?;
    let ds = crate::data::load(&card.dataset.name)?;
    if ds.hash != card.dataset.hash {
        return Err(CoreError::Mismatch(format!(
            "model '{}' was trained on '{}' with hash {}, which now has hash {}",
            card.id, card.dataset.name, card.dataset.hash, ds.hash
        )));
    }
    Ok((card, ds))
}

/// Adds one section per saved extraction.
pub(super) fn add(r: &mut Report<'_>, ctx: &JobCtx<'_>) -> CoreResult<()> {
    let root = r.study.results_dir().join("diffusion");
    for (dir, path) in super::prefixed_json(&root, "extraction-") {
        ctx.checkpoint()?;
        let stem = super::stem_of(&path);
        let model = super::name_of(&dir);
        let mut body = String::new();
        if let Some(run) = r.load::<ExtractionRun>(&path, &mut body) {
            section(r, &format!("{model}-{stem}"), &run, &mut body)?;
        }
        r.sections.push(Section {
            id: super::slug(&format!("{model}-{stem}")),
            title: format!("Extraction: {model}"),
            body,
        });
    }
    Ok(())
}

/// The generations of `run` from the model's cache, with the data set.
fn generations(r: &Report<'_>, run: &ExtractionRun) -> CoreResult<(Vec<u8>, Dataset)> {
    let dir = crate::diffusion::diffusion_dir(&r.study.root).join(&run.model);
    let (_, ds) = model_data(&dir)?;
    let n = run.report.summary.n_samples;
    let p = cache_path(&dir, &run.sampler, run.seed, n);
    let bytes = std::fs::read(&p).map_err(|e| CoreError::io(&p, e))?;
    if bytes.len() != n * ds.image_len() {
        return Err(CoreError::format(
            &p,
            format!(
                "holds {} bytes, expected {n} images of {}",
                bytes.len(),
                ds.image_len()
            ),
        ));
    }
    Ok((bytes, ds))
}

fn section(r: &mut Report<'_>, name: &str, run: &ExtractionRun, body: &mut String) -> CoreResult<()> {
    let rep = &run.report;
    let s = &rep.summary;
    let pct = |f: Option<f64>| f.map_or("n/a".to_string(), |v| format!("{:.1}%", 100.0 * v));
    let criterion = match rep.config.criterion {
        Criterion::Relative => format!("relative l2 <= {:.3}", rep.config.delta),
        Criterion::Absolute => format!("distance <= {:.3}", rep.config.delta),
    };
    body.push_str(&html::figures(&[
        ("model", run.model.clone()),
        (
            "sampler, seed",
            format!("{}, seed {}", run.sampler.label(), run.seed),
        ),
        ("generations", s.n_samples.to_string()),
        ("extractions", format!("{} ({criterion})", s.n_extracted)),
        (
            "distinct training images extracted",
            format!("{} of {}", s.unique_train_extracted, s.n_train_unique),
        ),
        (
            "planted duplicates extracted",
            format!(
                "{} of {} images",
                pct(s.planted_dup_extracted_frac),
                s.n_planted_dup_images.unwrap_or(0)
            ),
        ),
        ("singletons extracted", pct(s.singleton_extracted_frac)),
        (
            "cliques of near-identical generations",
            rep.cliques.len().to_string(),
        ),
        (
            "sharpness (Jeon et al.), extracted vs other generations",
            run.sharpness
                .as_ref()
                .map_or("not measured (rote extract --sharpness)".to_string(), |g| {
                    let f = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
                    format!(
                        "{} vs {} (AUC {}, t = {})",
                        f(g.mean_extracted),
                        f(g.mean_other),
                        f(g.auc_extracted),
                        g.config.t
                    )
                }),
        ),
    ]));
    let index_of = |row: usize| run.train_rows.get(row).copied();
    let planted = |row: usize| index_of(row).is_some_and(|i| run.duplicated.contains(&i));

    let mut t = Table::new(&[
        "generation",
        "nearest_index",
        "nearest_train_row",
        "nearest_copies",
        "planted_duplicate",
        "l2",
        "tiled_l2",
        "rel_l2",
        "score",
        "extracted",
        "eidetic_k",
    ]);
    let mut order: Vec<usize> = (0..rep.rows.len()).collect();
    order.sort_by(|&a, &b| rep.rows[a].score.total_cmp(&rep.rows[b].score).then(a.cmp(&b)));
    for &k in &order {
        let g = &rep.rows[k];
        t.push(vec![
            g.generation.into(),
            index_of(g.nearest).into(),
            g.nearest.into(),
            g.nearest_copies.into(),
            planted(g.nearest).into(),
            g.l2.into(),
            g.tiled_l2.into(),
            g.rel_l2.into(),
            g.score.into(),
            g.extracted.into(),
            g.eidetic_k.into(),
        ]);
    }
    let f = r.csv(
        &format!("extraction-{name}"),
        &format!(
            "{}: every generation and its nearest training image, closest first",
            run.model
        ),
        &t,
    )?;
    body.push_str(&html::h3("Closest generations and their nearest training images"));
    match generations(r, run) {
        Ok((gens, ds)) => {
            let shape = [ds.c, ds.h, ds.w];
            let len = ds.image_len();
            let tiles: Vec<Tile> = order
                .iter()
                .take(PAIRS)
                .flat_map(|&k| {
                    let g = &rep.rows[k];
                    let frame = if g.extracted { GREEN } else { GREY };
                    let gen_px = gens
                        .get(g.generation * len..(g.generation + 1) * len)
                        .unwrap_or(&[]);
                    [
                        Tile::from_chw(gen_px, shape, ds.max_value, frame),
                        Tile::from_dataset(&ds, index_of(g.nearest).unwrap_or(usize::MAX), frame),
                    ]
                })
                .collect();
            let png = r.png(
                &format!("extraction-{name}"),
                &format!(
                    "{}: the {PAIRS} closest generations next to their nearest training images",
                    run.model
                ),
                &gallery(&tiles, 8, 2),
            )?;
            body.push_str(&html::img(
                &png,
                "Each pair: a generation, then its nearest training image, in the order of the table \
                 (row-major, closest first); green frames mark extractions.",
            ));
        }
        Err(e) => {
            body.push_str(&r.note(format!("{}: gallery left out ({e})", run.model)));
        }
    }
    body.push_str(&html::table(&t, PAIRS, Some(&f)));

    let mut et = Table::new(&[
        "train_index",
        "train_row",
        "copies",
        "planted_duplicate",
        "n_generations",
        "best_generation",
        "best_score",
        "eidetic_k",
    ]);
    for e in &rep.extracted {
        et.push(vec![
            index_of(e.train_index).into(),
            e.train_index.into(),
            e.copies.into(),
            planted(e.train_index).into(),
            e.generations.len().into(),
            e.best_generation.into(),
            e.best_score.into(),
            e.eidetic_k.into(),
        ]);
    }
    body.push_str(&html::h3("Extracted training images"));
    if et.rows.is_empty() {
        body.push_str(&html::p("No generation passes the extraction criterion."));
    } else {
        let f = r.csv(
            &format!("extracted-{name}"),
            &format!("{}: training images extracted at least once", run.model),
            &et,
        )?;
        body.push_str(&html::table(&et, 20, Some(&f)));
    }

    if !rep.cliques.is_empty() {
        let mut ct = Table::new(&[
            "clique",
            "size",
            "max_tiled_l2",
            "method",
            "nearest_index",
            "nearest_copies",
            "nearest_rel_l2",
            "nearest_l2",
            "members_extracted",
            "members",
        ]);
        for (k, c) in rep.cliques.iter().enumerate() {
            let members: Vec<String> = c.members.iter().map(ToString::to_string).collect();
            ct.push(vec![
                k.into(),
                c.size.into(),
                c.max_tiled_l2.into(),
                format!("{:?}", c.method).to_lowercase().into(),
                c.nearest_train.and_then(index_of).into(),
                c.nearest_copies.into(),
                c.nearest_rel_l2.into(),
                c.nearest_l2.into(),
                c.members_extracted.into(),
                Cell::Text(members.join(" ")),
            ]);
        }
        let f = r.csv(
            &format!("cliques-{name}"),
            &format!(
                "{}: groups of near-identical generations, largest first",
                run.model
            ),
            &ct,
        )?;
        body.push_str(&html::h3("Cliques of near-identical generations"));
        body.push_str(&html::table(&ct, 10, Some(&f)));
    }
    Ok(())
}
