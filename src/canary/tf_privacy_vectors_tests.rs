//! Parity with TF Privacy's exposure functions (`secret_sharer/exposures.py`): its own unit-test
//! vector and further inputs, run through TF Privacy's code by
//! `benches/peers/fidelity/tf_privacy_exposure.py` into
//! `benches/peers/fidelity/tf_privacy_exposure.json` (see `docs/fidelity.md`).

use std::collections::BTreeMap;

use super::exposure::{SkewNormal, exposure_extrapolation, exposure_interpolation};

const FIXTURE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/benches/peers/fidelity/tf_privacy_exposure.json"
));

type Groups = BTreeMap<String, Vec<f64>>;

#[derive(serde::Deserialize)]
struct Fixture {
    interpolation_tf_test: Interp,
    interpolation_ties: Interp,
    extrapolation: Extra,
}

#[derive(serde::Deserialize)]
struct Interp {
    perplexities: Groups,
    references: Vec<f64>,
    tf_privacy: Groups,
    test_expected: Option<Groups>,
}

#[derive(serde::Deserialize)]
struct Fit {
    shape: f64,
    loc: f64,
    scale: f64,
    mean_nll: f64,
}

#[derive(serde::Deserialize)]
struct Extra {
    references: Vec<f64>,
    perplexities: Groups,
    scipy_fit: Fit,
    tf_privacy: BTreeMap<String, Vec<Option<f64>>>,
    mpmath_at_scipy_fit: Groups,
}

fn fixture() -> Fixture {
    serde_json::from_str(FIXTURE).unwrap()
}

/// rote keeps the input order; TF Privacy returns each group sorted by perplexity.
fn in_tf_order(perplexities: &[f64], exposures: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..perplexities.len()).collect();
    idx.sort_by(|&a, &b| perplexities[a].total_cmp(&perplexities[b]));
    idx.into_iter().map(|i| exposures[i]).collect()
}

fn check_interpolation(case: &Interp) {
    let rote = exposure_interpolation(&case.perplexities, &case.references).unwrap();
    assert_eq!(
        rote.keys().collect::<Vec<_>>(),
        case.tf_privacy.keys().collect::<Vec<_>>()
    );
    for (key, tf) in &case.tf_privacy {
        let ours = in_tf_order(&case.perplexities[key], &rote[key]);
        assert_eq!(ours.len(), tf.len(), "group {key}");
        for (a, b) in ours.iter().zip(tf) {
            assert!((a - b).abs() < 1e-12, "group {key}: rote {a} TF Privacy {b}");
        }
    }
}

#[test]
fn interpolation_matches_tf_privacy_and_its_unit_test() {
    let f = fixture();
    check_interpolation(&f.interpolation_tf_test);
    // The expectations TF Privacy's exposures_test.py asserts, through rote.
    let expected = f.interpolation_tf_test.test_expected.as_ref().unwrap();
    let rote = exposure_interpolation(
        &f.interpolation_tf_test.perplexities,
        &f.interpolation_tf_test.references,
    )
    .unwrap();
    for (key, want) in expected {
        for (a, b) in rote[key].iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "group {key}: rote {a} expected {b}");
        }
    }
    // Ties to the references, unsorted secrets, several groups.
    check_interpolation(&f.interpolation_ties);
}

#[test]
fn extrapolation_fit_and_exposures_match_scipy_and_tf_privacy() {
    let e = fixture().extrapolation;
    let (rote, fit) = exposure_extrapolation(&e.perplexities, &e.references).unwrap();
    let scipy = SkewNormal {
        shape: e.scipy_fit.shape,
        loc: e.scipy_fit.loc,
        scale: e.scipy_fit.scale,
    };
    // Both are maximum-likelihood fits: rote's likelihood is at least scipy's.
    let (ours_nll, scipy_nll) = (fit.mean_nll(&e.references), scipy.mean_nll(&e.references));
    assert!(
        (scipy_nll - e.scipy_fit.mean_nll).abs() < 1e-10,
        "rote's density = scipy's logpdf"
    );
    assert!(
        ours_nll <= scipy_nll + 1e-9,
        "rote NLL {ours_nll} scipy {scipy_nll}"
    );
    let d_params = [
        (fit.shape - scipy.shape).abs(),
        (fit.loc - scipy.loc).abs(),
        (fit.scale - scipy.scale).abs(),
    ];
    assert!(d_params.iter().all(|&d| d < 5e-5), "fit {fit:?} scipy {scipy:?}");
    let mut worst_fit = 0f64;
    let mut worst_cdf = 0f64;
    for (key, values) in &e.perplexities {
        for (k, &p) in values.iter().enumerate() {
            // rote's CDF at scipy's parameters against 60-digit quadrature: the tail-safe evaluation.
            let hp = e.mpmath_at_scipy_fit[key][k];
            let at_scipy = scipy.exposure(p);
            worst_cdf = worst_cdf.max((at_scipy - hp).abs() / hp.max(1.0));
            assert!(
                (at_scipy - hp).abs() <= 1e-12 * hp.max(1.0),
                "{key} {p}: rote {at_scipy} mpmath {hp}"
            );
            // The whole pipeline (rote's own fit) against TF Privacy's numbers, where scipy's CDF
            // is finite.
            if let Some(tf) = e.tf_privacy[key][k] {
                let d = (rote[key][k] - tf).abs() / tf.max(1.0);
                worst_fit = worst_fit.max(d);
                assert!(d < 5e-5, "{key} {p}: rote {} TF Privacy {tf}", rote[key][k]);
            }
        }
    }
    eprintln!(
        "extrapolation: fit |d(shape, loc, scale)| = {:.1e} {:.1e} {:.1e}, NLL rote {ours_nll:.12} scipy \
         {scipy_nll:.12}; exposures vs TF Privacy within {worst_fit:.1e} (relative, >= 1 bit); \
         rote's CDF at scipy's fit vs mpmath within {worst_cdf:.1e}",
        d_params[0], d_params[1], d_params[2]
    );
}
