//! The model card (`card.json`): what the model is, how it was trained, on exactly which samples,
//! and how well it did. Every later measurement reads membership from here.

use std::path::Path;

use super::ModelSpec;
use crate::error::{CoreError, CoreResult};

/// The data set a model was trained on.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DatasetRef {
    /// Bundled name or path, as given.
    pub name: String,
    /// Source description.
    pub source: String,
    /// Content hash of the data set (see [`crate::data::Dataset::hash`]).
    pub hash: String,
    /// Number of images in the whole data set.
    pub n: usize,
}

/// Training hyper-parameters.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Hyper {
    /// `sgd` (with momentum) or `adamw`.
    pub optimizer: String,
    /// Learning rate.
    pub lr: f64,
    /// Momentum (SGD).
    pub momentum: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Fraction of the training split used.
    pub subset_ratio: f64,
}

/// Metrics of one epoch.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochRecord {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Accuracy on the model's training samples after the epoch.
    pub train_acc: f64,
    /// Accuracy on the test split after the epoch.
    pub test_acc: f64,
}

/// Final metrics.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainMetrics {
    /// Number of training samples.
    pub n_train: usize,
    /// Number of test samples.
    pub n_test: usize,
    /// Final accuracy on the training samples.
    pub train_acc: f64,
    /// Final accuracy on the test split.
    pub test_acc: f64,
    /// Final mean training loss.
    pub train_loss: f64,
    /// Wall-clock training time.
    pub seconds: f64,
}

/// The card written beside the weights.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelCard {
    /// Model id (its folder name).
    pub id: String,
    /// Architecture.
    pub spec: ModelSpec,
    /// Number of parameters.
    pub n_params: usize,
    /// Hyper-parameters.
    pub hyper: Hyper,
    /// Training data set.
    pub dataset: DatasetRef,
    /// The exact indices (into the whole data set) the model trained on, ascending.
    pub train_indices: Vec<u32>,
    /// Seed for subset, initialisation and batch order.
    pub seed: u64,
    /// Epochs trained.
    pub epochs: usize,
    /// Final metrics.
    pub metrics: TrainMetrics,
    /// Per-epoch metrics.
    pub history: Vec<EpochRecord>,
    /// Training loss by step (downsampled to at most a few hundred points).
    pub loss_curve: Vec<[f64; 2]>,
    /// Device it trained on.
    pub device: String,
    /// The command that reproduces it.
    pub command: String,
    /// rote version.
    pub rote_version: String,
    /// Unix time of creation.
    pub created_unix: u64,
}

impl ModelCard {
    /// Loads and validates a card.
    pub fn load(path: &Path) -> CoreResult<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| CoreError::io(path, e))?;
        Self::from_json(path, &text)
    }

    /// Parses and validates the text of a card; `path` only names the file in errors.
    pub fn from_json(path: &Path, text: &str) -> CoreResult<Self> {
        let card: Self = serde_json::from_str(text)
            .map_err(|e| CoreError::format(path, format!("bad model card: {e}")))?;
        super::limits::in_range("dataset.n", card.dataset.n, super::limits::DATASET_N)
            .and_then(|()| super::limits::validate(&card.spec))
            .map_err(|why| CoreError::format(path, why))?;
        if let Some(&bad) = card.train_indices.iter().find(|&&i| i as usize >= card.dataset.n) {
            return Err(CoreError::format(
                path,
                format!(
                    "training index {bad} is outside the data set of {} images",
                    card.dataset.n
                ),
            ));
        }
        Ok(card)
    }

    /// Membership mask over the whole data set: `true` where the model trained on the sample.
    pub fn member_mask(&self) -> Vec<bool> {
        let mut mask = vec![false; self.dataset.n];
        for &i in &self.train_indices {
            if let Some(m) = mask.get_mut(i as usize) {
                *m = true;
            }
        }
        mask
    }
}

/// Per-sample scores of a model over its whole data set, stored as `scores.json` beside the
/// card: columns the Data view can sort by.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SampleScores {
    /// Cross-entropy loss per sample.
    pub loss: Vec<f32>,
    /// Logit of the true class minus the largest other logit.
    pub margin: Vec<f32>,
    /// Whether the prediction is right.
    pub correct: Vec<bool>,
}
