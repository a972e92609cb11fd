//! Membership inference attacks (MIAs) over a model zoo.
//!
//! A zoo is K models, each trained on a recorded random subset of one data set of n samples. For a
//! sample i and model t we know whether t trained on i (`member[t][i]`) and the model's
//! cross-entropy loss on it (`loss[t][i]`). That is all the attacks below need.
//!
//! # Protocol
//!
//! Leave-one-model-out, as in the evaluation of Carlini et al. (2022), "Membership Inference
//! Attacks From First Principles", IEEE S&P, where a zoo of models trained on random halves serves
//! both as targets and as shadow models: each of the first `min(K, max_targets)` models is
//! in turn the *target*; all the other K − 1 models are its shadow (reference) models. Every pair
//! (target t, sample i ∈ eval) gets a score, higher meaning "predicted member", with the label
//! `member[t][i]`. All pairs are pooled into one ROC curve ([`crate::measure::roc`]), from which
//! the AUC and the TPR at 0.1 % and 1 % FPR are read.
//!
//! # Attacks
//!
//! * **LOSS** (Yeom, Giacomelli, Fredrikson & Jha 2018, "Privacy Risk in Machine Learning:
//!   Analyzing the Connection to Overfitting", IEEE CSF, the loss-threshold adversary):
//!   `score = −ℓ_t(i)`.
//!
//! * **LiRA** (Carlini et al. 2022, Sec. IV and Algorithm 1). The model's probability of the true
//!   class is `p = exp(−ℓ)`; it is logit-scaled, `φ = ln(p / (1 − p))`, which is close to Gaussian
//!   across models. Here `φ = −ℓ − ln(−expm1(−ℓ))`, exact and stable for small and large ℓ, with ℓ
//!   clamped to `[1e-30, 1e4]` so φ stays finite. For each sample, Gaussians are fitted to the
//!   shadow models' φ: `N(μ_in, σ²_in)` over shadows that trained on it and `N(μ_out, σ²_out)` over
//!   those that did not (the target always excluded; σ as `np.std`, i.e. ddof = 0, as in the
//!   authors' code). Then
//!
//!   ```text
//!   online:  score = ln N(φ_t; μ_in, σ²_in) − ln N(φ_t; μ_out, σ²_out)      (the likelihood ratio Λ)
//!   offline: score = ln Φ((φ_t − μ_out) / σ_out)                            (one-sided: 1 − Pr[Z > φ_t])
//!   ```
//!
//!   where Φ is the standard normal CDF, evaluated in log space by [`ln_norm_cdf`] so the far tail
//!   keeps its resolution. With `fix_variance` ("global variance", recommended by the paper for
//!   few shadow models), σ_in and σ_out are each one number per target: the pooled within-sample
//!   standard deviation `sqrt(Σ_i Σ_m (φ_mi − μ_i)² / Σ_i n_i)` over all n samples (samples with at
//!   least two IN, resp. OUT, shadows). The authors' code instead takes the standard deviation of
//!   all pooled values, between-sample spread included, and reuses the IN one for OUT; the pooled
//!   within-sample form is what the model assumes. Fallbacks: a sample with fewer than two IN
//!   (OUT) shadows uses the global σ_in (σ_out); one with no OUT shadow uses the mean φ of all OUT
//!   values as μ_out; the online attack on a sample with no IN shadow uses the offline score. All σ
//!   are floored at 1e-6. The per-sample sums are built from prefix and suffix moments (Chan,
//!   Golub & LeVeque 1983 merge), so leaving the target out costs O(1) and the attack is O(K·n),
//!   without the cancellation of subtracting the target from a running sum.
//!
//! * **RMIA** (Zarifzadeh, Liu, Cheng & Shokri 2024, "Low-Cost High-Power Membership Inference
//!   Attacks", ICML; the pairwise likelihood ratio LR_θ(x, z) and Score_MIA). With `p(x|θ) = exp(−ℓ_θ(x))`,
//!
//!   ```text
//!   P(x)          = mean over reference models θ' of p(x|θ')          (online: all models ≠ t)
//!   P(x)          = ((1 + a)·P_OUT(x) + (1 − a)) / 2                   (offline: OUT references only)
//!   LR_t(x)       = p(x|θ_t) / P(x)
//!   score(t, x)   = Pr_{z ∈ Z}[ LR_t(x) / LR_t(z) ≥ γ ]
//!   ```
//!
//!   where Z is the `population` (samples no model trained on, e.g. the test split). Everything is
//!   computed in log space (log-sum-exp over references), so tiny probabilities do not underflow.
//!   A sample that is both evaluated and in Z is not compared with itself. Sorting `ln LR_t(z)` once
//!   per target makes the score a binary search, O((|eval| + |Z|)·log|Z|) per target. Offline, a
//!   sample with no OUT reference model falls back to the mean over all references for P_OUT.
//!
//! # Per-sample vulnerability
//!
//! For each evaluated sample i, the scores of the targets that trained on i are compared with the
//! scores of those that did not: the per-sample AUC (Mann–Whitney, ties count half). 0.5 means the
//! attack cannot tell, 1.0 that it always ranks i's members above i's non-members.
//!
//! Within one sample, leave-one-out scores are not exchangeable: a member target t is scored
//! against an OUT fit that contains every non-member target u, and u against an IN fit that
//! contains t, so on a sample whose loss ignores membership LiRA's per-sample AUC comes out well
//! below 0.5 (about 0.41 with 32 models in the tests). This is the known pessimism of leave-one-out
//! AUC (Airola, Pahikkala, Waegeman, De Baets & Salakoski 2011, "An experimental comparison of
//! cross-validation techniques for estimating the area under the ROC curve", Comput. Stat. Data
//! Anal. 55(4)), which recommends leave-pair-out instead. For the attacks whose scores use the
//! shadows' memberships (LiRA, offline RMIA), each pair (t, u) is therefore scored leave-pair-out:
//! both t and u against the sample's statistics over the shadows other than t and u (IN without t,
//! OUT without u), which are the same whichever of the two is the member. LiRA scores both with the
//! global σ of target min(t, u), again independent of which is the member; RMIA scores each against
//! its own target's population. LOSS and online RMIA ignore memberships and use the pooled scores
//! as they are. This costs O(T²) score evaluations per sample. The pooled ROC is unaffected:
//! same-sample pairs are a 1/|eval| fraction of its pairs.
//!
//! All parallel work (rayon) writes into fixed slots or is reduced in a fixed order, so results
//! do not depend on the thread count.

mod lira;
mod loss;
mod protocol;
mod rmia;
mod stats;
mod types;

use rayon::prelude::*;

pub use stats::ln_norm_cdf;
pub use types::{Attack, MiaConfig, MiaResult, ZooView};

use crate::error::{CoreError, CoreResult};
use crate::measure::{audit, roc};
use protocol::{attack_scores, sample_vulnerability};

/// Runs `attack` on `zoo` with the leave-one-model-out protocol (see the module docs).
///
/// `eval` lists the samples to score (indices into 0..n, not empty); `population` lists the
/// reference population Z of RMIA (samples no model trained on; required for RMIA, ignored by the
/// other attacks). Fails with [`CoreError::Invalid`] on inconsistent sizes, out-of-range indices,
/// fewer than two models, NaN losses or bad options.
pub fn run_attack(
    zoo: &ZooView<'_>,
    attack: Attack,
    eval: &[usize],
    population: &[usize],
    cfg: &MiaConfig,
) -> CoreResult<MiaResult> {
    let (scores, n_targets, prep) = attack_scores(zoo, attack, eval, population, cfg)?;
    let n = zoo.n;
    let labels: Vec<bool> = eval
        .iter()
        .flat_map(|&i| (0..n_targets).map(move |t| zoo.member[t * n + i]))
        .collect();
    let curve = roc::roc(&scores, &labels).map_err(|e| {
        CoreError::Invalid(format!(
            "{attack:?}: cannot build the ROC ({e}); the targets need both members and non-members \
             among the evaluated samples"
        ))
    })?;

    let per_sample: Vec<f32> = scores
        .par_chunks(n_targets)
        .zip(eval.par_iter())
        .map(|(row, &i)| sample_vulnerability(zoo, &prep, cfg, i, row))
        .collect();
    let mut vulnerability = vec![f32::NAN; n];
    for (&i, &v) in eval.iter().zip(&per_sample) {
        vulnerability[i] = v;
    }

    let target0: Vec<f64> = scores.iter().step_by(n_targets).copied().collect();
    let target0_member: Vec<bool> = eval.iter().map(|&i| zoo.member[i]).collect();
    Ok(MiaResult {
        attack,
        epsilon_lower_bound: audit::pooled_bound(&scores, &labels),
        epsilon_one_run: audit::one_run_if_half(&target0, &target0_member),
        auc: curve.auc,
        tpr_at_0_1pct_fpr: roc::tpr_at_fpr(&curve, 0.001),
        tpr_at_1pct_fpr: roc::tpr_at_fpr(&curve, 0.01),
        roc: curve,
        n_scores: scores.len(),
        n_targets,
        vulnerability,
    })
}

#[cfg(test)]
mod tests;
