//! Dataset-level membership, MemHunter-style: did a language model train on a whole set of texts?
//! Wu, Lou, Zheng and Chen, *MemHunter: Automated and Verifiable Memorization Detection at
//! Dataset-scale in LLMs* (arXiv:2412.07261, v1/v2; v3 was withdrawn by the authors), after spec 11
//! §A "Dataset-level hypothesis test". The paper's exact statistic was not reachable; this is the
//! spec's transparent version of it.
//!
//! Every sample of the suspect set S and of a reference set S′ the model never saw gets a score
//! (higher = more memorized). H0: the scores on S are not stochastically larger than on S′; H1:
//! they are. The test is the one-sided Mann–Whitney U (the normal approximation with the tie
//! correction of the variance and a continuity correction of ½, scipy's
//! `mannwhitneyu(..., alternative="greater", method="asymptotic")`): U = #{(a, b): a > b} + ½
//! #{a = b}, z = (U − n₁n₂/2 − ½) / σ, σ² = n₁n₂/12 · ((n + 1) − Σ(t³ − t)/(n(n − 1))), p = 1 − Φ(z).
//! Beside it: the effect size U/(n₁n₂) (the AUC, the common-language effect size) and Welch's t
//! as a cross-check. How many samples the test needs: for n per side on a grid, the share of
//! random subsets of n suspect and n reference samples whose p is below α (the empirical power),
//! and the smallest n where it reaches 0.8. A control runs the same test between two disjoint
//! halves of the reference set, where H0 holds by construction.
//!
//! The default score is MemHunter's partial-match memorization with the plain prefix prompt
//! (no memory-inducing model): the longest common substring of the greedy continuation and the
//! true one, in tokens, over the true one's length (spec 11 §A "Memorization criterion").

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::canary::exposure::norm_cdf;
use crate::error::{CoreError, CoreResult};

/// The per-sample score the test compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SampleScore {
    /// MemHunter's partial-match memorization: longest common substring of the greedy
    /// continuation of a 32-token prefix and the true 32 tokens, over 32.
    Lcs,
    /// −mean token loss (the LOSS attack's score).
    Loss,
    /// −loss / zlib length.
    Zlib,
    /// Min-K% (MIMIR, k = 0.2).
    MinK,
    /// Min-K%++ (MIMIR, k = 0.2).
    MinKPp,
}

impl SampleScore {
    /// The name in outputs (and the key of the membership report's scores).
    pub fn name(self) -> &'static str {
        match self {
            Self::Lcs => "lcs",
            Self::Loss => "loss",
            Self::Zlib => "zlib",
            Self::MinK => "min_k",
            Self::MinKPp => "min_k_pp",
        }
    }
}

/// A one-sided two-sample test of "suspect scores are larger".
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RankTest {
    /// Suspect samples.
    pub n_suspect: usize,
    /// Reference samples.
    pub n_reference: usize,
    /// Mann–Whitney U of the suspect set (ties count ½).
    pub u: f64,
    /// The normal approximation's z (tie- and continuity-corrected).
    pub z: f64,
    /// One-sided p-value of the Mann–Whitney test.
    pub p_value: f64,
    /// U / (n₁n₂): the chance that a random suspect sample outscores a random reference one.
    pub auc: f64,
    /// Welch's t of the means (suspect − reference).
    pub welch_t: f64,
    /// Its Welch–Satterthwaite degrees of freedom.
    pub welch_df: f64,
    /// Its one-sided p-value.
    pub welch_p: f64,
}

/// Mann–Whitney U (one-sided, `a` larger) with Welch's t beside it. Needs two samples per side.
pub fn rank_test(a: &[f64], b: &[f64]) -> CoreResult<RankTest> {
    if a.len() < 2 || b.len() < 2 {
        return Err(CoreError::Invalid(format!(
            "a dataset test needs at least 2 samples on each side (suspect {}, reference {})",
            a.len(),
            b.len()
        )));
    }
    if let Some(bad) = a.iter().chain(b).find(|v| !v.is_finite()) {
        return Err(CoreError::Invalid(format!("a sample's score is {bad}")));
    }
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    // Mid-ranks of the pooled sample; U = R₁ − n₁(n₁ + 1)/2.
    let mut pooled: Vec<(f64, bool)> = a
        .iter()
        .map(|&v| (v, true))
        .chain(b.iter().map(|&v| (v, false)))
        .collect();
    pooled.sort_by(|x, y| x.0.total_cmp(&y.0));
    let (mut r1, mut ties, mut i) = (0.0, 0.0, 0);
    while i < pooled.len() {
        let mut j = i;
        while j + 1 < pooled.len() && pooled[j + 1].0 == pooled[i].0 {
            j += 1;
        }
        let t = (j - i + 1) as f64;
        let mid = (i + j) as f64 / 2.0 + 1.0;
        r1 += mid * pooled[i..=j].iter().filter(|p| p.1).count() as f64;
        ties += t * t * t - t;
        i = j + 1;
    }
    let u = r1 - n1 * (n1 + 1.0) / 2.0;
    let n = n1 + n2;
    let var = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    let (z, p_value) = if var > 0.0 {
        let z = (u - n1 * n2 / 2.0 - 0.5) / var.sqrt();
        (z, 1.0 - norm_cdf(z))
    } else {
        (0.0, 1.0)
    };
    let (welch_t, welch_df, welch_p) = welch(a, b);
    Ok(RankTest {
        n_suspect: a.len(),
        n_reference: b.len(),
        u,
        z,
        p_value,
        auc: u / (n1 * n2),
        welch_t,
        welch_df,
        welch_p,
    })
}

fn mean_var(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    (m, x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1.0))
}

/// Welch's t, its degrees of freedom and the one-sided p-value P(T ≥ t).
fn welch(a: &[f64], b: &[f64]) -> (f64, f64, f64) {
    let ((ma, va), (mb, vb)) = (mean_var(a), mean_var(b));
    let (sa, sb) = (va / a.len() as f64, vb / b.len() as f64);
    let se2 = sa + sb;
    if se2 <= 0.0 {
        let p = if ma > mb { 0.0 } else { 1.0 };
        return (f64::NAN, f64::NAN, p);
    }
    let t = (ma - mb) / se2.sqrt();
    let df = se2 * se2 / (sa * sa / (a.len() as f64 - 1.0) + sb * sb / (b.len() as f64 - 1.0));
    (t, df, student_upper(t, df))
}

/// P(T ≥ t) for Student's t with `df` degrees of freedom: ½ I_{ν/(ν+t²)}(ν/2, ½) for t ≥ 0.
fn student_upper(t: f64, df: f64) -> f64 {
    let x = df / (df + t * t);
    let (i, _) = crate::measure::audit::beta::ibeta_pair(df / 2.0, 0.5, x);
    if t >= 0.0 { 0.5 * i } else { 1.0 - 0.5 * i }
}

/// One point of the power curve.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PowerPoint {
    /// Samples per side.
    pub n: usize,
    /// Median p-value over the random subsets.
    pub median_p: f64,
    /// Share of subsets with p < α.
    pub power: f64,
}

/// Subsets drawn per point of the power curve.
pub const POWER_REPS: usize = 200;

/// The power required of "samples needed".
pub const POWER_TARGET: f64 = 0.8;

/// The empirical power of the test at `alpha` for n = 2, 3, 4, 6, 8, 12, 16, … up to the smaller
/// side: [`POWER_REPS`] seeded random subsets of n samples per side each.
pub fn power_curve(a: &[f64], b: &[f64], alpha: f64, seed: u64) -> CoreResult<Vec<PowerPoint>> {
    let max = a.len().min(b.len());
    let mut grid = Vec::new();
    let mut n = 2usize;
    while n < max {
        grid.push(n);
        n = if n.is_power_of_two() { n + n / 2 } else { n / 3 * 4 };
    }
    if max >= 2 {
        grid.push(max);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0da7_a5e7);
    let (mut ia, mut ib): (Vec<usize>, Vec<usize>) = ((0..a.len()).collect(), (0..b.len()).collect());
    let mut out = Vec::with_capacity(grid.len());
    for n in grid {
        let mut ps = Vec::with_capacity(POWER_REPS);
        for _ in 0..POWER_REPS {
            ia.shuffle(&mut rng);
            ib.shuffle(&mut rng);
            let sa: Vec<f64> = ia[..n].iter().map(|&i| a[i]).collect();
            let sb: Vec<f64> = ib[..n].iter().map(|&i| b[i]).collect();
            ps.push(rank_test(&sa, &sb)?.p_value);
        }
        ps.sort_by(f64::total_cmp);
        let power = ps.iter().filter(|&&p| p < alpha).count() as f64 / ps.len() as f64;
        out.push(PowerPoint {
            n,
            median_p: ps[ps.len() / 2],
            power,
        });
    }
    Ok(out)
}

/// The smallest n per side whose power reaches [`POWER_TARGET`], if any does.
pub fn samples_needed(curve: &[PowerPoint]) -> Option<usize> {
    curve.iter().find(|p| p.power >= POWER_TARGET).map(|p| p.n)
}

/// Longest common substring of two token sequences, over `truth`'s length (0 for an empty truth).
pub fn lcs_norm(generated: &[u32], truth: &[u32]) -> f64 {
    if truth.is_empty() {
        return 0.0;
    }
    let mut prev = vec![0usize; truth.len() + 1];
    let mut best = 0;
    for &g in generated {
        let mut cur = vec![0usize; truth.len() + 1];
        for (j, &t) in truth.iter().enumerate() {
            if g == t {
                cur[j + 1] = prev[j] + 1;
                best = best.max(cur[j + 1]);
            }
        }
        prev = cur;
    }
    best as f64 / truth.len() as f64
}

/// Two disjoint halves of `xs` (seeded), for the control test.
pub fn halves(xs: &[f64], seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut v = xs.to_vec();
    v.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0xc0_47e0));
    let second = v.split_off(v.len() / 2);
    (v, second)
}

#[cfg(test)]
#[path = "dataset_test_tests.rs"]
mod tests;
