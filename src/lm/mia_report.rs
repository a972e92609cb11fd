//! Membership inference over members and non-members: `rote lm-mia`, the report's LM section
//! and the GUI's Text view read an [`LmMiaReport`].
//!
//! Every document gets MIMIR's scores (Duan et al. 2024, "Do Membership Inference Attacks Work on
//! Large Language Models?"; formulas and sign convention in [`super::mia`]): LOSS (Yeom et al.
//! 2018), zlib (Carlini et al. 2021, "Extracting Training Data from Large Language Models",
//! §5.2), Min-K% (Shi et al. 2024, "Detecting Pretraining Data from Large Language Models",
//! Eq. 1), Min-K%++ (Zhang et al. 2024/2025, Eq. 2) and, with a reference model, the reference
//! difference (Carlini et al. 2021, §5.2). Each attack's AUC, its seeded 1,000-resample
//! bootstrap 95 % interval and its TPR at FPR ≤ 0.1 % and ≤ 1 % come from
//! [`super::mia::evaluate`]. With a card, members are the planted passages (insertions > 0) and
//! non-members the held-out ones; `by_insertions` gives each planted group's AUC against the
//! held-out passages.
//!
//! Documents longer than the model's context are cut to it (counted in `truncated`); the
//! documents of one token length go through the model together, `batch` at a time (fewer when
//! their logits would pass 128 MiB, [`super::study::rows_per_batch`]), and every
//! score comes from that one forward pass (per-token ln p, μ_t and σ_t over the vocabulary). A
//! reference model reads each text with its own tokenizer.

use std::collections::BTreeMap;

use candle_core::{D, Tensor};

use super::mia::{DEFAULT_K, MiaScores, TokenStats, evaluate, scores_from_stats};
use super::study::{LmDoc, LmSource, LmUnderTest};
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
use crate::measure::roc::{Roc, roc};

/// What [`measure_mia`] does.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LmMiaOptions {
    /// Fraction k of Min-K% and Min-K%++ (MIMIR: 0.2).
    pub min_k: f64,
    /// Documents per forward pass.
    pub batch: usize,
    /// Seed of the bootstrap.
    pub seed: u64,
}

impl Default for LmMiaOptions {
    fn default() -> Self {
        Self {
            min_k: DEFAULT_K,
            batch: 16,
            seed: 0,
        }
    }
}

/// How well one attack separates members from non-members.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LmAttack {
    /// `loss`, `zlib`, `min_k`, `min_k_pp` or `reference`.
    pub attack: String,
    /// Area under the ROC curve.
    pub auc: f64,
    /// Percentile-bootstrap 95 % interval of the AUC (1,000 resamples).
    pub auc_ci: [f64; 2],
    /// Standard deviation of the bootstrap AUCs.
    pub auc_se: f64,
    /// TPR at FPR ≤ 0.1 % (with fewer than 1,000 non-members: at zero false positives).
    #[serde(rename = "tpr_at_0.1pct_fpr")]
    pub tpr_at_0_1pct_fpr: f64,
    /// TPR at FPR ≤ 1 %.
    pub tpr_at_1pct_fpr: f64,
    /// The full ROC curve (members positive), for plotting.
    pub roc: Roc,
}

/// One planted group's AUC per attack against the held-out passages.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LmMiaGroup {
    /// Insertions of the group's passages.
    pub insertions: u32,
    /// Its passages.
    pub n: usize,
    /// `(attack, AUC)` in attack order.
    pub auc: Vec<(String, f64)>,
}

/// One document's scores.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LmMiaDoc {
    /// Where it came from.
    pub source: String,
    /// Whether it is a member (trained on).
    pub member: bool,
    /// Insertions (card passages), `None` for user texts.
    pub insertions: Option<u32>,
    /// Tokens scored (after cutting to the context).
    pub tokens: usize,
    /// Its scores (higher = more likely a member).
    pub scores: MiaScores,
}

/// The membership report of one model on members vs non-members.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LmMiaReport {
    /// Model id.
    pub model: String,
    /// Its family.
    pub model_type: String,
    /// Where the documents came from.
    pub source: LmSource,
    /// The reference model's id, if one was given.
    pub reference: Option<String>,
    /// Options.
    pub options: LmMiaOptions,
    /// Members scored.
    pub n_members: usize,
    /// Non-members scored.
    pub n_nonmembers: usize,
    /// One entry per attack: loss, zlib, min_k, min_k_pp, then reference if given.
    pub attacks: Vec<LmAttack>,
    /// Per planted group vs held out (card passages only).
    pub by_insertions: Vec<LmMiaGroup>,
    /// Every document's scores, members first.
    pub documents: Vec<LmMiaDoc>,
    /// Documents cut to the model's context.
    pub truncated: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl LmMiaReport {
    /// The attack called `name`.
    pub fn attack(&self, name: &str) -> Option<&LmAttack> {
        self.attacks.iter().find(|a| a.attack == name)
    }
}

/// [`TokenStats`] of several sequences of one length in one forward pass (see
/// [`super::mia::token_stats`] for one).
pub fn token_stats_batch(model: &dyn super::CausalLm, seqs: &[&[u32]]) -> CoreResult<Vec<TokenStats>> {
    let (b, t) = super::check_batch(model.vocab_size(), model.max_positions(), seqs)?;
    if t < 2 {
        return Err(CoreError::Invalid(format!(
            "membership scores need at least two tokens, got {t}"
        )));
    }
    let flat: Vec<u32> = seqs.iter().flat_map(|s| s.iter().copied()).collect();
    let input = Tensor::from_vec(flat, (b, t), model.device())?;
    let logits = model.logits(&input)?.narrow(1, 0, t - 1)?;
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let p = logp.exp()?;
    let mu = (&p * &logp)?.sum(D::Minus1)?;
    let dev = logp.broadcast_sub(&mu.unsqueeze(D::Minus1)?)?;
    let var = (&p * dev.sqr()?)?.sum(D::Minus1)?;
    let next = input.narrow(1, 1, t - 1)?.contiguous()?.unsqueeze(2)?;
    let tok = logp.gather(&next, 2)?.squeeze(2)?;
    let rows = |x: &Tensor| -> CoreResult<Vec<Vec<f64>>> {
        Ok(x.to_vec2::<f32>()?
            .into_iter()
            .map(|r| r.into_iter().map(f64::from).collect())
            .collect())
    };
    let (tok, mu, var) = (rows(&tok)?, rows(&mu)?, rows(&var)?);
    Ok(tok
        .into_iter()
        .zip(mu)
        .zip(var)
        .map(|((logp, mu), var)| TokenStats {
            logp,
            mu,
            sigma: var.iter().map(|v| v.max(0.0).sqrt()).collect(),
        })
        .collect())
}

/// Token ids of every text, cut to the model's context; fails on a text of fewer than 2 tokens.
fn tokenize(lm: LmUnderTest<'_>, docs: &[&LmDoc], truncated: &mut usize) -> CoreResult<Vec<Vec<u32>>> {
    let max = lm.model.max_positions();
    docs.iter()
        .map(|d| {
            let mut ids = lm.codec.encode(&d.text)?;
            if ids.len() < 2 {
                return Err(CoreError::Invalid(format!(
                    "{}: has {} token(s); membership scores need at least two",
                    d.source,
                    ids.len()
                )));
            }
            if ids.len() > max {
                ids.truncate(max);
                *truncated += 1;
            }
            Ok(ids)
        })
        .collect()
}

/// Runs `f` on the documents grouped by token length, `batch` at a time; results in input order.
fn by_length<T>(
    ids: &[Vec<u32>],
    batch: usize,
    vocab: usize,
    stage: &str,
    ctx: &JobCtx<'_>,
    mut f: impl FnMut(&[&[u32]]) -> CoreResult<Vec<T>>,
) -> CoreResult<Vec<T>> {
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, s) in ids.iter().enumerate() {
        groups.entry(s.len()).or_default().push(i);
    }
    let mut out: Vec<Option<T>> = (0..ids.len()).map(|_| None).collect();
    let (mut done, total) = (0u64, ids.len() as u64);
    for (&t, idx) in &groups {
        for chunk in idx.chunks(super::study::rows_per_batch(batch, t, vocab)) {
            ctx.checkpoint()?;
            ctx.progress(stage, done, total);
            let seqs: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
            for (&i, r) in chunk.iter().zip(f(&seqs)?) {
                out[i] = Some(r);
            }
            done += chunk.len() as u64;
        }
    }
    ctx.progress(stage, total, total);
    out.into_iter()
        .map(|r| r.ok_or_else(|| CoreError::Invalid("a document was not scored".into())))
        .collect()
}

/// Scores `members` and `nonmembers` under `lm` (and `reference`, reading the texts with its own
/// tokenizer) and evaluates every attack. Fails without members or without non-members.
pub fn measure_mia(
    lm: LmUnderTest<'_>,
    reference: Option<LmUnderTest<'_>>,
    source: LmSource,
    members: &[LmDoc],
    nonmembers: &[LmDoc],
    opts: &LmMiaOptions,
    ctx: &JobCtx<'_>,
) -> CoreResult<LmMiaReport> {
    let t0 = std::time::Instant::now();
    if members.is_empty() || nonmembers.is_empty() {
        return Err(CoreError::Invalid(format!(
            "membership inference needs members and non-members ({} and {})",
            members.len(),
            nonmembers.len()
        )));
    }
    let docs: Vec<&LmDoc> = members.iter().chain(nonmembers).collect();
    let mut truncated = 0;
    let ids = tokenize(lm, &docs, &mut truncated)?;
    let stats = by_length(&ids, opts.batch, lm.model.vocab_size(), "score", ctx, |seqs| {
        token_stats_batch(lm.model, seqs)
    })?;
    let ref_nll: Vec<Option<f64>> = match reference {
        None => vec![None; docs.len()],
        Some(r) => {
            let mut ignored = 0;
            let rids = tokenize(r, &docs, &mut ignored)?;
            by_length(
                &rids,
                opts.batch,
                r.model.vocab_size(),
                "reference",
                ctx,
                |seqs| {
                    Ok(r.model
                        .token_logprobs_batch(seqs)?
                        .into_iter()
                        .map(|lp| {
                            Some(-lp.iter().map(|&x| f64::from(x)).sum::<f64>() / lp.len().max(1) as f64)
                        })
                        .collect())
                },
            )?
        }
    };
    let mut documents = Vec::with_capacity(docs.len());
    for (i, d) in docs.iter().enumerate() {
        documents.push(LmMiaDoc {
            source: d.source.clone(),
            member: i < members.len(),
            insertions: d.insertions,
            tokens: ids[i].len(),
            scores: scores_from_stats(&stats[i], &d.text, opts.min_k, ref_nll[i])?,
        });
    }
    ctx.checkpoint()?;
    ctx.progress("evaluate", 0, 1);
    let names: Vec<&str> = super::mia::SCORE_NAMES
        .iter()
        .copied()
        .filter(|&n| n != "reference" || reference.is_some())
        .collect();
    let mut attacks = Vec::new();
    for name in &names {
        let side = |member: bool| -> Vec<f64> {
            documents
                .iter()
                .filter(|d| d.member == member)
                .filter_map(|d| d.scores.get(name))
                .collect()
        };
        let e = evaluate(&side(true), &side(false), opts.seed)?;
        attacks.push(LmAttack {
            attack: (*name).to_string(),
            auc: e.auc,
            auc_ci: e.auc_ci95,
            auc_se: e.auc_se,
            tpr_at_0_1pct_fpr: e.tpr_at_0_1pct,
            tpr_at_1pct_fpr: e.tpr_at_1pct,
            roc: e.roc,
        });
    }
    let by_insertions = groups(&documents, &names)?;
    ctx.progress("evaluate", 1, 1);
    Ok(LmMiaReport {
        model: lm.id.to_string(),
        model_type: lm.model.model_type().to_string(),
        source,
        reference: reference.map(|r| r.id.to_string()),
        options: opts.clone(),
        n_members: members.len(),
        n_nonmembers: nonmembers.len(),
        attacks,
        by_insertions,
        documents,
        truncated,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Each planted group's AUC against the held-out documents (insertions 0).
fn groups(documents: &[LmMiaDoc], names: &[&str]) -> CoreResult<Vec<LmMiaGroup>> {
    let held: Vec<&LmMiaDoc> = documents.iter().filter(|d| d.insertions == Some(0)).collect();
    let mut counts: Vec<u32> = documents
        .iter()
        .filter_map(|d| d.insertions)
        .filter(|&c| c > 0)
        .collect();
    counts.sort_unstable();
    counts.dedup();
    if held.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for c in counts {
        let group: Vec<&LmMiaDoc> = documents.iter().filter(|d| d.insertions == Some(c)).collect();
        let mut auc = Vec::new();
        for name in names {
            let (mut s, mut l) = (Vec::new(), Vec::new());
            for (d, member) in group
                .iter()
                .map(|d| (d, true))
                .chain(held.iter().map(|d| (d, false)))
            {
                if let Some(v) = d.scores.get(name) {
                    s.push(v);
                    l.push(member);
                }
            }
            auc.push(((*name).to_string(), roc(&s, &l)?.auc));
        }
        out.push(LmMiaGroup {
            insertions: c,
            n: group.len(),
            auc,
        });
    }
    Ok(out)
}

/// One line per attack stating the finding, e.g. "loss: AUC 0.98 (95% CI 0.95-1.00), TPR 0.85 at
/// 1% FPR, 0.70 at 0.1% FPR".
pub fn finding_lines(report: &LmMiaReport) -> Vec<String> {
    let mut out: Vec<String> = report
        .attacks
        .iter()
        .map(|a| {
            format!(
                "{:<9} AUC {:.3} (95% CI {:.3}-{:.3}), TPR {:.2} at 1% FPR, {:.2} at 0.1% FPR",
                a.attack, a.auc, a.auc_ci[0], a.auc_ci[1], a.tpr_at_1pct_fpr, a.tpr_at_0_1pct_fpr
            )
        })
        .collect();
    if report.n_nonmembers < 1000 {
        out.push(format!(
            "with {} non-members, 0.1% FPR allows no false positive{}",
            report.n_nonmembers,
            if report.n_nonmembers < 100 {
                " and so does 1%"
            } else {
                ""
            }
        ));
    }
    out
}

/// What `rote lm-mia` and the GUI run: [`measure_mia`] of the loaded model (and reference) on
/// members vs non-members (from [`super::study::mia_docs`]), the report cached in the study at
/// `cache` (its root) when given. Returns the report and the file written.
#[expect(
    clippy::too_many_arguments,
    reason = "the CLI's and the GUI's one entry point"
)]
pub fn mia_into_study(
    lm: &super::HfLm,
    reference: Option<&super::HfLm>,
    source: LmSource,
    members: &[LmDoc],
    nonmembers: &[LmDoc],
    opts: &LmMiaOptions,
    cache: Option<&std::path::Path>,
    ctx: &JobCtx<'_>,
) -> CoreResult<(LmMiaReport, Option<std::path::PathBuf>)> {
    let (id, ref_id) = (lm.id(), reference.map(super::HfLm::id));
    let under = LmUnderTest {
        model: lm.model.as_ref(),
        codec: &lm.tokenizer,
        id: &id,
    };
    let ref_under = reference.zip(ref_id.as_deref()).map(|(r, rid)| LmUnderTest {
        model: r.model.as_ref(),
        codec: &r.tokenizer,
        id: rid,
    });
    let report = measure_mia(under, ref_under, source, members, nonmembers, opts, ctx)?;
    let path = cache.map(|root| super::study::mia_path(root, &id, &report.source, ref_id.as_deref()));
    if let Some(p) = &path {
        super::study::save_report(p, &report)?;
    }
    Ok((report, path))
}
