//! Where memorized tokens live inside a language model: token labels and per-layer activations
//! for the activation probes of spec 11 §B (after Slonski 2024, *Detecting Memorization in Large
//! Language Models*, arXiv:2412.01014; the paper's labelling rule is not public, so rote follows
//! the spec's reconstruction, §B.1–2).
//!
//! * **Memorized (1)**: token `p` of a member sequence (planted ≥ `min_insertions` times) inside
//!   the verbatim-extracted span of greedy extraction from its first `k` tokens (Carlini et al.
//!   2022, Def. 3.1: the greedy continuation equals the truth up to and including `p`), whose
//!   log-probability drops by more than Δ nats when the context before the last `keep` tokens is
//!   replaced by a random span of ordinary text of the same length: the token depends on long,
//!   specific context, not on the words just before it.
//! * **Not memorized (0)**: tokens at the same positions `[k, k + m)` of never-seen text (the
//!   card's held-out passages and its validation text), also argmax-correct, so both classes are
//!   "confident and right".
//! * **Confidence matching**: both classes are cut to equal counts in bins of
//!   `−log10(1 − p(token))` (width ¼), so a probe cannot win by reading the model's confidence.
//!
//! A token's activations are those of the position that predicts it (`p − 1`): the residual stream
//! after the embeddings and after each block, and each block's MLP activations
//! ([`super::trace`]).

use candle_core::{D, Tensor};
use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};

use super::extract::extract_greedy;
use super::study::LmUnderTest;
use super::trace::{Site, Trace};
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;

/// A sequence the probes read.
#[derive(Clone, Debug)]
pub struct ProbeSeq {
    /// Token ids (`k + m` of them).
    pub ids: Vec<u32>,
    /// Where it came from (`card passage 3`, `validation text window 7`).
    pub source: String,
    /// Whether it is a member planted often enough to be memorized (the positive side).
    pub member: bool,
}

/// One sequence's activations at the predicting positions recorded.
pub struct SeqActs {
    /// Predicting positions recorded (ascending; position `p − 1` predicts token `p`).
    pub positions: Vec<usize>,
    /// Per site, `positions.len() × width` row-major.
    pub sites: Vec<Vec<f32>>,
    /// Per site, the width.
    pub widths: Vec<usize>,
}

impl SeqActs {
    /// Site `s`'s activation vector at predicting position `at`, if recorded.
    pub fn at(&self, s: usize, at: usize) -> Option<&[f32]> {
        let row = self.positions.binary_search(&at).ok()?;
        let w = self.widths[s];
        self.sites[s].get(row * w..(row + 1) * w)
    }
}

/// What one forward pass says about every token of a sequence.
pub struct SeqStats {
    /// ln p(token t | before) for t = 1..T (index t − 1).
    pub logp: Vec<f32>,
    /// Whether token t is the model's argmax (index t − 1).
    pub argmax_ok: Vec<bool>,
    /// The largest probability at the position predicting t.
    pub max_p: Vec<f32>,
    /// The entropy (nats) there.
    pub entropy: Vec<f32>,
}

/// The sites recorded, in report order: residual 0..=L, then MLP 0..L.
pub fn sites(n_layers: usize) -> Vec<(Site, usize)> {
    (0..=n_layers)
        .map(|l| (Site::Residual, l))
        .chain((0..n_layers).map(|l| (Site::Mlp, l)))
        .collect()
}

/// A site's name in reports: `residual 2`, `mlp 1`.
pub fn site_name(site: Site, layer: usize) -> String {
    format!("{} {layer}", site.name())
}

/// Every token's statistics, one plain forward pass per batch of equal-length sequences.
pub fn token_stats(
    lm: &LmUnderTest<'_>,
    seqs: &[ProbeSeq],
    batch: usize,
    ctx: &JobCtx<'_>,
) -> CoreResult<Vec<SeqStats>> {
    let model = lm.model;
    let mut stats = Vec::with_capacity(seqs.len());
    for (done, chunk) in seqs.chunks(batch.max(1)).enumerate() {
        ctx.checkpoint()?;
        ctx.progress("scoring tokens", (done * batch) as u64, seqs.len() as u64);
        let (input, t) = batch_input(lm, chunk)?;
        let logits = model.logits(&input)?;
        let logp = candle_nn::ops::log_softmax(&logits.narrow(1, 0, t - 1)?, D::Minus1)?;
        let entropy = (logp.exp()? * &logp)?.sum(D::Minus1)?.neg()?.to_vec2::<f32>()?;
        let max_lp = logp.max(D::Minus1)?.to_vec2::<f32>()?;
        let next = input.narrow(1, 1, t - 1)?.contiguous()?.unsqueeze(2)?;
        let tok = logp.gather(&next, 2)?.squeeze(2)?.to_vec2::<f32>()?;
        for row in 0..chunk.len() {
            stats.push(SeqStats {
                argmax_ok: tok[row].iter().zip(&max_lp[row]).map(|(lp, m)| lp >= m).collect(),
                logp: tok[row].clone(),
                max_p: max_lp[row].iter().map(|m| m.exp()).collect(),
                entropy: entropy[row].clone(),
            });
        }
    }
    Ok(stats)
}

fn batch_input(lm: &LmUnderTest<'_>, chunk: &[ProbeSeq]) -> CoreResult<(Tensor, usize)> {
    let t = chunk.first().map_or(0, |s| s.ids.len());
    if t < 2 || chunk.iter().any(|s| s.ids.len() != t) {
        return Err(CoreError::Invalid(
            "probe sequences must share one length of at least 2".into(),
        ));
    }
    let flat: Vec<u32> = chunk.iter().flat_map(|s| s.ids.iter().copied()).collect();
    Ok((Tensor::from_vec(flat, (chunk.len(), t), lm.model.device())?, t))
}

/// One traced forward pass per batch of the sequences with `wanted` predicting positions
/// (ascending; empty: not run): their activations at those positions, and the number of blocks.
pub fn record(
    lm: &LmUnderTest<'_>,
    seqs: &[ProbeSeq],
    wanted: &[Vec<usize>],
    batch: usize,
    ctx: &JobCtx<'_>,
) -> CoreResult<(Vec<Option<SeqActs>>, usize)> {
    let run: Vec<usize> = (0..seqs.len()).filter(|&i| !wanted[i].is_empty()).collect();
    let mut acts: Vec<Option<SeqActs>> = (0..seqs.len()).map(|_| None).collect();
    let mut n_layers = 0;
    for (done, idx) in run.chunks(batch.max(1)).enumerate() {
        ctx.checkpoint()?;
        ctx.progress("recording activations", (done * batch) as u64, run.len() as u64);
        let chunk: Vec<ProbeSeq> = idx.iter().map(|&i| seqs[i].clone()).collect();
        let (input, _) = batch_input(lm, &chunk)?;
        let mut trace = Trace::recording();
        let mut cache = lm.model.new_cache();
        lm.model.forward_traced(&input, &mut cache, &mut trace)?;
        n_layers = trace.mlp.len();
        let site_vals: Vec<Vec<Vec<Vec<f32>>>> = trace
            .residual
            .iter()
            .chain(&trace.mlp)
            .map(|a| Ok(a.to_vec3::<f32>()?))
            .collect::<CoreResult<_>>()?;
        for (row, &i) in idx.iter().enumerate() {
            let positions = wanted[i].clone();
            acts[i] = Some(SeqActs {
                sites: site_vals
                    .iter()
                    .map(|v| {
                        positions
                            .iter()
                            .flat_map(|&p| v[row][p].iter().copied())
                            .collect()
                    })
                    .collect(),
                widths: site_vals
                    .iter()
                    .map(|v| v[row].first().map_or(0, Vec::len))
                    .collect(),
                positions,
            });
        }
    }
    Ok((acts, n_layers))
}

/// One labelled token: sequence `seq`, token position `pos` (predicted at `pos − 1`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Token {
    /// Index into the sequences.
    pub seq: usize,
    /// Token position.
    pub pos: usize,
    /// Memorized or not.
    pub memorized: bool,
}

/// How many tokens each labelling step kept.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LabelCounts {
    /// Member sequences read.
    pub member_sequences: usize,
    /// Of them, extracted verbatim for at least one token.
    pub extracted_sequences: usize,
    /// Tokens inside verbatim-extracted spans.
    pub extracted_tokens: usize,
    /// Of them, dependent on long context (drop > Δ): the memorized candidates.
    pub context_dependent: usize,
    /// Non-member sequences read.
    pub nonmember_sequences: usize,
    /// Their argmax-correct tokens at the same positions.
    pub nonmember_correct: usize,
    /// Tokens per class after confidence matching.
    pub matched_per_class: usize,
}

/// Labels tokens (module docs): returns the tokens, the counts, and each member's verbatim span
/// length.
#[allow(
    clippy::too_many_arguments,
    reason = "the labelling rule's parameters, each documented"
)]
pub fn label(
    lm: &LmUnderTest<'_>,
    seqs: &[ProbeSeq],
    stats: &[SeqStats],
    filler: &[u32],
    (k, m, keep): (usize, usize, usize),
    delta: f64,
    matched: bool,
    seed: u64,
    ctx: &JobCtx<'_>,
) -> CoreResult<(Vec<Token>, LabelCounts)> {
    let mut counts = LabelCounts::default();
    let members: Vec<usize> = (0..seqs.len()).filter(|&i| seqs[i].member).collect();
    counts.member_sequences = members.len();
    counts.nonmember_sequences = seqs.len() - members.len();
    ctx.progress("greedy extraction", 0, 1);
    let member_ids: Vec<&[u32]> = members.iter().map(|&i| seqs[i].ids.as_slice()).collect();
    let extracted = extract_greedy(lm.model, &member_ids, k, m, 8)?;
    // Candidates: (sequence, position) inside the leading verbatim span.
    let mut candidates = Vec::new();
    for (&i, e) in members.iter().zip(&extracted) {
        let span = e
            .generated
            .iter()
            .zip(&seqs[i].ids[k..k + m])
            .take_while(|(a, b)| a == b)
            .count();
        if span > 0 {
            counts.extracted_sequences += 1;
        }
        candidates.extend((k..k + span).map(|p| (i, p)));
    }
    counts.extracted_tokens = candidates.len();
    if filler.len() < k + m + keep {
        return Err(CoreError::Invalid(format!(
            "the context-replacement test needs at least {} tokens of ordinary text, {} given",
            k + m + keep,
            filler.len()
        )));
    }
    // Context dependence: the same `keep` tokens before p after a random filler span.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(9100);
    let mut positive = Vec::new();
    for p in k..k + m {
        ctx.checkpoint()?;
        ctx.progress("context test", (p - k) as u64, m as u64);
        let at: Vec<usize> = candidates.iter().filter(|c| c.1 == p).map(|c| c.0).collect();
        if at.is_empty() {
            continue;
        }
        let swap = p - keep;
        let altered: Vec<Vec<u32>> = at
            .iter()
            .map(|&i| {
                let start = rng.random_range(0..=filler.len() - swap);
                let mut s = filler[start..start + swap].to_vec();
                s.extend_from_slice(&seqs[i].ids[swap..=p]);
                s
            })
            .collect();
        let refs: Vec<&[u32]> = altered.iter().map(Vec::as_slice).collect();
        let lps = lm.model.token_logprobs_batch(&refs)?;
        for (&i, lp) in at.iter().zip(lps) {
            let original = f64::from(stats[i].logp[p - 1]);
            let replaced = lp.last().map_or(f64::NEG_INFINITY, |&v| f64::from(v));
            if original - replaced > delta {
                positive.push(Token {
                    seq: i,
                    pos: p,
                    memorized: true,
                });
            }
        }
    }
    counts.context_dependent = positive.len();
    let negative: Vec<Token> = (0..seqs.len())
        .filter(|&i| !seqs[i].member)
        .flat_map(|i| (k..k + m).map(move |p| (i, p)))
        .filter(|&(i, p)| stats[i].argmax_ok[p - 1])
        .map(|(seq, pos)| Token {
            seq,
            pos,
            memorized: false,
        })
        .collect();
    counts.nonmember_correct = negative.len();
    let tokens = if matched {
        match_confidence(positive, negative, stats, &mut rng)
    } else {
        positive.into_iter().chain(negative).collect::<Vec<_>>()
    };
    counts.matched_per_class = tokens.iter().filter(|t| t.memorized).count();
    Ok((tokens, counts))
}

/// The confidence bin of a token: `−log10(1 − p)` in quarters, capped at 6.
fn confidence_bin(logp: f32) -> usize {
    let p = f64::from(logp).exp();
    let z = -(1.0 - p).max(1e-6).log10();
    ((z * 4.0).floor() as usize).min(24)
}

/// Equal numbers of each class in every confidence bin, drawn at random.
fn match_confidence(
    mut pos: Vec<Token>,
    mut neg: Vec<Token>,
    stats: &[SeqStats],
    rng: &mut rand_chacha::ChaCha8Rng,
) -> Vec<Token> {
    pos.shuffle(rng);
    neg.shuffle(rng);
    let bin = |t: &Token| confidence_bin(stats[t.seq].logp[t.pos - 1]);
    let mut out = Vec::new();
    for b in 0..=24 {
        let p: Vec<Token> = pos.iter().filter(|t| bin(t) == b).copied().collect();
        let n: Vec<Token> = neg.iter().filter(|t| bin(t) == b).copied().collect();
        let keep = p.len().min(n.len());
        out.extend(p.into_iter().take(keep));
        out.extend(n.into_iter().take(keep));
    }
    out.sort_by_key(|t| (t.seq, t.pos));
    out
}

/// The features of `tokens` at site index `s` (`n × width`, row-major) and the width. Every
/// token's position must have been recorded.
pub fn features(tokens: &[Token], acts: &[Option<SeqActs>], s: usize) -> CoreResult<(Vec<f32>, usize)> {
    let mut x = Vec::new();
    let mut width = 0;
    for t in tokens {
        let row = acts[t.seq]
            .as_ref()
            .and_then(|a| a.at(s, t.pos - 1))
            .ok_or_else(|| {
                CoreError::Invalid(format!(
                    "no activations recorded for token {} of sequence {}",
                    t.pos, t.seq
                ))
            })?;
        width = row.len();
        x.extend_from_slice(row);
    }
    Ok((x, width))
}
