//! `rote lm-probe` in the report (`results/lm/<model>/probe-*.json`): the finding, probe accuracy
//! and AUC against layer with the logit-only baseline and chance, the per-site table with the top
//! unit, the intervention against α beside a random direction, and the ablated generations.

use super::svg::{Axis, Series, line_chart};
use super::{Report, Table, html};
use crate::error::CoreResult;
use crate::lm::probe_report::ProbeReport;
use crate::lm::trace::Site;

/// The activation-probe part of a model's section.
pub(super) fn probes(r: &mut Report<'_>, name: &str, rep: &ProbeReport, body: &mut String) -> CoreResult<()> {
    body.push_str(&html::h3(&format!(
        "Activation probes: where memorized tokens live ({})",
        rep.source.describe()
    )));
    body.push_str(&html::p(&rep.finding()));
    let c = &rep.counts;
    body.push_str(&html::p(&format!(
        "Labels (spec 11 §B.1): {} tokens extracted verbatim from {} of {} members, {} of them \
         dependent on long context (a drop of more than {} nats when the context before the last {} \
         tokens is replaced); {} argmax-correct tokens of {} never-seen texts; {} per class after \
         confidence matching. Folds are grouped by sequence.",
        c.extracted_tokens,
        c.extracted_sequences,
        c.member_sequences,
        c.context_dependent,
        rep.options.delta,
        rep.options.keep,
        c.nonmember_correct,
        c.nonmember_sequences,
        c.matched_per_class
    )));
    let residual: Vec<&crate::lm::probe_report::SiteProbe> =
        rep.probes.iter().filter(|p| p.site == Site::Residual).collect();
    let mlp: Vec<&crate::lm::probe_report::SiteProbe> =
        rep.probes.iter().filter(|p| p.site == Site::Mlp).collect();
    let n = residual.len() as f64;
    let line = |name: &str, ps: &[&crate::lm::probe_report::SiteProbe], shift: f64| {
        Series::new(
            name,
            ps.iter()
                .map(|p| [p.layer as f64 + shift, p.metrics.accuracy])
                .collect(),
        )
    };
    let series = vec![
        line("residual stream", &residual, 0.0),
        line("MLP (after block l, drawn at l + 1)", &mlp, 1.0),
        Series::reference(
            "logit-only baseline",
            vec![
                [0.0, rep.logit_baseline.accuracy],
                [n - 1.0, rep.logit_baseline.accuracy],
            ],
        ),
        Series::reference("chance", vec![[0.0, rep.chance], [n - 1.0, rep.chance]]),
    ];
    body.push_str(&html::chart(
        &line_chart(
            &series,
            &Axis::linear("layer (0 = embeddings)", 0.0, (n - 1.0).max(1.0)),
            &Axis::linear("held-out probe accuracy", 0.0, 1.0),
        ),
        "Held-out accuracy of a logistic probe per layer (grouped 5-fold cross-validation); dashed: \
         the logit-only baseline (max probability and entropy) and chance.",
    ));
    let mut t = Table::new(&[
        "site",
        "width",
        "accuracy",
        "auc",
        "tpr_at_1pct_fpr",
        "precision_at_1pct_fpr",
        "top_unit",
        "top_unit_auc",
        "top_unit_cohen_d",
    ]);
    for p in &rep.probes {
        let top = p.top_neurons.first();
        t.push(vec![
            p.name.clone().into(),
            p.width.into(),
            p.metrics.accuracy.into(),
            p.metrics.auc.into(),
            p.metrics.tpr_at_1pct_fpr.into(),
            p.metrics.precision_at_1pct_fpr.into(),
            top.map_or(0, |u| u.index).into(),
            top.map_or(f64::NAN, |u| u.auc).into(),
            top.map_or(f64::NAN, |u| u.cohen_d).into(),
        ]);
    }
    let b = &rep.logit_baseline;
    t.push(vec![
        "logit-only".into(),
        2usize.into(),
        b.accuracy.into(),
        b.auc.into(),
        b.tpr_at_1pct_fpr.into(),
        b.precision_at_1pct_fpr.into(),
        0usize.into(),
        f64::NAN.into(),
        f64::NAN.into(),
    ]);
    let f = r.csv(
        &format!("lm-{name}"),
        &format!("{}: probe metrics per site", rep.model),
        &t,
    )?;
    body.push_str(&html::table(&t, 40, Some(&f)));
    let i = &rep.intervention;
    let mut it = Table::new(&[
        "alpha",
        "direction",
        "exact_extraction",
        "token_match",
        "heldout_ppl",
        "rare_member_ppl",
    ]);
    for (p, dir) in i
        .points
        .iter()
        .map(|p| (p, "probe"))
        .chain(std::iter::once((&i.random_direction, "random")))
    {
        it.push(vec![
            f64::from(p.alpha).into(),
            dir.into(),
            p.extraction.into(),
            p.match_fraction.into(),
            p.heldout_ppl.into(),
            p.rare_member_ppl.unwrap_or(f64::NAN).into(),
        ]);
    }
    let fi = r.csv(
        &format!("lm-{name}-intervention"),
        &format!(
            "{}: the probe direction projected out of {} ({})",
            rep.model, i.site, i.form
        ),
        &it,
    )?;
    body.push_str(&html::p(&format!(
        "Intervention at {} ({}: h − α ((h − c)·ŵ) ŵ at every position):",
        i.site, i.form
    )));
    body.push_str(&html::table(&it, 20, Some(&fi)));
    for e in &i.exhibits {
        body.push_str(&html::p(&format!(
            "{}: true “{}” · unedited “{}” · edited “{}”",
            e.source, e.truth, e.original, e.ablated
        )));
    }
    Ok(())
}
