//! Memorization inside encoders (`results/layermem/*.json`): LayerMem, ΔLayerMem, UnitMem and
//! ClassMem per layer of SSL encoder pairs, and UnitMem / ClassMem of supervised MLPs.

use super::svg::bar_chart;
use super::{Report, Section, Table, html};
use crate::error::CoreResult;
use crate::job::JobCtx;
use crate::ssl::LayerMemReport;
use crate::ssl::supervised::SupervisedReport;

/// Adds one section per LayerMem or supervised UnitMem report.
pub(super) fn add(r: &mut Report<'_>, ctx: &JobCtx<'_>) -> CoreResult<()> {
    for path in super::json_files(&r.study.results_dir().join("layermem")) {
        ctx.checkpoint()?;
        let stem = super::stem_of(&path);
        let mut body = String::new();
        let title = if stem.starts_with("supervised-") {
            if let Some(rep) = r.load::<SupervisedReport>(&path, &mut body) {
                supervised(r, &stem, &rep, &mut body)?;
            }
            format!(
                "UnitMem of a supervised model: {}",
                stem.trim_start_matches("supervised-")
            )
        } else {
            if let Some(rep) = r.load::<LayerMemReport>(&path, &mut body) {
                pair(r, &stem, &rep, &mut body)?;
            }
            format!("LayerMem: {stem}")
        };
        r.sections.push(Section {
            id: super::slug(&format!("layermem-{stem}")),
            title,
            body,
        });
    }
    Ok(())
}

fn at<T: Copy>(v: &[T], i: usize) -> Option<T> {
    v.get(i).copied()
}

fn pair(r: &mut Report<'_>, stem: &str, rep: &LayerMemReport, body: &mut String) -> CoreResult<()> {
    let o = &rep.outliers;
    let opt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
    body.push_str(&html::figures(&[
        (
            "candidate encoder f / independent g",
            format!("{} / {}", rep.f, rep.g),
        ),
        ("candidates", rep.candidates.len().to_string()),
        ("planted outliers among them", o.planted.len().to_string()),
        (
            "final layer: planted / rest (LayerMem ratio)",
            format!(
                "{} (raw {}, min-max {})",
                opt(o.ratio),
                opt(o.ratio_raw),
                opt(o.ratio_minmax)
            ),
        ),
        (
            "normalisation, draws",
            format!(
                "{:?}, {} augmentations ({} for UnitMem)",
                rep.config.norm, rep.config.augmentations, rep.config.unit_augmentations
            )
            .to_lowercase(),
        ),
    ]));
    let mut t = Table::new(&[
        "layer",
        "layermem",
        "delta_layermem",
        "raw_diff",
        "layermem_planted",
        "layermem_rest",
        "unitmem_f",
        "unitmem_g",
        "classmem_f",
        "dead_units_f",
        "units_on_planted_f",
    ]);
    for (i, layer) in rep.layers.iter().enumerate() {
        let uf = rep.unitmem_f.get(i);
        t.push(vec![
            layer.as_str().into(),
            at(&rep.layermem_mean, i).into(),
            at(&rep.delta_layermem_mean, i).into(),
            at(&rep.raw_mean, i).into(),
            at(&rep.layermem_mean_planted, i).into(),
            at(&rep.layermem_mean_rest, i).into(),
            uf.and_then(|u| u.mean).into(),
            rep.unitmem_g.get(i).and_then(|u| u.mean).into(),
            rep.classmem_mean_f.get(i).copied().flatten().into(),
            uf.map(|u| u.dead).into(),
            uf.map(|u| u.units_on_planted).into(),
        ]);
    }
    let f = r.csv(
        &format!("layermem-{stem}"),
        &format!("{stem}: LayerMem, ΔLayerMem, UnitMem and ClassMem per layer (input side first)"),
        &t,
    )?;
    body.push_str(&html::chart(
        &bar_chart(&rep.layers, &rep.layermem_mean, "mean LayerMem", None),
        "Mean LayerMem per layer, input side first: how much better f aligns its own training \
         candidates than g, which never saw them.",
    ));
    body.push_str(&html::chart(
        &bar_chart(&rep.layers, &rep.delta_layermem_mean, "ΔLayerMem", None),
        "ΔLayerMem: the increase over the previous layer.",
    ));
    body.push_str(&html::table(&t, 64, Some(&f)));
    Ok(())
}

fn supervised(r: &mut Report<'_>, stem: &str, rep: &SupervisedReport, body: &mut String) -> CoreResult<()> {
    body.push_str(&html::figures(&[
        ("model", rep.model.clone()),
        (
            "candidates",
            format!(
                "{}{}",
                rep.n_candidates,
                rep.like
                    .as_ref()
                    .map_or(String::new(), |l| format!(" (those of {l})"))
            ),
        ),
    ]));
    let mut t = Table::new(&["layer", "unitmem", "classmem", "units", "dead_units"]);
    for (i, layer) in rep.layers.iter().enumerate() {
        let u = rep.units.get(i);
        t.push(vec![
            layer.as_str().into(),
            rep.unitmem_mean.get(i).copied().flatten().into(),
            rep.classmem_mean.get(i).copied().flatten().into(),
            u.map(|u| u.unitmem.len()).into(),
            u.map(|u| u.dead).into(),
        ]);
    }
    let f = r.csv(
        &format!("layermem-{stem}"),
        &format!("{}: mean UnitMem and ClassMem per hidden layer", rep.model),
        &t,
    )?;
    body.push_str(&html::p(
        "UnitMem: how selectively a unit fires for one training sample; ClassMem: for one class. \
         Supervised units are expected to be class-selective rather than sample-selective.",
    ));
    body.push_str(&html::table(&t, 64, Some(&f)));
    Ok(())
}
