//! Causal language models read from Hugging Face folders (`config.json`, `model.safetensors`,
//! `tokenizer.json`), for the LLM memorization measures (perplexity, extraction, membership).
//!
//! Every model implements [`CausalLm`]: logits at every position of a batch of token ids, a
//! key/value cache for generation, its vocabulary size and its longest context. The per-token
//! log-probabilities ([`CausalLm::token_logprobs`]) and greedy generation
//! ([`CausalLm::generate_greedy`]) are written once on top of those, so every family gives them
//! the same way (a model without a key/value cache, such as a recurrent one, can override them).
//!
//! * `gpt2.rs`: GPT-2 (Conv1D weights stored `[in, out]`, learned positions, tied head);
//! * `neox.rs`: GPT-NeoX / Pythia (fused per-head q/k/v, partial rotary, parallel residual);
//! * `llama.rs`: Llama-style (Llama, SmolLM2, Qwen2): RoPE, RMSNorm, grouped key/value heads,
//!   optional q/k/v bias, tied or untied head;
//! * `layers.rs`: what they share (attention with a causal mask and a cache, RoPE, activations);
//! * `hf.rs`: the folder: `config.json` checked before anything is allocated, the safetensors
//!   headers checked against the expected tensors, pickles refused;
//! * `tokenizer.rs`: `tokenizer.json` through the `tokenizers` crate;
//! * `bpe.rs`, `plant.rs`, `train.rs`: `rote train-lm --arch gpt`: a byte-level BPE, the training
//!   text with planted passages and canaries, and a GPT-2 trained on it and saved as an HF folder;
//! * `card.rs`: rote's card beside the HF files of a GPT it trained (planted passages, canaries);
//! * `extract.rs`: greedy (k-extractable, Pythia 32+32) and (n, p) probabilistic extraction;
//! * `mia.rs`: MIMIR's membership scores (LOSS, zlib, Min-K%, Min-K%++, reference) and their
//!   ROC/AUC with a bootstrap interval.
//! * `texts.rs`: user documents (`.txt` paragraphs, `.jsonl` `text` fields, folders of `.txt`);
//! * `study.rs`: what the study-level runs share (model + tokenizer, documents with their
//!   insertions, the cache under `STUDY/results/lm/<model>/`);
//! * `extract_report.rs`: extraction over a document set ([`extract_report::LmExtractReport`]:
//!   overall, per insertion group, per document side by side, k/m sweep);
//! * `mia_report.rs`: membership inference over members vs non-members
//!   ([`mia_report::LmMiaReport`]: every attack's AUC, bootstrap interval, TPR at low FPR, ROC).
//!
//! Everything runs in f32 (f16/bf16 weights are converted on load).

pub mod bench;
pub mod bpe;
pub mod card;
pub mod extract;
pub mod extract_report;
mod gpt2;
mod hf;
mod layers;
mod llama;
#[cfg(test)]
mod measure_tests;
pub mod mia;
pub mod mia_report;
mod neox;
pub mod plant;
pub mod study;
#[cfg(test)]
mod study_tests;
pub mod texts;
mod tokenizer;
pub mod train;

#[cfg(test)]
mod config_tests;

use std::path::{Path, PathBuf};

use candle_core::{D, Device, IndexOp as _, Tensor};

use crate::error::{CoreError, CoreResult};

pub use gpt2::{Gpt2, Gpt2Config};
pub use hf::{HfConfig, check_folder, load_model};
pub use layers::KvCache;
pub use tokenizer::LmTokenizer;

/// A causal (left-to-right) language model.
///
/// `Send + Sync` so a loaded model can move to a job thread and be shared by views.
pub trait CausalLm: Send + Sync {
    /// The family as `config.json` names it (`gpt2`, `gpt_neox`, `llama`, `qwen2`).
    fn model_type(&self) -> &str;
    /// Number of token ids the model scores (the logits' last dimension).
    fn vocab_size(&self) -> usize;
    /// The longest sequence the model accepts (its position table or configured context).
    fn max_positions(&self) -> usize;
    /// The device its weights live on.
    fn device(&self) -> &Device;
    /// An empty key/value cache for this model.
    fn new_cache(&self) -> KvCache;
    /// Logits `(B, T, V)` of `ids` `(B, T)` (u32) placed after what `cache` holds; appends the
    /// keys and values of `ids` to `cache`.
    fn forward(&self, ids: &Tensor, cache: &mut KvCache) -> CoreResult<Tensor>;

    /// Logits `(B, T, V)` at every position of `ids` `(B, T)` (u32), from an empty cache.
    fn logits(&self, ids: &Tensor) -> CoreResult<Tensor> {
        let mut cache = self.new_cache();
        self.forward(ids, &mut cache)
    }

    /// Natural-log probabilities ln p(t_i | t_<i) of every token after the first
    /// (`ids.len() - 1` values; the first token has none).
    fn token_logprobs(&self, ids: &[u32]) -> CoreResult<Vec<f32>> {
        Ok(self.token_logprobs_batch(&[ids])?.pop().unwrap_or_default())
    }

    /// [`Self::token_logprobs`] of several sequences of one length in one batch.
    fn token_logprobs_batch(&self, seqs: &[&[u32]]) -> CoreResult<Vec<Vec<f32>>> {
        let (b, t) = check_batch(self.vocab_size(), self.max_positions(), seqs)?;
        if t < 2 {
            return Ok(vec![Vec::new(); b]);
        }
        let device = self.device();
        let flat: Vec<u32> = seqs.iter().flat_map(|s| s.iter().copied()).collect();
        let input = Tensor::from_vec(flat, (b, t), device)?;
        let logp = candle_nn::ops::log_softmax(&self.logits(&input)?.narrow(1, 0, t - 1)?, D::Minus1)?;
        let next = input.narrow(1, 1, t - 1)?.contiguous()?.unsqueeze(2)?;
        Ok(logp.gather(&next, 2)?.squeeze(2)?.to_vec2::<f32>()?)
    }

    /// The `n` tokens that greedy decoding (argmax at every step) appends to `prompt`, computed
    /// with the key/value cache: the prompt once, then one token per step.
    fn generate_greedy(&self, prompt: &[u32], n: usize) -> CoreResult<Vec<u32>> {
        Ok(self
            .generate_greedy_batch(&[prompt], n)?
            .pop()
            .unwrap_or_default())
    }

    /// [`Self::generate_greedy`] for several prompts of one length in one batch.
    fn generate_greedy_batch(&self, prompts: &[&[u32]], n: usize) -> CoreResult<Vec<Vec<u32>>> {
        let (b, t) = check_batch(self.vocab_size(), self.max_positions(), prompts)?;
        if t == 0 {
            return Err(CoreError::Invalid(
                "greedy generation needs a prompt of at least one token".into(),
            ));
        }
        if t + n > self.max_positions() {
            return Err(CoreError::Invalid(format!(
                "{t} prompt tokens + {n} new ones are more than the model's {} positions",
                self.max_positions()
            )));
        }
        let device = self.device();
        let mut cache = self.new_cache();
        let flat: Vec<u32> = prompts.iter().flat_map(|s| s.iter().copied()).collect();
        let mut input = Tensor::from_vec(flat, (b, t), device)?;
        let mut out = vec![Vec::with_capacity(n); b];
        for _ in 0..n {
            let logits = self.forward(&input, &mut cache)?;
            let last = logits.dim(1)? - 1;
            let next = logits.i((.., last))?.argmax(D::Minus1)?;
            for (row, id) in out.iter_mut().zip(next.to_vec1::<u32>()?) {
                row.push(id);
            }
            input = next.unsqueeze(1)?;
        }
        Ok(out)
    }
}

/// A loaded Hugging Face model with its tokenizer.
pub struct HfLm {
    /// The network.
    pub model: Box<dyn CausalLm>,
    /// Its tokenizer.
    pub tokenizer: LmTokenizer,
    /// The folder it was read from.
    pub dir: PathBuf,
}

impl HfLm {
    /// Reads a Hugging Face model folder: `config.json`, `model.safetensors` (or a sharded index)
    /// and `tokenizer.json`. Every problem is one error naming the file.
    pub fn load(dir: &Path, device: &Device) -> CoreResult<Self> {
        if !dir.is_dir() {
            return Err(CoreError::format(
                dir,
                "is not a model folder (expected config.json, model.safetensors and tokenizer.json)",
            ));
        }
        let tokenizer = LmTokenizer::load(dir)?;
        let model = load_model(dir, device)?;
        Ok(Self {
            model,
            tokenizer,
            dir: dir.to_path_buf(),
        })
    }
}

/// Checks that `seqs` are one or more sequences of one length, within a model's vocabulary and
/// context; returns (batch, length).
fn check_batch(vocab: usize, max_positions: usize, seqs: &[&[u32]]) -> CoreResult<(usize, usize)> {
    let t = seqs
        .first()
        .map(|s| s.len())
        .ok_or_else(|| CoreError::Invalid("no token sequences given".into()))?;
    if let Some(s) = seqs.iter().find(|s| s.len() != t) {
        return Err(CoreError::Invalid(format!(
            "sequences of one batch must have one length ({t} and {})",
            s.len()
        )));
    }
    if t > max_positions {
        return Err(CoreError::Invalid(format!(
            "{t} tokens are more than the model's {max_positions} positions"
        )));
    }
    if let Some(&bad) = seqs
        .iter()
        .flat_map(|s| s.iter())
        .find(|&&id| id as usize >= vocab)
    {
        return Err(CoreError::Invalid(format!(
            "token id {bad} is outside the model's vocabulary of {vocab}"
        )));
    }
    Ok((seqs.len(), t))
}
