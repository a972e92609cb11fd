//! The regularized incomplete beta function I_x(a, b) and its inverse, for the Clopper–Pearson
//! bounds and binomial tails of the DP audit, with both tails to full relative precision.
//!
//! puruspe 0.4's `betai` takes the complement 1 − I_{1−x}(b, a) from x ≥ (a + 1) / (a + 2b)
//! onwards, where I_x itself can still be small (P[Bin(1510, 0.93) ≥ 1439] = 1.39954e-4 comes out
//! 1.39944e-4), and its `invbetai` stops after 10 Newton steps from a rough start (the 2.5e-5
//! lower Clopper–Pearson bound of 500 of 1000 comes out 0.202 instead of 0.436) or panics when a
//! step leaves [0, 1]. Here the continued fraction (Numerical Recipes, 3rd ed., Sec. 6.4, modified
//! Lentz) is evaluated on the side where it converges, x < (a + 1) / (a + b + 2), which is also the
//! side whose value is the smaller tail, and the inverse is Newton's method kept inside a shrinking
//! bracket. ln Γ is puruspe's.

/// ln B(a, b).
fn ln_beta(a: f64, b: f64) -> f64 {
    puruspe::ln_gamma(a) + puruspe::ln_gamma(b) - puruspe::ln_gamma(a + b)
}

/// The continued fraction of I_x(a, b) (converges fast for x < (a + 1) / (a + b + 2)).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..200_000 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        for aa in [
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ] {
            d = 1.0 + aa * d;
            if d.abs() < TINY {
                d = TINY;
            }
            c = 1.0 + aa / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            h *= d * c;
        }
        if (d * c - 1.0).abs() <= 1e-16 {
            break;
        }
    }
    h
}

/// (I_x(a, b), 1 − I_x(a, b)), each to full relative precision; a, b > 0.
pub(crate) fn ibeta_pair(a: f64, b: f64, x: f64) -> (f64, f64) {
    if x <= 0.0 {
        return (0.0, 1.0);
    }
    if x >= 1.0 {
        return (1.0, 0.0);
    }
    let ln_front = a * x.ln() + b * (-x).ln_1p() - ln_beta(a, b);
    if x < (a + 1.0) / (a + b + 2.0) {
        let i = (ln_front.exp() * beta_cf(a, b, x) / a).clamp(0.0, 1.0);
        (i, 1.0 - i)
    } else {
        let c = (ln_front.exp() * beta_cf(b, a, 1.0 - x) / b).clamp(0.0, 1.0);
        (1.0 - c, c)
    }
}

/// The x in (0, 1) with I_x(a, b) = `p` (`upper` false) or 1 − I_x(a, b) = `p` (`upper` true);
/// a, b > 0 and 0 < p < 1.
pub(super) fn inv_ibeta(p: f64, a: f64, b: f64, upper: bool) -> f64 {
    // g rises with x; its derivative is the beta density either way.
    let g = |x: f64| {
        let (i, c) = ibeta_pair(a, b, x);
        if upper { p - c } else { i - p }
    };
    let ln_b = ln_beta(a, b);
    let density = |x: f64| ((a - 1.0) * x.ln() + (b - 1.0) * (-x).ln_1p() - ln_b).exp();
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    let mut x = a / (a + b);
    for _ in 0..400 {
        let gx = g(x);
        if gx == 0.0 {
            return x;
        }
        if gx < 0.0 {
            lo = x;
        } else {
            hi = x;
        }
        let newton = x - gx / density(x);
        let next = if newton.is_finite() && newton > lo && newton < hi {
            newton
        } else if lo > 0.0 && hi > 4.0 * lo {
            (lo * hi).sqrt()
        } else if lo == 0.0 {
            0.125 * hi
        } else if 1.0 - lo > 4.0 * (1.0 - hi) && hi < 1.0 {
            1.0 - ((1.0 - lo) * (1.0 - hi)).sqrt()
        } else if hi == 1.0 {
            1.0 - 0.125 * (1.0 - lo)
        } else {
            0.5 * (lo + hi)
        };
        let step = (next - x).abs();
        x = next;
        if step <= 1e-15 * x.min(1.0 - x) || hi - lo <= 1e-300 {
            break;
        }
    }
    x
}
