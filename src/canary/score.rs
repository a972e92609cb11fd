//! Log-perplexity of canary slots (Secret Sharer, section 2 of the spec):
//! `Px(s[r]) = sum_i -log2 Pr(r_i | context, r_1..r_{i-1})` in bits, summed over the random slot and
//! conditioned on the line break and the format's prefix (the prefix term is the same for every
//! candidate, so ranks do not depend on it).
//!
//! [`exact_space`] scores the **whole** space 10^digits through the digit tree: a node's state is
//! computed once and shared by its ten children, so the LSTM runs (10^digits - 1) / 9 steps instead
//! of digits * 10^digits, in blocks of at most [`BLOCK`] rows.

use candle_core::{DType, Tensor};
use candle_nn::rnn::LSTMState;

use super::card::CanaryLm;
use super::lm::CharLm;
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;

/// Rows per LSTM step.
pub const BLOCK: usize = 16_384;

/// Largest slot the exact rank enumerates (10^8 candidates, 400 MB of costs).
pub const MAX_EXACT_DIGITS: usize = 8;

/// The digits' columns of a `(n, vocab)` log-probability tensor, in bits (positive costs).
fn digit_costs(lm: &CanaryLm, state: &LSTMState, digit_ids: &Tensor) -> CoreResult<Vec<Vec<f32>>> {
    let lp = lm.net.next_log_probs(state)?.index_select(digit_ids, 1)?;
    let bits = (lp * (-std::f64::consts::LOG2_E))?.to_dtype(DType::F32)?;
    Ok(bits.to_vec2::<f32>()?)
}

/// The state after the format's context (line break + prefix), one row.
pub fn context_state(lm: &CanaryLm, format: usize) -> CoreResult<LSTMState> {
    let ids = lm.card.context(format)?;
    Ok(lm.net.run_prefix(&ids, &lm.device)?.0)
}

/// Costs in bits of every candidate of format `format`, indexed by the candidate's number
/// (`000123` is index 123). Progress per block; cancellable.
pub fn exact_space(lm: &CanaryLm, format: usize, ctx: &JobCtx<'_>) -> CoreResult<Vec<f32>> {
    let digits = lm.card.formats[format].digits;
    if digits > MAX_EXACT_DIGITS {
        return Err(CoreError::Invalid(format!(
            "the exact rank enumerates at most {MAX_EXACT_DIGITS} digits; this format has {digits} (use --estimate skew-normal)"
        )));
    }
    let dev = &lm.device;
    let ids = lm.card.digit_ids()?;
    let digit_ids = Tensor::new(&ids[..], dev)?;
    let total = 10usize.pow(digits as u32);
    let mut costs = vec![0f32; total];
    // Blocks of consecutive nodes at one level: (level, first index, state, cost of each node).
    struct Block {
        level: usize,
        base: usize,
        state: LSTMState,
        cost: Vec<f32>,
    }
    let mut stack = vec![Block {
        level: 0,
        base: 0,
        state: context_state(lm, format)?,
        cost: vec![0.0],
    }];
    let internal_total = ((total - 1) / 9) as u64; // nodes with children: 1 + 10 + ... + 10^(d-1)
    let mut done = 0u64;
    let stage = format!("scoring all {total} candidates");
    while let Some(b) = stack.pop() {
        ctx.checkpoint()?;
        let n = b.cost.len();
        let dc = digit_costs(lm, &b.state, &digit_ids)?;
        done += n as u64;
        ctx.progress(&stage, done, internal_total);
        if b.level + 1 == digits {
            for (i, row) in dc.iter().enumerate() {
                let first = (b.base + i) * 10;
                for (d, &c) in row.iter().enumerate() {
                    costs[first + d] = b.cost[i] + c;
                }
            }
            continue;
        }
        // Children in index order: node i's child d is (base + i) * 10 + d.
        let child_cost: Vec<f32> = dc
            .iter()
            .enumerate()
            .flat_map(|(i, row)| row.iter().map(move |&c| (i, c)))
            .map(|(i, c)| b.cost[i] + c)
            .collect();
        let per = (BLOCK / 10).max(1);
        let mut chunks = Vec::new();
        for start in (0..n).step_by(per) {
            let m = per.min(n - start);
            let rows = Tensor::arange(start as u32, (start + m) as u32, dev)?;
            let h = b.state.h().index_select(&rows, 0)?;
            let c = b.state.c().index_select(&rows, 0)?;
            let parent = LSTMState::new(
                h.unsqueeze(1)?.repeat((1, 10, 1))?.flatten(0, 1)?,
                c.unsqueeze(1)?.repeat((1, 10, 1))?.flatten(0, 1)?,
            );
            let input = digit_ids.repeat(m)?;
            let state = lm.net.step(&input, &parent)?;
            chunks.push(Block {
                level: b.level + 1,
                base: (b.base + start) * 10,
                state,
                cost: child_cost[start * 10..(start + m) * 10].to_vec(),
            });
        }
        // Depth first, lowest indices first (bounded memory: at most one block per level waits).
        stack.extend(chunks.into_iter().rev());
    }
    Ok(costs)
}

/// Costs in bits of the given slot fillings of format `format` (each `digits` long), in batches.
pub fn score_secrets(
    lm: &CanaryLm,
    format: usize,
    secrets: &[String],
    ctx: &JobCtx<'_>,
) -> CoreResult<Vec<f64>> {
    let digits = lm.card.formats[format].digits;
    let ids = lm.card.digit_ids()?;
    let dev = &lm.device;
    let digit_ids = Tensor::new(&ids[..], dev)?;
    let start = context_state(lm, format)?;
    let mut out = Vec::with_capacity(secrets.len());
    for (bi, batch) in secrets.chunks(BLOCK).enumerate() {
        ctx.checkpoint()?;
        let rows: Vec<Vec<u8>> = batch
            .iter()
            .map(|s| {
                let v: Vec<u8> = s.bytes().map(|b| b.wrapping_sub(b'0')).collect();
                if v.len() != digits || v.iter().any(|&d| d > 9) {
                    Err(CoreError::Invalid(format!("'{s}' is not {digits} digits")))
                } else {
                    Ok(v)
                }
            })
            .collect::<CoreResult<_>>()?;
        let n = rows.len();
        let mut state = CharLm::repeat_state(&start, n)?;
        let mut cost = vec![0f64; n];
        for pos in 0..digits {
            let dc = digit_costs(lm, &state, &digit_ids)?;
            for (i, r) in rows.iter().enumerate() {
                cost[i] += f64::from(dc[i][r[pos] as usize]);
            }
            if pos + 1 < digits {
                let input: Vec<u32> = rows.iter().map(|r| ids[r[pos] as usize]).collect();
                state = lm.net.step(&Tensor::new(input, dev)?, &state)?;
            }
        }
        out.extend(cost);
        ctx.progress(
            "scoring references",
            ((bi + 1) * BLOCK).min(secrets.len()) as u64,
            secrets.len() as u64,
        );
    }
    Ok(out)
}

/// The cost in nats of the format's prefix characters after a line break (TF Privacy's mean
/// per-character cross-entropy over the whole canary needs it), and how many characters it covers.
pub fn prefix_nats(lm: &CanaryLm, format: usize) -> CoreResult<(f64, usize)> {
    let ids = lm.card.context(format)?;
    let (_, lps) = lm.net.run_prefix(&ids, &lm.device)?;
    Ok((-lps.iter().sum::<f64>(), lps.len()))
}

/// TF Privacy's perplexity: mean cross-entropy in nats over the canary's predicted characters
/// (the prefix after the line break, then the slot), from a slot cost in bits.
pub fn tf_mean_nats(slot_bits: f64, prefix: (f64, usize), digits: usize) -> f64 {
    (prefix.0 + slot_bits * std::f64::consts::LN_2) / (prefix.1 + digits) as f64
}
