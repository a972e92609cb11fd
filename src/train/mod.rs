//! Training classifiers, deterministically for a seed, on an exact subset of the training split.
//!
//! [`train`] is the one entry point used by the CLI, the GUI and the tests; [`train_into_study`]
//! also writes the result into a study folder (weights, card and per-sample scores, atomically).

mod adamw_cpu;
mod batched_mlp;
mod batched_mlp_adv;
mod batched_mlp_dp;
mod batched_mlp_grad;
mod classifier_dp;
mod optim;
mod run;
mod sgd_cpu;
pub mod zoo;
pub use zoo_dp::dp_record;
mod zoo_adv;
mod zoo_dp;
mod zoo_groups;
mod zoo_merge;
mod zoo_record;
pub mod zoo_subsets;

pub use adamw_cpu::AdamWCpu;
pub use optim::{Optimizer, OptimizerKind, SgdMomentum};
pub use run::{
    TrainOutcome, channel_stats, draw_subset, evaluate, sample_scores, train, train_into_study,
    train_on_subset,
};

use crate::model::Family;

/// Everything that defines a training run. Serialised into the card so a run can be repeated.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// Model family.
    pub family: Family,
    /// Data set: bundled name or path.
    pub data: String,
    /// Epochs.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Optimiser.
    pub optimizer: OptimizerKind,
    /// Learning rate.
    pub lr: f64,
    /// Momentum (SGD only).
    pub momentum: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Fraction of the training split to train on (seeded draw without replacement).
    pub subset_ratio: f64,
    /// Seed for subset, initialisation and batch order.
    pub seed: u64,
    /// `cpu` or `cuda`.
    pub device: String,
    /// Model id to use (a fresh one is made from family, data and seed when empty).
    pub id: String,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            family: Family::Mlp,
            data: "mnist10k".into(),
            epochs: 3,
            batch_size: 64,
            optimizer: OptimizerKind::Adamw,
            lr: 1e-3,
            momentum: 0.9,
            weight_decay: 0.0,
            subset_ratio: 1.0,
            seed: 0,
            device: "cpu".into(),
            id: String::new(),
        }
    }
}

impl TrainConfig {
    /// The command line that reproduces this run.
    pub fn command(&self, out: &str) -> String {
        format!(
            "rote train --family {} --data {} --epochs {} --batch-size {} --optimizer {} --lr {} --momentum {} \
             --weight-decay {} --subset-ratio {} --seed {} --device {} --out {}",
            self.family.as_str(),
            self.data,
            self.epochs,
            self.batch_size,
            self.optimizer.as_str(),
            self.lr,
            self.momentum,
            self.weight_decay,
            self.subset_ratio,
            self.seed,
            self.device,
            out
        )
    }
}
