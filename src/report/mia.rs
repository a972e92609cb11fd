//! Membership inference on each zoo (`results/<zoo>/mia-*.json`): AUC and TPR at low FPR per
//! attack, the audited ε lower bounds, and the log-log ROC curves.

use super::svg::{Axis, Series, line_chart};
use super::{Report, Section, Table, html};
use crate::error::CoreResult;
use crate::job::JobCtx;
use crate::measure::mia::MiaResult;

/// The lowest FPR drawn on the log-log ROC.
const MIN_FPR: f64 = 1e-4;

/// Adds one section per zoo with attack reports.
pub(super) fn add(r: &mut Report<'_>, ctx: &JobCtx<'_>) -> CoreResult<()> {
    for dir in super::memorization::zoo_dirs(&r.study.results_dir()) {
        ctx.checkpoint()?;
        let files: Vec<_> = super::json_files(&dir)
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("mia-"))
            })
            .collect();
        if files.is_empty() {
            continue;
        }
        let zoo = super::name_of(&dir);
        let mut body = String::new();
        let mut results = Vec::new();
        for f in &files {
            if let Some(m) = r.load::<MiaResult>(f, &mut body) {
                results.push(m);
            }
        }
        if !results.is_empty() {
            section(r, &zoo, &results, &mut body)?;
        }
        r.sections.push(Section {
            id: format!("membership-{}", super::slug(&zoo)),
            title: format!("Membership inference: {zoo}"),
            body,
        });
    }
    Ok(())
}

/// The attack table of `results` (one row per attack).
pub(super) fn attack_table(results: &[MiaResult]) -> Table {
    let mut t = Table::new(&[
        "attack",
        "auc",
        "tpr_at_1pct_fpr",
        "tpr_at_0_1pct_fpr",
        "n_scores",
        "n_targets",
        "eps_lower_bound",
        "eps_one_run",
    ]);
    for m in results {
        t.push(vec![
            m.attack.slug().into(),
            m.auc.into(),
            m.tpr_at_1pct_fpr.into(),
            m.tpr_at_0_1pct_fpr.into(),
            m.n_scores.into(),
            m.n_targets.into(),
            m.epsilon_lower_bound.as_ref().map(|b| b.epsilon).into(),
            m.epsilon_one_run.as_ref().map(|b| b.epsilon).into(),
        ]);
    }
    t
}

/// One line per attack and audited bound (see [`crate::measure::audit`]).
fn audit_lines(results: &[MiaResult]) -> String {
    let lines: Vec<String> = results
        .iter()
        .flat_map(|m| {
            m.epsilon_lower_bound
                .iter()
                .chain(&m.epsilon_one_run)
                .map(move |b| format!("{}: {}", m.attack.slug(), b.summary()))
        })
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    let mut out = html::p(
        "Audited ε lower bounds: at 95% confidence, training is not (ε, δ)-DP for any ε below \
         these. The pooled bound treats every (target, sample) score as an independent \
         trial; the one-run bound (first target, its samples as canaries) needs no such assumption \
         but is only given when that target trained on exactly half of them.",
    );
    for l in lines {
        out.push_str(&html::p(&l));
    }
    out
}

/// The log-log ROC chart of `results` with the chance line.
pub(super) fn roc_chart(curves: &[(String, Vec<[f64; 2]>)]) -> String {
    let mut series: Vec<Series> = curves
        .iter()
        .map(|(name, pts)| Series::new(name, pts.iter().copied().filter(|p| p[0] > 0.0).collect()))
        .collect();
    series.push(Series::reference("chance", vec![[MIN_FPR, MIN_FPR], [1.0, 1.0]]));
    line_chart(
        &series,
        &Axis::log("false-positive rate", MIN_FPR, 1.0),
        &Axis::log("true-positive rate", MIN_FPR, 1.0),
    )
}

fn section(r: &mut Report<'_>, zoo: &str, results: &[MiaResult], body: &mut String) -> CoreResult<()> {
    let t = attack_table(results);
    let f = r.csv(
        &format!("mia-{zoo}"),
        &format!("{zoo}: membership inference, AUC and TPR at low FPR per attack"),
        &t,
    )?;
    body.push_str(&html::p(
        "Leave-one-model-out: each zoo model in turn is the target, the others are the reference \
         models; candidates are the training split.",
    ));
    body.push_str(&html::table(&t, 20, Some(&f)));
    body.push_str(&audit_lines(results));
    let mut roc = Table::new(&["attack", "fpr", "tpr"]);
    for m in results {
        for (x, y) in m.roc.fpr.iter().zip(&m.roc.tpr) {
            roc.push(vec![m.attack.slug().into(), (*x).into(), (*y).into()]);
        }
    }
    let rf = r.csv(
        &format!("mia-roc-{zoo}"),
        &format!("{zoo}: ROC points of every attack (thinned on a log scale)"),
        &roc,
    )?;
    let curves: Vec<(String, Vec<[f64; 2]>)> = results
        .iter()
        .map(|m| {
            (
                format!("{} (AUC {:.3})", m.attack.slug(), m.auc),
                m.roc.fpr.iter().zip(&m.roc.tpr).map(|(x, y)| [*x, *y]).collect(),
            )
        })
        .collect();
    body.push_str(&html::chart(
        &roc_chart(&curves),
        "ROC curves on log-log axes (the low-FPR region is what matters for privacy).",
    ));
    body.push_str(&format!("<p class=\"file\">data: {}</p>\n", html::link(&rf)));
    Ok(())
}
