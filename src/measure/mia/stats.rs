//! Statistics the attacks share: the log normal CDF and density, log-sum-exp, the loss clamp and
//! running moments (count, mean, sum of squared deviations) that merge.

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
pub(super) fn ln_norm_pdf(x: f64, mu: f64, sd: f64) -> f64 {
    const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;
    let u = (x - mu) / sd;
    -sd.ln() - 0.5 * u * u - HALF_LN_2PI
}

/// Losses are clamped to [LOSS_FLOOR, LOSS_CAP] before logit scaling or exponentiation.
pub(super) const LOSS_FLOOR: f64 = 1e-30;
/// See [`LOSS_FLOOR`]; exp(−1e4) is far below anything a model reports, and keeps logs finite.
pub(super) const LOSS_CAP: f64 = 1e4;

/// ln(e^a + e^b), exact for infinite arguments.
pub(super) fn log_add_exp(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    hi + (lo - hi).exp().ln_1p()
}

/// Count, mean and sum of squared deviations of a set of numbers (Welford / Chan et al.).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Moments {
    pub(super) n: f64,
    pub(super) mean: f64,
    pub(super) m2: f64,
}

impl Moments {
    pub(super) fn push(&mut self, x: f64) {
        self.n += 1.0;
        let d = x - self.mean;
        self.mean += d / self.n;
        self.m2 += d * (x - self.mean);
    }

    pub(super) fn merge(&self, o: &Moments) -> Moments {
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
    pub(super) fn std(&self) -> f64 {
        if self.n > 0.0 {
            (self.m2.max(0.0) / self.n).sqrt()
        } else {
            0.0
        }
    }
}
