//! Tabular diffusion models (`STUDY/tabular/<id>/`, written by `rote train-tabular`): the
//! memorization ratio (Fang et al.) per checkpoint under both distances, the quality of the
//! synthetic rows, and the memorized synthetic rows beside their training twins.

use super::{Report, Section, Table, html};
use crate::error::CoreResult;
use crate::job::JobCtx;
use crate::tabular::memorization::DistanceRule;
use crate::tabular::train::{TabularCard, tabular_dir};
use crate::tabular::twins::memorized_twins;

/// Adds one section per tabular model.
pub(super) fn add(r: &mut Report<'_>, ctx: &JobCtx<'_>) -> CoreResult<()> {
    let root = tabular_dir(&r.study.root);
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Ok(());
    };
    let mut dirs: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir() && !super::name_of(p).starts_with('.'))
        .collect();
    dirs.sort();
    for dir in dirs {
        ctx.checkpoint()?;
        let name = super::name_of(&dir);
        let mut body = String::new();
        if let Some(card) = r.load::<TabularCard>(&dir.join("card.json"), &mut body) {
            section(r, &name, &dir, &card, &mut body)?;
        }
        r.sections.push(Section {
            id: super::slug(&format!("tabular-{name}")),
            title: format!("Tabular: {name}"),
            body,
        });
    }
    Ok(())
}

fn section(
    r: &mut Report<'_>,
    name: &str,
    dir: &std::path::Path,
    card: &TabularCard,
    body: &mut String,
) -> CoreResult<()> {
    body.push_str(&html::p(
        "A synthetic row is memorized when its nearest training row is closer than a third of its \
         second-nearest (Fang et al.). 'code' is the reference's distance (numeric part min-max \
         scaled per synthetic row), 'global' scales each column once over the training rows.",
    ));
    body.push_str(&html::figures(&[
        ("data", format!("{} ({})", card.config.data, card.data_source)),
        ("training rows", card.members.len().to_string()),
        (
            "planted duplicates",
            format!("{} x{}", card.planted.len(), card.config.dup_factor),
        ),
        (
            "augmentation",
            format!(
                "{} ({} rows added)",
                card.config.augment.label(),
                card.augmented_rows
            ),
        ),
        (
            "TSTR accuracy (trained on real rows)",
            format!(
                "{:.1} % ({:.1} %)",
                100.0 * card.tstr_accuracy,
                100.0 * card.trtr_accuracy
            ),
        ),
        (
            "marginal fidelity, correlation difference",
            format!(
                "{:.3}, {:.3}",
                card.quality.marginal_fidelity, card.quality.correlation_difference
            ),
        ),
    ]));
    let mut t = Table::new(&["epoch", "loss", "ratio (code)", "ratio (global)", "median DCR"]);
    for e in &card.by_epoch {
        t.push(vec![
            e.epoch.into(),
            e.loss.into(),
            e.code.ratio.into(),
            e.global.ratio.into(),
            e.code.median_dcr.into(),
        ]);
    }
    let file = r.csv(
        &format!("tabular-{name}-by-epoch"),
        "memorization ratio per checkpoint",
        &t,
    )?;
    body.push_str(&html::h3("Memorization ratio per checkpoint"));
    body.push_str(&html::table(&t, 50, Some(&file)));

    // The memorized rows of the final samples beside their twins (global rule).
    let twins = match memorized_twins(dir, None, DistanceRule::Global) {
        Ok((_, t)) => t,
        Err(e) => {
            body.push_str(&r.note(format!("{name}: {e}; rows left out")));
            return Ok(());
        }
    };
    let mut header = vec!["row".to_string(), "d1/d2".to_string()];
    header.extend(twins.header.iter().cloned());
    let header_refs: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut rows = Table::new(&header_refs);
    for t in &twins.rows {
        let mut s: Vec<super::csv::Cell> =
            vec![format!("synthetic #{}", t.synthetic_row).into(), t.ratio.into()];
        s.extend(t.synthetic.iter().cloned().map(Into::into));
        rows.push(s);
        let planted = if t.planted { " (planted)" } else { "" };
        let mut tr: Vec<super::csv::Cell> =
            vec![format!("training #{}{planted}", t.training_row).into(), "".into()];
        tr.extend(t.training.iter().cloned().map(Into::into));
        rows.push(tr);
    }
    let file = r.csv(
        &format!("tabular-{name}-memorized"),
        "memorized synthetic rows (global distance), each followed by its nearest training row",
        &rows,
    )?;
    body.push_str(&html::h3(&format!(
        "Memorized synthetic rows beside their training twins ({} of {}, global distance)",
        twins.rows.len(),
        twins.n_synthetic
    )));
    body.push_str(&html::table(&rows, 20, Some(&file)));
    Ok(())
}
