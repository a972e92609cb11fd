//! What a defence changes (`results/defences.json`, written by `rote defences` and the Defences
//! view): each baseline zoo and its defended variants, utility beside every memorization
//! measurement, and for DP-SGD the accountant's ε beside the audited lower bound.

use super::{Report, Section, Table, html};
use crate::defence::compare::{DefencesReport, report_path};
use crate::error::CoreResult;
use crate::job::JobCtx;

/// Adds the Defences section when the study has a saved comparison.
pub(super) fn add(r: &mut Report<'_>, ctx: &JobCtx<'_>) -> CoreResult<()> {
    ctx.checkpoint()?;
    let path = report_path(r.study);
    if !path.is_file() {
        return Ok(());
    }
    let mut body = String::new();
    if let Some(rep) = r.load::<DefencesReport>(&path, &mut body) {
        section(r, &rep, &mut body)?;
    }
    r.sections.push(Section {
        id: "defences".into(),
        title: "Defences".into(),
        body,
    });
    Ok(())
}

fn opt(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite())
        .map_or_else(|| "-".into(), |x| format!("{x:.3}"))
}

fn section(r: &mut Report<'_>, rep: &DefencesReport, body: &mut String) -> CoreResult<()> {
    body.push_str(&html::p(
        "Each defended variant was trained with its baseline's recipe, data and seeds and differs \
         only by the defence. Leakage is LiRA (online) over the zoo; the audited epsilon is a \
         lower bound from LiRA's ROC (one-sided Clopper-Pearson at 95%, Bonferroni over the \
         thresholds searched, delta 1e-5), so for a DP-SGD variant it must not exceed the \
         accountant's epsilon. Robust accuracy (adversarially trained variants) is the test-split \
         accuracy under PGD-20 at the training radius. Hyperparameter tuning on private data is \
         not accounted for.",
    ));
    let mut t = Table::new(&[
        "zoo",
        "variant_of",
        "defence",
        "models",
        "test_accuracy",
        "robust_accuracy",
        "lira_auc",
        "lira_tpr_at_0.1pct_fpr",
        "audited_epsilon",
        "accountant_epsilon",
        "delta",
        "mem_mean",
        "planted_recall",
    ]);
    for row in &rep.rows {
        t.push(vec![
            row.zoo.clone().into(),
            row.variant_of.clone().unwrap_or_default().into(),
            row.defence.clone().into(),
            row.models.into(),
            row.test_accuracy.into(),
            opt(row.robust_accuracy).into(),
            row.lira_auc.into(),
            row.lira_tpr_at_0_1pct_fpr.into(),
            opt(row.audited_epsilon).into(),
            opt(row.accountant_epsilon).into(),
            opt(row.delta).into(),
            row.mem_mean.into(),
            opt(row.planted_recall).into(),
        ]);
    }
    for row in &rep.rows {
        if let (Some(a), Some(e)) = (row.audited_epsilon, row.accountant_epsilon)
            && a > e
        {
            body.push_str(&r.note(format!(
                "{}: the audited lower bound {a:.3} exceeds the accountant's epsilon {e:.3}: \
                 the accountant or the training is wrong",
                row.zoo
            )));
        }
    }
    let file = r.csv("defences", "Baselines and their defended variants", &t)?;
    body.push_str(&html::table(&t, 50, Some(&file)));
    if !rep.diffusion.is_empty() {
        body.push_str(&html::h3(
            "Diffusion models: extraction with and without deduplication",
        ));
        let mut d = Table::new(&[
            "model",
            "variant_of",
            "defence",
            "samples",
            "extracted",
            "unique_train_extracted",
            "planted_dup_extracted_frac",
            "singleton_extracted_frac",
            "final_loss",
        ]);
        for row in &rep.diffusion {
            d.push(vec![
                row.model.clone().into(),
                row.variant_of.clone().unwrap_or_default().into(),
                row.defence.clone().into(),
                row.samples.into(),
                row.n_extracted.into(),
                row.unique_train_extracted.into(),
                opt(row.planted_dup_extracted_frac).into(),
                opt(row.singleton_extracted_frac).into(),
                opt(row.final_loss).into(),
            ]);
        }
        let file = r.csv(
            "defences-diffusion",
            "Diffusion models and their deduplicated variants",
            &d,
        )?;
        body.push_str(&html::table(&d, 50, Some(&file)));
    }
    Ok(())
}
