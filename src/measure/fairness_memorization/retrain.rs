//! Real memorization (spec 14 §7 step 4 and figure d, Pepin, Igel and Selvan): the classifier's
//! recipe trained again on its training rows plus the memorized set D (each row of D repeated
//! `weight` times, the spec's up-weighting ×w), against the simulation f = Y on D.
//!
//! The simulation says what perfect memorization of D does to the gaps on the population P that
//! contains D. A real network memorizes imperfectly and changes its predictions elsewhere too
//! (spillover), so this reports, for the retrained model: how much of D it fits; the gaps on P
//! (the "seen" population, comparable with the simulation and the closed form); the gaps on P ∖ D
//! before and after (rows neither model trained on: the spec's "unseen" side, where memorizing D
//! has no direct effect); and the share of P ∖ D whose prediction changed.

use std::path::Path;

use super::{Gaps, Population};
use crate::data::Table;
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
use crate::measure::fairness_model::{predict_all, predictions_table, tabular_model_data};
use crate::train::{OptimizerKind, TrainConfig, train_on_subset};

/// The retrained classifier against the base one, on P and on P ∖ D.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RetrainReport {
    /// Copies of each row of D added to the training rows.
    pub weight: usize,
    /// Rows of D.
    pub memorized: usize,
    /// Training rows of the retrained model (the base model's plus `weight` × D).
    pub train_rows: usize,
    /// Share of D the base model predicts right.
    pub base_fit_on_d: f64,
    /// Share of D the retrained model predicts right (1 = D memorized).
    pub fit_on_d: f64,
    /// The retrained model's gaps on P (which contains D).
    pub seen: Gaps,
    /// Accuracy on P, base and retrained.
    pub accuracy: [f64; 2],
    /// The base model's gaps on P ∖ D.
    pub unseen_before: Gaps,
    /// The retrained model's gaps on P ∖ D.
    pub unseen_after: Gaps,
    /// Share of P ∖ D whose prediction changed.
    pub spillover: f64,
    /// Training time in seconds.
    pub seconds: f64,
}

/// Dataset indices of the rows of P, in P's order: the rows of `split` (`train`, `test`, `all`)
/// whose group is one of `names`, exactly the rows [`super::population_of_table`] keeps.
pub fn population_indices(table: &Table, split: &str, names: (&str, &str)) -> CoreResult<Vec<usize>> {
    let col = |name: &str| super::sweep::column(table, name);
    let (ci, cs, cg) = (col("index")?, col("split")?, col("group")?);
    table
        .rows
        .iter()
        .filter(|r| (split == "all" || r[cs] == split) && (r[cg] == names.0 || r[cg] == names.1))
        .map(|r| {
            r[ci]
                .parse::<usize>()
                .map_err(|_| CoreError::Invalid(format!("predictions table: bad index '{}'", r[ci])))
        })
        .collect()
}

/// The training recipe of the classifier in `dir`, read from its card.
fn recipe(card: &crate::model::ModelCard) -> CoreResult<TrainConfig> {
    let optimizer = match card.hyper.optimizer.as_str() {
        "sgd" => OptimizerKind::Sgd,
        "adamw" => OptimizerKind::Adamw,
        other => {
            return Err(CoreError::Invalid(format!(
                "model {}: unknown optimizer '{other}' in its card",
                card.id
            )));
        }
    };
    Ok(TrainConfig {
        family: card.spec.family,
        data: card.dataset.name.clone(),
        epochs: card.epochs,
        batch_size: card.hyper.batch_size,
        optimizer,
        lr: card.hyper.lr,
        momentum: card.hyper.momentum,
        weight_decay: card.hyper.weight_decay,
        subset_ratio: card.hyper.subset_ratio,
        seed: card.seed,
        device: "cpu".into(),
        id: format!("{}-memorized", card.id),
    })
}

/// Trains the recipe of the classifier in `dir` on its training rows plus `weight` copies of the
/// rows `d` (dataset indices) and returns its predictions table (grouped by `protected`).
pub fn retrained_predictions(
    dir: &Path,
    protected: Option<&str>,
    d: &[usize],
    weight: usize,
    ctx: &JobCtx<'_>,
) -> CoreResult<(Table, usize, f64)> {
    let (table, ds, card) = tabular_model_data(dir)?;
    let cfg = recipe(&card)?;
    let mut subset: Vec<usize> = card.train_indices.iter().map(|&i| i as usize).collect();
    for _ in 0..weight {
        subset.extend_from_slice(d);
    }
    let rows = subset.len();
    let out = train_on_subset(&cfg, &ds, subset, ctx)?;
    let pred = predict_all(&out.model, &ds, &candle_core::Device::Cpu)?;
    let source = format!("predictions of {} retrained with D x{weight}", dir.display());
    let t = predictions_table(&table, &ds, protected, &pred, source)?;
    Ok((t, rows, out.card.metrics.seconds))
}

/// The retrained model's figures against the base population `before` and the memorized `mask`
/// over P; `after` is the retrained model's population (same rows, same order).
pub fn compare(
    before: &Population,
    after: &Population,
    mask: &[bool],
    weight: usize,
    train_rows: usize,
    seconds: f64,
) -> CoreResult<RetrainReport> {
    if before.len() != after.len() || before.len() != mask.len() || before.y_true != after.y_true {
        return Err(CoreError::Invalid(
            "retrained predictions do not cover the same rows as the base ones".into(),
        ));
    }
    let n = before.len();
    let share = |rows: &[usize], hit: &dyn Fn(usize) -> bool| {
        rows.iter().filter(|&&i| hit(i)).count() as f64 / rows.len().max(1) as f64
    };
    let in_d: Vec<usize> = (0..n).filter(|&i| mask[i]).collect();
    let out_d: Vec<usize> = (0..n).filter(|&i| !mask[i]).collect();
    let all: Vec<usize> = (0..n).collect();
    let unseen = |p: &Population| -> CoreResult<Gaps> {
        let pick = |v: &[usize]| out_d.iter().map(|&i| v[i]).collect::<Vec<_>>();
        let group: Vec<String> = out_d.iter().map(|&i| p.names[p.group[i]].clone()).collect();
        let sub = Population::new(
            &pick(&p.y_true),
            &pick(&p.y_pred),
            &group,
            (&p.names[0], &p.names[1]),
            p.classes,
        )?;
        sub.base()
    };
    Ok(RetrainReport {
        weight,
        memorized: in_d.len(),
        train_rows,
        base_fit_on_d: share(&in_d, &|i| before.y_pred[i] == before.y_true[i]),
        fit_on_d: share(&in_d, &|i| after.y_pred[i] == after.y_true[i]),
        seen: after.base()?,
        accuracy: [
            share(&all, &|i| before.y_pred[i] == before.y_true[i]),
            share(&all, &|i| after.y_pred[i] == after.y_true[i]),
        ],
        unseen_before: unseen(before)?,
        unseen_after: unseen(after)?,
        spillover: share(&out_d, &|i| after.y_pred[i] != before.y_pred[i]),
        seconds,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

    use super::*;

    fn pop(y_true: &[usize], y_pred: &[usize], group: &[&str]) -> Population {
        let g: Vec<String> = group.iter().map(|s| s.to_string()).collect();
        Population::new(y_true, y_pred, &g, ("M", "F"), 2).unwrap()
    }

    #[test]
    fn fit_spillover_and_unseen_gaps_count_the_right_rows() {
        let y = [1, 1, 0, 0, 1, 1, 0, 0];
        let g = ["M", "M", "M", "M", "F", "F", "F", "F"];
        let before = pop(&y, &[1, 0, 0, 0, 0, 0, 0, 1], &g);
        // The retrained model fits D = {1, 4} and flips row 7 (outside D) to 0.
        let after = pop(&y, &[1, 1, 0, 0, 1, 0, 0, 0], &g);
        let mask = [false, true, false, false, true, false, false, false];
        let r = compare(&before, &after, &mask, 5, 100, 0.0).unwrap();
        assert_eq!(r.memorized, 2);
        assert_eq!(r.base_fit_on_d, 0.0);
        assert_eq!(r.fit_on_d, 1.0);
        assert!((r.spillover - 1.0 / 6.0).abs() < 1e-12);
        // Outside D: M rows 0, 2, 3 predicted 1, 0, 0; F rows 5, 6, 7 go from 0, 0, 1 to 0, 0, 0.
        assert!((r.unseen_before.statistical_parity_difference - 0.0).abs() < 1e-12);
        assert!((r.unseen_after.statistical_parity_difference - 1.0 / 3.0).abs() < 1e-12);
        // On all of P the retrained model predicts positive for M 2/4 and F 1/4.
        assert!((r.seen.statistical_parity_difference - 0.25).abs() < 1e-12);
        assert_eq!(r.accuracy, [0.5, 0.875]);
    }

    #[test]
    fn mismatched_rows_are_refused() {
        let a = pop(&[1, 0], &[1, 0], &["M", "F"]);
        let b = pop(&[0, 1], &[1, 0], &["M", "F"]);
        assert!(compare(&a, &b, &[false, false], 1, 2, 0.0).is_err());
    }
}
