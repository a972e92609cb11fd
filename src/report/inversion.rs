//! Model inversion (`results/inversion/<model>/<method>.json`): the all-people grid (green frame:
//! identified by the independent evaluation classifier) and identification accuracy per person.

use super::{Report, Section, Table, html};
use crate::error::CoreResult;
use crate::invert::InversionReport;
use crate::job::JobCtx;

/// Adds one section per saved inversion report.
pub(super) fn add(r: &mut Report<'_>, ctx: &JobCtx<'_>) -> CoreResult<()> {
    let root = r.study.results_dir().join("inversion");
    let models = super::list(&root, |p| {
        p.is_dir()
            && !p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("eval-"))
    });
    for dir in models {
        for path in super::json_files(&dir) {
            ctx.checkpoint()?;
            let model = super::name_of(&dir);
            let method = super::stem_of(&path);
            let mut body = String::new();
            if let Some(rep) = r.load::<InversionReport>(&path, &mut body) {
                section(r, &format!("{model}-{method}"), &rep, &mut body)?;
            }
            r.sections.push(Section {
                id: super::slug(&format!("inversion-{model}-{method}")),
                title: format!("Model inversion: {model} ({method})"),
                body,
            });
        }
    }
    Ok(())
}

fn section(r: &mut Report<'_>, name: &str, rep: &InversionReport, body: &mut String) -> CoreResult<()> {
    let hits = rep.classes.iter().filter(|c| c.eval_top1).count();
    body.push_str(&html::figures(&[
        (
            "model",
            format!("{} ({}, {})", rep.model_id, rep.family, rep.dataset),
        ),
        ("method", rep.config.method.as_str().to_string()),
        (
            "people inverted",
            format!("{} of {}", rep.classes.len(), rep.n_classes),
        ),
        (
            "identified (top-1) by the evaluation classifier",
            format!("{hits} of {} ({:.1}%)", rep.classes.len(), 100.0 * rep.eval_top1),
        ),
        (
            "identified in the top 5",
            format!("{:.1}%", 100.0 * rep.eval_top5),
        ),
        (
            "control: blank grey image / start image",
            format!("{:.1}% / {:.1}%", 100.0 * rep.blank_top1, 100.0 * rep.start_top1),
        ),
        ("seconds", format!("{:.1}", rep.seconds)),
    ]));
    if rep.config.method == crate::invert::Method::MiFacePaper {
        body.push_str(&html::note(crate::invert::PAPER_RULES_STALL));
    }
    let mut t = Table::new(&[
        "class",
        "name",
        "eval_top1",
        "eval_rank",
        "eval_top5",
        "eval_predicted",
        "eval_p_true",
        "target_p",
        "steps",
        "returned_iter",
        "stop",
        "l2_mean_face",
        "ssim_mean_face",
        "nearest_index",
        "nearest_label",
        "l2_nearest",
        "ssim_nearest",
    ]);
    for c in &rep.classes {
        let d = &c.distances;
        t.push(vec![
            c.class.into(),
            c.name.as_str().into(),
            c.eval_top1.into(),
            c.eval_rank.into(),
            c.eval_top5.into(),
            c.eval_predicted.into(),
            c.eval_p_true.into(),
            c.target_p.into(),
            c.steps.into(),
            c.returned_iter.into(),
            format!("{:?}", c.stop).to_lowercase().into(),
            d.l2_mean_face.into(),
            d.ssim_mean_face.into(),
            d.nearest_index.into(),
            d.nearest_label.into(),
            d.l2_nearest.into(),
            d.ssim_nearest.into(),
        ]);
    }
    let stem = format!("inversion-{name}");
    let f = r.csv(
        &stem,
        &format!("{}: identification and distances per person", rep.model_id),
        &t,
    )?;
    match crate::invert::grid_image(rep, 10) {
        Ok(img) => {
            let png = r.png(
                &stem,
                &format!("{}: the inverted faces of every person", rep.model_id),
                &img,
            )?;
            body.push_str(&html::img(
                &png,
                "Every inverted person, row-major by class (10 per row); green frame: the evaluation \
                 classifier identifies the person, red: it does not.",
            ));
        }
        Err(e) => {
            body.push_str(&r.note(format!("{name}: grid left out ({e})")));
        }
    }
    body.push_str(&html::table(&t, 50, Some(&f)));
    Ok(())
}
