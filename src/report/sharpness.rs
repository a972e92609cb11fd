//! Sharpness of diffusion models' training images (Jeon et al.;
//! `results/diffusion/<model>/sharpness-t*.json`, written by `rote sharpness`): how far the
//! duplicated training images stand out as sharp peaks, and every image's figures. The
//! sharpness of generations is part of their extraction's section.

use super::{Report, Section, Table, html};
use crate::diffusion::sharpness::SharpnessReport;
use crate::error::CoreResult;
use crate::job::JobCtx;

/// Adds one section per saved sharpness measurement.
pub(super) fn add(r: &mut Report<'_>, ctx: &JobCtx<'_>) -> CoreResult<()> {
    let root = r.study.results_dir().join("diffusion");
    for (dir, path) in super::prefixed_json(&root, "sharpness-") {
        ctx.checkpoint()?;
        let name = format!("{}-{}", super::name_of(&dir), super::stem_of(&path));
        let mut body = String::new();
        if let Some(rep) = r.load::<SharpnessReport>(&path, &mut body) {
            section(r, &name, &rep, &mut body)?;
        }
        r.sections.push(Section {
            id: super::slug(&name),
            title: format!("Sharpness: {}", super::name_of(&dir)),
            body,
        });
    }
    Ok(())
}

fn section(r: &mut Report<'_>, name: &str, rep: &SharpnessReport, body: &mut String) -> CoreResult<()> {
    let f = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
    body.push_str(&html::p(
        "The fraction of directions in which the model's log-density is sharply curved at each \
         training image (eigenvalues of sigma_t^2 times the Hessian below -tau): a memorized image \
         sits on an isolated peak, so almost every direction is sharp.",
    ));
    body.push_str(&html::figures(&[
        ("model", rep.model.clone()),
        (
            "timestep, threshold, Lanczos steps",
            format!(
                "t = {}, tau = {}, {} iterations",
                rep.config.t, rep.config.tau, rep.config.iterations
            ),
        ),
        ("images", rep.rows.len().to_string()),
        ("duplicated images", rep.duplicated.len().to_string()),
        (
            "mean sharpness, duplicated vs single",
            format!("{} vs {}", f(rep.mean_duplicated), f(rep.mean_single)),
        ),
        ("AUC, duplicated vs single", f(rep.auc_duplicated)),
        ("eigen-solver", rep.solver.clone()),
    ]));
    let mut t = Table::new(&["index", "duplicated", "sharpness", "lambda_min", "mean_eig"]);
    let mut order: Vec<usize> = (0..rep.rows.len()).collect();
    order.sort_by(|&a, &b| {
        rep.rows[b]
            .sharpness
            .total_cmp(&rep.rows[a].sharpness)
            .then(a.cmp(&b))
    });
    for &k in &order {
        let (i, row) = (rep.indices[k], &rep.rows[k]);
        t.push(vec![
            i.into(),
            rep.duplicated.binary_search(&i).is_ok().into(),
            row.sharpness.into(),
            row.lambda_min.into(),
            row.mean_eig.into(),
        ]);
    }
    let file = r.csv(
        &format!("sharpness-{name}"),
        &format!("{}: every training image's sharpness, sharpest first", rep.model),
        &t,
    )?;
    body.push_str(&html::h3("Sharpest training images"));
    body.push_str(&html::table(&t, 20, Some(&file)));
    Ok(())
}
