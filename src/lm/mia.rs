//! Membership-inference scores for causal language models, as MIMIR defines them (Duan et al.
//! 2024, "Do Membership Inference Attacks Work on Large Language Models?", COLM,
//! arXiv:2402.07841; `mimir/attacks/{loss,zlib,min_k,min_k_plus_plus,reference}.py`).
//!
//! With `ℓ_t = ln p(x_t | x_<t)` for the `T − 1` tokens after the first and
//! `L(x) = −(1/(T−1)) Σ_t ℓ_t` the mean negative log-likelihood:
//!
//! * **LOSS** (Yeom et al. 2018, "Privacy Risk in Machine Learning", CSF, §3): `L(x)`.
//! * **zlib** (Carlini et al. 2021, "Extracting Training Data from Large Language Models", USENIX
//!   Security, §5.2): `L(x) / |zlib(utf8(x))|`, the compressed length in bytes at zlib's default
//!   level. As in MIMIR the numerator is the *mean* NLL.
//! * **Min-K%** (Shi et al. 2024, "Detecting Pretraining Data from Large Language Models", ICLR,
//!   Eq. 1): the mean of the `⌊k (T − 1)⌋` smallest `ℓ_t` (at least one), `k = 0.2`.
//! * **Min-K%++** (Zhang et al. 2025, "Min-K%++: Improved Baseline for Detecting Pre-Training Data
//!   from Large Language Models", ICLR, arXiv:2404.02936, Eq. 2): per token
//!   `z_t = (ℓ_t − μ_t) / σ_t` with `μ_t = E_{v∼p(·|x_<t)}[ln p(v)]`,
//!   `σ_t² = E_{v∼p(·|x_<t)}[(ln p(v))²] − μ_t²` under the model's own next-token distribution,
//!   then the mean of the `⌊k (T − 1)⌋` smallest `z_t`. Where the distribution is flat
//!   (`σ_t` below [`SIGMA_MIN`]) `z_t` is 0/0 in MIMIR's code; here it is 0 (`ℓ_t = μ_t` there).
//! * **Reference** (Carlini et al. 2021, §5.2; Mireshghallah et al. 2022): `L_target(x) − L_ref(x)`.
//!
//! **Sign convention:** every score here is oriented so that *higher means more likely a member*:
//! LOSS = −L, zlib = −L/|zlib|, Min-K% and Min-K%++ as above (MIMIR reports their negatives),
//! reference = L_ref − L_target. [`evaluate`] then gives the ROC and AUC over members and
//! non-members with [`crate::measure::roc`], the TPR at FPR ≤ 0.1 % and ≤ 1 % (Carlini et al.
//! 2022, "Membership Inference Attacks From First Principles"), and a percentile-bootstrap 95 %
//! interval of the AUC from 1,000 seeded resamples, members and non-members resampled separately
//! (so every resample has both classes).

use std::io::Write as _;

use candle_core::{D, Tensor};
use rand::{Rng as _, SeedableRng as _};

use super::CausalLm;
use crate::error::{CoreError, CoreResult};
use crate::measure::roc::{Roc, roc, tpr_at_fpr};

/// MIMIR's default fraction for Min-K% and Min-K%++.
pub const DEFAULT_K: f64 = 0.2;

/// Below this σ_t (nats) the next-token distribution is flat to f32 precision: every token has
/// ln p = μ_t, and Min-K%++ takes z_t = 0 rather than 0/0.
pub const SIGMA_MIN: f64 = 1e-4;

/// The membership scores of one text (higher = more likely a member).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MiaScores {
    /// −L(x), minus the mean NLL in nats per token.
    pub loss: f64,
    /// −L(x) / zlib-compressed byte length.
    pub zlib: f64,
    /// Mean of the lowest k fraction of token log-probabilities.
    pub min_k: f64,
    /// Mean of the lowest k fraction of standardized token log-probabilities.
    pub min_k_pp: f64,
    /// L_ref(x) − L_target(x), when a reference model was given.
    pub reference: Option<f64>,
}

/// Per-token quantities of one sequence under one model.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenStats {
    /// ln p(x_t | x_<t) for t = 1..T.
    pub logp: Vec<f64>,
    /// μ_t, the mean of ln p(v) under p(· | x_<t).
    pub mu: Vec<f64>,
    /// σ_t, the standard deviation of ln p(v) under p(· | x_<t).
    pub sigma: Vec<f64>,
}

/// Token log-probabilities with the per-position mean and standard deviation of ln p over the
/// vocabulary (one forward pass of the whole sequence).
pub fn token_stats(model: &dyn CausalLm, ids: &[u32]) -> CoreResult<TokenStats> {
    let t = ids.len();
    if t < 2 {
        return Err(CoreError::Invalid(format!(
            "membership scores need at least two tokens, got {t}"
        )));
    }
    if t > model.max_positions() {
        return Err(CoreError::Invalid(format!(
            "{t} tokens are more than the model's {} positions",
            model.max_positions()
        )));
    }
    if let Some(&bad) = ids.iter().find(|&&id| id as usize >= model.vocab_size()) {
        return Err(CoreError::Invalid(format!(
            "token id {bad} is outside the model's vocabulary of {}",
            model.vocab_size()
        )));
    }
    let input = Tensor::from_vec(ids.to_vec(), (1, t), model.device())?;
    let logits = model.logits(&input)?.narrow(1, 0, t - 1)?;
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let p = logp.exp()?;
    let plogp = (&p * &logp)?;
    let mu = plogp.sum(D::Minus1)?;
    // σ_t² = E[(ln p − μ_t)²], computed about the mean so a flat distribution gives 0, not
    // rounding noise.
    let dev = logp.broadcast_sub(&mu.unsqueeze(D::Minus1)?)?;
    let var = (&p * dev.sqr()?)?.sum(D::Minus1)?;
    let next = input.narrow(1, 1, t - 1)?.contiguous()?.unsqueeze(2)?;
    let tok = logp.gather(&next, 2)?.squeeze(2)?;
    let row = |x: &Tensor| -> CoreResult<Vec<f64>> {
        Ok(x.squeeze(0)?
            .to_vec1::<f32>()?
            .into_iter()
            .map(f64::from)
            .collect())
    };
    let mu = row(&mu)?;
    let sigma = row(&var)?.iter().map(|v| v.max(0.0).sqrt()).collect();
    Ok(TokenStats {
        logp: row(&tok)?,
        mu,
        sigma,
    })
}

/// The mean of the ⌊k·len⌋ smallest values (at least one); NaN for no values.
pub fn mean_lowest(values: &[f64], k: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = ((k * v.len() as f64).floor() as usize).clamp(1, v.len());
    v[..n].iter().sum::<f64>() / n as f64
}

/// Length in bytes of `text` compressed by zlib at the default level (Python's
/// `zlib.compress(text.encode("utf-8"))`).
pub fn zlib_len(text: &str) -> CoreResult<usize> {
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(text.as_bytes())
        .and_then(|()| enc.finish())
        .map(|v| v.len())
        .map_err(|e| CoreError::Invalid(format!("zlib compression failed: {e}")))
}

/// The scores from per-token statistics (and the reference model's mean NLL, if any).
pub fn scores_from_stats(
    stats: &TokenStats,
    text: &str,
    k: f64,
    ref_nll: Option<f64>,
) -> CoreResult<MiaScores> {
    let n = stats.logp.len();
    if n == 0 {
        return Err(CoreError::Invalid(
            "membership scores need at least two tokens".into(),
        ));
    }
    let nll = -stats.logp.iter().sum::<f64>() / n as f64;
    let z: Vec<f64> = stats
        .logp
        .iter()
        .zip(&stats.mu)
        .zip(&stats.sigma)
        .map(|((l, m), s)| if *s < SIGMA_MIN { 0.0 } else { (l - m) / s })
        .collect();
    Ok(MiaScores {
        loss: -nll,
        zlib: -nll / zlib_len(text)?.max(1) as f64,
        min_k: mean_lowest(&stats.logp, k),
        min_k_pp: mean_lowest(&z, k),
        reference: ref_nll.map(|r| r - nll),
    })
}

/// Mean NLL in nats per token of `ids` under `model`.
pub fn mean_nll(model: &dyn CausalLm, ids: &[u32]) -> CoreResult<f64> {
    let lp = model.token_logprobs(ids)?;
    if lp.is_empty() {
        return Err(CoreError::Invalid("a mean NLL needs at least two tokens".into()));
    }
    Ok(-lp.iter().map(|&x| f64::from(x)).sum::<f64>() / lp.len() as f64)
}

/// All scores of one text: `ids` its tokens, `text` the string (for zlib), `reference` an
/// optional reference model sharing the tokenizer.
pub fn mia_scores(
    model: &dyn CausalLm,
    reference: Option<&dyn CausalLm>,
    ids: &[u32],
    text: &str,
    k: f64,
) -> CoreResult<MiaScores> {
    let stats = token_stats(model, ids)?;
    let ref_nll = reference.map(|r| mean_nll(r, ids)).transpose()?;
    scores_from_stats(&stats, text, k, ref_nll)
}

/// The MIA names in table order.
pub const SCORE_NAMES: [&str; 5] = ["loss", "zlib", "min_k", "min_k_pp", "reference"];

impl MiaScores {
    /// The score called `name` (one of [`SCORE_NAMES`]); `None` for a missing reference.
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "loss" => Some(self.loss),
            "zlib" => Some(self.zlib),
            "min_k" => Some(self.min_k),
            "min_k_pp" => Some(self.min_k_pp),
            "reference" => self.reference,
            _ => None,
        }
    }
}

/// How well one score separates members from non-members.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MiaEval {
    /// The ROC curve (members positive).
    pub roc: Roc,
    /// Area under it.
    pub auc: f64,
    /// TPR at FPR ≤ 0.1 %.
    pub tpr_at_0_1pct: f64,
    /// TPR at FPR ≤ 1 %.
    pub tpr_at_1pct: f64,
    /// Percentile-bootstrap 95 % interval of the AUC (2.5 % and 97.5 % quantiles).
    pub auc_ci95: [f64; 2],
    /// Standard deviation of the bootstrap AUCs (MIMIR's reported error).
    pub auc_se: f64,
}

/// Number of bootstrap resamples.
pub const BOOTSTRAP_RESAMPLES: usize = 1000;

/// ROC, AUC, TPR at low FPR and a seeded bootstrap interval of the AUC for scores of members and
/// non-members (higher = member).
pub fn evaluate(members: &[f64], nonmembers: &[f64], seed: u64) -> CoreResult<MiaEval> {
    if members.is_empty() || nonmembers.is_empty() {
        return Err(CoreError::Invalid(format!(
            "an MIA evaluation needs members and non-members ({} and {})",
            members.len(),
            nonmembers.len()
        )));
    }
    let labelled = |m: &[f64], n: &[f64]| -> (Vec<f64>, Vec<bool>) {
        let scores = m.iter().chain(n).copied().collect();
        let labels = m.iter().map(|_| true).chain(n.iter().map(|_| false)).collect();
        (scores, labels)
    };
    let (s, l) = labelled(members, nonmembers);
    let curve = roc(&s, &l)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut aucs = Vec::with_capacity(BOOTSTRAP_RESAMPLES);
    let mut bm = vec![0.0; members.len()];
    let mut bn = vec![0.0; nonmembers.len()];
    for _ in 0..BOOTSTRAP_RESAMPLES {
        for x in bm.iter_mut() {
            *x = members[rng.random_range(0..members.len())];
        }
        for x in bn.iter_mut() {
            *x = nonmembers[rng.random_range(0..nonmembers.len())];
        }
        let (s, l) = labelled(&bm, &bn);
        aucs.push(roc(&s, &l)?.auc);
    }
    aucs.sort_by(f64::total_cmp);
    let q = |p: f64| {
        // Linear interpolation between order statistics (numpy's default percentile).
        let h = p * (aucs.len() - 1) as f64;
        let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
        aucs[lo] + (h - lo as f64) * (aucs[hi] - aucs[lo])
    };
    let mean = aucs.iter().sum::<f64>() / aucs.len() as f64;
    let var = aucs.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (aucs.len() - 1) as f64;
    Ok(MiaEval {
        auc: curve.auc,
        tpr_at_0_1pct: tpr_at_fpr(&curve, 0.001),
        tpr_at_1pct: tpr_at_fpr(&curve, 0.01),
        auc_ci95: [q(0.025), q(0.975)],
        auc_se: var.sqrt(),
        roc: curve,
    })
}
