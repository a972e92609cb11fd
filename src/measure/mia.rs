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

use rayon::prelude::*;

use crate::error::{CoreError, CoreResult};
use crate::measure::roc::{self, Roc};

/// Per-model signals of a zoo, row-major K x n.
#[derive(Clone, Copy, Debug)]
pub struct ZooView<'a> {
    /// Number of models K.
    pub k: usize,
    /// Number of samples n.
    pub n: usize,
    /// member[t * n + i]: model t trained on sample i.
    pub member: &'a [bool],
    /// loss[t * n + i]: cross-entropy of model t on sample i (>= 0).
    pub loss: &'a [f32],
}

/// A membership inference attack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Attack {
    /// Loss threshold (Yeom et al. 2018): score = −loss.
    Loss,
    /// LiRA with IN and OUT Gaussians (Carlini et al. 2022).
    LiraOnline,
    /// LiRA with OUT Gaussians only, one-sided test (Carlini et al. 2022).
    LiraOffline,
    /// Relative membership inference (Zarifzadeh et al. 2024).
    Rmia,
}

impl Attack {
    /// Every attack, in a fixed order.
    pub const ALL: [Attack; 4] = [
        Attack::Loss,
        Attack::LiraOnline,
        Attack::LiraOffline,
        Attack::Rmia,
    ];
}

/// Options of the attacks.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct MiaConfig {
    /// LiRA: one variance shared by all samples (the paper's choice for few shadow models) instead
    /// of per-sample.
    pub fix_variance: bool,
    /// RMIA: likelihood-ratio threshold gamma (default 1.0).
    pub rmia_gamma: f64,
    /// RMIA offline approximation a in P(x) = ((1 + a) P_OUT(x) + (1 - a)) / 2 (default 0.3); used
    /// when rmia_offline.
    pub rmia_a: f64,
    /// RMIA: use only OUT reference models (offline) instead of all reference models (online).
    pub rmia_offline: bool,
    /// Target models: the first min(K, max_targets) models (default 64).
    pub max_targets: usize,
}

impl Default for MiaConfig {
    fn default() -> Self {
        Self {
            fix_variance: false,
            rmia_gamma: 1.0,
            rmia_a: 0.3,
            rmia_offline: false,
            max_targets: 64,
        }
    }
}

/// The outcome of one attack on a zoo.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct MiaResult {
    /// The attack that was run.
    pub attack: Attack,
    /// ROC curve of all pooled (target, sample) scores (one point per distinct score).
    pub roc: Roc,
    /// Area under `roc`.
    pub auc: f64,
    /// TPR at FPR <= 0.1 %.
    pub tpr_at_0_1pct_fpr: f64,
    /// TPR at FPR <= 1 %.
    pub tpr_at_1pct_fpr: f64,
    /// Number of (target model, sample) scores pooled into the ROC.
    pub n_scores: usize,
    /// Number of target models.
    pub n_targets: usize,
    /// Per-sample vulnerability over the whole data set (length n): for sample i, the fraction of
    /// (member target, non-member target) pairs in which the member target got the higher score
    /// (ties count half) — a per-sample AUC in [0, 1], 0.5 = not vulnerable. NaN where i was not
    /// evaluated or has no member or no non-member target. For LiRA and offline RMIA each pair is
    /// scored leave-pair-out (see the module docs), which keeps null samples at 0.5.
    #[serde(with = "super::serde_nan")]
    pub vulnerability: Vec<f32>,
}

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

    Ok(MiaResult {
        attack,
        auc: curve.auc,
        tpr_at_0_1pct_fpr: roc::tpr_at_fpr(&curve, 0.001),
        tpr_at_1pct_fpr: roc::tpr_at_fpr(&curve, 0.01),
        roc: curve,
        n_scores: scores.len(),
        n_targets,
        vulnerability,
    })
}

/// The natural log of the standard normal CDF, ln Φ(x), accurate in both tails.
///
/// Uses Φ(x) = erfc(−x/√2) / 2 and the Chebyshev-fitted approximation of erfc from Press et al.,
/// *Numerical Recipes* (2nd ed., Sec. 6.2, `erfcc`): for z >= 0, with t = 1 / (1 + z/2),
/// `erfc(z) = t · exp(−z² + P(t))` with a degree-9 polynomial P, relative error below 1.2e-7 for
/// every z >= 0. Since the approximation is already an exponential, ln erfc(z) = ln t − z² + P(t)
/// is evaluated without ever forming erfc, so ln Φ(x) keeps an absolute error of about 1.2e-7 even
/// where Φ(x) underflows (ln Φ(−40) ≈ −804.6). For x >= 0, ln Φ(x) = ln_1p(−erfc(x/√2)/2).
pub fn ln_norm_cdf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    let z = x / std::f64::consts::SQRT_2;
    if x < 0.0 {
        ln_erfc_nonneg(-z) - std::f64::consts::LN_2
    } else {
        (-0.5 * ln_erfc_nonneg(z).exp()).ln_1p()
    }
}

/// ln erfc(z) for z >= 0 (Numerical Recipes `erfcc`, relative error of erfc < 1.2e-7).
fn ln_erfc_nonneg(z: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    t.ln() - z * z + poly
}

/// ln of the normal density N(x; mu, sd²).
fn ln_norm_pdf(x: f64, mu: f64, sd: f64) -> f64 {
    const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;
    let u = (x - mu) / sd;
    -sd.ln() - 0.5 * u * u - HALF_LN_2PI
}

/// Losses are clamped to [LOSS_FLOOR, LOSS_CAP] before logit scaling or exponentiation.
const LOSS_FLOOR: f64 = 1e-30;
/// See [`LOSS_FLOOR`]; exp(−1e4) is far below anything a model reports, and keeps logs finite.
const LOSS_CAP: f64 = 1e4;
/// Smallest standard deviation LiRA uses.
const SIGMA_FLOOR: f64 = 1e-6;
/// Samples per work item in the LiRA global pass (fixed, so the reduction order is fixed).
const CHUNK: usize = 256;

/// Logit-scaled confidence φ = ln(p / (1 − p)) with p = exp(−loss).
fn logit_confidence(loss: f32) -> f64 {
    let l = f64::from(loss).clamp(LOSS_FLOOR, LOSS_CAP);
    -l - (-(-l).exp_m1()).ln()
}

/// ln(e^a + e^b), exact for infinite arguments.
fn log_add_exp(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    hi + (lo - hi).exp().ln_1p()
}

/// Checks the inputs and returns the number of target models.
fn validate(
    zoo: &ZooView<'_>,
    attack: Attack,
    eval: &[usize],
    population: &[usize],
    cfg: &MiaConfig,
) -> CoreResult<usize> {
    let bad = |m: String| Err(CoreError::Invalid(m));
    if zoo.k < 2 {
        return bad(format!(
            "membership inference needs at least 2 models, the zoo has {}",
            zoo.k
        ));
    }
    let Some(len) = zoo.k.checked_mul(zoo.n) else {
        return bad("zoo size K x n overflows".into());
    };
    if zoo.member.len() != len {
        return bad(format!(
            "zoo membership has {} entries, expected K x n = {} x {} = {len}",
            zoo.member.len(),
            zoo.k,
            zoo.n
        ));
    }
    if zoo.loss.len() != len {
        return bad(format!(
            "zoo losses have {} entries, expected K x n = {} x {} = {len}",
            zoo.loss.len(),
            zoo.k,
            zoo.n
        ));
    }
    if eval.is_empty() {
        return bad("no samples to evaluate".into());
    }
    if let Some(&i) = eval.iter().find(|&&i| i >= zoo.n) {
        return bad(format!("evaluated sample {i} is out of range (n = {})", zoo.n));
    }
    if let Some(&i) = population.iter().find(|&&i| i >= zoo.n) {
        return bad(format!("population sample {i} is out of range (n = {})", zoo.n));
    }
    if cfg.max_targets == 0 {
        return bad("max_targets must be at least 1".into());
    }
    if let Some(pos) = zoo.loss.iter().position(|l| l.is_nan()) {
        return bad(format!(
            "loss of model {} on sample {} is NaN",
            pos / zoo.n,
            pos % zoo.n
        ));
    }
    if attack == Attack::Rmia {
        if population.is_empty() {
            return bad("RMIA needs a non-empty reference population".into());
        }
        if !(cfg.rmia_gamma.is_finite() && cfg.rmia_gamma > 0.0) {
            return bad(format!(
                "RMIA gamma must be positive and finite, got {}",
                cfg.rmia_gamma
            ));
        }
        if !(0.0..=1.0).contains(&cfg.rmia_a) {
            return bad(format!("RMIA offline a must lie in [0, 1], got {}", cfg.rmia_a));
        }
    }
    Ok(zoo.k.min(cfg.max_targets))
}

/// What an attack computes once per run and reuses for every sample.
enum Prepared {
    /// LOSS needs nothing.
    Loss,
    /// LiRA: per-target global σ and μ_out.
    Lira { online: bool, globals: Vec<LiraGlobal> },
    /// RMIA: per-target sorted ln LR over the population.
    Rmia(RmiaPopulation),
}

/// All scores, sample-major: `scores[j * T + t]` for target t and sample `eval[j]`; returns
/// (scores, T, what was prepared).
fn attack_scores(
    zoo: &ZooView<'_>,
    attack: Attack,
    eval: &[usize],
    population: &[usize],
    cfg: &MiaConfig,
) -> CoreResult<(Vec<f64>, usize, Prepared)> {
    let t_count = validate(zoo, attack, eval, population, cfg)?;
    let prep = match attack {
        Attack::Loss => Prepared::Loss,
        Attack::LiraOnline | Attack::LiraOffline => Prepared::Lira {
            online: attack == Attack::LiraOnline,
            globals: lira_globals(zoo, t_count)?,
        },
        Attack::Rmia => Prepared::Rmia(RmiaPopulation::new(zoo, population, cfg, t_count)),
    };
    let mut scores = vec![0.0; eval.len() * t_count];
    scores
        .par_chunks_mut(t_count)
        .zip(eval.par_iter())
        .for_each(|(row, &i)| match &prep {
            Prepared::Loss => {
                for (t, s) in row.iter_mut().enumerate() {
                    *s = -f64::from(zoo.loss[t * zoo.n + i]);
                }
            }
            Prepared::Lira { online, globals } => {
                let stats = lira_loo(zoo, i, t_count);
                for ((s, st), g) in row.iter_mut().zip(&stats).zip(globals) {
                    *s = lira_score(st, g, *online, cfg.fix_variance);
                }
            }
            Prepared::Rmia(pop) => {
                let (ln_p, ln_ref) = rmia_parts(zoo, i, t_count, cfg);
                for (t, s) in row.iter_mut().enumerate() {
                    let lr = ln_p[t] - ln_ref[t];
                    *s = pop.score(t, i, lr, lr);
                }
            }
        });
    Ok((scores, t_count, prep))
}

/// Per-sample vulnerability of sample i from its row of scores (see [`MiaResult::vulnerability`]).
///
/// Scores that depend on which shadow models trained on i (LiRA's IN/OUT fits, offline RMIA's OUT
/// references) are recomputed per pair leave-pair-out: for a member target t and a non-member
/// target u, both are scored against the sample statistics of the shadows other than t and u
/// (IN without t, OUT without u), so the two scores come from one function and are exchangeable
/// when the loss does not depend on membership. With the plain leave-one-out scores, the member
/// t is scored against an OUT fit that contains u and vice versa, which biases this within-sample
/// AUC below 0.5 (the known pessimism of leave-one-out AUC; Airola et al. 2011, "An experimental
/// comparison of cross-validation techniques for estimating the area under the ROC curve",
/// Comput. Stat. Data Anal. 55(4)). LiRA's global σ is that of target min(t, u) for both scores;
/// RMIA's population is each score's own target's. LOSS and online RMIA do not use memberships
/// and use `row`.
fn sample_vulnerability(zoo: &ZooView<'_>, prep: &Prepared, cfg: &MiaConfig, i: usize, row: &[f64]) -> f32 {
    let t_count = row.len();
    let (members, others): (Vec<usize>, Vec<usize>) = (0..t_count).partition(|&t| zoo.member[t * zoo.n + i]);
    if members.is_empty() || others.is_empty() {
        return f32::NAN;
    }
    match prep {
        Prepared::Lira { online, globals } => {
            let loo = lira_loo(zoo, i, t_count);
            pair_auc(&members, &others, |t, u| {
                let (inn, out) = (loo[t].inn, loo[u].out);
                let g = &globals[t.min(u)];
                let st = LiraStats {
                    phi: loo[t].phi,
                    inn,
                    out,
                };
                let su = LiraStats {
                    phi: loo[u].phi,
                    inn,
                    out,
                };
                (
                    lira_score(&st, g, *online, cfg.fix_variance),
                    lira_score(&su, g, *online, cfg.fix_variance),
                )
            })
        }
        Prepared::Rmia(pop) if cfg.rmia_offline => {
            let (ln_p, ln_ref) = rmia_parts(zoo, i, t_count, cfg);
            // u's OUT reference excludes u, and t (a member) is not an OUT reference.
            pair_auc(&members, &others, |t, u| {
                (pop.score(t, i, ln_p[t] - ln_ref[u], ln_p[t] - ln_ref[t]), row[u])
            })
        }
        _ => pair_auc(&members, &others, |t, u| (row[t], row[u])),
    }
}

/// Fraction of (member, non-member) pairs whose member score is higher (ties count half).
fn pair_auc(members: &[usize], others: &[usize], mut pair: impl FnMut(usize, usize) -> (f64, f64)) -> f32 {
    let mut wins = 0.0;
    for &t in members {
        for &u in others {
            let (a, b) = pair(t, u);
            if a > b {
                wins += 1.0;
            } else if a == b {
                wins += 0.5;
            }
        }
    }
    (wins / (members.len() * others.len()) as f64) as f32
}

/// Count, mean and sum of squared deviations of a set of numbers (Welford / Chan et al.).
#[derive(Clone, Copy, Debug, Default)]
struct Moments {
    n: f64,
    mean: f64,
    m2: f64,
}

impl Moments {
    fn push(&mut self, x: f64) {
        self.n += 1.0;
        let d = x - self.mean;
        self.mean += d / self.n;
        self.m2 += d * (x - self.mean);
    }

    fn merge(&self, o: &Moments) -> Moments {
        if o.n == 0.0 {
            return *self;
        }
        if self.n == 0.0 {
            return *o;
        }
        let n = self.n + o.n;
        let d = o.mean - self.mean;
        Moments {
            n,
            mean: self.mean + d * o.n / n,
            m2: self.m2 + o.m2 + d * d * self.n * o.n / n,
        }
    }

    /// Population standard deviation (ddof = 0).
    fn std(&self) -> f64 {
        if self.n > 0.0 {
            (self.m2.max(0.0) / self.n).sqrt()
        } else {
            0.0
        }
    }
}

/// What LiRA knows about one (target, sample) pair.
#[derive(Clone, Copy, Debug)]
struct LiraStats {
    /// The target's φ.
    phi: f64,
    /// φ over the IN shadows (target excluded).
    inn: Moments,
    /// φ over the OUT shadows (target excluded).
    out: Moments,
}

/// Per-target global LiRA parameters.
#[derive(Clone, Copy, Debug)]
struct LiraGlobal {
    sd_in: f64,
    sd_out: f64,
    mu_out: f64,
}

/// Leave-one-out IN/OUT moments of sample i for targets 0..t_count, in O(K).
fn lira_loo(zoo: &ZooView<'_>, i: usize, t_count: usize) -> Vec<LiraStats> {
    let (k, n) = (zoo.k, zoo.n);
    let phi: Vec<f64> = (0..k).map(|m| logit_confidence(zoo.loss[m * n + i])).collect();
    let mut suf_in = vec![Moments::default(); k + 1];
    let mut suf_out = vec![Moments::default(); k + 1];
    for m in (0..k).rev() {
        let (mut a, mut b) = (suf_in[m + 1], suf_out[m + 1]);
        if zoo.member[m * n + i] {
            a.push(phi[m]);
        } else {
            b.push(phi[m]);
        }
        suf_in[m] = a;
        suf_out[m] = b;
    }
    let (mut pre_in, mut pre_out) = (Moments::default(), Moments::default());
    let mut out = Vec::with_capacity(t_count);
    for t in 0..t_count {
        out.push(LiraStats {
            phi: phi[t],
            inn: pre_in.merge(&suf_in[t + 1]),
            out: pre_out.merge(&suf_out[t + 1]),
        });
        if zoo.member[t * n + i] {
            pre_in.push(phi[t]);
        } else {
            pre_out.push(phi[t]);
        }
    }
    out
}

/// Per-target sums over samples for the global LiRA parameters.
#[derive(Clone, Copy, Debug, Default)]
struct GlobalAcc {
    within_in_m2: f64,
    within_in_n: f64,
    within_out_m2: f64,
    within_out_n: f64,
    all_in: Moments,
    all_out: Moments,
}

impl GlobalAcc {
    fn add(&mut self, s: &LiraStats) {
        if s.inn.n >= 2.0 {
            self.within_in_m2 += s.inn.m2;
            self.within_in_n += s.inn.n;
        }
        if s.out.n >= 2.0 {
            self.within_out_m2 += s.out.m2;
            self.within_out_n += s.out.n;
        }
        self.all_in = self.all_in.merge(&s.inn);
        self.all_out = self.all_out.merge(&s.out);
    }

    fn absorb(&mut self, o: &GlobalAcc) {
        self.within_in_m2 += o.within_in_m2;
        self.within_in_n += o.within_in_n;
        self.within_out_m2 += o.within_out_m2;
        self.within_out_n += o.within_out_n;
        self.all_in = self.all_in.merge(&o.all_in);
        self.all_out = self.all_out.merge(&o.all_out);
    }
}

/// Global σ_in, σ_out (pooled within-sample) and μ_out of each target's shadows, over all n samples.
fn lira_globals(zoo: &ZooView<'_>, t_count: usize) -> CoreResult<Vec<LiraGlobal>> {
    let n = zoo.n;
    let partials: Vec<Vec<GlobalAcc>> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let mut acc = vec![GlobalAcc::default(); t_count];
            for i in c * CHUNK..((c + 1) * CHUNK).min(n) {
                for (a, s) in acc.iter_mut().zip(lira_loo(zoo, i, t_count).iter()) {
                    a.add(s);
                }
            }
            acc
        })
        .collect();
    let mut total = vec![GlobalAcc::default(); t_count];
    for part in &partials {
        for (a, p) in total.iter_mut().zip(part) {
            a.absorb(p);
        }
    }
    let pooled = |m2: f64, cnt: f64, all: &Moments| {
        let sd = if cnt > 0.0 {
            (m2.max(0.0) / cnt).sqrt()
        } else if all.n >= 2.0 {
            all.std()
        } else {
            1.0
        };
        sd.max(SIGMA_FLOOR)
    };
    total
        .iter()
        .enumerate()
        .map(|(t, a)| {
            if a.all_out.n == 0.0 {
                return Err(CoreError::Invalid(format!(
                    "LiRA: the shadow models of target {t} trained on every sample, so there are no OUT \
                     observations"
                )));
            }
            Ok(LiraGlobal {
                sd_in: pooled(a.within_in_m2, a.within_in_n, &a.all_in),
                sd_out: pooled(a.within_out_m2, a.within_out_n, &a.all_out),
                mu_out: a.all_out.mean,
            })
        })
        .collect()
}

/// The LiRA score of one (target, sample) pair.
fn lira_score(s: &LiraStats, g: &LiraGlobal, online: bool, fix_variance: bool) -> f64 {
    let sd = |m: &Moments, global: f64| {
        if fix_variance || m.n < 2.0 {
            global
        } else {
            m.std().max(SIGMA_FLOOR)
        }
    };
    let sd_out = sd(&s.out, g.sd_out);
    let mu_out = if s.out.n > 0.0 { s.out.mean } else { g.mu_out };
    if online && s.inn.n > 0.0 {
        let sd_in = sd(&s.inn, g.sd_in);
        ln_norm_pdf(s.phi, s.inn.mean, sd_in) - ln_norm_pdf(s.phi, mu_out, sd_out)
    } else {
        ln_norm_cdf((s.phi - mu_out) / sd_out)
    }
}

/// For sample i: ln p(i|θ_m) for every model m, and ln P_t(i) (the reference probability of
/// target t, its leave-one-out reference set) for targets 0..t_count. O(K) via prefix and suffix
/// log-sum-exps.
fn rmia_parts(zoo: &ZooView<'_>, i: usize, t_count: usize, cfg: &MiaConfig) -> (Vec<f64>, Vec<f64>) {
    let (k, n) = (zoo.k, zoo.n);
    let ln_p: Vec<f64> = (0..k)
        .map(|m| -f64::from(zoo.loss[m * n + i]).clamp(0.0, LOSS_CAP))
        .collect();
    let is_out: Vec<bool> = (0..k).map(|m| !zoo.member[m * n + i]).collect();
    // Suffix log-sum-exp and counts, over all models and over OUT models.
    let neg = f64::NEG_INFINITY;
    let mut suf_all = vec![(neg, 0usize); k + 1];
    let mut suf_out = vec![(neg, 0usize); k + 1];
    for m in (0..k).rev() {
        let (a, ca) = suf_all[m + 1];
        suf_all[m] = (log_add_exp(a, ln_p[m]), ca + 1);
        let (o, co) = suf_out[m + 1];
        suf_out[m] = if is_out[m] {
            (log_add_exp(o, ln_p[m]), co + 1)
        } else {
            (o, co)
        };
    }
    let ln_hi = ((1.0 + cfg.rmia_a) / 2.0).ln();
    let ln_lo = ((1.0 - cfg.rmia_a) / 2.0).ln();
    let (mut pre_all, mut pre_out) = ((neg, 0usize), (neg, 0usize));
    let mut ln_ref = Vec::with_capacity(t_count);
    for t in 0..t_count {
        let (sa, ca) = suf_all[t + 1];
        let c_all = pre_all.1 + ca;
        let ln_mean_all = log_add_exp(pre_all.0, sa) - (c_all as f64).ln();
        ln_ref.push(if cfg.rmia_offline {
            let (so, co) = suf_out[t + 1];
            let c_out = pre_out.1 + co;
            let ln_p_out = if c_out > 0 {
                log_add_exp(pre_out.0, so) - (c_out as f64).ln()
            } else {
                ln_mean_all
            };
            log_add_exp(ln_hi + ln_p_out, ln_lo)
        } else {
            ln_mean_all
        });
        pre_all = (log_add_exp(pre_all.0, ln_p[t]), pre_all.1 + 1);
        if is_out[t] {
            pre_out = (log_add_exp(pre_out.0, ln_p[t]), pre_out.1 + 1);
        }
    }
    (ln_p, ln_ref)
}

/// RMIA's reference population: per target, ln LR_t(z) over z ∈ Z, ascending.
struct RmiaPopulation {
    sorted: Vec<Vec<f64>>,
    /// How often each sample occurs in Z.
    multiplicity: Vec<usize>,
    ln_gamma: f64,
}

impl RmiaPopulation {
    fn new(zoo: &ZooView<'_>, population: &[usize], cfg: &MiaConfig, t_count: usize) -> Self {
        let nz = population.len();
        let mut pop = vec![0.0; nz * t_count];
        pop.par_chunks_mut(t_count)
            .zip(population.par_iter())
            .for_each(|(row, &z)| {
                let (ln_p, ln_ref) = rmia_parts(zoo, z, t_count, cfg);
                for (t, v) in row.iter_mut().enumerate() {
                    *v = ln_p[t] - ln_ref[t];
                }
            });
        let sorted: Vec<Vec<f64>> = (0..t_count)
            .into_par_iter()
            .map(|t| {
                let mut v: Vec<f64> = (0..nz).map(|j| pop[j * t_count + t]).collect();
                v.sort_unstable_by(f64::total_cmp);
                v
            })
            .collect();
        let mut multiplicity = vec![0usize; zoo.n];
        for &z in population {
            multiplicity[z] += 1;
        }
        Self {
            sorted,
            multiplicity,
            ln_gamma: cfg.rmia_gamma.ln(),
        }
    }

    /// The fraction of z ∈ Z \ {i} with LR_t(x) / LR_t(z) >= γ, for sample i with ln LR_t(x) =
    /// `ln_lr`; `own` is i's own entry in target t's population list (used if i ∈ Z).
    fn score(&self, t: usize, i: usize, ln_lr: f64, own: f64) -> f64 {
        let zs = &self.sorted[t];
        // LR(x) / LR(z) >= γ  <=>  ln LR(z) <= ln LR(x) − ln γ.
        let thr = ln_lr - self.ln_gamma;
        let mut count = zs.partition_point(|&v| v <= thr);
        let mult = self.multiplicity[i];
        if mult > 0 && own <= thr {
            // i itself is in Z (mult times): do not compare it with itself.
            count = count.saturating_sub(mult);
        }
        let denom = zs.len() - mult;
        if denom > 0 {
            count as f64 / denom as f64
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64* generator.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn unif(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }
        fn normal(&mut self) -> f64 {
            let u1 = self.unif().max(1e-300);
            let u2 = self.unif();
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        }
    }

    struct Zoo {
        k: usize,
        n: usize,
        member: Vec<bool>,
        loss: Vec<f32>,
    }

    impl Zoo {
        fn view(&self) -> ZooView<'_> {
            ZooView {
                k: self.k,
                n: self.n,
                member: &self.member,
                loss: &self.loss,
            }
        }
    }

    /// K models; samples 0..n_train: each model trains on a seeded random half; samples
    /// n_train..n_train+n_pop: never trained on. A member sample with `signal(i)` gets loss
    /// 0.3·base_i + noise, everything else base_i + noise, base_i ~ U(0.5, 2.5).
    fn synthetic(k: usize, n_train: usize, n_pop: usize, seed: u64, signal: impl Fn(usize) -> bool) -> Zoo {
        let n = n_train + n_pop;
        let mut rng = Rng(seed);
        let base: Vec<f64> = (0..n).map(|_| 0.5 + 2.0 * rng.unif()).collect();
        let mut member = vec![false; k * n];
        let mut loss = vec![0f32; k * n];
        for t in 0..k {
            let mut idx: Vec<usize> = (0..n_train).collect();
            for j in (1..n_train).rev() {
                let r = (rng.next_u64() % (j as u64 + 1)) as usize;
                idx.swap(j, r);
            }
            for &i in &idx[..n_train / 2] {
                member[t * n + i] = true;
            }
            for i in 0..n {
                let m = member[t * n + i];
                let mean = if m && signal(i) { 0.3 * base[i] } else { base[i] };
                loss[t * n + i] = (mean + 0.05 * rng.normal()).max(1e-3) as f32;
            }
        }
        Zoo { k, n, member, loss }
    }

    fn configs() -> Vec<(Attack, MiaConfig)> {
        let mut v: Vec<(Attack, MiaConfig)> =
            Attack::ALL.iter().map(|&a| (a, MiaConfig::default())).collect();
        v.push((
            Attack::LiraOnline,
            MiaConfig {
                fix_variance: true,
                ..MiaConfig::default()
            },
        ));
        v.push((
            Attack::LiraOffline,
            MiaConfig {
                fix_variance: true,
                ..MiaConfig::default()
            },
        ));
        v.push((
            Attack::Rmia,
            MiaConfig {
                rmia_offline: true,
                ..MiaConfig::default()
            },
        ));
        v
    }

    /// Loss that gives logit-scaled confidence φ: ℓ = ln(1 + e^{−φ}).
    fn loss_for_phi(phi: f64) -> f32 {
        (-phi).exp().ln_1p() as f32
    }

    #[test]
    fn planted_signal_is_found_and_lira_beats_loss_at_low_fpr() {
        let zoo = synthetic(32, 400, 200, 7, |_| true);
        let eval: Vec<usize> = (0..400).collect();
        let pop: Vec<usize> = (400..600).collect();
        let mut tpr1 = std::collections::HashMap::new();
        for (attack, cfg) in configs() {
            let r = run_attack(&zoo.view(), attack, &eval, &pop, &cfg).unwrap();
            eprintln!(
                "{attack:?} fix_var={} rmia_off={}: auc {:.4} tpr@0.1% {:.4} tpr@1% {:.4}",
                cfg.fix_variance, cfg.rmia_offline, r.auc, r.tpr_at_0_1pct_fpr, r.tpr_at_1pct_fpr
            );
            assert!(r.auc > 0.85, "{attack:?} {cfg:?}: auc {}", r.auc);
            assert_eq!(r.n_targets, 32);
            assert_eq!(r.n_scores, 32 * 400);
            assert_eq!(r.auc, r.roc.auc);
            assert_eq!(r.vulnerability.len(), 600);
            assert!(r.vulnerability[400..].iter().all(|v| v.is_nan()));
            if !cfg.fix_variance && !cfg.rmia_offline {
                tpr1.insert(attack, r.tpr_at_1pct_fpr);
            }
        }
        let (lira, loss) = (tpr1[&Attack::LiraOnline], tpr1[&Attack::Loss]);
        assert!(lira > loss + 0.2, "LiRA TPR@1% {lira} vs LOSS {loss}");
        assert!(lira > 0.9, "LiRA TPR@1% {lira}");
    }

    #[test]
    fn null_zoo_gives_chance() {
        let zoo = synthetic(32, 400, 200, 11, |_| false);
        let eval: Vec<usize> = (0..400).collect();
        let pop: Vec<usize> = (400..600).collect();
        for (attack, cfg) in configs() {
            let r = run_attack(&zoo.view(), attack, &eval, &pop, &cfg).unwrap();
            assert!((r.auc - 0.5).abs() < 0.06, "{attack:?} {cfg:?}: auc {}", r.auc);
        }
    }

    #[test]
    fn lira_hand_computed_scores() {
        // One sample, five models. φ: target 0 (IN) 1; IN shadows 0 and 4; OUT shadows -1 and -3.
        let phis = [1.0, 0.0, 4.0, -1.0, -3.0];
        let zoo = Zoo {
            k: 5,
            n: 1,
            member: vec![true, true, true, false, false],
            loss: phis.iter().map(|&p| loss_for_phi(p)).collect(),
        };
        let cfg = MiaConfig::default();
        let (on, t, _) = attack_scores(&zoo.view(), Attack::LiraOnline, &[0], &[], &cfg).unwrap();
        assert_eq!(t, 5);
        // Target 0: μ_in = 2, σ_in = 2 (ddof 0); μ_out = −2, σ_out = 1.
        // ln N(1; 2, 4) − ln N(1; −2, 1) = (−ln 2 − 1/8) − (−9/2) = 4.375 − ln 2.
        let want = 4.375 - 2f64.ln();
        assert!((on[0] - want).abs() < 1e-5, "{} vs {want}", on[0]);
        // Target 3 (OUT, φ = −1): IN shadows {1, 0, 4}: μ = 5/3, σ² = 26/9; a single OUT shadow
        // (−3) so μ_out = −3 with the global σ_out, which falls back to 1 (no sample has two OUT
        // shadows, and all OUT values pooled are just one).
        let (mu, var): (f64, f64) = (5.0 / 3.0, 26.0 / 9.0);
        let want3 = (-0.5 * var.ln() - (-1.0 - mu).powi(2) / (2.0 * var)) - (-(2.0f64.powi(2)) / 2.0);
        assert!((on[3] - want3).abs() < 1e-5, "{} vs {want3}", on[3]);

        let (off, _, _) = attack_scores(&zoo.view(), Attack::LiraOffline, &[0], &[], &cfg).unwrap();
        // Target 0: ln Φ((1 − (−2)) / 1) = ln Φ(3).
        assert!((off[0] - (-0.001_350_809_964_748_2)).abs() < 1e-6, "{}", off[0]);

        // LOSS is −loss.
        let (loss, _, _) = attack_scores(&zoo.view(), Attack::Loss, &[0], &[], &cfg).unwrap();
        for (s, l) in loss.iter().zip(&zoo.loss) {
            assert_eq!(*s, -f64::from(*l));
        }
    }

    /// Straightforward O(K²·n) LiRA and RMIA, to check the O(K·n) ones.
    struct Brute<'a> {
        zoo: &'a Zoo,
        cfg: &'a MiaConfig,
        pop: &'a [usize],
    }

    impl Brute<'_> {
        fn phi(&self, m: usize, i: usize) -> f64 {
            logit_confidence(self.zoo.loss[m * self.zoo.n + i])
        }

        /// φ of the models not in `excl` on sample i, split into IN and OUT.
        fn split(&self, excl: &[usize], i: usize) -> (Vec<f64>, Vec<f64>) {
            let (mut a, mut b) = (vec![], vec![]);
            for m in (0..self.zoo.k).filter(|m| !excl.contains(m)) {
                if self.zoo.member[m * self.zoo.n + i] {
                    a.push(self.phi(m, i));
                } else {
                    b.push(self.phi(m, i));
                }
            }
            (a, b)
        }

        /// (mean, ddof-0 sd, sum of squared deviations).
        fn stats(v: &[f64]) -> (f64, f64, f64) {
            let mu = v.iter().sum::<f64>() / v.len() as f64;
            let ss = v.iter().map(|x| (x - mu).powi(2)).sum::<f64>();
            (mu, (ss / v.len() as f64).sqrt(), ss)
        }

        /// Global (σ_in, σ_out, μ_out) of target gt.
        fn globals(&self, gt: usize) -> (f64, f64, f64) {
            let (mut m2i, mut ni, mut m2o, mut no) = (0.0, 0.0, 0.0, 0.0);
            let (mut all_in, mut all_out) = (vec![], vec![]);
            for i in 0..self.zoo.n {
                let (a, b) = self.split(&[gt], i);
                if a.len() >= 2 {
                    m2i += Self::stats(&a).2;
                    ni += a.len() as f64;
                }
                if b.len() >= 2 {
                    m2o += Self::stats(&b).2;
                    no += b.len() as f64;
                }
                all_in.extend(a);
                all_out.extend(b);
            }
            let g = |m2: f64, c: f64, all: &[f64]| {
                let sd = if c > 0.0 {
                    (m2 / c).sqrt()
                } else if all.len() >= 2 {
                    Self::stats(all).1
                } else {
                    1.0
                };
                sd.max(SIGMA_FLOOR)
            };
            (g(m2i, ni, &all_in), g(m2o, no, &all_out), Self::stats(&all_out).0)
        }

        /// LiRA score of model x on sample i, shadows = all models not in `excl`, globals of gt.
        fn lira(&self, online: bool, gt: usize, excl: &[usize], x: usize, i: usize) -> f64 {
            let (gsi, gso, gmo) = self.globals(gt);
            let (a, b) = self.split(excl, i);
            let fix = self.cfg.fix_variance;
            let so = if fix || b.len() < 2 {
                gso
            } else {
                Self::stats(&b).1.max(SIGMA_FLOOR)
            };
            let mo = if b.is_empty() { gmo } else { Self::stats(&b).0 };
            let v = self.phi(x, i);
            if online && !a.is_empty() {
                let si = if fix || a.len() < 2 {
                    gsi
                } else {
                    Self::stats(&a).1.max(SIGMA_FLOOR)
                };
                ln_norm_pdf(v, Self::stats(&a).0, si) - ln_norm_pdf(v, mo, so)
            } else {
                ln_norm_cdf((v - mo) / so)
            }
        }

        /// RMIA LR of model t on sample i with references = models not in `excl`.
        fn lr(&self, t: usize, excl: &[usize], i: usize) -> f64 {
            let (zoo, cfg) = (self.zoo, self.cfg);
            let p = |m: usize| (-f64::from(zoo.loss[m * zoo.n + i])).exp();
            let refs: Vec<usize> = (0..zoo.k).filter(|m| !excl.contains(m)).collect();
            let all: Vec<f64> = refs.iter().map(|&m| p(m)).collect();
            let outs: Vec<f64> = refs
                .iter()
                .filter(|&&m| !zoo.member[m * zoo.n + i])
                .map(|&m| p(m))
                .collect();
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            let pr = if cfg.rmia_offline {
                let po = if outs.is_empty() { mean(&all) } else { mean(&outs) };
                ((1.0 + cfg.rmia_a) * po + (1.0 - cfg.rmia_a)) / 2.0
            } else {
                mean(&all)
            };
            p(t) / pr
        }

        /// RMIA score of target t on sample i with LR(x) computed with references not in `excl`.
        fn rmia(&self, t: usize, excl: &[usize], i: usize) -> f64 {
            let x = self.lr(t, excl, i);
            let others: Vec<usize> = self.pop.iter().copied().filter(|&z| z != i).collect();
            let c = others
                .iter()
                .filter(|&&z| x / self.lr(t, &[t], z) >= self.cfg.rmia_gamma)
                .count();
            c as f64 / others.len() as f64
        }

        fn score(&self, attack: Attack, t: usize, i: usize) -> f64 {
            match attack {
                Attack::Loss => -f64::from(self.zoo.loss[t * self.zoo.n + i]),
                Attack::LiraOnline => self.lira(true, t, &[t], t, i),
                Attack::LiraOffline => self.lira(false, t, &[t], t, i),
                Attack::Rmia => self.rmia(t, &[t], i),
            }
        }

        /// Per-sample vulnerability, scoring each (member t, non-member u) pair leave-pair-out.
        fn vulnerability(&self, attack: Attack, t_count: usize, i: usize) -> f32 {
            let n = self.zoo.n;
            let mem: Vec<usize> = (0..t_count).filter(|&t| self.zoo.member[t * n + i]).collect();
            let non: Vec<usize> = (0..t_count).filter(|&t| !self.zoo.member[t * n + i]).collect();
            if mem.is_empty() || non.is_empty() {
                return f32::NAN;
            }
            let mut wins = 0.0;
            for &t in &mem {
                for &u in &non {
                    let (a, b) = match attack {
                        Attack::LiraOnline | Attack::LiraOffline => {
                            let on = attack == Attack::LiraOnline;
                            let g = t.min(u);
                            (self.lira(on, g, &[t, u], t, i), self.lira(on, g, &[t, u], u, i))
                        }
                        Attack::Rmia if self.cfg.rmia_offline => {
                            (self.rmia(t, &[t, u], i), self.score(attack, u, i))
                        }
                        _ => (self.score(attack, t, i), self.score(attack, u, i)),
                    };
                    wins += if a > b {
                        1.0
                    } else if a == b {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
            (wins / (mem.len() * non.len()) as f64) as f32
        }
    }

    #[test]
    fn fast_attacks_match_brute_force() {
        // Small zoo with random membership (so some samples have < 2 IN or OUT shadows) and
        // random losses.
        let (k, n) = (7, 40);
        let mut rng = Rng(99);
        let mut member: Vec<bool> = (0..k * n).map(|_| rng.unif() < 0.5).collect();
        // Sample 0: every model but the last trained on it; sample 1: none did.
        for t in 0..k {
            member[t * n] = t + 1 < k;
            member[t * n + 1] = false;
        }
        let loss: Vec<f32> = (0..k * n).map(|_| (0.01 + 3.0 * rng.unif()) as f32).collect();
        let zoo = Zoo { k, n, member, loss };
        let eval: Vec<usize> = (0..n).collect();
        let pop: Vec<usize> = (25..n).collect();
        let mut cases = configs();
        let d = MiaConfig::default();
        cases.push((
            Attack::Rmia,
            MiaConfig {
                rmia_gamma: 2.0,
                max_targets: 5,
                ..d.clone()
            },
        ));
        cases.push((
            Attack::Rmia,
            MiaConfig {
                rmia_offline: true,
                rmia_a: 1.0,
                ..d.clone()
            },
        ));
        cases.push((
            Attack::Rmia,
            MiaConfig {
                rmia_offline: true,
                rmia_gamma: 0.5,
                ..d.clone()
            },
        ));
        cases.push((
            Attack::LiraOnline,
            MiaConfig {
                max_targets: 3,
                ..d.clone()
            },
        ));
        for (attack, cfg) in cases {
            let (fast, t_count, _) = attack_scores(&zoo.view(), attack, &eval, &pop, &cfg).unwrap();
            assert_eq!(t_count, k.min(cfg.max_targets));
            let brute = Brute {
                zoo: &zoo,
                cfg: &cfg,
                pop: &pop,
            };
            for (j, &i) in eval.iter().enumerate() {
                for t in 0..t_count {
                    let (a, b) = (fast[j * t_count + t], brute.score(attack, t, i));
                    assert!(
                        (a - b).abs() < 1e-9 * (1.0 + b.abs()),
                        "{attack:?} {cfg:?} t{t} i{i}: {a} vs {b}"
                    );
                }
            }
            let r = run_attack(&zoo.view(), attack, &eval, &pop, &cfg).unwrap();
            for &i in &eval {
                let (a, b) = (r.vulnerability[i], brute.vulnerability(attack, t_count, i));
                assert!(
                    (a.is_nan() && b.is_nan()) || (a - b).abs() < 1e-6,
                    "{attack:?} {cfg:?} i{i}: {a} vs {b}"
                );
            }
            // Sample 0's only OUT model is the last one, a target only if all 7 are; sample 1 has
            // no IN target.
            assert_eq!(r.vulnerability[0].is_nan(), t_count < k);
            assert!(r.vulnerability[1].is_nan());
        }
    }

    #[test]
    fn vulnerability_finds_planted_samples() {
        let zoo = synthetic(32, 400, 200, 23, |i| i < 20);
        let eval: Vec<usize> = (0..400).collect();
        let pop: Vec<usize> = (400..600).collect();
        for (attack, cfg) in configs() {
            let r = run_attack(&zoo.view(), attack, &eval, &pop, &cfg).unwrap();
            let v = &r.vulnerability;
            assert!(v[..400].iter().all(|x| (0.0..=1.0).contains(x)));
            let planted = v[..20].iter().map(|&x| f64::from(x)).sum::<f64>() / 20.0;
            let rest = v[20..400].iter().map(|&x| f64::from(x)).sum::<f64>() / 380.0;
            eprintln!("{attack:?} {cfg:?}: planted {planted:.3} rest {rest:.3}");
            assert!(planted > 0.8, "{attack:?} {cfg:?}: planted {planted}");
            assert!((rest - 0.5).abs() < 0.05, "{attack:?} {cfg:?}: rest {rest}");
        }
    }

    #[test]
    fn per_sample_vulnerability_is_a_pairwise_fraction() {
        // One sample, targets 0..4: members 0 and 1 with LOSS scores −0.1, −0.5; non-members 2, 3
        // with −0.3, −0.5. Pairs (m, nm): (0,2) win, (0,3) win, (1,2) loss, (1,3) tie → 2.5 / 4.
        let zoo = Zoo {
            k: 4,
            n: 2,
            member: vec![true, false, true, true, false, false, false, true],
            loss: vec![0.1, 1.0, 0.5, 1.0, 0.3, 1.0, 0.5, 1.0],
        };
        let r = run_attack(&zoo.view(), Attack::Loss, &[0, 1], &[], &MiaConfig::default()).unwrap();
        assert!((r.vulnerability[0] - 0.625).abs() < 1e-6);
        // Sample 1 has all losses tied: 0.5.
        assert!((r.vulnerability[1] - 0.5).abs() < 1e-6);
        // With targets 0 and 1 only, sample 0 has no non-member target: NaN. Sample 1 has one of
        // each, tied: 0.5.
        let cfg = MiaConfig {
            max_targets: 2,
            ..MiaConfig::default()
        };
        let r = run_attack(&zoo.view(), Attack::Loss, &[0, 1], &[], &cfg).unwrap();
        assert_eq!(r.n_targets, 2);
        assert!(r.vulnerability[0].is_nan());
        assert!((r.vulnerability[1] - 0.5).abs() < 1e-6);
    }

    #[test]
    fn ln_norm_cdf_is_accurate_in_the_tails() {
        let cases = [
            (-40.0, -804.608_442_013_753_8),
            (-30.0, -454.321_243_956_343_1),
            (-20.0, -203.917_155_371_097_24),
            (-10.0, -53.231_285_150_512_46),
            (-5.0, -15.064_998_393_988_724),
            (-1.0, -1.841_021_645_009_263_4),
            (0.0, -std::f64::consts::LN_2),
            (3.0, -0.001_350_809_964_748_202_7),
            (10.0, -7.619_853_024_160_593e-24),
        ];
        for (x, want) in cases {
            let got = ln_norm_cdf(x);
            // The erfc approximation has relative error < 1.2e-7: an absolute error that small in
            // ln Φ for x <= 0, a relative one for x > 0.
            let tol = 3e-7 * want.abs().min(1.0);
            assert!((got - want).abs() <= tol, "ln Φ({x}) = {got}, want {want}");
        }
        assert_eq!(ln_norm_cdf(f64::INFINITY), 0.0);
        assert_eq!(ln_norm_cdf(f64::NEG_INFINITY), f64::NEG_INFINITY);
        assert!(ln_norm_cdf(f64::NAN).is_nan());
        // Monotone across 0 and finite far out.
        let mut prev = f64::NEG_INFINITY;
        for j in -4000..=4000 {
            let v = ln_norm_cdf(j as f64 * 0.01);
            assert!(v.is_finite() && v >= prev, "at {}", j as f64 * 0.01);
            prev = v;
        }
        assert!(ln_norm_cdf(-1e6).is_finite());
    }

    #[test]
    fn logit_confidence_is_stable() {
        // p = 0.5 → φ = 0; p = e/(1+e) → φ = 1; tiny and huge losses stay finite.
        assert!(logit_confidence(std::f32::consts::LN_2).abs() < 1e-6);
        assert!((logit_confidence(loss_for_phi(1.0)) - 1.0).abs() < 1e-5);
        assert!((logit_confidence(0.0) - 69.077_552_789_821_37).abs() < 1e-9);
        assert!(logit_confidence(f32::INFINITY).is_finite());
        assert!((logit_confidence(50.0) + 50.0).abs() < 1e-9);
    }

    #[test]
    fn rejects_bad_input() {
        let zoo = synthetic(4, 10, 5, 3, |_| true);
        let v = zoo.view();
        let cfg = MiaConfig::default();
        let eval: Vec<usize> = (0..10).collect();
        let pop: Vec<usize> = (10..15).collect();
        assert!(run_attack(&v, Attack::Loss, &eval, &pop, &cfg).is_ok());
        assert!(run_attack(&v, Attack::Loss, &[], &pop, &cfg).is_err());
        assert!(run_attack(&v, Attack::Loss, &[15], &pop, &cfg).is_err());
        assert!(run_attack(&v, Attack::Rmia, &eval, &[15], &cfg).is_err());
        assert!(run_attack(&v, Attack::Rmia, &eval, &[], &cfg).is_err());
        assert!(
            run_attack(
                &v,
                Attack::Rmia,
                &eval,
                &pop,
                &MiaConfig {
                    rmia_gamma: 0.0,
                    ..cfg.clone()
                }
            )
            .is_err()
        );
        assert!(
            run_attack(
                &v,
                Attack::Rmia,
                &eval,
                &pop,
                &MiaConfig {
                    rmia_a: 1.5,
                    ..cfg.clone()
                }
            )
            .is_err()
        );
        assert!(
            run_attack(
                &v,
                Attack::Loss,
                &eval,
                &pop,
                &MiaConfig {
                    max_targets: 0,
                    ..cfg.clone()
                }
            )
            .is_err()
        );
        let short = ZooView {
            loss: &zoo.loss[1..],
            ..v
        };
        assert!(run_attack(&short, Attack::Loss, &eval, &pop, &cfg).is_err());
        let short = ZooView {
            member: &zoo.member[1..],
            ..v
        };
        assert!(run_attack(&short, Attack::Loss, &eval, &pop, &cfg).is_err());
        let one = ZooView {
            k: 1,
            n: 15,
            member: &zoo.member[..15],
            loss: &zoo.loss[..15],
        };
        assert!(run_attack(&one, Attack::Loss, &eval, &pop, &cfg).is_err());
        let mut nan = zoo.loss.clone();
        nan[7] = f32::NAN;
        assert!(run_attack(&ZooView { loss: &nan, ..v }, Attack::Loss, &eval, &pop, &cfg).is_err());
        // Only non-members evaluated: no ROC.
        assert!(run_attack(&v, Attack::Loss, &pop, &pop, &cfg).is_err());
        // LiRA with shadows that trained on everything has no OUT data.
        let all = Zoo {
            k: 3,
            n: 2,
            member: vec![true; 6],
            loss: vec![0.1; 6],
        };
        assert!(run_attack(&all.view(), Attack::LiraOffline, &[0, 1], &[], &cfg).is_err());
    }

    #[test]
    fn deterministic_and_serde_names() {
        let zoo = synthetic(16, 300, 100, 5, |_| true);
        let eval: Vec<usize> = (0..300).collect();
        let pop: Vec<usize> = (300..400).collect();
        for attack in Attack::ALL {
            let a = run_attack(&zoo.view(), attack, &eval, &pop, &MiaConfig::default()).unwrap();
            let b = run_attack(&zoo.view(), attack, &eval, &pop, &MiaConfig::default()).unwrap();
            assert_eq!(a.roc, b.roc);
            assert_eq!(
                a.vulnerability.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                b.vulnerability.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            );
        }
        assert_eq!(
            serde_json::to_string(&Attack::LiraOnline).unwrap(),
            "\"lira-online\""
        );
        assert_eq!(serde_json::from_str::<Attack>("\"rmia\"").unwrap(), Attack::Rmia);
        let cfg: MiaConfig = serde_json::from_str("{\"rmia_gamma\": 2.0}").unwrap();
        assert_eq!((cfg.rmia_gamma, cfg.rmia_a, cfg.max_targets), (2.0, 0.3, 64));
    }
}
