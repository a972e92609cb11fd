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
//! * `tokenizer.rs`: `tokenizer.json` through the `tokenizers` crate.
//!
//! Everything runs in f32 (f16/bf16 weights are converted on load).

mod gpt2;
mod hf;
mod layers;
mod llama;
mod neox;
mod tokenizer;

#[cfg(test)]
mod config_tests;

use std::path::{Path, PathBuf};

use candle_core::{D, Device, IndexOp as _, Tensor};

use crate::error::{CoreError, CoreResult};

pub use hf::{HfConfig, load_model};
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
        check_ids(self.vocab_size(), self.max_positions(), ids)?;
        if ids.len() < 2 {
            return Ok(Vec::new());
        }
        let device = self.device();
        let input = Tensor::new(ids, device)?.unsqueeze(0)?;
        let logits = self.logits(&input)?.squeeze(0)?;
        let t = ids.len();
        let logp = candle_nn::ops::log_softmax(&logits.i(..t - 1)?, D::Minus1)?;
        let next = Tensor::new(&ids[1..], device)?.unsqueeze(1)?;
        Ok(logp.gather(&next, 1)?.squeeze(1)?.to_vec1::<f32>()?)
    }

    /// The `n` tokens that greedy decoding (argmax at every step) appends to `prompt`, computed
    /// with the key/value cache: the prompt once, then one token per step.
    fn generate_greedy(&self, prompt: &[u32], n: usize) -> CoreResult<Vec<u32>> {
        check_ids(self.vocab_size(), self.max_positions(), prompt)?;
        if prompt.is_empty() {
            return Err(CoreError::Invalid(
                "greedy generation needs a prompt of at least one token".into(),
            ));
        }
        if prompt.len() + n > self.max_positions() {
            return Err(CoreError::Invalid(format!(
                "{} prompt tokens + {n} new ones are more than the model's {} positions",
                prompt.len(),
                self.max_positions()
            )));
        }
        let device = self.device();
        let mut cache = self.new_cache();
        let mut input = Tensor::new(prompt, device)?.unsqueeze(0)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let logits = self.forward(&input, &mut cache)?;
            let t = logits.dim(1)?;
            let next = logits.i((0, t - 1))?.argmax(0)?.to_scalar::<u32>()?;
            out.push(next);
            input = Tensor::new(&[next], device)?.unsqueeze(0)?;
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

/// Checks token ids against a model's vocabulary and context.
fn check_ids(vocab: usize, max_positions: usize, ids: &[u32]) -> CoreResult<()> {
    if ids.len() > max_positions {
        return Err(CoreError::Invalid(format!(
            "{} tokens are more than the model's {max_positions} positions",
            ids.len()
        )));
    }
    if let Some(&bad) = ids.iter().find(|&&t| t as usize >= vocab) {
        return Err(CoreError::Invalid(format!(
            "token id {bad} is outside the model's vocabulary of {vocab}"
        )));
    }
    Ok(())
}
