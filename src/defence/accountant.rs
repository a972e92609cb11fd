//! The Rényi-DP accountant of DP-SGD: the privacy (ε, δ) of `T` steps of the Poisson-subsampled
//! Gaussian mechanism with sampling rate `q` and noise multiplier `σ`, and the inverse (the σ that
//! reaches a target ε). Spec: `../shared/specs/13-mitigations.md` §C.2–C.4.
//!
//! **RDP of one step** (Mironov, Talwar, Zhang 2019, "Rényi Differential Privacy of the Sampled
//! Gaussian Mechanism", §3.3), add/remove-one neighbours:
//!
//! ```text
//! ε_α = ln A_α / (α − 1),   A_α = E_{z∼N(0,σ²)} [ ((1 − q) + q·exp((2z − 1)/(2σ²)))^α ]
//! ```
//!
//! * q = 0 gives 0, σ = 0 or α = ∞ give ∞, q = 1 gives α/(2σ²) (the plain Gaussian).
//! * Integer α: `A_α = Σ_{i=0}^{α} C(α,i) (1−q)^{α−i} q^i exp((i² − i)/(2σ²))`, summed in log
//!   space.
//! * Fractional α: with `z₀ = σ² ln(1/q − 1) + ½` and `j = α − i`, `A_α = Σ_{i≥0} (s⁰_i + s¹_i)`,
//!
//!   ```text
//!   s⁰_i = C(α,i) q^i (1−q)^j exp((i² − i)/(2σ²)) · ½ erfc((i − z₀)/(√2 σ))
//!   s¹_i = C(α,i) q^j (1−q)^i exp((j² − j)/(2σ²)) · ½ erfc((z₀ − j)/(√2 σ))
//!   ```
//!
//!   stopped once both terms decrease and fall below e⁻³⁰ of the running total. The generalized
//!   binomial C(α,i) is negative for some i > α, and the two reference libraries differ there
//!   ([`FractionalSeries`]): dp_accounting sums magnitudes (an upper bound on A_α, so still a
//!   valid RDP; the default here, so that rote's ε is dp_accounting's), Opacus sums with signs
//!   (the exact series). After 1,000 terms without converging the order counts as ∞, as in
//!   dp_accounting, which drops it.
//! * `T` steps compose to `T·ε_α`.
//!
//! **Conversion to (ε, δ)** (Balle et al. 2020, "Hypothesis testing interpretations and Rényi
//! differential privacy", Thm 21, used by both libraries):
//!
//! ```text
//! ε(δ) = min_α [ RDP(α) + ln((α − 1)/α) − (ln δ + ln α)/(α − 1) ]
//! ```
//!
//! with dp_accounting's guards: an order where δ² + expm1(−RDP(α)) > 0 gives ε = 0 (the KL
//! bound δ ≤ √(1 − e^{−KL})), orders ≤ 1.01 give ∞, a negative RDP (rounding) gives 0, and the
//! result is clipped at 0. The inverse, [`delta_from_rdp`], is
//! `δ(ε) = min_α min(exp((α − 1)(RDP − ε + ln(1 − 1/α)) − ln α), √(1 − e^{−RDP}))`.
//!
//! **Calibration** ([`noise_for_epsilon`]) doubles σ from 10 until ε(σ) ≤ target (giving up
//! above σ = 2000) and bisects, as Opacus's `get_noise_multiplier` does, but returns the upper
//! end of the bracket, so ε(σ) ≤ target always holds.

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, CoreResult};

/// dp_accounting's `DEFAULT_RDP_ORDERS`: 1.1, 1.2, …, 10.9, then 11, …, 63, then 128, 256, 512,
/// 1024.
pub const DEFAULT_ORDERS: [f64; 156] = order_table(11, true);

/// Opacus's `DEFAULT_ALPHAS`: 1.1, 1.2, …, 10.9, then 12, …, 63.
pub const OPACUS_ORDERS: [f64; 151] = order_table(12, false);

/// Noise multipliers above this are not searched: the target ε counts as unreachable.
pub const MAX_NOISE_MULTIPLIER: f64 = 2000.0;

/// Terms of the fractional-order series before the order is given up as ∞ (dp_accounting's cap).
const MAX_SERIES_TERMS: usize = 1000;

/// Orders at or below this give ε = ∞ in the conversion (dp_accounting: the bound is unstable as
/// α → 1 and useless there anyway).
const MIN_CONVERSION_ORDER: f64 = 1.01;

/// The tables above, as Python writes them: `1 + x / 10.0` for x in 1..100, then the integers
/// from `first_integer` to 63, then (optionally) 128 to 1024 by doubling. The same float values
/// matter: 2.0, 3.0, … in the first run are integers and take the closed form.
const fn order_table<const N: usize>(first_integer: u32, with_large: bool) -> [f64; N] {
    let mut out = [0.0; N];
    let mut k = 0;
    let mut x = 1;
    while x < 100 {
        out[k] = 1.0 + x as f64 / 10.0;
        k += 1;
        x += 1;
    }
    let mut n = first_integer;
    while n < 64 {
        out[k] = n as f64;
        k += 1;
        n += 1;
    }
    if with_large {
        let mut big = 128;
        while big <= 1024 {
            out[k] = big as f64;
            k += 1;
            big *= 2;
        }
    }
    assert!(k == N, "order table length");
    out
}

/// How the fractional-order series treats the negative generalized binomial coefficients.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FractionalSeries {
    /// Sum the magnitudes |C(α,i)|, as Google's dp_accounting does: an upper bound on A_α, so a
    /// valid (slightly looser) RDP, and the ε dp_accounting reports.
    #[default]
    Magnitude,
    /// Sum with the signs of C(α,i), as Opacus does: the exact series (spec C.2: 6.5007e-4 instead
    /// of 6.7058e-4 at q = 0.01, σ = 2.5, 50 steps, α = 1.5).
    Signed,
}

impl FractionalSeries {
    /// The label in reports: "magnitude" or "signed".
    pub fn label(self) -> &'static str {
        match self {
            Self::Magnitude => "magnitude",
            Self::Signed => "signed",
        }
    }
}

/// Which orders α the accountant minimises over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OrderSet {
    /// [`DEFAULT_ORDERS`] (dp_accounting).
    #[default]
    DpAccounting,
    /// [`OPACUS_ORDERS`] (Opacus).
    Opacus,
}

impl OrderSet {
    /// The orders.
    pub fn orders(self) -> &'static [f64] {
        match self {
            Self::DpAccounting => &DEFAULT_ORDERS,
            Self::Opacus => &OPACUS_ORDERS,
        }
    }

    /// The label in reports: "dp-accounting" or "opacus".
    pub fn label(self) -> &'static str {
        match self {
            Self::DpAccounting => "dp-accounting",
            Self::Opacus => "opacus",
        }
    }
}

/// The accountant's conventions: orders and fractional series. The default is dp_accounting's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccountantOptions {
    /// Orders to minimise over.
    pub orders: OrderSet,
    /// Series for fractional orders.
    pub series: FractionalSeries,
}

/// The privacy of `steps` DP-SGD steps: ε at δ and the order that gives it, with the inputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Accounting {
    /// ε at `delta` (∞, written as null, when no order gives a finite bound).
    #[serde(with = "serde_inf")]
    pub epsilon: f64,
    /// The optimal order α.
    pub order: f64,
    /// δ.
    pub delta: f64,
    /// σ: the noise standard deviation over the clipping norm.
    pub noise_multiplier: f64,
    /// q: each example's probability of being in a batch.
    pub sample_rate: f64,
    /// T: the number of steps.
    pub steps: u64,
    /// The orders minimised over.
    pub orders: OrderSet,
    /// The fractional-order series.
    pub fractional: FractionalSeries,
    /// A warning: the optimum sits at the first or last order (a wider range may give a smaller
    /// ε), orders were dropped because their series did not converge, or ε is infinite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// RDP of one step of the Poisson-subsampled Gaussian mechanism at order `alpha`.
///
/// Not checked (see [`rdp_composed`]): `0 ≤ q ≤ 1`, `sigma ≥ 0`, `alpha ≥ 1`. Order 1 (the KL
/// divergence) is not computed for q < 1 and counts as ∞; so does a series that does not
/// converge. Integer orders cost `alpha + 1` terms.
pub fn rdp_step(q: f64, sigma: f64, alpha: f64, series: FractionalSeries) -> f64 {
    if q == 0.0 {
        return 0.0;
    }
    let two_var = 2.0 * sigma * sigma;
    if alpha.is_infinite() || two_var == 0.0 {
        return f64::INFINITY;
    }
    if q == 1.0 {
        return alpha / two_var;
    }
    if alpha <= 1.0 {
        return f64::INFINITY;
    }
    let log_a = if alpha.fract() == 0.0 {
        log_a_integer(q, two_var, alpha)
    } else {
        log_a_fractional(q, sigma, alpha, series)
    };
    let rdp = log_a / (alpha - 1.0);
    if rdp.is_nan() { f64::INFINITY } else { rdp }
}

/// RDP of `steps` steps at every order, with dp_accounting's magnitude series.
pub fn rdp_composed(q: f64, sigma: f64, steps: u64, orders: &[f64]) -> CoreResult<Vec<f64>> {
    rdp_composed_with(q, sigma, steps, orders, FractionalSeries::Magnitude)
}

/// RDP of `steps` steps at every order, with the given fractional series.
pub fn rdp_composed_with(
    q: f64,
    sigma: f64,
    steps: u64,
    orders: &[f64],
    series: FractionalSeries,
) -> CoreResult<Vec<f64>> {
    check_mechanism(q, sigma, steps)?;
    check_orders(orders)?;
    Ok(composed(q, sigma, steps, orders, series))
}

fn composed(q: f64, sigma: f64, steps: u64, orders: &[f64], series: FractionalSeries) -> Vec<f64> {
    let steps = steps as f64;
    orders
        .iter()
        .map(|&alpha| steps * rdp_step(q, sigma, alpha, series))
        .collect()
}

/// ε at `delta` from RDP values (Balle et al. 2020 Thm 21 with dp_accounting's guards) and the
/// order that attains it; ties go to the first order.
pub fn epsilon_from_rdp(orders: &[f64], rdp: &[f64], delta: f64) -> CoreResult<(f64, f64)> {
    check_curve(orders, rdp)?;
    check_delta(delta)?;
    Ok(best_epsilon(orders, rdp, delta))
}

fn best_epsilon(orders: &[f64], rdp: &[f64], delta: f64) -> (f64, f64) {
    let mut best = (f64::INFINITY, orders.first().copied().unwrap_or(f64::NAN));
    for (i, (&alpha, &r)) in orders.iter().zip(rdp).enumerate() {
        let eps = epsilon_at_order(alpha, r, delta);
        if i == 0 || eps < best.0 {
            best = (eps, alpha);
        }
    }
    (best.0.max(0.0), best.1)
}

fn epsilon_at_order(alpha: f64, rdp: f64, delta: f64) -> f64 {
    if rdp.is_nan() || rdp == f64::INFINITY {
        f64::INFINITY
    } else if rdp < 0.0 || delta * delta + (-rdp).exp_m1() > 0.0 {
        0.0
    } else if alpha.is_infinite() {
        rdp
    } else if alpha > MIN_CONVERSION_ORDER {
        rdp + (-1.0 / alpha).ln_1p() - (delta * alpha).ln() / (alpha - 1.0)
    } else {
        f64::INFINITY
    }
}

/// δ at `epsilon` from RDP values (dp_accounting's `compute_delta`: Balle et al.'s bound, or the
/// KL bound √(1 − e^{−RDP}) when smaller) and the order that attains it.
pub fn delta_from_rdp(orders: &[f64], rdp: &[f64], epsilon: f64) -> CoreResult<(f64, f64)> {
    check_curve(orders, rdp)?;
    if !(epsilon.is_finite() && epsilon >= 0.0) {
        return Err(invalid(format!("ε must be a finite number ≥ 0, got {epsilon}")));
    }
    let mut best = (f64::INFINITY, orders[0]);
    for (i, (&alpha, &r)) in orders.iter().zip(rdp).enumerate() {
        let mut log_delta = if r <= 0.0 {
            f64::NEG_INFINITY
        } else if r.is_nan() {
            0.0
        } else {
            0.5 * (-(-r).exp()).ln_1p()
        };
        if alpha > MIN_CONVERSION_ORDER {
            let bound = (alpha - 1.0) * (r - epsilon + (-1.0 / alpha).ln_1p()) - alpha.ln();
            // f64::min ignores a NaN bound (∞ · 0 at α = ∞).
            log_delta = log_delta.min(bound);
        }
        if i == 0 || log_delta < best.0 {
            best = (log_delta, alpha);
        }
    }
    Ok((best.0.exp().min(1.0), best.1))
}

/// ε at `delta` after `steps` steps, with dp_accounting's orders and series.
pub fn epsilon(q: f64, sigma: f64, steps: u64, delta: f64) -> CoreResult<Accounting> {
    epsilon_with(q, sigma, steps, delta, AccountantOptions::default())
}

/// ε at `delta` after `steps` steps, with the given conventions.
pub fn epsilon_with(
    q: f64,
    sigma: f64,
    steps: u64,
    delta: f64,
    options: AccountantOptions,
) -> CoreResult<Accounting> {
    check_mechanism(q, sigma, steps)?;
    check_delta(delta)?;
    let orders = options.orders.orders();
    let rdp = composed(q, sigma, steps, orders, options.series);
    let (epsilon, order) = best_epsilon(orders, &rdp, delta);
    let mut notes = Vec::new();
    if epsilon.is_infinite() {
        notes.push("no order gives a finite ε".to_owned());
    } else if epsilon > 0.0 && (order == orders[0] || Some(&order) == orders.last()) {
        let end = if order == orders[0] { "smallest" } else { "largest" };
        notes.push(format!(
            "the optimum is at the {end} order α = {order}; a wider range of orders may give a smaller ε"
        ));
    }
    let dropped = rdp.iter().filter(|r| !r.is_finite()).count();
    if sigma > 0.0 && dropped > 0 {
        notes.push(format!(
            "{dropped} fractional orders did not converge within {MAX_SERIES_TERMS} terms and count as ∞ (as in dp_accounting)"
        ));
    }
    Ok(Accounting {
        epsilon,
        order,
        delta,
        noise_multiplier: sigma,
        sample_rate: q,
        steps,
        orders: options.orders,
        fractional: options.series,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    })
}

/// The smallest noise multiplier (to 0.01 absolute and 0.1% relative, whichever is tighter) whose
/// ε at `delta` after `steps` steps is at most `target_epsilon`, with dp_accounting's conventions.
pub fn noise_for_epsilon(target_epsilon: f64, q: f64, steps: u64, delta: f64) -> CoreResult<f64> {
    noise_for_epsilon_with(target_epsilon, q, steps, delta, AccountantOptions::default())
}

/// [`noise_for_epsilon`] with the given conventions. Opacus's doubling from σ = 10, then
/// bisection; the upper end of the final bracket is returned, so ε(σ) ≤ target is guaranteed
/// (Opacus's older releases returned the last midpoint, which can sit on the wrong side).
pub fn noise_for_epsilon_with(
    target_epsilon: f64,
    q: f64,
    steps: u64,
    delta: f64,
    options: AccountantOptions,
) -> CoreResult<f64> {
    if !(target_epsilon.is_finite() && target_epsilon > 0.0) {
        let msg = format!("the target ε must be a finite number > 0, got {target_epsilon}");
        return Err(invalid(msg));
    }
    check_rate_and_steps(q, steps)?;
    check_delta(delta)?;
    let orders = options.orders.orders();
    let eps_at =
        |sigma: f64| best_epsilon(orders, &composed(q, sigma, steps, orders, options.series), delta).0;

    let (mut lo, mut hi) = (0.0_f64, 10.0_f64);
    loop {
        let eps = eps_at(hi);
        if eps <= target_epsilon {
            break;
        }
        if hi >= MAX_NOISE_MULTIPLIER {
            return Err(invalid(format!(
                "ε {target_epsilon} is unreachable with q {q}, {steps} steps and δ {delta}: even noise multiplier {MAX_NOISE_MULTIPLIER} gives ε {eps:.4}"
            )));
        }
        lo = hi;
        hi = (2.0 * hi).min(MAX_NOISE_MULTIPLIER);
    }
    // Bisection halves the bracket; 200 halvings end any run (an absurd target drives hi towards
    // 0, where the relative width never shrinks).
    for _ in 0..200 {
        if hi - lo <= (0.001 * hi).min(0.01) {
            break;
        }
        let mid = 0.5 * (lo + hi);
        if eps_at(mid) <= target_epsilon {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}

/// ln A_α for integer α ≥ 2 and 0 < q < 1: the binomial sum in log space, ln C(α,i) by the
/// recurrence C(α,i) = C(α,i−1)·(α − i + 1)/i.
fn log_a_integer(q: f64, two_var: f64, alpha: f64) -> f64 {
    let (ln_q, ln_1mq) = (q.ln(), (-q).ln_1p());
    let n = alpha as u64;
    let mut log_comb = 0.0;
    let mut log_a = f64::NEG_INFINITY;
    for i in 0..=n {
        let fi = i as f64;
        if i > 0 {
            log_comb += ((alpha - fi + 1.0) / fi).ln();
        }
        let term = log_comb + fi * ln_q + (alpha - fi) * ln_1mq + (fi * fi - fi) / two_var;
        log_a = log_add(log_a, term);
    }
    log_a
}

/// ln A_α for fractional α > 1 and 0 < q < 1 (the series of the module doc); +∞ when it does not
/// converge within [`MAX_SERIES_TERMS`] terms or (signed) ends non-positive.
fn log_a_fractional(q: f64, sigma: f64, alpha: f64, series: FractionalSeries) -> f64 {
    let two_var = 2.0 * sigma * sigma;
    let z0 = sigma * sigma * (1.0 / q - 1.0).ln() + 0.5;
    let (ln_q, ln_1mq) = (q.ln(), (-q).ln_1p());
    let erfc_scale = std::f64::consts::SQRT_2 * sigma;
    let ln_half = -std::f64::consts::LN_2;
    // ln |C(α,i)| and the sign of C(α,i).
    let mut log_comb = 0.0;
    let mut sign = 1.0;
    let mut total = SignedLog::ZERO;
    let (mut last0, mut last1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    for i in 0..MAX_SERIES_TERMS {
        let fi = i as f64;
        if i > 0 {
            let factor = alpha - fi + 1.0;
            log_comb += factor.abs().ln() - fi.ln();
            if factor < 0.0 {
                sign = -sign;
            }
        }
        let j = alpha - fi;
        let log_s0 = log_comb
            + fi * ln_q
            + j * ln_1mq
            + (fi * fi - fi) / two_var
            + ln_half
            + ln_erfc((fi - z0) / erfc_scale);
        let log_s1 = log_comb
            + j * ln_q
            + fi * ln_1mq
            + (j * j - j) / two_var
            + ln_half
            + ln_erfc((z0 - j) / erfc_scale);
        let term_sign = match series {
            FractionalSeries::Magnitude => 1.0,
            FractionalSeries::Signed => sign,
        };
        total.add(term_sign, log_s0);
        total.add(term_sign, log_s1);
        if log_s0 < last0 && log_s1 < last1 && log_s0.max(log_s1) < total.log - 30.0 {
            return if total.sign > 0.0 {
                total.log
            } else {
                f64::INFINITY
            };
        }
        last0 = log_s0;
        last1 = log_s1;
    }
    f64::INFINITY
}

/// ln erfc(x), accurate far into the upper tail through the scaled erfcx(x) = e^{x²} erfc(x).
fn ln_erfc(x: f64) -> f64 {
    if x > 0.0 {
        puruspe::erfcx(x).ln() - x * x
    } else {
        puruspe::erfc(x).ln()
    }
}

/// ln(e^a + e^b).
fn log_add(a: f64, b: f64) -> f64 {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    hi + (lo - hi).exp().ln_1p()
}

/// A real number as a sign (−1, 0 or 1) and the log of its magnitude.
#[derive(Clone, Copy)]
struct SignedLog {
    sign: f64,
    log: f64,
}

impl SignedLog {
    const ZERO: Self = Self {
        sign: 0.0,
        log: f64::NEG_INFINITY,
    };

    /// Adds `sign · e^log`.
    fn add(&mut self, sign: f64, log: f64) {
        if log == f64::NEG_INFINITY {
            return;
        }
        if self.sign == 0.0 {
            *self = Self { sign, log };
        } else if self.sign == sign {
            self.log = log_add(self.log, log);
        } else if log > self.log {
            *self = Self {
                sign,
                log: log + (-(self.log - log).exp()).ln_1p(),
            };
        } else if log < self.log {
            self.log += (-(log - self.log).exp()).ln_1p();
        } else {
            *self = Self::ZERO;
        }
    }
}

fn invalid(msg: impl Into<String>) -> CoreError {
    CoreError::Invalid(msg.into())
}

fn check_rate_and_steps(q: f64, steps: u64) -> CoreResult<()> {
    if !(q > 0.0 && q <= 1.0) {
        Err(invalid(format!("the sample rate q must be in (0, 1], got {q}")))
    } else if steps == 0 {
        Err(invalid("steps must be at least 1"))
    } else {
        Ok(())
    }
}

fn check_mechanism(q: f64, sigma: f64, steps: u64) -> CoreResult<()> {
    check_rate_and_steps(q, steps)?;
    if sigma.is_finite() && sigma >= 0.0 {
        Ok(())
    } else {
        let msg = format!("the noise multiplier must be a finite number ≥ 0, got {sigma}");
        Err(invalid(msg))
    }
}

fn check_delta(delta: f64) -> CoreResult<()> {
    if delta > 0.0 && delta < 1.0 {
        Ok(())
    } else {
        Err(invalid(format!("δ must be in (0, 1), got {delta}")))
    }
}

fn check_orders(orders: &[f64]) -> CoreResult<()> {
    match orders.iter().find(|a| a.is_nan() || **a < 1.0) {
        Some(a) => Err(invalid(format!("RDP orders must be at least 1, got {a}"))),
        None if orders.is_empty() => Err(invalid("no RDP orders given")),
        None => Ok(()),
    }
}

fn check_curve(orders: &[f64], rdp: &[f64]) -> CoreResult<()> {
    check_orders(orders)?;
    let (n, m) = (orders.len(), rdp.len());
    if n == m {
        Ok(())
    } else {
        Err(invalid(format!("{n} RDP orders but {m} RDP values")))
    }
}

/// Serde for an ε that may be ∞: JSON has no infinity, so ∞ is written as null and read back.
mod serde_inf {
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }
}

#[cfg(test)]
#[path = "accountant_tests.rs"]
mod tests;
