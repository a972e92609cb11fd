//! **LOSS** (Yeom, Giacomelli, Fredrikson & Jha 2018, "Privacy Risk in Machine Learning:
//! Analyzing the Connection to Overfitting", IEEE CSF, the loss-threshold adversary):
//! `score = −ℓ_t(i)`.

use super::types::ZooView;

/// The LOSS score of target t on sample i: its negated cross-entropy loss.
pub(super) fn loss_score(zoo: &ZooView<'_>, t: usize, i: usize) -> f64 {
    -f64::from(zoo.loss[t * zoo.n + i])
}
