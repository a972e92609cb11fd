//! Membership inference on diffusion-model families from the loss at chosen timesteps
//! (`results/diffusion/<model>/mia-diffusion.json`): AUC and TPR at 1% FPR per attack and t.

use std::path::Path;

use super::svg::{Axis, Series, line_chart};
use super::{Report, Section, Table, html};
use crate::diffusion::mia::DiffusionMiaReport;
use crate::error::CoreResult;
use crate::job::JobCtx;

/// Adds one section per saved diffusion MIA report.
pub(super) fn add(r: &mut Report<'_>, ctx: &JobCtx<'_>) -> CoreResult<()> {
    let root = r.study.results_dir().join("diffusion");
    let files = [
        ("mia-diffusion.json", ""),
        ("mia-diffusion-members.json", " (members vs held out)"),
    ];
    for (dir, (file, what)) in super::list(&root, Path::is_dir)
        .into_iter()
        .flat_map(|d| files.map(|f| (d.clone(), f)))
    {
        let path = dir.join(file);
        if !path.is_file() {
            continue;
        }
        ctx.checkpoint()?;
        let model = format!("{}{what}", super::name_of(&dir));
        let mut body = String::new();
        if let Some(rep) = r.load::<DiffusionMiaReport>(&path, &mut body) {
            section(r, &model, &rep, &mut body)?;
        }
        r.sections.push(Section {
            id: super::slug(&format!("mia-diffusion-{model}")),
            title: format!("Diffusion membership: {model}"),
            body,
        });
    }
    Ok(())
}

fn section(r: &mut Report<'_>, model: &str, rep: &DiffusionMiaReport, body: &mut String) -> CoreResult<()> {
    body.push_str(&html::p(&format!(
        "Models {}; {} images in the pool; loss averaged over {} noise draws per image and timestep.",
        rep.models.join(", "),
        rep.pool.len(),
        rep.config.draws
    )));
    let mut t = Table::new(&[
        "t",
        "attack",
        "auc",
        "tpr_at_1pct_fpr",
        "tpr_at_0_1pct_fpr",
        "n_scores",
    ]);
    let mut curves: Vec<(String, Vec<[f64; 2]>)> = Vec::new();
    for step in &rep.per_t {
        for a in &step.attacks {
            t.push(vec![
                step.t.into(),
                a.attack.slug().into(),
                a.auc.into(),
                a.tpr_at_1pct_fpr.into(),
                a.tpr_at_0_1pct_fpr.into(),
                a.n_scores.into(),
            ]);
            let name = a.attack.slug().to_string();
            match curves.iter_mut().find(|c| c.0 == name) {
                Some(c) => c.1.push([step.t as f64, a.auc]),
                None => curves.push((name, vec![[step.t as f64, a.auc]])),
            }
        }
    }
    let f = r.csv(
        &format!("mia-diffusion-{model}"),
        &format!("{model}: membership inference from the loss at each timestep t"),
        &t,
    )?;
    let tmax = rep.per_t.iter().map(|s| s.t as f64).fold(1.0, f64::max);
    let mut series: Vec<Series> = curves.iter().map(|(n, p)| Series::new(n, p.clone())).collect();
    series.push(Series::reference("chance", vec![[0.0, 0.5], [tmax, 0.5]]));
    body.push_str(&html::chart(
        &line_chart(
            &series,
            &Axis::linear("timestep t", 0.0, tmax),
            &Axis::linear("AUC", 0.4, 1.0),
        ),
        "AUC of each attack against the timestep at which the loss is measured.",
    ));
    body.push_str(&html::table(&t, 40, Some(&f)));
    Ok(())
}
