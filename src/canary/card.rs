//! A trained character LM on disk: `STUDY/lm/<id>/{card.json, weights.safetensors}`. The card
//! records the corpus slice, every canary with its insertion count, the recipe and the
//! per-epoch curves (loss and exposure), so a result can always be traced to what was inserted.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};

use super::lm::{CharLm, LmArch};
use super::secrets::{Canary, CanaryFormat};
use crate::error::{CoreError, CoreResult};

/// Training recipe.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LmRecipe {
    /// Passes over the text.
    pub epochs: usize,
    /// Windows per batch.
    pub batch_size: usize,
    /// Characters per window (the LSTM is unrolled this far).
    pub seq_len: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Seed of slice, canaries, insertion, initialisation and batches.
    pub seed: u64,
}

/// Where the text came from.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CorpusRef {
    /// Bundled name or path.
    pub source: String,
    /// Content hash of the whole corpus.
    pub hash: String,
    /// Character offset of the training slice.
    pub offset: usize,
    /// Characters of corpus text trained on (before insertion).
    pub chars: usize,
    /// Validation characters (the text right after the slice; no canaries).
    pub val_chars: usize,
}

/// One epoch's figures.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LmEpoch {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training cross-entropy (nats per character).
    pub train_loss: f64,
    /// Validation cross-entropy (nats per character).
    pub val_loss: f64,
    /// Exposure of every canary after this epoch (bits; exact where the space is enumerated,
    /// else the skew-normal estimate), in card order.
    pub exposure: Vec<f64>,
}

/// Everything about one trained LM.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct LmCard {
    /// Folder name.
    pub id: String,
    /// The vocabulary, in id order.
    pub vocab: String,
    /// Layer sizes.
    pub arch: LmArch,
    /// The corpus slice.
    pub corpus: CorpusRef,
    /// Canary formats.
    pub formats: Vec<CanaryFormat>,
    /// The canaries, with their insertion counts.
    pub canaries: Vec<Canary>,
    /// Recipe.
    pub recipe: LmRecipe,
    /// Per-epoch curves.
    pub epochs: Vec<LmEpoch>,
    /// Training time.
    pub seconds: f64,
    /// Parameters.
    pub n_params: usize,
    /// The command that reproduces it.
    pub command: String,
    /// rote version.
    pub rote_version: String,
}

impl LmCard {
    /// Parses the text of a language-model card and checks its vocabulary, formats and
    /// canaries; `path` only names the file in errors.
    pub fn from_json(path: &Path, text: &str) -> CoreResult<Self> {
        let card: Self = serde_json::from_str(text)
            .map_err(|e| CoreError::format(path, format!("not a language-model card: {e}")))?;
        crate::model::limits::validate(&card.arch).map_err(|why| CoreError::format(path, why))?;
        let n_vocab = card.vocab.chars().count();
        if n_vocab != card.arch.vocab {
            return Err(CoreError::format(
                path,
                format!(
                    "vocabulary has {n_vocab} characters but the model {}",
                    card.arch.vocab
                ),
            ));
        }
        for f in &card.formats {
            f.validate().map_err(|e| CoreError::format(path, e.to_string()))?;
        }
        if card.canaries.iter().any(|c| c.format >= card.formats.len()) {
            return Err(CoreError::format(path, "a canary names a missing format"));
        }
        Ok(card)
    }

    /// Reads and validates `dir/card.json` and checks its layers against the header of
    /// `dir/weights.safetensors`, allocating nothing of the model's size.
    pub fn check_folder(dir: &Path) -> CoreResult<Self> {
        if crate::lm::card::is_hf_folder(dir) {
            return Err(CoreError::format(
                dir.join("config.json"),
                "is a Hugging Face model folder, not a character LM (read it with rote lm-score)",
            ));
        }
        crate::model::check_model_folder(dir)?;
        let card_path = dir.join("card.json");
        let text = std::fs::read_to_string(&card_path).map_err(|e| CoreError::io(&card_path, e))?;
        let card = Self::from_json(&card_path, &text)?;
        crate::model::header::check_weights(&card.arch, &card_path, &dir.join("weights.safetensors"))?;
        Ok(card)
    }

    /// Character ids of `text`, or an error naming the first character outside the vocabulary.
    pub fn encode(&self, text: &str) -> CoreResult<Vec<u32>> {
        let vocab: Vec<char> = self.vocab.chars().collect();
        text.chars()
            .map(|c| {
                vocab.binary_search(&c).map(|i| i as u32).map_err(|_| {
                    CoreError::Invalid(format!(
                        "character {c:?} is not in the model's vocabulary of {} characters",
                        vocab.len()
                    ))
                })
            })
            .collect()
    }

    /// Ids of the ten digits.
    pub fn digit_ids(&self) -> CoreResult<[u32; 10]> {
        let ids = self.encode("0123456789")?;
        let mut out = [0u32; 10];
        out.copy_from_slice(&ids);
        Ok(out)
    }

    /// The context a canary of format `f` is scored in: a line break, then the prefix.
    pub fn context(&self, f: usize) -> CoreResult<Vec<u32>> {
        let fmt = self
            .formats
            .get(f)
            .ok_or_else(|| CoreError::Invalid(format!("no canary format {f}")))?;
        self.encode(&format!("\n{}", fmt.prefix))
    }
}

/// The sorted set of characters of `texts` plus the digits and a line break.
pub fn build_vocab<'a>(texts: impl IntoIterator<Item = &'a str>) -> String {
    let mut set: std::collections::BTreeSet<char> = "0123456789\n".chars().collect();
    for t in texts {
        set.extend(t.chars());
    }
    set.into_iter().collect()
}

/// A loaded LM.
pub struct CanaryLm {
    /// The network.
    pub net: CharLm,
    /// Its parameters.
    pub varmap: VarMap,
    /// Its card.
    pub card: LmCard,
    /// Where it runs.
    pub device: Device,
}

/// `STUDY/lm`.
pub fn lm_dir(study_root: &Path) -> PathBuf {
    study_root.join("lm")
}

impl CanaryLm {
    /// A fresh model for `card`, initialised from the recipe's seed.
    pub fn fresh(card: LmCard, device: &Device) -> CoreResult<Self> {
        let varmap = VarMap::new();
        let net = CharLm::new(card.arch, VarBuilder::from_varmap(&varmap, DType::F32, device))?;
        CharLm::init(&varmap, card.arch, card.recipe.seed)?;
        Ok(Self {
            net,
            varmap,
            card,
            device: device.clone(),
        })
    }

    /// Loads `dir`, checking the card and the weights.
    pub fn load(dir: &Path, device: &Device) -> CoreResult<Self> {
        let card = LmCard::check_folder(dir)?;
        let varmap = VarMap::new();
        let net = CharLm::new(card.arch, VarBuilder::from_varmap(&varmap, DType::F32, device))?;
        crate::model::fill_varmap(&varmap, &dir.join("weights.safetensors"), "character LM", device)?;
        Ok(Self {
            net,
            varmap,
            card,
            device: device.clone(),
        })
    }

    /// Writes card and weights into `dir` (created).
    pub fn save(&self, dir: &Path) -> CoreResult<()> {
        std::fs::create_dir_all(dir).map_err(|e| CoreError::io(dir, e))?;
        crate::model::save_weights_as(&self.varmap, &dir.join("weights.safetensors"), DType::F32)?;
        crate::study::write_json_atomic(&dir.join("card.json"), &self.card)
    }
}

/// An untrained model with one format of `digits` digits (two canaries: x0 and x3), for tests.
#[cfg(test)]
pub(crate) fn untrained_lm(digits: usize, hidden: usize, seed: u64) -> CanaryLm {
    let vocab = build_vocab(["abcdefghijklmnopqrstuvwxyz :"]);
    let formats = vec![CanaryFormat {
        prefix: "my pin is ".into(),
        digits,
        insertions: vec![0, 3],
        secrets: Vec::new(),
    }];
    let canaries = super::secrets::draw_canaries(&formats, seed).unwrap();
    let card = LmCard {
        id: "test-lm".into(),
        arch: LmArch {
            vocab: vocab.chars().count(),
            embed: 8,
            hidden,
        },
        vocab,
        corpus: CorpusRef {
            source: "none".into(),
            hash: String::new(),
            offset: 0,
            chars: 0,
            val_chars: 0,
        },
        formats,
        canaries,
        recipe: LmRecipe {
            epochs: 0,
            batch_size: 1,
            seq_len: 2,
            lr: 0.0,
            seed,
        },
        epochs: Vec::new(),
        seconds: 0.0,
        n_params: 0,
        command: String::new(),
        rote_version: String::new(),
    };
    CanaryLm::fresh(card, &Device::Cpu).unwrap()
}
