#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use super::*;

fn close(x: f64, y: f64, tol: f64) -> bool {
    (x - y).abs() <= tol * y.abs().max(1e-300)
}

/// Reference values from scipy 1.x: `mannwhitneyu(a, b, alternative="greater",
/// method="asymptotic")` and `ttest_ind(a, b, equal_var=False, alternative="greater")`.
#[test]
fn matches_scipy_with_ties_and_without() {
    let a = [0.03, 0.5, 1.0, 1.0, 0.06, 0.06, 0.2, 1.0];
    let b = [0.03, 0.03, 0.06, 0.06, 0.03, 0.1, 0.03];
    let r = rank_test(&a, &b).unwrap();
    assert_eq!(r.u, 47.0);
    assert!(close(r.p_value, 0.013_584_884_396_479_193, 1e-9), "{r:?}");
    assert!(close(r.welch_t, 2.687_976_250_308_163, 1e-9), "{r:?}");
    assert!(close(r.welch_df, 7.055_333_062_297_608, 1e-9), "{r:?}");
    assert!(close(r.welch_p, 0.015_473_929_403_611_714, 1e-6), "{r:?}");
    let a = [1.2, 3.4, 2.2, 0.5, -1.0];
    let b = [0.1, -0.3, 2.0, 1.1, 0.0, 0.4];
    let r = rank_test(&a, &b).unwrap();
    assert_eq!(r.u, 21.0);
    assert!(close(r.p_value, 0.157_651_226_040_872_78, 1e-9), "{r:?}");
    assert!(close(r.welch_p, 0.211_834_033_228_022_86, 1e-6), "{r:?}");
    assert!(close(r.auc, 21.0 / 30.0, 1e-12));
}

#[test]
fn separated_sets_reject_and_identical_sets_do_not() {
    let a: Vec<f64> = (0..30).map(|i| 30.0 + f64::from(i)).collect();
    let b: Vec<f64> = (0..30).map(f64::from).collect();
    assert!(rank_test(&a, &b).unwrap().p_value < 1e-6);
    assert!(rank_test(&b, &a).unwrap().p_value > 0.99);
    let same = rank_test(&b, &b).unwrap();
    assert!(same.p_value > 0.4 && (same.auc - 0.5).abs() < 1e-12, "{same:?}");
    // All scores tied: no evidence either way.
    assert_eq!(rank_test(&[1.0; 4], &[1.0; 5]).unwrap().p_value, 1.0);
    assert!(rank_test(&[1.0], &[0.0, 2.0]).is_err());
    assert!(rank_test(&[1.0, f64::NAN], &[0.0, 2.0]).is_err());
}

#[test]
fn the_power_curve_finds_how_many_samples_a_clear_effect_needs() {
    let a: Vec<f64> = (0..40).map(|i| 1.0 + f64::from(i % 7) * 0.1).collect();
    let b: Vec<f64> = (0..40).map(|i| f64::from(i % 5) * 0.1).collect();
    let curve = power_curve(&a, &b, 0.05, 0).unwrap();
    assert_eq!(curve.first().unwrap().n, 2);
    assert_eq!(curve.last().unwrap().n, 40);
    assert!(curve.windows(2).all(|w| w[0].n < w[1].n));
    let n = samples_needed(&curve).unwrap();
    // Perfect separation: the asymptotic p falls below 0.05 from n = 4 per side.
    assert!((3..=6).contains(&n), "{curve:?}");
    // No effect: the power stays near alpha.
    let c = power_curve(&b, &b, 0.05, 1).unwrap();
    assert!(c.iter().all(|p| p.power < 0.2), "{c:?}");
    assert_eq!(samples_needed(&c), None);
}

#[test]
fn lcs_counts_the_longest_shared_run() {
    assert_eq!(lcs_norm(&[1, 2, 3, 4], &[1, 2, 3, 4]), 1.0);
    assert_eq!(lcs_norm(&[9, 2, 3, 9], &[1, 2, 3, 4]), 0.5);
    assert_eq!(lcs_norm(&[4, 3, 2, 1], &[1, 2, 3, 4]), 0.25);
    assert_eq!(lcs_norm(&[5, 6], &[1, 2, 3, 4]), 0.0);
    assert_eq!(lcs_norm(&[1], &[]), 0.0);
}

#[test]
fn halves_are_disjoint_and_cover_the_set() {
    let xs: Vec<f64> = (0..21).map(f64::from).collect();
    let (a, b) = halves(&xs, 3);
    assert_eq!((a.len(), b.len()), (10, 11));
    let mut all: Vec<f64> = a.iter().chain(&b).copied().collect();
    all.sort_by(f64::total_cmp);
    assert_eq!(all, xs);
}
