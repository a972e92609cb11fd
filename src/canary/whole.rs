//! Exposure on a transformer whose tokenizer merges digits (GPT-2's original BPE): the digit tree
//! needs one token per digit, so every candidate is scored as a **whole string** instead,
//! `Px(s[r]) = -log2 Pr(tokens(context + r))` summed over all of the string's tokens after the
//! first (Carlini et al. 2019's log-perplexity of the whole canary). The context's own term is the
//! same for every candidate except where the tokenizer merges it with the first digits, so ranks
//! stay exact; `px_bits` then includes the context.
//!
//! [`WholeStrings`] is a [`SlotModel`] whose digit costs are 0 until the slot's last digit, where
//! each of the ten completions costs its whole string's bits: the digit tree and the reference
//! scoring of [`super::score`] then give every candidate exactly its whole-string cost, at the
//! price of one forward pass per candidate (10^digits for the exact rank). Dijkstra would gain
//! nothing from such costs, so only the exposure uses it.

use std::collections::BTreeMap;

use super::causal::{CausalSlots, SlotTokenizer};
use super::model::{CanarySet, DigitBits, SlotModel};
use crate::error::{CoreError, CoreResult};
use crate::lm::CausalLm;

/// Whole-string scoring of the slots of a set's formats.
pub struct WholeStrings<'a> {
    slots: CausalSlots<'a>,
    model: &'a dyn CausalLm,
    tokenizer: &'a dyn SlotTokenizer,
    digits: BTreeMap<String, usize>,
}

/// Fillings so far, one per row, after one context.
pub struct Fillings {
    text: String,
    digits: usize,
    rows: Vec<Vec<u8>>,
}

impl<'a> WholeStrings<'a> {
    /// For the formats of `set` (one slot length per prefix); the context as [`CausalSlots`].
    pub fn new(
        model: &'a dyn CausalLm,
        tokenizer: &'a dyn SlotTokenizer,
        line_start: bool,
        set: &CanarySet,
    ) -> CoreResult<Self> {
        let mut digits = BTreeMap::new();
        for f in &set.formats {
            if digits
                .insert(f.prefix.clone(), f.digits)
                .is_some_and(|d| d != f.digits)
            {
                return Err(CoreError::Invalid(format!(
                    "formats '{}' differ only in their slot length",
                    f.prefix
                )));
            }
        }
        Ok(Self {
            slots: CausalSlots::new(model, tokenizer, line_start),
            model,
            tokenizer,
            digits,
        })
    }

    /// Bits of each whole string `text + filling + d` for every row and digit `d`.
    fn complete(&self, text: &str, rows: &[Vec<u8>]) -> CoreResult<Vec<DigitBits>> {
        let mut seqs: Vec<Vec<u32>> = Vec::with_capacity(rows.len() * 10);
        for r in rows {
            for d in 0..10u8 {
                let s: String = r.iter().chain([&d]).map(|&x| char::from(b'0' + x)).collect();
                seqs.push(self.tokenizer.encode(&format!("{text}{s}"))?);
            }
        }
        // One batch per token length.
        let mut by_len: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, s) in seqs.iter().enumerate() {
            by_len.entry(s.len()).or_default().push(i);
        }
        let mut bits = vec![0f32; seqs.len()];
        for (&len, idx) in &by_len {
            // Logits of a forward pass stay within [`super::causal::BLOCK_BYTES`].
            let per = (super::causal::BLOCK_BYTES / (8 * len.max(1) * self.model.vocab_size()).max(1)).max(1);
            for chunk in idx.chunks(per) {
                let batch: Vec<&[u32]> = chunk.iter().map(|&i| seqs[i].as_slice()).collect();
                for (&i, lp) in chunk.iter().zip(self.model.token_logprobs_batch(&batch)?) {
                    let nats: f64 = lp.iter().map(|&x| f64::from(x)).sum();
                    bits[i] = (-nats * std::f64::consts::LOG2_E) as f32;
                }
            }
        }
        Ok(bits
            .chunks(10)
            .map(|c| {
                let mut row = [0f32; 10];
                row.copy_from_slice(c);
                row
            })
            .collect())
    }

    fn costs(&self, b: &Fillings, rows: &[Vec<u8>]) -> CoreResult<Vec<DigitBits>> {
        if rows.first().is_some_and(|r| r.len() + 1 == b.digits) {
            self.complete(&b.text, rows)
        } else {
            Ok(vec![[0f32; 10]; rows.len()])
        }
    }
}

impl SlotModel for WholeStrings<'_> {
    type Batch = Fillings;
    type Memo = ();

    fn start(&self, prefix: &str) -> CoreResult<(Fillings, DigitBits)> {
        let digits = *self
            .digits
            .get(prefix)
            .ok_or_else(|| CoreError::Invalid(format!("no canary format with the prefix '{prefix}'")))?;
        let b = Fillings {
            text: self.slots.context_text(prefix),
            digits,
            rows: vec![Vec::new()],
        };
        let first = self.costs(&b, &b.rows)?.pop().unwrap_or([0f32; 10]);
        Ok((b, first))
    }

    fn block_rows(&self, _root: &Fillings) -> usize {
        1_000
    }

    fn extend(
        &self,
        batch: &Fillings,
        parents: &[u32],
        digits: &[u8],
    ) -> CoreResult<(Fillings, Vec<DigitBits>)> {
        let rows: Vec<Vec<u8>> = parents
            .iter()
            .zip(digits)
            .map(|(&p, &d)| {
                let mut r = batch.rows.get(p as usize).cloned().unwrap_or_default();
                r.push(d);
                r
            })
            .collect();
        let costs = self.costs(batch, &rows)?;
        Ok((
            Fillings {
                text: batch.text.clone(),
                digits: batch.digits,
                rows,
            },
            costs,
        ))
    }

    fn root_memo(&self, _root: &Fillings) -> CoreResult<()> {
        Ok(())
    }

    fn expand(&self, root: &Fillings, nodes: &[(&(), &[u8])]) -> CoreResult<Vec<((), DigitBits)>> {
        nodes
            .iter()
            .map(|(_, f)| Ok(((), self.costs(root, &[f.to_vec()])?.pop().unwrap_or([0f32; 10]))))
            .collect()
    }

    fn prefix_nats(&self, prefix: &str) -> CoreResult<(f64, usize)> {
        // The whole string's bits already hold the context's cost: only its tokens are counted.
        let n = self.tokenizer.encode(&self.slots.context_text(prefix))?.len();
        Ok((0.0, n.saturating_sub(1)))
    }
}
