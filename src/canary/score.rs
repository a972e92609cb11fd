//! Log-perplexity of canary slots (Secret Sharer, section 2 of the spec):
//! `Px(s[r]) = sum_i -log2 Pr(r_i | context, r_1..r_{i-1})` in bits, summed over the random slot and
//! conditioned on the format's context (the prefix term is the same for every candidate, so ranks
//! do not depend on it).
//!
//! [`exact_space`] scores the **whole** space 10^digits through the digit tree, for any
//! [`SlotModel`]: a node's state is computed once and shared by its ten children, so the model runs
//! (10^digits - 1) / 9 one-digit steps instead of digits * 10^digits, in blocks of at most
//! [`SlotModel::block_rows`] rows. The tree is walked depth first, one block per level alive at a
//! time, so memory stays bounded (a transformer's block holds a key/value cache per row). The
//! enumeration is exact: every candidate's cost is the sum of its own digits' costs.

use super::model::{DigitBits, SlotModel};
use super::secrets::CanaryFormat;
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;

/// Rows per LSTM step.
pub const BLOCK: usize = 16_384;

/// Largest slot the exact rank enumerates (10^8 candidates, 400 MB of costs).
pub const MAX_EXACT_DIGITS: usize = 8;

/// Consecutive nodes of one level of the digit tree: node `i` of the block is tree node
/// `base + i` of its level; its ten children are `(base + i) * 10 + d`.
struct Block<B> {
    level: usize,
    base: usize,
    batch: B,
    /// Cost of each node's filling so far.
    cost: Vec<f32>,
    /// Each node's next-digit costs.
    next: Vec<DigitBits>,
    /// First node whose children are still to be made.
    done: usize,
}

/// Costs in bits of every candidate of `fmt`, indexed by the candidate's number (`000123` is
/// index 123). Progress per block; cancellable.
pub fn exact_space<M: SlotModel>(model: &M, fmt: &CanaryFormat, ctx: &JobCtx<'_>) -> CoreResult<Vec<f32>> {
    let digits = fmt.digits;
    if digits > MAX_EXACT_DIGITS || digits == 0 {
        return Err(CoreError::Invalid(format!(
            "the exact rank enumerates 1 to {MAX_EXACT_DIGITS} digits; this format has {digits} (use --estimate skew-normal)"
        )));
    }
    let total = 10usize.pow(digits as u32);
    let mut costs = vec![0f32; total];
    let (root, first) = model.start(&fmt.prefix)?;
    let per = (model.block_rows(&root) / 10).max(1);
    let internal_total = ((total - 1) / 9) as u64; // nodes with children: 1 + 10 + ... + 10^(d-1)
    let mut done = 1u64;
    let stage = format!("scoring all {total} candidates");
    let mut stack = vec![Block {
        level: 0,
        base: 0,
        batch: root,
        cost: vec![0.0],
        next: vec![first],
        done: 0,
    }];
    while let Some(top) = stack.last_mut() {
        ctx.checkpoint()?;
        let n = top.cost.len();
        if top.level + 1 == digits {
            // Leaves: the last digit's costs are read off the parents.
            for (i, row) in top.next.iter().enumerate() {
                let first = (top.base + i) * 10;
                for (d, &c) in row.iter().enumerate() {
                    costs[first + d] = top.cost[i] + c;
                }
            }
            stack.pop();
            continue;
        }
        if top.done >= n {
            stack.pop();
            continue;
        }
        // The next chunk of this block's children, in index order.
        let start = top.done;
        let m = per.min(n - start);
        top.done += m;
        let parents: Vec<u32> = (start..start + m).flat_map(|i| [i as u32; 10]).collect();
        let digit_row: Vec<u8> = (0..m).flat_map(|_| 0..10u8).collect();
        let (batch, next) = model.extend(&top.batch, &parents, &digit_row)?;
        let cost: Vec<f32> = (start..start + m)
            .flat_map(|i| top.next[i].iter().map(move |&c| (i, c)))
            .map(|(i, c)| top.cost[i] + c)
            .collect();
        let child = Block {
            level: top.level + 1,
            base: (top.base + start) * 10,
            batch,
            cost,
            next,
            done: 0,
        };
        done += (m * 10) as u64;
        ctx.progress(&stage, done.min(internal_total), internal_total);
        stack.push(child);
    }
    Ok(costs)
}

/// The digits of `s`, checked to fill a `digits`-digit slot.
pub fn slot_digits(s: &str, digits: usize) -> CoreResult<Vec<u8>> {
    let v: Vec<u8> = s.bytes().map(|b| b.wrapping_sub(b'0')).collect();
    if v.len() != digits || v.iter().any(|&d| d > 9) {
        return Err(CoreError::Invalid(format!("'{s}' is not {digits} digits")));
    }
    Ok(v)
}

/// Costs in bits of the given slot fillings of `fmt` (each `digits` long), in batches.
pub fn score_secrets<M: SlotModel>(
    model: &M,
    fmt: &CanaryFormat,
    secrets: &[String],
    ctx: &JobCtx<'_>,
) -> CoreResult<Vec<f64>> {
    let digits = fmt.digits;
    let (root, first) = model.start(&fmt.prefix)?;
    let block = model.block_rows(&root).max(1);
    let mut out = Vec::with_capacity(secrets.len());
    for (bi, batch) in secrets.chunks(block).enumerate() {
        ctx.checkpoint()?;
        let rows: Vec<Vec<u8>> = batch
            .iter()
            .map(|s| slot_digits(s, digits))
            .collect::<CoreResult<_>>()?;
        let n = rows.len();
        let mut cost: Vec<f64> = rows.iter().map(|r| f64::from(first[usize::from(r[0])])).collect();
        let mut parents = vec![0u32; n];
        let mut state = None;
        for pos in 0..digits - 1 {
            let input: Vec<u8> = rows.iter().map(|r| r[pos]).collect();
            let (next_state, next) = match &state {
                None => model.extend(&root, &parents, &input)?,
                Some(s) => model.extend(s, &parents, &input)?,
            };
            for (i, r) in rows.iter().enumerate() {
                cost[i] += f64::from(next[i][usize::from(r[pos + 1])]);
            }
            state = Some(next_state);
            parents = (0..n as u32).collect();
        }
        out.extend(cost);
        ctx.progress(
            "scoring references",
            ((bi + 1) * block).min(secrets.len()) as u64,
            secrets.len() as u64,
        );
    }
    Ok(out)
}

/// TF Privacy's perplexity: mean cross-entropy in nats over the canary's predicted tokens
/// (the context after its first token, then the slot), from a slot cost in bits.
pub fn tf_mean_nats(slot_bits: f64, prefix: (f64, usize), digits: usize) -> f64 {
    (prefix.0 + slot_bits * std::f64::consts::LN_2) / (prefix.1 + digits) as f64
}
