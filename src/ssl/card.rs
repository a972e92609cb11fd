//! A trained SSL encoder on disk: `STUDY/ssl/<id>/{card.json, weights.safetensors}`. The card
//! holds the whole split (both encoders of a pair carry the same one), the recipe and the seeds,
//! so a measurement can check that f and g form a valid pair.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};

use super::augment::AugConfig;
use super::encoder::{Encoder, EncoderConfig};
use super::split::{Role, SslSplit};
use crate::error::{CoreError, CoreResult};
use crate::model::DatasetRef;

/// The SimCLR training recipe (identical for f and g).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SslRecipe {
    /// Passes over the training set.
    pub epochs: usize,
    /// Images per batch (2x as many views).
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Decoupled weight decay (AdamW; 1e-6 as in the reference SimCLR config).
    pub weight_decay: f64,
    /// NT-Xent temperature.
    pub temperature: f64,
    /// Augmentations.
    pub aug: AugConfig,
    /// Seed of initialisation, batch order and augmentations.
    pub seed: u64,
}

/// Everything about one trained encoder.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SslCard {
    /// Encoder id (folder name).
    pub id: String,
    /// f (candidate) or g (independent).
    pub role: Role,
    /// Id of the pair (both encoders share it).
    pub pair: String,
    /// Architecture.
    pub arch: EncoderConfig,
    /// Measured layers, in order.
    pub layers: Vec<String>,
    /// Main data set.
    pub dataset: DatasetRef,
    /// Outlier data set (planted candidates), if any.
    pub outlier_dataset: Option<DatasetRef>,
    /// The split (the same in f and g).
    pub split: SslSplit,
    /// Training recipe.
    pub recipe: SslRecipe,
    /// Images this encoder trained on.
    pub n_train: usize,
    /// Mean loss of the last epoch.
    pub final_loss: f64,
    /// (epoch, mean loss) points.
    pub loss_curve: Vec<[f64; 2]>,
    /// Training time.
    pub seconds: f64,
    /// Parameter count.
    pub n_params: usize,
    /// dtype of the stored weights.
    pub weights_dtype: String,
    /// Command that reproduces the encoder.
    pub command: String,
    /// rote version.
    pub rote_version: String,
}

impl SslCard {
    /// Parses the text of an SSL encoder card and validates its architecture; `path` only names
    /// the file in errors.
    pub fn from_json(path: &Path, text: &str) -> CoreResult<Self> {
        let mut card: Self = serde_json::from_str(text)
            .map_err(|e| CoreError::format(path, format!("not an SSL encoder card: {e}")))?;
        crate::model::limits::validate(&card.arch).map_err(|why| CoreError::format(path, why))?;
        // The measured layers follow from the architecture (cards of older builds list fewer).
        card.layers = card.arch.layer_names();
        Ok(card)
    }
}

impl SslCard {
    /// Reads and validates `dir/card.json` and checks its architecture against the header of
    /// `dir/weights.safetensors`, allocating nothing of the model's size.
    pub fn check_folder(dir: &Path) -> CoreResult<Self> {
        crate::model::check_model_folder(dir)?;
        let card_path = dir.join("card.json");
        let text = std::fs::read_to_string(&card_path).map_err(|e| CoreError::io(&card_path, e))?;
        let card = Self::from_json(&card_path, &text)?;
        crate::model::header::check_weights(&card.arch, &card_path, &dir.join("weights.safetensors"))?;
        Ok(card)
    }
}

/// An encoder ready to run.
pub struct SslEncoder {
    /// The network.
    pub net: Encoder,
    /// Its parameters.
    pub varmap: VarMap,
    /// Its card.
    pub card: SslCard,
}

/// `STUDY/ssl`.
pub fn ssl_dir(study_root: &Path) -> PathBuf {
    study_root.join("ssl")
}

impl SslEncoder {
    /// A fresh encoder for `card`, initialised from the recipe's seed.
    pub fn fresh(card: SslCard, device: &Device) -> CoreResult<Self> {
        let varmap = VarMap::new();
        let net = Encoder::new(&card.arch, VarBuilder::from_varmap(&varmap, DType::F32, device))?;
        crate::model::seeded_init(&varmap, card.recipe.seed)?;
        Ok(Self { net, varmap, card })
    }

    /// Loads `dir`, checking the weights against the card's architecture.
    pub fn load(dir: &Path, device: &Device) -> CoreResult<Self> {
        let card = SslCard::check_folder(dir)?;
        let varmap = VarMap::new();
        let net = Encoder::new(&card.arch, VarBuilder::from_varmap(&varmap, DType::F32, device))?;
        crate::model::fill_varmap(&varmap, &dir.join("weights.safetensors"), "SSL encoder", device)?;
        Ok(Self { net, varmap, card })
    }

    /// Writes card and weights into `dir` (created).
    pub fn save(&self, dir: &Path, dtype: DType) -> CoreResult<()> {
        std::fs::create_dir_all(dir).map_err(|e| CoreError::io(dir, e))?;
        crate::model::save_weights_as(&self.varmap, &dir.join("weights.safetensors"), dtype)?;
        crate::study::write_json_atomic(&dir.join("card.json"), &self.card)
    }
}
