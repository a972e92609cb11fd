//! The Secret Sharer (Carlini et al. 2019) on any [`CausalLm`] (GPT-2, GPT-NeoX, Llama, Qwen2
//! read by `lm::HfLm::load`, or a model rote trained): the slot's log-perplexity
//! `Px(s[r]) = sum_i -log2 Pr(r_i | context, r_1..r_{i-1})` with one token per digit.
//!
//! * **Digit tokens.** The context is the tokenizer's encoding of the context text (with its
//!   special tokens, e.g. a beginning-of-sequence token); the digits must follow as one token each:
//!   `tokens(context + digits) == tokens(context) ++ [id(d) for d in digits]`, checked on probes
//!   with repeated and mixed digits for every prefix. Llama-, Qwen2- and rote's GPT tokenizers
//!   split digits; GPT-2's original BPE merges them: the search refuses it in one error naming the
//!   `tokenizer.json`, the exposure scores whole strings instead ([`super::whole`]).
//! * **Digit tree.** The context runs once; its key/value cache rows are repeated along the batch
//!   ([`KvCache::select_rows`]) and every branch is extended by one digit token, so the exact rank
//!   over all 10^digits candidates costs (10^digits - 1) / 9 one-token steps, each attending over
//!   the cached context. Blocks are sized so cache and logits stay within [`BLOCK_BYTES`].
//! * **Search.** Dijkstra and beam nodes keep nothing: a batch of popped fillings of one length is
//!   re-read after the context's cache (at most 18 tokens each), so the queue holds no caches.

use candle_core::{D, IndexOp as _, Tensor};

use super::model::{DigitBits, SlotModel, bits_of};
use crate::error::{CoreError, CoreResult};
use crate::lm::{CausalLm, KvCache, LmTokenizer};

/// Memory a block of the digit tree may take (keys/values of every row plus its logits).
pub const BLOCK_BYTES: usize = 256 << 20;

/// Most rows per step of the digit tree.
pub const MAX_BLOCK: usize = 16_384;

/// What the slot needs of a tokenizer: token ids of a text, and the file to name in errors.
pub trait SlotTokenizer: Send + Sync {
    /// Token ids of `text` as the model saw them in training (special tokens included).
    fn encode(&self, text: &str) -> CoreResult<Vec<u32>>;
    /// The tokenizer's file (named in errors).
    fn source(&self) -> String;
}

impl SlotTokenizer for LmTokenizer {
    fn encode(&self, text: &str) -> CoreResult<Vec<u32>> {
        LmTokenizer::encode(self, text)
    }

    fn source(&self) -> String {
        self.path().display().to_string()
    }
}

/// A causal LM with its tokenizer, as a [`SlotModel`].
pub struct CausalSlots<'a> {
    model: &'a dyn CausalLm,
    tokenizer: &'a dyn SlotTokenizer,
    line_start: bool,
}

/// The context's tokens and the token id of each digit.
pub type ContextDigits = (Vec<u32>, [u32; 10]);

/// A batch of branches: the cache of every row, with the context's digit ids.
pub struct CausalBatch {
    cache: KvCache,
    digit_ids: [u32; 10],
    digit_tensor: Tensor,
}

impl<'a> CausalSlots<'a> {
    /// The slot after `prefix` is scored after `"\n" + prefix` when `line_start` (a canary inserted
    /// as its own line, as rote's trainers do), else after the prefix alone.
    pub fn new(model: &'a dyn CausalLm, tokenizer: &'a dyn SlotTokenizer, line_start: bool) -> Self {
        Self {
            model,
            tokenizer,
            line_start,
        }
    }

    /// The text the slot follows: `"\n" + prefix` or the prefix.
    pub fn context_text(&self, prefix: &str) -> String {
        if self.line_start {
            format!("\n{prefix}")
        } else {
            prefix.to_string()
        }
    }

    /// The context's tokens and the id of each digit after it, checked to give one token per
    /// digit whatever the digits; an error naming the tokenizer's file when it merges digits.
    pub fn context_and_digits(&self, prefix: &str) -> CoreResult<ContextDigits> {
        self.split_digits(prefix)?.map_err(CoreError::Invalid)
    }

    /// [`Self::context_and_digits`], with a tokenizer that merges digits as the inner error.
    pub fn split_digits(&self, prefix: &str) -> CoreResult<Result<ContextDigits, String>> {
        let text = self.context_text(prefix);
        let full = self.tokenizer.encode(&text)?;
        let probe = "0123456789";
        let all = self.tokenizer.encode(&format!("{text}{probe}"))?;
        // Special tokens a post-processor appends (an end-of-sequence id) close every encoding:
        // the slot follows the context's own tokens, before them.
        let tail = (0..=2.min(full.len()))
            .find(|&k| {
                let (c, s) = full.split_at(full.len() - k);
                all.len() == full.len() + 10 && all.starts_with(c) && all.ends_with(s)
            })
            .unwrap_or(0);
        let (ctx, suffix) = full.split_at(full.len() - tail);
        let (ctx, suffix) = (ctx.to_vec(), suffix.to_vec());
        if ctx.is_empty() {
            return Err(CoreError::Invalid(format!(
                "{}: the context '{prefix}' encodes to no tokens",
                self.tokenizer.source()
            )));
        }
        let merged = |probe: &str, got: &[u32]| {
            Err(format!(
                "{}: this tokenizer does not give one token per digit after '{prefix}' ('{probe}' becomes {} tokens after the context's {}: {got:?}); \
                 the digit tree and the secret search need digits split one per token (Llama-, Qwen2- and rote's GPT tokenizers split them; GPT-2's original BPE merges them)",
                self.tokenizer.source(),
                got.len().saturating_sub(ctx.len()),
                ctx.len()
            ))
        };
        if all.len() != full.len() + 10 || !all.starts_with(&ctx) || !all.ends_with(&suffix) {
            return Ok(merged(probe, &all));
        }
        let mut ids = [0u32; 10];
        ids.copy_from_slice(&all[ctx.len()..ctx.len() + 10]);
        let vocab = self.model.vocab_size();
        if ids.iter().any(|&i| i as usize >= vocab) {
            return Err(CoreError::Invalid(format!(
                "{}: a digit's token id is outside the model's vocabulary of {vocab}",
                self.tokenizer.source()
            )));
        }
        let mut sorted = ids;
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return Ok(merged(probe, &all));
        }
        for probe in [
            "0000000000",
            "1122334455",
            "9988776655",
            "0101010101",
            "9070605040",
        ] {
            let got = self.tokenizer.encode(&format!("{text}{probe}"))?;
            let want: Vec<u32> = ctx
                .iter()
                .copied()
                .chain(probe.bytes().map(|b| ids[usize::from(b - b'0')]))
                .chain(suffix.iter().copied())
                .collect();
            if got != want {
                return Ok(merged(probe, &got));
            }
        }
        Ok(Ok((ctx, ids)))
    }

    /// Next-digit costs at the last position of logits `(B, T, V)`.
    fn last_bits(&self, logits: &Tensor, digits: &Tensor) -> CoreResult<Vec<DigitBits>> {
        let t = logits.dim(1)?;
        let last = logits.i((.., t - 1))?;
        bits_of(&candle_nn::ops::log_softmax(&last, D::Minus1)?, digits)
    }

    fn check_positions(&self, cache_len: usize, more: usize) -> CoreResult<()> {
        let max = self.model.max_positions();
        if cache_len + more > max {
            return Err(CoreError::Invalid(format!(
                "the context and slot need {} positions; the model has {max}",
                cache_len + more
            )));
        }
        Ok(())
    }
}

impl SlotModel for CausalSlots<'_> {
    type Batch = CausalBatch;
    type Memo = ();

    fn start(&self, prefix: &str) -> CoreResult<(CausalBatch, DigitBits)> {
        let (ctx, digit_ids) = self.context_and_digits(prefix)?;
        self.check_positions(ctx.len(), 0)?;
        let dev = self.model.device();
        let digit_tensor = Tensor::new(&digit_ids[..], dev)?;
        let mut cache = self.model.new_cache();
        let n = ctx.len();
        let logits = self
            .model
            .forward(&Tensor::from_vec(ctx, (1, n), dev)?, &mut cache)?;
        let first = self
            .last_bits(&logits, &digit_tensor)?
            .pop()
            .ok_or_else(|| CoreError::Invalid("the model gave no logits".into()))?;
        Ok((
            CausalBatch {
                cache,
                digit_ids,
                digit_tensor,
            },
            first,
        ))
    }

    fn block_rows(&self, root: &CausalBatch) -> usize {
        // Per row: keys/values of the context and the longest slot (twice: a step copies them)
        // and the logits with their log-softmax.
        let per_token = root.cache.bytes() / root.cache.len().max(1);
        let positions = root.cache.len() + super::score::MAX_EXACT_DIGITS;
        let per_row = 2 * per_token * positions + 3 * 4 * self.model.vocab_size();
        (BLOCK_BYTES / per_row.max(1)).clamp(10, MAX_BLOCK)
    }

    fn extend(
        &self,
        batch: &CausalBatch,
        parents: &[u32],
        digits: &[u8],
    ) -> CoreResult<(CausalBatch, Vec<DigitBits>)> {
        self.check_positions(batch.cache.len(), 1)?;
        let dev = self.model.device();
        let mut cache = batch.cache.select_rows(&Tensor::new(parents, dev)?)?;
        let ids: Vec<u32> = digits
            .iter()
            .map(|&d| batch.digit_ids[usize::from(d.min(9))])
            .collect();
        let n = ids.len();
        let logits = self
            .model
            .forward(&Tensor::from_vec(ids, (n, 1), dev)?, &mut cache)?;
        let bits = self.last_bits(&logits, &batch.digit_tensor)?;
        Ok((
            CausalBatch {
                cache,
                digit_ids: batch.digit_ids,
                digit_tensor: batch.digit_tensor.clone(),
            },
            bits,
        ))
    }

    fn root_memo(&self, _root: &CausalBatch) -> CoreResult<()> {
        Ok(())
    }

    fn expand(&self, root: &CausalBatch, nodes: &[(&(), &[u8])]) -> CoreResult<Vec<((), DigitBits)>> {
        let dev = self.model.device();
        let mut out = vec![((), [0f32; 10]); nodes.len()];
        // One forward per filling length, every filling read after the context's cache.
        let mut lengths: Vec<usize> = nodes.iter().map(|(_, f)| f.len()).collect();
        lengths.sort_unstable();
        lengths.dedup();
        for len in lengths {
            let idx: Vec<usize> = (0..nodes.len()).filter(|&i| nodes[i].1.len() == len).collect();
            if len == 0 {
                return Err(CoreError::Invalid(
                    "search: an empty filling after the root".into(),
                ));
            }
            self.check_positions(root.cache.len(), len)?;
            let m = idx.len();
            let mut cache = root
                .cache
                .select_rows(&Tensor::zeros(m, candle_core::DType::U32, dev)?)?;
            let ids: Vec<u32> = idx
                .iter()
                .flat_map(|&i| nodes[i].1.iter().map(|&d| root.digit_ids[usize::from(d.min(9))]))
                .collect();
            let logits = self
                .model
                .forward(&Tensor::from_vec(ids, (m, len), dev)?, &mut cache)?;
            for (&i, bits) in idx.iter().zip(self.last_bits(&logits, &root.digit_tensor)?) {
                out[i].1 = bits;
            }
        }
        Ok(out)
    }

    fn prefix_nats(&self, prefix: &str) -> CoreResult<(f64, usize)> {
        let (ctx, _) = self.context_and_digits(prefix)?;
        let lps = self.model.token_logprobs(&ctx)?;
        Ok((-lps.iter().map(|&x| f64::from(x)).sum::<f64>(), lps.len()))
    }
}
