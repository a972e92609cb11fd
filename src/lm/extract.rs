//! Verbatim extraction of training sequences from a causal language model.
//!
//! * **Discoverable (k-extractable) memorization**, Carlini et al. (2022), "Quantifying
//!   Memorization Across Neural Language Models" (ICLR 2023, arXiv:2202.07646), Def. 3.1: a
//!   sequence `s = p ‖ x` with a `k`-token prefix `p` is extractable if greedy decoding from `p`
//!   produces the `m`-token suffix `x` exactly, `argmax_x' f(x' | p) = x`.
//! * **Pythia memorization score**, Biderman et al. (2023), "Emergent and Predictable Memorization
//!   in Large Language Models" (arXiv:2304.11158), §3: with `k = m = 32`, the fraction of the `m`
//!   greedy tokens equal to the true ones position by position, `M(s) = (1/m) Σ_i 1[ŷ_i = y_i]`;
//!   "memorized" means `M(s) = 1`. [`GreedyExtraction::match_fraction`] is this score for any
//!   `k`, `m`; next to it the longest run of consecutive positions that match.
//! * **(n, p)-discoverable extraction**, Hayes et al. (2024), "Measuring memorization in language
//!   models via probabilistic extraction" (NAACL 2025, arXiv:2410.19482), Eq. 1–2: with
//!   `p_z = Π_{t=k}^{k+m-1} p(x_t | x_<t)` the probability of sampling the suffix from the prefix
//!   (teacher forcing, temperature 1, no top-k), `z` is (n, p)-extractable if
//!   `1 − (1 − p_z)^n ≥ p`. The smallest such `n` is `⌈ln(1 − p) / ln(1 − p_z)⌉`; both are computed
//!   in log space, so `p_z` of 1e-300 and below still gives a finite (huge) `n`.

use super::CausalLm;
use crate::error::{CoreError, CoreResult};

/// What greedy decoding and teacher forcing say about one sequence.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GreedyExtraction {
    /// The `m` tokens greedy decoding produced after the prefix.
    pub generated: Vec<u32>,
    /// Whether they equal the true suffix exactly (Carlini et al. 2022).
    pub exact: bool,
    /// Fraction of suffix positions where they agree (Biderman et al. 2023).
    pub match_fraction: f64,
    /// Longest run of consecutive suffix positions where they agree.
    pub longest_match: usize,
    /// ln p_z: the sum of ln p(x_t | x_<t) over the true suffix (Hayes et al. 2024).
    pub ln_p_z: f64,
}

impl GreedyExtraction {
    /// p_z, the probability of sampling the true suffix from the prefix.
    pub fn p_z(&self) -> f64 {
        self.ln_p_z.exp()
    }

    /// The smallest number of samples n with 1 − (1 − p_z)^n ≥ p (see [`min_queries`]).
    pub fn min_queries(&self, p: f64) -> f64 {
        min_queries(self.ln_p_z, p)
    }

    /// The probability 1 − (1 − p_z)^n of sampling the suffix at least once in n queries.
    pub fn prob_at(&self, n: f64) -> f64 {
        prob_at_least_once(self.ln_p_z, n)
    }
}

/// ln(1 − p_z) from ln p_z, accurate for p_z near 0 and near 1.
fn ln_one_minus(ln_p_z: f64) -> f64 {
    if ln_p_z > -std::f64::consts::LN_2 {
        // p_z > 1/2: 1 − p_z = −expm1(ln p_z) without cancellation.
        (-ln_p_z.exp_m1()).ln()
    } else {
        (-ln_p_z.exp()).ln_1p()
    }
}

/// The probability 1 − (1 − p_z)^n of producing the suffix at least once in `n` independent
/// samples (Hayes et al. 2024, Eq. 2), from ln p_z.
pub fn prob_at_least_once(ln_p_z: f64, n: f64) -> f64 {
    if n <= 0.0 {
        return 0.0;
    }
    let l = ln_one_minus(ln_p_z);
    if l == 0.0 && ln_p_z.is_finite() {
        // p_z below 1e-308·ε: 1 − (1 − p_z)^n ≈ n·p_z.
        return (n.ln() + ln_p_z).exp().min(1.0);
    }
    -(n * l).exp_m1()
}

/// The smallest whole number n ≥ 1 of samples with 1 − (1 − p_z)^n ≥ p (Hayes et al. 2024):
/// `⌈ln(1 − p) / ln(1 − p_z)⌉`. Infinite when p_z = 0 or p ≥ 1 > p_z; 1 when p ≤ p_z.
pub fn min_queries(ln_p_z: f64, p: f64) -> f64 {
    if p <= 0.0 || ln_p_z >= 0.0 {
        return 1.0;
    }
    if p >= 1.0 || ln_p_z == f64::NEG_INFINITY {
        return f64::INFINITY;
    }
    let l = ln_one_minus(ln_p_z);
    let n = if l == 0.0 {
        // ln(1 − p_z) ≈ −p_z: n = −ln(1 − p) / p_z.
        ((-(-p).ln_1p()).ln() - ln_p_z).exp()
    } else {
        (-p).ln_1p() / l
    };
    // Guard against n landing a hair above a whole number through rounding.
    let r = n.round();
    if (n - r).abs() <= 1e-9 * r.max(1.0) {
        r.max(1.0)
    } else {
        n.ceil().max(1.0)
    }
}

/// Length of the longest run of consecutive positions where `a` and `b` agree.
pub fn longest_match(a: &[u32], b: &[u32]) -> usize {
    let (mut best, mut run) = (0, 0);
    for (x, y) in a.iter().zip(b) {
        run = if x == y { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

/// Greedy extraction of each sequence's tokens `[k, k + m)` from its first `k` tokens, with
/// teacher-forced ln p_z, in batches of `batch` sequences (one forward per generated token per
/// batch). Every sequence needs at least `k + m` tokens; later tokens are ignored.
pub fn extract_greedy(
    model: &dyn CausalLm,
    seqs: &[&[u32]],
    k: usize,
    m: usize,
    batch: usize,
) -> CoreResult<Vec<GreedyExtraction>> {
    if k == 0 || m == 0 {
        return Err(CoreError::Invalid(format!(
            "extraction needs a prefix and a suffix of at least one token (k = {k}, m = {m})"
        )));
    }
    if let Some((i, s)) = seqs.iter().enumerate().find(|(_, s)| s.len() < k + m) {
        return Err(CoreError::Invalid(format!(
            "sequence {i} has {} tokens, fewer than prefix {k} + suffix {m}",
            s.len()
        )));
    }
    let mut out = Vec::with_capacity(seqs.len());
    for chunk in seqs.chunks(batch.max(1)) {
        let prefixes: Vec<&[u32]> = chunk.iter().map(|s| &s[..k]).collect();
        let windows: Vec<&[u32]> = chunk.iter().map(|s| &s[..k + m]).collect();
        let generated = model.generate_greedy_batch(&prefixes, m)?;
        let logprobs = model.token_logprobs_batch(&windows)?;
        for ((s, gen_), lp) in chunk.iter().zip(generated).zip(logprobs) {
            let target = &s[k..k + m];
            let hits = gen_.iter().zip(target).filter(|(a, b)| a == b).count();
            // lp[i] = ln p(s[i + 1] | s[..=i]); the suffix is s[k..k + m].
            let ln_p_z: f64 = lp
                .get(k - 1..k - 1 + m)
                .ok_or_else(|| CoreError::Invalid("model returned too few log-probabilities".into()))?
                .iter()
                .map(|&x| f64::from(x))
                .sum();
            out.push(GreedyExtraction {
                exact: hits == m && gen_.len() == m,
                match_fraction: hits as f64 / m as f64,
                longest_match: longest_match(&gen_, target),
                ln_p_z,
                generated: gen_,
            });
        }
    }
    Ok(out)
}

/// The extraction rates over a set of sequences.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExtractionSummary {
    /// Number of sequences.
    pub n: usize,
    /// Fraction extracted exactly by greedy decoding.
    pub exact_rate: f64,
    /// Mean [`GreedyExtraction::match_fraction`].
    pub mean_match_fraction: f64,
    /// Mean [`GreedyExtraction::longest_match`] in tokens.
    pub mean_longest_match: f64,
    /// Median ln p_z.
    pub median_ln_p_z: f64,
    /// For each requested (n, p): the fraction of sequences that are (n, p)-extractable.
    pub np_rates: Vec<NpRate>,
}

/// The (n, p)-extraction rate at one (n, p) (Hayes et al. 2024).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NpRate {
    /// Number of queries.
    pub n: f64,
    /// Required probability of at least one success.
    pub p: f64,
    /// Fraction of sequences with 1 − (1 − p_z)^n ≥ p.
    pub rate: f64,
}

/// Aggregates per-sequence results; `np` lists the (n, p) pairs to report.
pub fn summarize(results: &[GreedyExtraction], np: &[(f64, f64)]) -> ExtractionSummary {
    let n = results.len();
    let mean = |f: &dyn Fn(&GreedyExtraction) -> f64| {
        if n == 0 {
            f64::NAN
        } else {
            results.iter().map(f).sum::<f64>() / n as f64
        }
    };
    let mut lns: Vec<f64> = results.iter().map(|r| r.ln_p_z).collect();
    lns.sort_by(f64::total_cmp);
    let median_ln_p_z = match lns.len() {
        0 => f64::NAN,
        l if l % 2 == 1 => lns[l / 2],
        l => 0.5 * (lns[l / 2 - 1] + lns[l / 2]),
    };
    let np_rates = np
        .iter()
        .map(|&(nq, p)| NpRate {
            n: nq,
            p,
            rate: mean(&|r| f64::from(u8::from(r.min_queries(p) <= nq))),
        })
        .collect();
    ExtractionSummary {
        n,
        exact_rate: mean(&|r| f64::from(u8::from(r.exact))),
        mean_match_fraction: mean(&|r| r.match_fraction),
        mean_longest_match: mean(&|r| r.longest_match as f64),
        median_ln_p_z,
        np_rates,
    }
}
