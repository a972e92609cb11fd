//! rote's card for a transformer LM it trained (`rote train-lm --arch gpt`):
//! `STUDY/lm/<id>/card.json` beside the Hugging Face files (`config.json`, `model.safetensors`,
//! `tokenizer.json`). The HF files are all a loader needs; the card records what was planted so a
//! finding can be checked against it: the canaries (Secret Sharer formats), the passages inserted
//! 1, 4, 16 and 64 times and the held-out passages from the same books that were never trained on
//! (insertions 0), the corpus slice, the recipe and the per-epoch curves.
//!
//! A folder with `config.json` is a Hugging Face model (ours or anyone's); a folder with only
//! `card.json` + `weights.safetensors` is the character LSTM (`canary::card::LmCard`).

use std::path::Path;

use crate::canary::card::CorpusRef;
use crate::canary::secrets::{Canary, CanaryFormat};
use crate::error::{CoreError, CoreResult};

/// The card's file name inside the model folder.
pub const CARD_FILE: &str = "card.json";

/// The `kind` a transformer card carries (the LSTM card has no `kind`).
pub const GPT_KIND: &str = "gpt";

/// A passage of the source books: planted `insertions` times into the training text, or held
/// out (`insertions == 0`: from the same books, never trained on).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PlantedPassage {
    /// The passage text exactly as inserted (whole words; at least 64 tokens).
    pub text: String,
    /// Times it occurs in the training text (0 = held out).
    pub insertions: u32,
    /// Character offset in the source corpus it was cut from.
    pub offset: usize,
}

/// How the GPT was trained.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GptRecipe {
    /// Transformer blocks.
    pub n_layer: usize,
    /// Width.
    pub n_embd: usize,
    /// Attention heads.
    pub n_head: usize,
    /// Context length (positions) of the model and of the training windows.
    pub n_ctx: usize,
    /// BPE vocabulary size (including special tokens).
    pub vocab_size: usize,
    /// Passes over the training text.
    pub epochs: usize,
    /// Windows per batch.
    pub batch_size: usize,
    /// Peak AdamW learning rate.
    pub lr: f64,
    /// Seed of slice, passages, canaries, tokenizer, initialisation and batches.
    pub seed: u64,
    /// Steps of linear learning-rate warmup (then cosine decay to a tenth of `lr`).
    #[serde(default)]
    pub warmup_steps: usize,
    /// AdamW's decoupled weight decay.
    #[serde(default)]
    pub weight_decay: f64,
}

/// One epoch's figures.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GptEpoch {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training cross-entropy (nats per token).
    pub train_loss: f64,
    /// Validation cross-entropy (nats per token) on text after the slice.
    pub val_loss: f64,
}

/// Everything rote knows about a transformer LM it trained.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct GptCard {
    /// Always [`GPT_KIND`].
    pub kind: String,
    /// Folder name.
    pub id: String,
    /// The corpus slice.
    pub corpus: CorpusRef,
    /// Canary formats.
    pub formats: Vec<CanaryFormat>,
    /// The canaries with their insertion counts.
    pub canaries: Vec<Canary>,
    /// Planted and held-out passages.
    pub passages: Vec<PlantedPassage>,
    /// Recipe.
    pub recipe: GptRecipe,
    /// Per-epoch curves.
    pub epochs: Vec<GptEpoch>,
    /// Training time.
    pub seconds: f64,
    /// Parameters.
    pub n_params: usize,
    /// The command that reproduces it.
    pub command: String,
    /// rote version.
    pub rote_version: String,
}

impl GptCard {
    /// Parses and checks a card's text; `path` only names the file in errors.
    pub fn from_json(path: &Path, text: &str) -> CoreResult<Self> {
        let card: Self = serde_json::from_str(text)
            .map_err(|e| CoreError::format(path, format!("not a transformer LM card: {e}")))?;
        if card.kind != GPT_KIND {
            return Err(CoreError::format(
                path,
                format!("card kind is '{}', expected '{GPT_KIND}'", card.kind),
            ));
        }
        for f in &card.formats {
            f.validate().map_err(|e| CoreError::format(path, e.to_string()))?;
        }
        if card.canaries.iter().any(|c| c.format >= card.formats.len()) {
            return Err(CoreError::format(path, "a canary names a missing format"));
        }
        if card.passages.iter().any(|p| p.text.trim().is_empty()) {
            return Err(CoreError::format(path, "a planted passage is empty"));
        }
        Ok(card)
    }

    /// The card of model folder `dir`: `None` when the folder has no `card.json` (a model rote
    /// did not train), an error naming the file when it has one that does not parse.
    pub fn read(dir: &Path) -> CoreResult<Option<Self>> {
        let path = dir.join(CARD_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| CoreError::io(&path, e))?;
        Self::from_json(&path, &text).map(Some)
    }

    /// The passages inserted at least once (members) and the held-out ones (non-members).
    pub fn members_and_held_out(&self) -> (Vec<&PlantedPassage>, Vec<&PlantedPassage>) {
        self.passages.iter().partition(|p| p.insertions > 0)
    }

    /// The distinct insertion counts of the passages, ascending (0 = held out).
    pub fn insertion_groups(&self) -> Vec<u32> {
        let mut g: Vec<u32> = self.passages.iter().map(|p| p.insertions).collect();
        g.sort_unstable();
        g.dedup();
        g
    }
}

/// True when `dir` holds a Hugging Face model (`config.json`), as opposed to rote's LSTM.
pub fn is_hf_folder(dir: &Path) -> bool {
    dir.join("config.json").is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card_json(kind: &str) -> String {
        serde_json::json!({
            "kind": kind, "id": "g", "corpus": {"source": "austen", "hash": "h", "offset": 0,
            "chars": 10, "val_chars": 5}, "formats": [], "canaries": [],
            "passages": [{"text": "a b", "insertions": 4, "offset": 3},
                         {"text": "c d", "insertions": 0, "offset": 9}],
            "recipe": {"n_layer": 1, "n_embd": 8, "n_head": 2, "n_ctx": 16, "vocab_size": 300,
                       "epochs": 1, "batch_size": 2, "lr": 1e-3, "seed": 0},
            "epochs": [], "seconds": 0.0, "n_params": 1, "command": "", "rote_version": ""
        })
        .to_string()
    }

    #[test]
    fn parses_and_splits_members_from_held_out() {
        let card = GptCard::from_json(Path::new("card.json"), &card_json("gpt")).unwrap();
        let (m, h) = card.members_and_held_out();
        assert_eq!((m.len(), h.len()), (1, 1));
        assert_eq!(h[0].text, "c d");
        assert_eq!(card.insertion_groups(), vec![0, 4]);
    }

    #[test]
    fn wrong_kind_names_the_file() {
        let e = GptCard::from_json(Path::new("x/card.json"), &card_json("lstm")).unwrap_err();
        assert!(e.to_string().contains("x/card.json"), "{e}");
    }
}
