//! Causal language models read from Hugging Face folders (`config.json`, `model.safetensors`,
//! `tokenizer.json`), for the LLM memorization measures (perplexity, extraction, membership).
//!
//! Every model implements [`CausalLm`]: logits at every position of a batch of token ids, a
//! key/value cache for generation, its vocabulary size and its longest context. The per-token
//! log-probabilities ([`CausalLm::token_logprobs`]), greedy generation
//! ([`CausalLm::generate_greedy`]) and seeded sampling ([`CausalLm::generate_sampled_batch`]) are written once on top of those, so every family gives them
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
mod cpu_kernels;
pub mod dataset_report;
pub mod dataset_test;
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
pub mod probe;
pub mod probe_fit;
mod probe_intervene;
pub mod probe_report;
#[cfg(test)]
mod sampling_tests;
pub mod study;
#[cfg(test)]
mod study_tests;
pub mod texts;
mod tokenizer;
pub mod trace;
pub mod train;

#[cfg(test)]
mod config_tests;

use std::path::{Path, PathBuf};

use candle_core::{D, Device, IndexOp as _, Tensor};
use rand::SeedableRng as _;

use crate::error::{CoreError, CoreResult};

pub use gpt2::{Gpt2, Gpt2Config};
pub use hf::{HfConfig, check_folder, load_model};
pub use layers::KvCache;
pub use tokenizer::LmTokenizer;
pub use trace::{Edit, Edited, Site, Trace};

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

    /// [`Self::forward`] with `trace` recording or editing the activations (`trace.rs`: the
    /// residual stream after the embeddings and after each block, the MLP activations). A family
    /// that does not expose its activations answers a plain trace and refuses an active one.
    fn forward_traced(&self, ids: &Tensor, cache: &mut KvCache, trace: &mut Trace) -> CoreResult<Tensor> {
        if trace.is_active() {
            return Err(CoreError::Invalid(format!(
                "{} models do not expose their activations (rote reads them from gpt2, gpt_neox and llama-style models)",
                self.model_type()
            )));
        }
        self.forward(ids, cache)
    }

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
        let logp = cpu_kernels::log_softmax_last_dim(&self.logits(&input)?.narrow(1, 0, t - 1)?)?;
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
        decode_batch(self, prompts, n, &mut |last| {
            Ok(last.argmax(D::Minus1)?.to_vec1::<u32>()?)
        })
    }

    /// `n` tokens drawn after each prompt (of one length) by ancestral sampling with the
    /// key/value cache: at every step the next token is drawn from softmax(logits / temperature),
    /// restricted to the `top_k` most likely tokens when set, one seeded stream per row. The
    /// probability of drawing a given continuation is the p_z of (n, p)-extraction (Hayes et al.
    /// 2024) at temperature 1 without top-k.
    fn generate_sampled_batch(
        &self,
        prompts: &[&[u32]],
        n: usize,
        sampling: &Sampling,
    ) -> CoreResult<Vec<Vec<u32>>> {
        sampling.check()?;
        let mut rngs: Vec<rand_chacha::ChaCha8Rng> = (0..prompts.len())
            .map(|row| {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(sampling.seed);
                rng.set_stream(row as u64);
                rng
            })
            .collect();
        decode_batch(self, prompts, n, &mut |last| {
            let rows = last.to_dtype(candle_core::DType::F32)?.to_vec2::<f32>()?;
            Ok(rows
                .iter()
                .zip(rngs.iter_mut())
                .map(|(logits, rng)| sampling.draw(logits, rng))
                .collect())
        })
    }
}

/// How [`CausalLm::generate_sampled_batch`] draws a token.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    /// Softmax temperature (> 0; 1 = the model's distribution).
    pub temperature: f64,
    /// Only the `k` most likely tokens are drawn from (`None`: all).
    pub top_k: Option<usize>,
    /// Seed (row `i` of a batch draws from stream `i`).
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_k: None,
            seed: 0,
        }
    }
}

impl Sampling {
    fn check(&self) -> CoreResult<()> {
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(CoreError::Invalid(format!(
                "sampling temperature must be a positive number (got {})",
                self.temperature
            )));
        }
        if self.top_k == Some(0) {
            return Err(CoreError::Invalid("top-k sampling needs k >= 1".into()));
        }
        Ok(())
    }

    /// One token drawn from `logits` (one row): the inverse CDF of the tempered, top-k softmax
    /// at a uniform draw.
    pub fn draw(&self, logits: &[f32], rng: &mut impl rand::Rng) -> u32 {
        let mut order: Vec<usize> = (0..logits.len()).collect();
        if let Some(k) = self.top_k.filter(|&k| k < logits.len()) {
            order.select_nth_unstable_by(k - 1, |&a, &b| logits[b].total_cmp(&logits[a]));
            order.truncate(k);
        }
        let max = order
            .iter()
            .map(|&i| f64::from(logits[i]))
            .fold(f64::NEG_INFINITY, f64::max);
        let weights: Vec<f64> = order
            .iter()
            .map(|&i| ((f64::from(logits[i]) - max) / self.temperature).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        let mut u = rng.random::<f64>() * total;
        for (&i, w) in order.iter().zip(&weights) {
            if u < *w {
                return i as u32;
            }
            u -= w;
        }
        // Rounding left u at the very top: the last token with weight.
        order
            .iter()
            .zip(&weights)
            .rev()
            .find(|(_, w)| **w > 0.0)
            .map_or(0, |(&i, _)| i as u32)
    }
}

/// The decode loop greedy and sampled generation share: the prompts once, then one token per
/// step chosen by `pick` from the last position's logits `(B, V)`.
fn decode_batch<M: CausalLm + ?Sized>(
    model: &M,
    prompts: &[&[u32]],
    n: usize,
    pick: &mut dyn FnMut(&Tensor) -> CoreResult<Vec<u32>>,
) -> CoreResult<Vec<Vec<u32>>> {
    let (b, t) = check_batch(model.vocab_size(), model.max_positions(), prompts)?;
    if t == 0 {
        return Err(CoreError::Invalid(
            "generation needs a prompt of at least one token".into(),
        ));
    }
    if t + n > model.max_positions() {
        return Err(CoreError::Invalid(format!(
            "{t} prompt tokens + {n} new ones are more than the model's {} positions",
            model.max_positions()
        )));
    }
    let device = model.device();
    let mut cache = model.new_cache();
    let flat: Vec<u32> = prompts.iter().flat_map(|s| s.iter().copied()).collect();
    let mut input = Tensor::from_vec(flat, (b, t), device)?;
    let mut out = vec![Vec::with_capacity(n); b];
    for _ in 0..n {
        let logits = model.forward(&input, &mut cache)?;
        let last = logits.dim(1)? - 1;
        let next = pick(&logits.i((.., last))?)?;
        for (row, &id) in out.iter_mut().zip(&next) {
            row.push(id);
        }
        input = Tensor::from_vec(next, (b, 1), device)?;
    }
    Ok(out)
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
