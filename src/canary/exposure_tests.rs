use super::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn close(a: f64, b: f64, tol: f64) {
    assert!((a - b).abs() <= tol, "{a} vs {b} (tol {tol})");
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box–Muller.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
}

/// Standard construction: delta |Z0| + sqrt(1 - delta^2) Z1 is skew-normal with shape a.
fn skew_samples(sn: SkewNormal, n: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let d = sn.delta();
    (0..n)
        .map(|_| {
            let z0 = normal(&mut rng).abs();
            let z1 = normal(&mut rng);
            sn.loc + sn.scale * (d * z0 + (1.0 - d * d).sqrt() * z1)
        })
        .collect()
}

#[test]
fn canary_exposure_from_rank_hand_values() {
    // log2(10^6) = 6 log2(10) = 19.9316
    close(exposure_from_rank(1, 1_000_000).unwrap(), 19.931_568_569, 1e-8);
    close(exposure_from_rank(1_000_000, 1_000_000).unwrap(), 0.0, 1e-12);
    // log2(10^6) - log2(10^3) = log2(10^3) = 9.9658
    close(exposure_from_rank(1000, 1_000_000).unwrap(), 9.965_784_285, 1e-8);
    assert!(exposure_from_rank(0, 10).is_err());
    assert!(exposure_from_rank(11, 10).is_err());
}

#[test]
fn canary_exposure_from_perplexity_list_ties_to_references() {
    // Others 0.5 and 1.0 are <= 1.0 (the tie counts against the canary): rank 3 of |R| = 5.
    let others = [0.5, 1.0, 2.0, 3.0];
    assert_eq!(rank_among(1.0, &others).unwrap(), 3);
    // log2 5 - log2 3 = 2.321928 - 1.584963 = 0.736966
    close(
        exposure_from_perplexities(1.0, &others).unwrap(),
        0.736_965_594,
        1e-8,
    );
    // Lowest of all: rank 1, exposure log2 5.
    close(
        exposure_from_perplexities(0.1, &others).unwrap(),
        5f64.log2(),
        1e-12,
    );
    assert!(rank_among(f64::NAN, &others).is_err());
}

#[test]
fn canary_tf_privacy_interpolation_fixed_list() {
    // 8 references: log2 8 = 3.
    let refs = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0];
    let mut secrets = BTreeMap::new();
    secrets.insert("a", vec![0.5, 1.0, 4.5]);
    secrets.insert("b", vec![10.0]);
    let e = exposure_interpolation(&secrets, &refs).unwrap();
    // 0.5: no reference <= it, rank 1 -> 3 - 0 = 3.
    // 1.0: both 1.0 references sort before it (ties to references), rank 3 -> 3 - log2 3 = 1.415037.
    // 4.5: 1, 1, 2, 3, 4 before it, rank 6 -> 3 - log2 6 = 0.415037.
    // 10: all 8 before it, rank 9 -> 3 - log2 9 = -0.169925 (TF Privacy does not clip).
    let a = &e["a"];
    close(a[0], 3.0, 1e-12);
    close(a[1], 1.415_037_499, 1e-8);
    close(a[2], 0.415_037_499, 1e-8);
    close(e["b"][0], -0.169_925_001, 1e-8);
    assert!(exposure_interpolation(&secrets, &[]).is_err());
}

#[test]
fn canary_normal_cdf_and_owens_t_known_values() {
    close(norm_cdf(-1.0), 0.158_655_253_931_457_07, 1e-14);
    close(norm_cdf(1.96), 0.975_002_104_851_779_5, 1e-14);
    close(norm_cdf(-5.0) / 2.866_515_718_791_939e-7, 1.0, 1e-12);
    // scipy.special.log_ndtr(-40) = -804.6084420137538
    close(ln_norm_cdf(-40.0), -804.608_442_013_753_8, 1e-9);
    // T(0, a) = atan(a) / (2 pi); T(h, 1) = Phi(h) (1 - Phi(h)) / 2.
    for a in [0.3, 1.0, 3.0, 20.0] {
        close(owens_t(0.0, a), a.atan() / (2.0 * PI), 1e-14);
    }
    let p = norm_cdf(0.7);
    close(owens_t(0.7, 1.0), 0.5 * p * (1.0 - p), 1e-14);
    close(owens_t(-0.7, -1.0), -0.5 * p * (1.0 - p), 1e-14);
}

#[test]
fn canary_skew_normal_cdf_closed_forms() {
    // F(loc; a) = 1/2 - atan(a)/pi, through the tail path (a = 4) and the Owen's T path (a = -2).
    for a in [4.0, -2.0, 0.5, 15.0] {
        let sn = SkewNormal {
            shape: a,
            loc: 1.0,
            scale: 2.0,
        };
        close(sn.cdf(1.0), 0.5 - a.atan() / PI, 1e-10);
    }
    // Shape 0 is the normal.
    let n = SkewNormal {
        shape: 0.0,
        loc: 5.0,
        scale: 2.0,
    };
    for x in [-30.0, -1.0, 3.0, 5.0, 9.0] {
        close(n.ln_cdf(x), ln_norm_cdf((x - 5.0) / 2.0), 1e-9);
    }
    // Both CDF paths agree where they meet: continuity across the switch (slope 0.5).
    let sn = SkewNormal {
        shape: 3.0,
        loc: 0.0,
        scale: 1.0,
    };
    let mut prev = sn.cdf(-3.0);
    let mut x = -3.0;
    while x < 3.0 {
        x += 0.01;
        let c = sn.cdf(x);
        assert!(c >= prev && c - prev < 0.02, "cdf jump at {x}: {prev} -> {c}");
        prev = c;
    }
}

#[test]
fn canary_skew_normal_moments_round_trip() {
    let sn = SkewNormal {
        shape: 3.0,
        loc: 1.0,
        scale: 2.0,
    };
    let m = sn.moments();
    // delta = 3/sqrt(10); mean = 1 + 2 delta sqrt(2/pi) = 2.513880.
    close(m.mean, 2.513_879_513, 1e-8);
    let back = SkewNormal::from_moments(m);
    close(back.shape, 3.0, 1e-9);
    close(back.loc, 1.0, 1e-9);
    close(back.scale, 2.0, 1e-9);
    // Sample moments of the construction match the closed form.
    let xs = skew_samples(sn, 200_000, 7);
    let s = Moments::of(&xs).unwrap();
    close(s.mean, m.mean, 0.02);
    close(s.var, m.var, 0.03 * m.var);
    close(s.skew, m.skew, 0.03);
}

#[test]
fn canary_skew_normal_mle_recovers_parameters() {
    let truth = SkewNormal {
        shape: 4.0,
        loc: 10.0,
        scale: 3.0,
    };
    let xs = skew_samples(truth, 20_000, 11);
    let fit = SkewNormal::fit_mle(&xs).unwrap();
    assert!((fit.shape - 4.0).abs() < 0.6, "{fit:?}");
    assert!((fit.loc - 10.0).abs() < 0.1, "{fit:?}");
    assert!((fit.scale - 3.0).abs() < 0.1, "{fit:?}");
    // The MLE is at least as likely as the truth and the moment start.
    let mom = SkewNormal::from_moments(Moments::of(&xs).unwrap());
    assert!(fit.mean_nll(&xs) <= truth.mean_nll(&xs) + 1e-9);
    assert!(fit.mean_nll(&xs) <= mom.mean_nll(&xs) + 1e-9);
}

#[test]
fn canary_extrapolation_on_normal_references_matches_normal_cdf() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let refs: Vec<f64> = (0..20_000).map(|_| 5.0 + 2.0 * normal(&mut rng)).collect();
    let mut secrets = BTreeMap::new();
    // Canary 3 sd below the mean: -log2 Phi(-3) = 9.5329 bits; 2 sd: -log2 Phi(-2) = 5.4580.
    secrets.insert(0, vec![-1.0, 1.0]);
    let (e, fit) = exposure_extrapolation(&secrets, &refs).unwrap();
    close(-ln_norm_cdf(-3.0) / LN_2, 9.532_934, 1e-5);
    close(e[&0][0], 9.532_934, 0.4);
    close(e[&0][1], 5.458_0, 0.25);
    assert!(fit.shape.abs() < 1.0, "{fit:?}");
}

#[test]
fn canary_exact_and_skew_normal_exposures_agree_within_a_bit() {
    let truth = SkewNormal {
        shape: 4.0,
        loc: 10.0,
        scale: 3.0,
    };
    let refs = skew_samples(truth, 100_000, 5);
    // Canary at the true 10^-3 quantile (bisection on the true CDF): about 9.97 bits.
    let (mut lo, mut hi) = (0.0, 10.0);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if truth.cdf(mid) < 1e-3 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let canary = 0.5 * (lo + hi);
    let exact = exposure_from_perplexities(canary, &refs).unwrap();
    let mut secrets = BTreeMap::new();
    secrets.insert(0, vec![canary]);
    let (e, _) = exposure_extrapolation(&secrets, &refs).unwrap();
    let extrapolated = e[&0][0];
    assert!(
        (exact - extrapolated).abs() < 1.0,
        "exact {exact} vs extrapolated {extrapolated}"
    );
    close(extrapolated, 1e3f64.log2(), 0.5);
}
