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

    /// The attack's name in files and on the command line (`lira-online`), as serde writes it.
    pub fn slug(self) -> &'static str {
        match self {
            Self::Loss => "loss",
            Self::LiraOnline => "lira-online",
            Self::LiraOffline => "lira-offline",
            Self::Rmia => "rmia",
        }
    }
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
#[path = "mia_tests.rs"]
mod tests;
