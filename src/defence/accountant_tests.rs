#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use super::*;

/// Google dp_accounting's numbers for a dozen settings (`tests/fixtures/make_dp_fixtures.py`).
const FIXTURES: &str = include_str!("../../tests/fixtures/dp_accounting.json");

fn fixtures() -> serde_json::Value {
    serde_json::from_str(FIXTURES).unwrap()
}

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or(f64::INFINITY)
}

fn rel(a: f64, b: f64) -> f64 {
    if a == b { 0.0 } else { (a - b).abs() / b.abs() }
}

#[test]
fn order_tables_are_the_libraries() {
    assert_eq!(DEFAULT_ORDERS.len(), 156);
    assert_eq!(DEFAULT_ORDERS[0], 1.1);
    assert_eq!(DEFAULT_ORDERS[98], 10.9);
    assert_eq!(DEFAULT_ORDERS[99], 11.0);
    assert_eq!(DEFAULT_ORDERS[151], 63.0);
    assert_eq!(DEFAULT_ORDERS[152..], [128.0, 256.0, 512.0, 1024.0]);
    // Python's 1 + 10 / 10.0 is exactly 2.0: an integer order (closed form).
    assert_eq!(DEFAULT_ORDERS[9], 2.0);
    assert_eq!(OPACUS_ORDERS.len(), 151);
    assert_eq!(OPACUS_ORDERS[99], 12.0);
    assert_eq!(OPACUS_ORDERS[150], 63.0);
}

/// Spec C.4, dp_accounting's `test_compute_rdp_poisson_sampled_gaussian` (rtol 1e-4).
#[test]
fn spec_rdp_vector_of_dp_accounting() {
    let orders = [1.5, 2.5, 5.0, 50.0, 100.0, f64::INFINITY];
    let want = [
        6.70579741e-4,
        1.08548710e-3,
        2.18075656e-3,
        2.38460375e-2,
        1.67416308e2,
    ];
    let got = rdp_composed(0.01, 2.5, 50, &orders).unwrap();
    for (g, w) in got.iter().zip(want) {
        assert!(rel(*g, w) < 1e-4, "{g} vs {w}");
    }
    assert_eq!(got[5], f64::INFINITY);
    // At 2.5 the signed series is within 6e-5 relative of the magnitude sum.
    let signed = rdp_composed_with(0.01, 2.5, 50, &[2.5], FractionalSeries::Signed).unwrap();
    assert!(rel(signed[0], want[1]) < 1e-4, "{}", signed[0]);
}

/// E_{z~N(0,σ²)}[((1−q) + q e^{(2z−1)/(2σ²)})^α] by the trapezoid rule (the integrand is smooth
/// and negligible beyond ±20σ, so the rule converges geometrically).
fn a_alpha_by_integration(q: f64, sigma: f64, alpha: f64) -> f64 {
    let n = 200_000;
    let (lo, hi) = (-20.0 * sigma, 20.0 * sigma + alpha);
    let h = (hi - lo) / n as f64;
    let norm = 1.0 / (sigma * (2.0 * std::f64::consts::PI).sqrt());
    let mut sum = 0.0;
    for k in 0..=n {
        let z = lo + h * k as f64;
        let ratio = (1.0 - q) + q * ((2.0 * z - 1.0) / (2.0 * sigma * sigma)).exp();
        let w = if k == 0 || k == n { 0.5 } else { 1.0 };
        sum += w * norm * (-z * z / (2.0 * sigma * sigma)).exp() * ratio.powf(alpha);
    }
    sum * h
}

/// Spec C.2: the signed series is exact (6.5007e-4 at α = 1.5), the magnitude sum an upper bound
/// (6.7058e-4).
#[test]
fn signed_series_equals_the_integral() {
    let (q, sigma, steps, alpha) = (0.01, 2.5, 50.0, 1.5);
    let integral = steps * a_alpha_by_integration(q, sigma, alpha).ln() / (alpha - 1.0);
    let signed = steps * rdp_step(q, sigma, alpha, FractionalSeries::Signed);
    let magnitude = steps * rdp_step(q, sigma, alpha, FractionalSeries::Magnitude);
    assert!(rel(signed, integral) < 1e-6, "{signed} vs {integral}");
    assert!((signed - 6.5007e-4).abs() < 5e-9, "{signed}");
    assert!((magnitude - 6.7058e-4).abs() < 5e-9, "{magnitude}");
    // Elsewhere too, and the two series agree at integer orders.
    for &(q, sigma, alpha) in &[(0.1, 1.0, 2.7), (0.05, 2.0, 1.3), (0.001, 0.7, 5.5)] {
        let exact = a_alpha_by_integration(q, sigma, alpha).ln() / (alpha - 1.0);
        let signed = rdp_step(q, sigma, alpha, FractionalSeries::Signed);
        assert!(
            rel(signed, exact) < 1e-6,
            "{q} {sigma} {alpha}: {signed} vs {exact}"
        );
        let magnitude = rdp_step(q, sigma, alpha, FractionalSeries::Magnitude);
        assert!(magnitude >= signed * (1.0 - 1e-12), "{magnitude} < {signed}");
    }
    let s = rdp_step(0.05, 1.3, 7.0, FractionalSeries::Signed);
    let m = rdp_step(0.05, 1.3, 7.0, FractionalSeries::Magnitude);
    assert_eq!(s, m);
    let exact = a_alpha_by_integration(0.05, 1.3, 7.0).ln() / 6.0;
    assert!(rel(s, exact) < 1e-6, "{s} vs {exact}");
}

/// Spec C.4, dp_accounting's `test_compute_epsilon_delta_pure_dp`.
#[test]
fn constant_rdp_is_pure_dp() {
    let orders: Vec<f64> = (2..=32).map(f64::from).collect();
    let rdp = vec![1.1; orders.len()];
    let (eps, order) = epsilon_from_rdp(&orders, &rdp, 1e-5).unwrap();
    assert!((eps - 1.32783806176).abs() < 1e-9, "{eps}");
    assert_eq!(order, 32.0);
    let (delta, order) = delta_from_rdp(&orders, &rdp, 1.32783806176).unwrap();
    assert!((delta - 1e-5).abs() < 1e-12, "{delta}");
    assert_eq!(order, 32.0);
}

/// Spec C.4, dp_accounting's `test_compute_epsilon_delta_gaussian`: σ = 4.530877117 gives exactly
/// (1, 1e-6)-DP for the full-batch Gaussian over dense orders, and back.
#[test]
fn dense_orders_gaussian_is_one_epsilon() {
    let orders: Vec<f64> = (1000..100_000).map(|i| 0.001 * f64::from(i)).collect();
    let rdp = rdp_composed(1.0, 4.530877117, 1, &orders).unwrap();
    let (eps, _) = epsilon_from_rdp(&orders, &rdp, 1e-6).unwrap();
    assert!((eps - 1.0).abs() < 1e-7, "{eps}");
    let (delta, _) = delta_from_rdp(&orders, &rdp, 1.0).unwrap();
    assert!((delta - 1e-6).abs() < 1e-7, "{delta}");
}

/// Spec C.4, Opacus's `rdp.py` docstring: two mechanisms composed, orders 2..32.
#[test]
fn opacus_docstring_composition() {
    let orders: Vec<f64> = (2..=32).map(f64::from).collect();
    let a = rdp_composed(1e-5, 1.0, 10, &orders).unwrap();
    let b = rdp_composed(1e-4, 3.0, 4, &orders).unwrap();
    let rdp: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    let (eps, order) = epsilon_from_rdp(&orders, &rdp, 1e-5).unwrap();
    assert!((eps - 0.3363).abs() < 1e-4, "{eps}");
    assert_eq!(order, 23.0);
}

/// Spec C.4 [computed]: integer orders 2–63, 128, 256 at δ = 1e-5.
#[test]
fn spec_integer_order_examples() {
    let orders: Vec<f64> = (2..=63).map(f64::from).chain([128.0, 256.0]).collect();
    for (q, sigma, steps, want, want_order) in [
        (256.0 / 60000.0, 1.1, 14_062, 2.60, 8.0),
        (0.01, 1.0, 2_000, 2.87, 7.0),
    ] {
        let rdp = rdp_composed(q, sigma, steps, &orders).unwrap();
        let (eps, order) = epsilon_from_rdp(&orders, &rdp, 1e-5).unwrap();
        assert!((eps - want).abs() < 0.005, "{eps} vs {want}");
        assert_eq!(order, want_order);
    }
}

/// Every fixture setting: composed RDP at fractional and integer orders, ε and its order over
/// both order sets, against dp_accounting.
#[test]
fn matches_dp_accounting_fixtures() {
    let fx = fixtures();
    let settings = fx["settings"].as_array().unwrap();
    assert!(settings.len() >= 12);
    let (mut worst, mut worst_rdp) = (0.0_f64, 0.0_f64);
    for s in settings {
        let name = s["name"].as_str().unwrap();
        let q = f(&s["sample_rate"]);
        let sigma = f(&s["noise_multiplier"]);
        let steps = s["steps"].as_u64().unwrap();
        let delta = f(&s["delta"]);
        let orders: Vec<f64> = s["orders"].as_array().unwrap().iter().map(f).collect();
        let rdp = rdp_composed(q, sigma, steps, &orders).unwrap();
        for ((got, want), alpha) in rdp.iter().zip(s["rdp"].as_array().unwrap()).zip(&orders) {
            let want = f(want);
            worst_rdp = worst_rdp.max(rel(*got, want));
            // Both sum ln A_α near 0 in log space: rounding of 1e-16 per step is the floor.
            let tol = 1e-6 * want.abs() + 1e-15 * steps as f64;
            assert!(
                got == &want || (got - want).abs() < tol,
                "{name} α {alpha}: {got} vs {want}"
            );
        }
        let acc = epsilon(q, sigma, steps, delta).unwrap();
        let want = f(&s["epsilon"]);
        worst = worst.max(rel(acc.epsilon, want));
        assert!(
            rel(acc.epsilon, want) < 1e-3,
            "{name}: ε {} vs {want}",
            acc.epsilon
        );
        assert_eq!(acc.order, f(&s["order"]), "{name}");
        let options = AccountantOptions {
            orders: OrderSet::Opacus,
            series: FractionalSeries::Magnitude,
        };
        let acc = epsilon_with(q, sigma, steps, delta, options).unwrap();
        let want = f(&s["epsilon_opacus_orders"]);
        worst = worst.max(rel(acc.epsilon, want));
        assert!(
            rel(acc.epsilon, want) < 1e-3,
            "{name} (Opacus orders): {} vs {want}",
            acc.epsilon
        );
        assert_eq!(acc.order, f(&s["order_opacus_orders"]), "{name}");
    }
    println!("max relative difference vs dp_accounting: ε {worst:e}, RDP {worst_rdp:e}");
    // The acceptance is 1e-3; the same formulas in the same order agree to rounding (7e-14 on
    // the development machine).
    assert!(worst < 1e-9, "{worst}");
}

/// The calibrated σ reaches the target, 0.01 less does not, and it sits just above
/// dp_accounting's root.
#[test]
fn calibration_matches_dp_accounting() {
    let fx = fixtures();
    for c in fx["calibrations"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let target = f(&c["target_epsilon"]);
        let q = f(&c["sample_rate"]);
        let steps = c["steps"].as_u64().unwrap();
        let delta = f(&c["delta"]);
        let sigma = noise_for_epsilon(target, q, steps, delta).unwrap();
        assert!(
            epsilon(q, sigma, steps, delta).unwrap().epsilon <= target,
            "{name}"
        );
        let below = epsilon(q, sigma - 0.01, steps, delta).unwrap().epsilon;
        assert!(below > target, "{name}: σ − 0.01 gives {below}");
        let root = f(&c["noise_multiplier"]);
        println!("{name}: σ {sigma} vs dp_accounting's root {root}");
        assert!(
            sigma >= root - 1e-6 && sigma - root <= 0.01,
            "{name}: {sigma} vs {root}"
        );
    }
}

#[test]
fn unreachable_target_is_an_error() {
    let err = noise_for_epsilon(1e-4, 1.0, 1000, 1e-5).unwrap_err().to_string();
    assert!(err.contains("unreachable"), "{err}");
}

#[test]
fn bad_settings_are_errors() {
    let bad = [
        (epsilon(0.0, 1.0, 10, 1e-5), "sample rate"),
        (epsilon(1.5, 1.0, 10, 1e-5), "sample rate"),
        (epsilon(f64::NAN, 1.0, 10, 1e-5), "sample rate"),
        (epsilon(0.1, -1.0, 10, 1e-5), "noise multiplier"),
        (epsilon(0.1, f64::INFINITY, 10, 1e-5), "noise multiplier"),
        (epsilon(0.1, 1.0, 0, 1e-5), "steps"),
        (epsilon(0.1, 1.0, 10, 0.0), "δ"),
        (epsilon(0.1, 1.0, 10, 1.0), "δ"),
        (epsilon(0.1, 1.0, 10, f64::NAN), "δ"),
    ];
    for (result, word) in bad {
        let err = result.unwrap_err().to_string();
        assert!(err.contains(word), "{err}");
    }
    for target in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = noise_for_epsilon(target, 0.01, 100, 1e-5)
            .unwrap_err()
            .to_string();
        assert!(err.contains("target ε"), "{err}");
    }
    assert!(noise_for_epsilon(1.0, 0.0, 100, 1e-5).is_err());
    assert!(noise_for_epsilon(1.0, 0.01, 0, 1e-5).is_err());
    assert!(noise_for_epsilon(1.0, 0.01, 100, 2.0).is_err());
    assert!(rdp_composed(0.1, 1.0, 1, &[0.5]).is_err());
    assert!(rdp_composed(0.1, 1.0, 1, &[]).is_err());
    assert!(epsilon_from_rdp(&[2.0, 3.0], &[1.0], 1e-5).is_err());
    assert!(delta_from_rdp(&[2.0], &[1.0], -1.0).is_err());
}

#[test]
fn special_cases() {
    assert_eq!(rdp_step(0.0, 1.0, 2.5, FractionalSeries::Magnitude), 0.0);
    assert_eq!(
        rdp_step(0.3, 0.0, 2.5, FractionalSeries::Magnitude),
        f64::INFINITY
    );
    assert_eq!(rdp_step(1.0, 2.0, 3.0, FractionalSeries::Magnitude), 3.0 / 8.0);
    let acc = epsilon(0.3, 0.0, 10, 1e-5).unwrap();
    assert_eq!(acc.epsilon, f64::INFINITY);
    assert!(acc.note.unwrap().contains("no order"));
}

#[test]
fn notes_warn_about_the_ends_and_dropped_orders() {
    let options = AccountantOptions {
        orders: OrderSet::Opacus,
        series: FractionalSeries::Magnitude,
    };
    let acc = epsilon_with(0.1, 10.0, 1, 1e-6, options).unwrap();
    assert_eq!(acc.order, 63.0);
    assert!(acc.note.unwrap().contains("largest order"));
    // q = 0.5: dp_accounting's magnitude series does not converge for orders just above 1.
    let acc = epsilon(0.5, 2.0, 20, 1e-5).unwrap();
    assert!(acc.note.unwrap().contains("did not converge"));
    let acc = epsilon(0.01, 1.0, 2000, 1e-5).unwrap();
    assert_eq!(acc.note, None);
}

#[test]
fn accounting_round_trips_through_json() {
    let acc = epsilon(0.01, 1.0, 100, 1e-5).unwrap();
    let text = serde_json::to_string(&acc).unwrap();
    assert_eq!(serde_json::from_str::<Accounting>(&text).unwrap(), acc);
    let inf = epsilon(0.3, 0.0, 10, 1e-5).unwrap();
    let text = serde_json::to_string(&inf).unwrap();
    assert!(text.contains(r#""epsilon":null"#), "{text}");
    assert_eq!(serde_json::from_str::<Accounting>(&text).unwrap(), inf);
}
