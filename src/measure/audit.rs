//! Audited lower bounds on a training algorithm's differential-privacy ε, read off a membership
//! test's scores.
//!
//! # The hypothesis-test bound
//!
//! A membership test that calls a candidate a member when its score is at least a threshold t
//! has, on members, a true-positive rate TPR(t) and, on non-members, a false-positive rate
//! FPR(t). If training is (ε, δ)-DP, every such test satisfies (Kairouz, Oh & Viswanath 2015,
//! "The Composition Theorem for Differential Privacy", ICML, Theorem 2.1, with the false alarm
//! FPR and the missed detection FNR = 1 − TPR)
//!
//! ```text
//! TPR ≤ e^ε · FPR + δ          and          TNR ≤ e^ε · FNR + δ,
//! so   ε ≥ ln(TPR − δ) − ln FPR     and     ε ≥ ln(TNR − δ) − ln FNR.
//! ```
//!
//! The rates are only estimated, so Jagielski, Ullman & Oprea (2020, "Auditing Differentially
//! Private Machine Learning: How Private is Private SGD?", NeurIPS) replace TPR by a lower and
//! FPR by an upper Clopper–Pearson bound. With k successes out of n and one-sided level a,
//!
//! ```text
//! lower(k, n, a) = Beta⁻¹(a; k, n − k + 1)      (0 when k = 0)
//! upper(k, n, a) = Beta⁻¹(1 − a; k + 1, n − k)  (1 when k = n)
//! ```
//!
//! [`epsilon_lower_bound_cp`] follows the rigour of jax_privacy's `epsilon_clopper_pearson`: every
//! distinct score but the smallest (which calls everyone a member and can never give ε > 0) is a
//! threshold, at most [`MAX_THRESHOLDS`] of them (beyond that, the scores at evenly spaced ranks
//! of the pooled scores, chosen without looking at the labels); at each of the T thresholds
//! searched two one-sided intervals are formed, for the member count above it and for the
//! non-member count above it, each at level α / (2T) (Bonferroni), so all 2T hold together with
//! probability at least 1 − α. The reverse direction needs no further intervals, since
//! TNR_lb = 1 − FPR_ub and FNR_ub = 1 − TPR_lb. The bound is
//!
//! ```text
//! ε̂ = max(0, max over t and both directions of ln(rate_lb(t) − δ) − ln(rate_ub(t))).
//! ```
//!
//! The incomplete beta function behind the bounds and the binomial tails, and its inverse, are in
//! `audit_beta.rs` (puruspe's ln Γ; see there why not puruspe's `betai` / `invbetai`).
//!
//! Pooled over many (model, sample) pairs, as `rote mia` does, the trials are treated as
//! independent, which is the convention of the peers (TF Privacy, Privacy Meter, PrivacyGuard)
//! rather than a proof about one training run; the one-run audit below is the rigorous form.
//!
//! # The one-run audit
//!
//! Steinke, Nasr & Jagielski (2023, "Privacy Auditing with One (1) Training Run", NeurIPS,
//! arXiv:2305.08846) include each of m canaries independently with probability ½ and train once.
//! The auditor guesses r of them (here: the k₊ highest scores IN, optionally the k₋ lowest OUT,
//! abstaining on the rest) and gets v right. Under ε-DP the number of correct guesses is
//! dominated by Binomial(r, q), q = e^ε / (1 + e^ε); with δ > 0 their Corollary 5.4 (arXiv v1;
//! the reference code is their Appendix D) gives the p-value
//!
//! ```text
//! p(ε) = β + 2mδ · max_{1≤i≤v} P[v − i ≤ Bin(r, q) < v] / i,    β = P[Bin(r, q) ≥ v] = I_q(v, r − v + 1),
//! ```
//!
//! capped at 1, and the bound is ε̂ = sup{ε : p(ε) < p_target}, found by bisection
//! ([`epsilon_one_run_counts`]; any ε with p(ε) < p_target is rejected together with every
//! smaller ε, so the lower end of the bracket is returned). [`epsilon_one_run_sweep`] tries a
//! small grid of guess counts fixed by m alone and Bonferroni-corrects over it (p_target / G);
//! it never reports the maximum over the grid uncorrected. The theorem needs independent fair
//! coins; a constant guess against members drawn with another ratio would "prove" ε > 0, so
//! callers must only use it where the membership was drawn as a random half.

use crate::error::{CoreError, CoreResult};

#[path = "audit_beta.rs"]
pub(crate) mod beta;

/// Default significance α (95 % confidence).
pub const DEFAULT_SIGNIFICANCE: f64 = 0.05;
/// Default δ of the (ε, δ) claim that is tested.
pub const DEFAULT_DELTA: f64 = 1e-5;
/// Most thresholds the Clopper–Pearson search tries (and Bonferroni-corrects over).
pub const MAX_THRESHOLDS: usize = 1000;
/// [`AuditBound::method`] of [`epsilon_lower_bound_cp`].
pub const METHOD_CP: &str = "clopper-pearson-bonferroni";
/// [`AuditBound::method`] of the one-run audit.
pub const METHOD_ONE_RUN: &str = "one-run (Steinke et al. 2023)";
/// Largest ε the one-run bisection considers.
const EPS_CAP: f64 = 100.0;

/// An audited ε lower bound and how it was obtained.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AuditBound {
    /// The lower bound on ε (>= 0; 0 when the scores reject no ε > 0).
    pub epsilon: f64,
    /// [`METHOD_CP`] or [`METHOD_ONE_RUN`].
    pub method: String,
    /// Significance α: the bound holds with probability at least 1 − α.
    pub significance: f64,
    /// δ of the (ε, δ) claim tested.
    pub delta: f64,
    /// Hypotheses searched and Bonferroni-corrected over: thresholds (Clopper–Pearson) or guess
    /// counts (one run).
    pub thresholds_searched: usize,
    /// Candidates: members + non-members, or canaries m.
    pub canaries: usize,
    /// Clopper–Pearson: the bound came from TNR / FNR (scores below the threshold called
    /// non-members) rather than TPR / FPR.
    #[serde(default)]
    pub reversed: bool,
    /// The score threshold of the bound (Clopper–Pearson: called member at or above it; one run:
    /// the lowest score guessed IN). None when ε = 0 or the score is infinite.
    pub threshold: Option<f64>,
    /// Clopper–Pearson lower bound on the TPR (TNR when `reversed`) at `threshold`.
    pub tpr_lower: Option<f64>,
    /// Clopper–Pearson upper bound on the FPR (FNR when `reversed`) at `threshold`.
    pub fpr_upper: Option<f64>,
    /// One run: guesses r of the hypothesis that gave the bound.
    pub guesses: Option<usize>,
    /// One run: correct guesses v among them.
    pub correct: Option<usize>,
}

impl AuditBound {
    /// One line for views and reports, e.g. "audited ε ≥ 1.23 (δ = 1e-5, 95%, Clopper–Pearson,
    /// Bonferroni over 999 thresholds)".
    pub fn summary(&self) -> String {
        let conf = (1.0 - self.significance) * 100.0;
        if self.method == METHOD_CP {
            format!(
                "audited ε ≥ {:.2} (δ = {:e}, {conf:.0}%, Clopper–Pearson, Bonferroni over {} thresholds)",
                self.epsilon, self.delta, self.thresholds_searched
            )
        } else {
            let hits = match (self.correct, self.guesses) {
                (Some(v), Some(r)) => format!(", {v} of {r} guesses right"),
                _ => String::new(),
            };
            format!(
                "one-run ε ≥ {:.2} (δ = {:e}, {conf:.0}%, Steinke et al. 2023, {} canaries{hits}, \
                 Bonferroni over {} guess counts)",
                self.epsilon, self.delta, self.canaries, self.thresholds_searched
            )
        }
    }
}

fn check_levels(significance: f64, delta: f64) -> CoreResult<()> {
    if !(significance > 0.0 && significance < 1.0) {
        return Err(CoreError::Invalid(format!(
            "audit significance must lie in (0, 1), got {significance}"
        )));
    }
    if !(0.0..1.0).contains(&delta) {
        return Err(CoreError::Invalid(format!(
            "audit delta must lie in [0, 1), got {delta}"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Clopper–Pearson and binomial tails.

/// One-sided Clopper–Pearson lower bound on a rate from `k` successes out of `n`: the p with
/// P[Bin(n, p) ≥ k] = `alpha`, i.e. I_p(k, n − k + 1) = `alpha` (0 when k = 0; `k` is clamped to
/// `n`).
pub fn clopper_pearson_lower(k: usize, n: usize, alpha: f64) -> f64 {
    let k = k.min(n);
    if k == 0 || alpha <= 0.0 {
        return 0.0;
    }
    if alpha >= 1.0 {
        return 1.0;
    }
    beta::inv_ibeta(alpha, k as f64, (n - k) as f64 + 1.0, false)
}

/// One-sided Clopper–Pearson upper bound on a rate from `k` successes out of `n`: the p with
/// P[Bin(n, p) ≤ k] = `alpha`, i.e. 1 − I_p(k + 1, n − k) = `alpha` (1 when k = n; `k` is clamped
/// to `n`).
pub fn clopper_pearson_upper(k: usize, n: usize, alpha: f64) -> f64 {
    let k = k.min(n);
    if k == n || alpha <= 0.0 {
        return 1.0;
    }
    if alpha >= 1.0 {
        return 0.0;
    }
    beta::inv_ibeta(alpha, k as f64 + 1.0, (n - k) as f64, true)
}

/// P[Bin(r, q) ≥ v] = I_q(v, r − v + 1) (1 when v = 0, 0 when v > r), to full relative precision.
pub fn binomial_tail(v: usize, r: usize, q: f64) -> f64 {
    if v == 0 {
        return 1.0;
    }
    if v > r || q <= 0.0 {
        return 0.0;
    }
    if q >= 1.0 {
        return 1.0;
    }
    beta::ibeta_pair(v as f64, (r - v) as f64 + 1.0, q).0
}

/// (ln q, ln(1 − q)) for q = e^ε / (1 + e^ε), without cancellation.
fn ln_logistic(eps: f64) -> (f64, f64) {
    let soft = (-eps).exp().ln_1p();
    (-soft, -eps - soft)
}

// ---------------------------------------------------------------------------------------------
// The one-run audit.

/// Steinke et al.'s p-value of `v` correct guesses out of `r` with `m` canaries under (ε, δ)-DP
/// (see the module docs).
pub fn one_run_p_value(m: usize, r: usize, v: usize, eps: f64, delta: f64) -> f64 {
    let (ln_q, ln_1q) = ln_logistic(eps.max(0.0));
    let beta = binomial_tail(v, r, ln_q.exp());
    if delta <= 0.0 || v == 0 {
        return beta.min(1.0);
    }
    // max over i of P[v − i ≤ Bin(r, q) < v] / i: the pmf from v − 1 downwards, in log space by
    // ln pmf(k − 1) = ln pmf(k) + ln(k / (r − k + 1)) + ln((1 − q) / q).
    let k0 = v - 1;
    let ln_choose = puruspe::ln_gamma(r as f64 + 1.0)
        - puruspe::ln_gamma(k0 as f64 + 1.0)
        - puruspe::ln_gamma((r - k0) as f64 + 1.0);
    let mut ln_pmf = ln_choose + k0 as f64 * ln_q + (r - k0) as f64 * ln_1q;
    let mode = ((r as f64 + 1.0) * ln_q.exp()).floor();
    let (mut sum, mut alpha) = (0.0_f64, 0.0_f64);
    for i in 1..=v {
        let k = v - i;
        if i > 1 {
            let above = k + 1;
            ln_pmf += (above as f64).ln() - ((r - above) as f64 + 1.0).ln() + ln_1q - ln_q;
        }
        let term = ln_pmf.exp();
        sum += term;
        let avg = sum / i as f64;
        alpha = alpha.max(avg);
        // Below the mode the pmf falls as k falls, so once a term is at most the running average
        // every later average is smaller.
        if (k as f64) <= mode && term <= avg {
            break;
        }
    }
    (beta + 2.0 * m as f64 * delta * alpha).min(1.0)
}

/// ε̂ = sup{ε : p(ε) < `p_target`} for one hypothesis (m canaries, r guesses, v right), by
/// bisection to 1e-7; 0 when even ε = 0 is not rejected.
pub fn epsilon_one_run_counts(m: usize, r: usize, v: usize, delta: f64, p_target: f64) -> f64 {
    if r == 0 || v == 0 || one_run_p_value(m, r, v, 0.0, delta) >= p_target {
        return 0.0;
    }
    let (mut lo, mut hi) = (0.0, 1.0);
    while one_run_p_value(m, r, v, hi, delta) < p_target {
        lo = hi;
        hi *= 2.0;
        if hi > EPS_CAP {
            return lo;
        }
    }
    for _ in 0..100 {
        if hi - lo <= 1e-7 {
            break;
        }
        let mid = 0.5 * (lo + hi);
        if one_run_p_value(m, r, v, mid, delta) < p_target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Canary indices from the highest score down (ties by index, which must not depend on
/// membership).
fn order_desc(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order
}

fn check_canaries(scores: &[f64], is_member: &[bool]) -> CoreResult<()> {
    if scores.len() != is_member.len() {
        return Err(CoreError::Invalid(format!(
            "one-run audit: {} scores but {} memberships",
            scores.len(),
            is_member.len()
        )));
    }
    if scores.is_empty() {
        return Err(CoreError::Invalid("one-run audit: no canaries".into()));
    }
    if scores.iter().any(|s| s.is_nan()) {
        return Err(CoreError::Invalid("one-run audit: a score is NaN".into()));
    }
    Ok(())
}

/// (r, v, lowest score guessed IN) for `k_pos` IN guesses from the top and `k_neg` OUT guesses
/// from the bottom of `order`.
fn count_guesses(
    scores: &[f64],
    is_member: &[bool],
    order: &[usize],
    k_pos: usize,
    k_neg: usize,
) -> (usize, usize, Option<f64>) {
    let m = order.len();
    let k_pos = k_pos.min(m);
    let k_neg = k_neg.min(m - k_pos);
    let right_in = order[..k_pos].iter().filter(|&&i| is_member[i]).count();
    let right_out = order[m - k_neg..].iter().filter(|&&i| !is_member[i]).count();
    let last_in = k_pos
        .checked_sub(1)
        .map(|j| scores[order[j]])
        .filter(|s| s.is_finite());
    (k_pos + k_neg, right_in + right_out, last_in)
}

fn one_run_bound(
    m: usize,
    (r, v, threshold): (usize, usize, Option<f64>),
    delta: f64,
    p_target: f64,
    searched: usize,
) -> AuditBound {
    let epsilon = epsilon_one_run_counts(m, r, v, delta, p_target / searched.max(1) as f64);
    AuditBound {
        epsilon,
        method: METHOD_ONE_RUN.into(),
        significance: p_target,
        delta,
        thresholds_searched: searched,
        canaries: m,
        reversed: false,
        threshold,
        tpr_lower: None,
        fpr_upper: None,
        guesses: Some(r),
        correct: Some(v),
    }
}

/// The one-run bound of one fixed hypothesis: the `k_pos` highest-scoring canaries guessed IN,
/// the `k_neg` lowest guessed OUT (ties broken by index). `is_member` must come from independent
/// fair coins (see the module docs).
pub fn epsilon_one_run(
    scores: &[f64],
    is_member: &[bool],
    k_pos: usize,
    k_neg: usize,
    delta: f64,
    p_target: f64,
) -> CoreResult<AuditBound> {
    check_canaries(scores, is_member)?;
    check_levels(p_target, delta)?;
    let order = order_desc(scores);
    let counts = count_guesses(scores, is_member, &order, k_pos, k_neg);
    Ok(one_run_bound(scores.len(), counts, delta, p_target, 1))
}

/// The grid of (k₊, k₋) hypotheses tried for m canaries: r ≈ m/100, m/30, m/10, m/3 and m
/// guesses, each one-sided (all IN; not for r = m, whose accuracy is the member fraction) and
/// two-sided (half IN from the top, half OUT from the bottom); duplicates dropped. Depends on m
/// only, so the Bonferroni correction over it is valid.
pub fn one_run_grid(m: usize) -> Vec<(usize, usize)> {
    let mut grid = Vec::new();
    for div in [100.0, 30.0, 10.0, 3.0, 1.0] {
        let r = ((m as f64 / div).round() as usize).clamp(1, m.max(1));
        let mut push = |g: (usize, usize)| {
            if g.0 + g.1 > 0 && !grid.contains(&g) {
                grid.push(g);
            }
        };
        if r < m {
            push((r, 0));
        }
        push((r.div_ceil(2), r / 2));
    }
    grid
}

/// The one-run bound swept over [`one_run_grid`], each hypothesis at `p_target / G`
/// (Bonferroni over the G hypotheses); the largest corrected bound is reported.
pub fn epsilon_one_run_sweep(
    scores: &[f64],
    is_member: &[bool],
    delta: f64,
    p_target: f64,
) -> CoreResult<AuditBound> {
    check_canaries(scores, is_member)?;
    check_levels(p_target, delta)?;
    let order = order_desc(scores);
    let grid = one_run_grid(scores.len());
    let mut best: Option<AuditBound> = None;
    for &(k_pos, k_neg) in &grid {
        let counts = count_guesses(scores, is_member, &order, k_pos, k_neg);
        let b = one_run_bound(scores.len(), counts, delta, p_target, grid.len());
        if best.as_ref().is_none_or(|x| b.epsilon > x.epsilon) {
            best = Some(b);
        }
    }
    best.ok_or_else(|| CoreError::Invalid("one-run audit: no hypothesis to test".into()))
}

// ---------------------------------------------------------------------------------------------
// The Clopper–Pearson bound.

/// Cumulative (members, non-members) at or above each distinct score, highest score first.
fn cumulative_counts(member_scores: &[f64], nonmember_scores: &[f64]) -> Vec<(f64, usize, usize)> {
    // + 0.0 makes −0.0 and 0.0 one score.
    let mut all: Vec<(f64, bool)> = member_scores
        .iter()
        .map(|&s| (s + 0.0, true))
        .chain(nonmember_scores.iter().map(|&s| (s + 0.0, false)))
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut out: Vec<(f64, usize, usize)> = Vec::new();
    let (mut tp, mut fp) = (0, 0);
    for (j, &(s, member)) in all.iter().enumerate() {
        if member {
            tp += 1;
        } else {
            fp += 1;
        }
        if all.get(j + 1).is_none_or(|n| n.0 != s) {
            out.push((s, tp, fp));
        }
    }
    out
}

/// Indices into `groups` of the thresholds searched: all but the last (lowest) group, or, when
/// there are more than [`MAX_THRESHOLDS`], the groups holding ranks ⌈j·N / (T + 1)⌉ of the pooled
/// scores, j = 1..T (no labels used).
fn thresholds_to_search(groups: &[(f64, usize, usize)]) -> Vec<usize> {
    let usable = groups.len().saturating_sub(1);
    if usable <= MAX_THRESHOLDS {
        return (0..usable).collect();
    }
    let total = groups.last().map_or(0, |g| g.1 + g.2);
    let mut picked: Vec<usize> = Vec::with_capacity(MAX_THRESHOLDS);
    let mut g = 0;
    for j in 1..=MAX_THRESHOLDS {
        let rank = (j * total).div_ceil(MAX_THRESHOLDS + 1).max(1);
        while g < usable && groups[g].1 + groups[g].2 < rank {
            g += 1;
        }
        if g < usable && picked.last() != Some(&g) {
            picked.push(g);
        }
    }
    picked
}

/// ln(lb − δ) − ln(ub), or None when lb ≤ δ.
fn log_ratio(lb: f64, ub: f64, delta: f64) -> Option<f64> {
    (lb > delta && ub > 0.0).then(|| (lb - delta).ln() - ub.ln())
}

/// The Clopper–Pearson ε lower bound of a membership test (higher score = "member") from the
/// scores of members and non-members, Bonferroni-corrected over the thresholds searched (see the
/// module docs). Fails on empty or NaN scores and on levels outside (0, 1) / [0, 1).
pub fn epsilon_lower_bound_cp(
    member_scores: &[f64],
    nonmember_scores: &[f64],
    significance: f64,
    delta: f64,
) -> CoreResult<AuditBound> {
    check_levels(significance, delta)?;
    if member_scores.is_empty() || nonmember_scores.is_empty() {
        return Err(CoreError::Invalid(format!(
            "audit needs members and non-members, got {} and {}",
            member_scores.len(),
            nonmember_scores.len()
        )));
    }
    if member_scores.iter().chain(nonmember_scores).any(|s| s.is_nan()) {
        return Err(CoreError::Invalid("audit: a score is NaN".into()));
    }
    let (p, n) = (member_scores.len(), nonmember_scores.len());
    let groups = cumulative_counts(member_scores, nonmember_scores);
    let searched = thresholds_to_search(&groups);
    let level = significance / (2.0 * searched.len().max(1) as f64);
    let mut out = AuditBound {
        epsilon: 0.0,
        method: METHOD_CP.into(),
        significance,
        delta,
        thresholds_searched: searched.len(),
        canaries: p + n,
        reversed: false,
        threshold: None,
        tpr_lower: None,
        fpr_upper: None,
        guesses: None,
        correct: None,
    };
    for &g in &searched {
        let (t, tp, fp) = groups[g];
        let (fn_, tn) = (p - tp, n - fp);
        let tpr_lb = clopper_pearson_lower(tp, p, level);
        let fpr_ub = clopper_pearson_upper(fp, n, level);
        let tnr_lb = clopper_pearson_lower(tn, n, level);
        let fnr_ub = clopper_pearson_upper(fn_, p, level);
        let candidates = [
            (log_ratio(tpr_lb, fpr_ub, delta), false, tpr_lb, fpr_ub),
            (log_ratio(tnr_lb, fnr_ub, delta), true, tnr_lb, fnr_ub),
        ];
        for (eps, reversed, lb, ub) in candidates {
            if let Some(eps) = eps
                && eps > out.epsilon
            {
                out.epsilon = eps;
                out.reversed = reversed;
                out.threshold = Some(t).filter(|t| t.is_finite());
                out.tpr_lower = Some(lb);
                out.fpr_upper = Some(ub);
            }
        }
    }
    Ok(out)
}

/// The Clopper–Pearson bound of pooled `scores` with `labels` (true = member) at the default
/// significance and δ; None when either class is missing or a score is NaN.
pub fn pooled_bound(scores: &[f64], labels: &[bool]) -> Option<AuditBound> {
    if scores.len() != labels.len() {
        return None;
    }
    let (mut members, mut others) = (Vec::new(), Vec::new());
    for (&s, &member) in scores.iter().zip(labels) {
        if member { &mut members } else { &mut others }.push(s);
    }
    epsilon_lower_bound_cp(&members, &others, DEFAULT_SIGNIFICANCE, DEFAULT_DELTA).ok()
}

/// The one-run bound (swept, default levels) of canaries whose memberships were drawn as a random
/// half: None unless exactly half (rounded) are members, the design the audit assumes.
pub fn one_run_if_half(scores: &[f64], is_member: &[bool]) -> Option<AuditBound> {
    let members = is_member.iter().filter(|&&b| b).count();
    if (2 * members).abs_diff(is_member.len()) > 1 {
        return None;
    }
    epsilon_one_run_sweep(scores, is_member, DEFAULT_DELTA, DEFAULT_SIGNIFICANCE).ok()
}

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
