//! Exposure from ranks and perplexities, and TF Privacy's interpolation and extrapolation.
//!
//! Conventions (spec `05-secret-sharer.md`, sections 2, 3 and 7):
//!
//! * Lower log-perplexity means more likely; rank 1 is the most likely candidate.
//! * **Ties go to the references** (TF Privacy sorts by `(perplexity, tag)` with references tagged
//!   −1), so a reference with a perplexity equal to the canary's counts against it. This matches the
//!   paper's `<=` in the rank definition and gives conservative (low) exposures.
//! * [`exposure_from_perplexities`] treats the references as the rest of the space: |R| = #refs + 1.
//!   [`exposure_interpolation`] follows TF Privacy: |R| = #refs, so its maximum is log2(#refs).
//! * [`exposure_extrapolation`] fits a skew-normal by maximum likelihood (Nelder–Mead on the negative
//!   log-likelihood, started from method-of-moments estimates), as `scipy.stats.skewnorm.fit` does,
//!   and returns −log2 CDF(canary). The CDF is Φ(z) − 2 T(z, a) with Owen's T computed by
//!   Gauss–Legendre quadrature; in the left tail, where that difference cancels, log CDF is computed
//!   by quadrature of the log-density instead, so exposures far beyond 53 bits stay finite.

use std::collections::BTreeMap;
use std::f64::consts::{FRAC_1_SQRT_2, LN_2, PI};

use crate::error::{CoreError, CoreResult};

/// Exposure in bits from an exact 1-based `rank` among `space_size` candidates:
/// `log2(space_size) - log2(rank)` (Secret Sharer's definition).
///
/// Errors if `rank` is 0 or larger than `space_size`.
pub fn exposure_from_rank(rank: u64, space_size: u64) -> CoreResult<f64> {
    if rank == 0 || rank > space_size {
        return Err(CoreError::Invalid(format!(
            "exposure: rank {rank} outside 1..={space_size}"
        )));
    }
    Ok((space_size as f64).log2() - (rank as f64).log2())
}

/// 1-based rank of `canary` among `references`: 1 + the number of references with a log-perplexity
/// **less than or equal to** the canary's (ties go to the references, as in TF Privacy).
///
/// Errors on NaN.
pub fn rank_among(canary: f64, references: &[f64]) -> CoreResult<u64> {
    if canary.is_nan() || references.iter().any(|p| p.is_nan()) {
        return Err(CoreError::Invalid("exposure: NaN perplexity".into()));
    }
    Ok(1 + references.iter().filter(|&&p| p <= canary).count() as u64)
}

/// Exact exposure of `canary` when `others` are the log-perplexities of **all other** candidates of
/// the space, so |R| = `others.len() + 1` and the rank is [`rank_among`].
pub fn exposure_from_perplexities(canary: f64, others: &[f64]) -> CoreResult<f64> {
    let rank = rank_among(canary, others)?;
    exposure_from_rank(rank, others.len() as u64 + 1)
}

/// TF Privacy's `compute_exposure_interpolation`: for every secret of every group,
/// `log2(#references) - log2(rank)` with rank = 1 + the number of references sorted before it
/// (ties to the references). |R| is the number of references, not the randomness space.
///
/// TF Privacy returns each group's exposures in ascending-perplexity order; this returns them in the
/// input order (the same values). Errors on NaN or an empty reference list.
pub fn exposure_interpolation<K: Ord + Clone>(
    perplexities: &BTreeMap<K, Vec<f64>>,
    references: &[f64],
) -> CoreResult<BTreeMap<K, Vec<f64>>> {
    if references.is_empty() {
        return Err(CoreError::Invalid("exposure: no references".into()));
    }
    if references.iter().any(|p| p.is_nan()) {
        return Err(CoreError::Invalid("exposure: NaN perplexity".into()));
    }
    let mut sorted = references.to_vec();
    sorted.sort_by(f64::total_cmp);
    let log_n = (sorted.len() as f64).log2();
    let mut out = BTreeMap::new();
    for (key, values) in perplexities {
        let mut exps = Vec::with_capacity(values.len());
        for &p in values {
            if p.is_nan() {
                return Err(CoreError::Invalid("exposure: NaN perplexity".into()));
            }
            let rank = 1 + sorted.partition_point(|&r| r <= p);
            exps.push(log_n - (rank as f64).log2());
        }
        out.insert(key.clone(), exps);
    }
    Ok(out)
}

/// TF Privacy's `compute_exposure_extrapolation`: fit a skew-normal to the references by maximum
/// likelihood ([`SkewNormal::fit_mle`]) and return `-log2 CDF(p)` for every secret, plus the fit.
pub fn exposure_extrapolation<K: Ord + Clone>(
    perplexities: &BTreeMap<K, Vec<f64>>,
    references: &[f64],
) -> CoreResult<(BTreeMap<K, Vec<f64>>, SkewNormal)> {
    let fit = SkewNormal::fit_mle(references)?;
    let out = perplexities
        .iter()
        .map(|(k, v)| (k.clone(), v.iter().map(|&p| fit.exposure(p)).collect()))
        .collect();
    Ok((out, fit))
}

/// A skew-normal distribution (scipy's `skewnorm(a, loc, scale)`): density
/// `2/scale · φ(z) Φ(a z)` with `z = (x - loc)/scale`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SkewNormal {
    /// Shape `a` (0 = normal; > 0 = right skew).
    pub shape: f64,
    /// Location.
    pub loc: f64,
    /// Scale (> 0).
    pub scale: f64,
}

/// Mean, variance and skewness of a sample or a distribution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Moments {
    /// Mean.
    pub mean: f64,
    /// Variance.
    pub var: f64,
    /// Skewness (third standardized moment).
    pub skew: f64,
}

impl Moments {
    /// Population moments of `xs` (divisor n). Errors on fewer than 2 values or zero variance.
    pub fn of(xs: &[f64]) -> CoreResult<Self> {
        if xs.len() < 2 || xs.iter().any(|x| !x.is_finite()) {
            return Err(CoreError::Invalid(
                "skew-normal: need at least 2 finite values".into(),
            ));
        }
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        if var <= 0.0 {
            return Err(CoreError::Invalid("skew-normal: zero variance".into()));
        }
        let m3 = xs.iter().map(|x| (x - mean).powi(3)).sum::<f64>() / n;
        Ok(Self {
            mean,
            var,
            skew: m3 / var.powf(1.5),
        })
    }
}

/// The largest skewness a skew-normal can have is about 0.9953; moment estimates clamp below it.
const MAX_SKEW: f64 = 0.99;

impl SkewNormal {
    /// `delta = a / sqrt(1 + a^2)`.
    pub fn delta(&self) -> f64 {
        self.shape / (1.0 + self.shape * self.shape).sqrt()
    }

    /// Closed-form mean, variance and skewness.
    pub fn moments(&self) -> Moments {
        let d = self.delta();
        let b = d * (2.0 / PI).sqrt();
        let v = 1.0 - b * b;
        Moments {
            mean: self.loc + self.scale * b,
            var: self.scale * self.scale * v,
            skew: (4.0 - PI) / 2.0 * b.powi(3) / v.powf(1.5),
        }
    }

    /// Method-of-moments estimate (skewness clamped to ±0.99).
    pub fn from_moments(m: Moments) -> Self {
        let g = m.skew.clamp(-MAX_SKEW, MAX_SKEW);
        let g23 = g.abs().powf(2.0 / 3.0);
        let k = ((4.0 - PI) / 2.0).powf(2.0 / 3.0);
        let d = (PI / 2.0 * g23 / (g23 + k)).sqrt().copysign(g);
        let d = d.clamp(-0.999_999, 0.999_999);
        let shape = d / (1.0 - d * d).sqrt();
        let b = d * (2.0 / PI).sqrt();
        let scale = (m.var / (1.0 - b * b)).sqrt();
        Self {
            shape,
            loc: m.mean - scale * b,
            scale,
        }
    }

    /// Natural log of the density at `x`.
    pub fn ln_pdf(&self, x: f64) -> f64 {
        let z = (x - self.loc) / self.scale;
        LN_2 - self.scale.ln() + ln_phi(z) + ln_norm_cdf(self.shape * z)
    }

    /// Natural log of the CDF at `x`, accurate far into the left tail.
    pub fn ln_cdf(&self, x: f64) -> f64 {
        let z = (x - self.loc) / self.scale;
        let a = self.shape;
        // Slope of the log-density (in z) at z; the density is log-concave, so for slope > 0 the
        // integrand below z is bounded by f(z) exp(slope (t - z)).
        let slope = -z + a * (ln_phi(a * z) - ln_norm_cdf(a * z)).exp();
        if slope > 0.5 {
            return ln_tail_integral(z, a, slope);
        }
        let cdf = norm_cdf(z) - 2.0 * owens_t(z, a);
        cdf.clamp(f64::MIN_POSITIVE, 1.0).ln()
    }

    /// The CDF at `x`.
    pub fn cdf(&self, x: f64) -> f64 {
        self.ln_cdf(x).exp()
    }

    /// Exposure `-log2 CDF(x)` in bits.
    pub fn exposure(&self, x: f64) -> f64 {
        (-self.ln_cdf(x) / LN_2).max(0.0)
    }

    /// Mean negative log-likelihood of `xs`.
    pub fn mean_nll(&self, xs: &[f64]) -> f64 {
        -xs.iter().map(|&x| self.ln_pdf(x)).sum::<f64>() / xs.len() as f64
    }

    /// Maximum-likelihood fit (what `scipy.stats.skewnorm.fit` computes): Nelder–Mead on
    /// (a, loc, ln scale) of the standardized data, started from [`SkewNormal::from_moments`].
    pub fn fit_mle(xs: &[f64]) -> CoreResult<Self> {
        let m = Moments::of(xs)?;
        let sd = m.var.sqrt();
        let std: Vec<f64> = xs.iter().map(|x| (x - m.mean) / sd).collect();
        let start = Self::from_moments(Moments {
            mean: 0.0,
            var: 1.0,
            skew: m.skew,
        });
        let nll = |p: &[f64; 3]| {
            let s = Self {
                shape: p[0],
                loc: p[1],
                scale: p[2].exp(),
            };
            let v = s.mean_nll(&std);
            if v.is_finite() { v } else { f64::INFINITY }
        };
        let best = nelder_mead(
            nll,
            [start.shape, start.loc, start.scale.ln()],
            [0.5, 0.2, 0.1],
            1e-12,
            4000,
        );
        Ok(Self {
            shape: best[0],
            loc: m.mean + sd * best[1],
            scale: sd * best[2].exp(),
        })
    }
}

/// Minimal Nelder–Mead (standard coefficients 1, 2, 0.5, 0.5) in 3 dimensions.
fn nelder_mead(
    f: impl Fn(&[f64; 3]) -> f64,
    x0: [f64; 3],
    step: [f64; 3],
    ftol: f64,
    max_iter: usize,
) -> [f64; 3] {
    let mut pts: Vec<([f64; 3], f64)> = Vec::with_capacity(4);
    pts.push((x0, f(&x0)));
    for i in 0..3 {
        let mut x = x0;
        x[i] += step[i];
        pts.push((x, f(&x)));
    }
    let comb = |a: &[f64; 3], b: &[f64; 3], t: f64| -> [f64; 3] {
        [
            a[0] + t * (b[0] - a[0]),
            a[1] + t * (b[1] - a[1]),
            a[2] + t * (b[2] - a[2]),
        ]
    };
    for _ in 0..max_iter {
        pts.sort_by(|a, b| a.1.total_cmp(&b.1));
        if (pts[3].1 - pts[0].1).abs() <= ftol * (1.0 + pts[0].1.abs()) {
            break;
        }
        let mut c = [0.0; 3];
        for p in &pts[..3] {
            for (ck, pk) in c.iter_mut().zip(p.0) {
                *ck += pk / 3.0;
            }
        }
        let worst = pts[3].0;
        let xr = comb(&c, &worst, -1.0);
        let fr = f(&xr);
        if fr < pts[0].1 {
            let xe = comb(&c, &worst, -2.0);
            let fe = f(&xe);
            pts[3] = if fe < fr { (xe, fe) } else { (xr, fr) };
        } else if fr < pts[2].1 {
            pts[3] = (xr, fr);
        } else {
            let xc = if fr < pts[3].1 {
                comb(&c, &worst, -0.5)
            } else {
                comb(&c, &worst, 0.5)
            };
            let fc = f(&xc);
            if fc < fr.min(pts[3].1) {
                pts[3] = (xc, fc);
            } else {
                let best = pts[0].0;
                for p in pts.iter_mut().skip(1) {
                    let x = comb(&best, &p.0, 0.5);
                    *p = (x, f(&x));
                }
            }
        }
    }
    pts.sort_by(|a, b| a.1.total_cmp(&b.1));
    pts[0].0
}

/// ln φ(z), the standard normal log-density.
pub fn ln_phi(z: f64) -> f64 {
    -0.5 * z * z - 0.5 * (2.0 * PI).ln()
}

/// Continued fraction `K(u)` with `erfc(u) = exp(-u^2) / sqrt(pi) * K(u)`, for u >= 2.5
/// (modified Lentz).
fn erfc_cf(u: f64) -> f64 {
    let tiny = 1e-300;
    let mut f = u;
    let mut c = u;
    let mut d = 0.0;
    for n in 1..500 {
        let a = n as f64 / 2.0;
        d = u + a * d;
        if d.abs() < tiny {
            d = tiny;
        }
        d = 1.0 / d;
        c = u + a / c;
        if c.abs() < tiny {
            c = tiny;
        }
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    1.0 / f
}

/// erf(u) for 0 <= u < 2.5 by the positive series `2/sqrt(pi) e^{-u^2} sum (2u^2)^n u / (2n+1)!!`.
fn erf_series(u: f64) -> f64 {
    let mut term = u;
    let mut sum = u;
    let mut n = 0.0;
    while term > 1e-17 * sum {
        n += 1.0;
        term *= 2.0 * u * u / (2.0 * n + 1.0);
        sum += term;
    }
    2.0 / PI.sqrt() * (-u * u).exp() * sum
}

/// ln erfc(u) for u >= 0.
fn ln_erfc_pos(u: f64) -> f64 {
    if u < 2.5 {
        (1.0 - erf_series(u)).ln()
    } else {
        -u * u + (erfc_cf(u) / PI.sqrt()).ln()
    }
}

/// ln Φ(z), the log of the standard normal CDF, accurate in the far left tail.
pub fn ln_norm_cdf(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    let u = z * FRAC_1_SQRT_2;
    if z < 0.0 {
        ln_erfc_pos(-u) - LN_2
    } else {
        (-0.5 * ln_erfc_pos(u).exp()).ln_1p()
    }
}

/// Φ(z), the standard normal CDF.
pub fn norm_cdf(z: f64) -> f64 {
    ln_norm_cdf(z).exp()
}

/// 8-point Gauss–Legendre nodes and weights on [-1, 1].
const GL_X: [f64; 4] = [
    0.183_434_642_495_649_8,
    0.525_532_409_916_329,
    0.796_666_477_413_626_7,
    0.960_289_856_497_536_3,
];
const GL_W: [f64; 4] = [
    0.362_683_783_378_362,
    0.313_706_645_877_887_3,
    0.222_381_034_453_374_5,
    0.101_228_536_290_376_3,
];

/// Composite 8-point Gauss–Legendre nodes (x, w) on [lo, hi] with `panels` panels.
fn gl_nodes(lo: f64, hi: f64, panels: usize) -> impl Iterator<Item = (f64, f64)> {
    let h = (hi - lo) / panels as f64;
    (0..panels).flat_map(move |p| {
        let mid = lo + (p as f64 + 0.5) * h;
        (0..8).map(move |i| {
            let s = if i < 4 { -1.0 } else { 1.0 };
            (mid + s * GL_X[i % 4] * h / 2.0, GL_W[i % 4] * h / 2.0)
        })
    })
}

/// Owen's T function `T(h, a) = 1/(2 pi) ∫_0^a exp(-h^2 (1+x^2)/2) / (1+x^2) dx`.
///
/// For |a| <= 1, composite Gauss–Legendre quadrature (64 panels × 8 points) of the integral; for
/// |a| > 1, Owen's (1956) identity `T(h,a) = Φ(h)/2 + Φ(ah)/2 − Φ(h)Φ(ah) − T(ah, 1/a)` (h >= 0),
/// with `T(-h, a) = T(h, a)` and `T(h, -a) = -T(h, a)`.
pub fn owens_t(h: f64, a: f64) -> f64 {
    let h = h.abs();
    if a < 0.0 {
        return -owens_t(h, -a);
    }
    if a == 0.0 {
        return 0.0;
    }
    if a <= 1.0 {
        let s: f64 = gl_nodes(0.0, a, 64)
            .map(|(x, w)| {
                let q = 1.0 + x * x;
                w * (-0.5 * h * h * q).exp() / q
            })
            .sum();
        return s / (2.0 * PI);
    }
    let ah = a * h;
    let (ph, pah) = (norm_cdf(h), norm_cdf(ah));
    0.5 * ph + 0.5 * pah - ph * pah - owens_t(ah, 1.0 / a)
}

/// ln ∫_{-inf}^{z} 2 φ(t) Φ(a t) dt for a point where the log-density's slope is > 0: integrate
/// over [z − 60/slope, z] in log space (the rest is below e^-60 by log-concavity).
fn ln_tail_integral(z: f64, a: f64, slope: f64) -> f64 {
    let lo = z - 60.0 / slope;
    let lf = |t: f64| LN_2 + ln_phi(t) + ln_norm_cdf(a * t);
    let top = lf(z);
    let s: f64 = gl_nodes(lo, z, 128).map(|(t, w)| w * (lf(t) - top).exp()).sum();
    top + s.ln()
}

#[cfg(test)]
#[path = "exposure_tests.rs"]
mod tests;
