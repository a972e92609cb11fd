#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use rand::{Rng as _, SeedableRng as _};

use super::super::spurious::{SpuriousConfig, SpuriousPart, build};
use super::*;
use crate::job::{CancelToken, JobCtx, NullSink};

fn close(a: f32, b: f64) -> bool {
    (f64::from(a) - b).abs() < 1e-5
}

/// Logits whose softmax at T = 1 is exactly `p`.
fn logits_of(p: &[f64]) -> Vec<f32> {
    p.iter().map(|v| v.ln() as f32).collect()
}

/// The shift by hand, three classes, class 2 absent from the batch (spec pitfall A.6: the
/// reference builds columns only for the classes in the batch, ordered by `unique()`, so a
/// missing class changes the matrix's shape and which column means which class; rote keeps the
/// full 3 × 3 matrix with a zero column).
///
/// p_T(·|x_1) = (1/2, 1/4, 1/4), y_1 = 0; p_T(·|x_2) = (1/5, 3/5, 1/5), y_2 = 1; |B| = 2.
/// P̂(ŷ, y): column y = 0 is p_1 / 2 = (1/4, 1/8, 1/8), column 1 is p_2 / 2 = (1/10, 3/10, 1/10),
/// column 2 is zero. Rows normalised: P̂(y|ŷ=0) = (5/7, 2/7, 0), P̂(y|ŷ=1) = (5/17, 12/17, 0),
/// P̂(y|ŷ=2) = (5/9, 4/9, 0). Then
/// shift_1(0) = ln(1/2·5/7 + 1/4·5/17 + 1/4·5/9 + 1e-6), shift_1(1) = ln(1/2·2/7 + 1/4·12/17 +
/// 1/4·4/9 + 1e-6), shift_2(0) = ln(1/5·5/7 + 3/5·5/17 + 1/5·5/9 + 1e-6), shift_2(1) =
/// ln(1/5·2/7 + 3/5·12/17 + 1/5·4/9 + 1e-6), and shift_i(2) = ln(1e-6).
#[test]
fn shift_matches_a_hand_computed_batch_with_a_missing_class() {
    let ho = vec![logits_of(&[0.5, 0.25, 0.25]), logits_of(&[0.2, 0.6, 0.2])];
    let shift = mat_shift(&ho, &[0, 1], 3, 1.0);
    assert_eq!(shift.len(), 6);
    let eps = 1e-6_f64;
    let expected = [
        (0.5 * 5.0 / 7.0 + 0.25 * 5.0 / 17.0 + 0.25 * 5.0 / 9.0 + eps).ln(),
        (0.5 * 2.0 / 7.0 + 0.25 * 12.0 / 17.0 + 0.25 * 4.0 / 9.0 + eps).ln(),
        eps.ln(),
        (0.2 * 5.0 / 7.0 + 0.6 * 5.0 / 17.0 + 0.2 * 5.0 / 9.0 + eps).ln(),
        (0.2 * 2.0 / 7.0 + 0.6 * 12.0 / 17.0 + 0.2 * 4.0 / 9.0 + eps).ln(),
        eps.ln(),
    ];
    for (k, (&s, &e)) in shift.iter().zip(&expected).enumerate() {
        assert!(close(s, e), "entry {k}: {s} vs {e}");
    }
    // The calibrated held-out probabilities of the present classes sum to one per example.
    for i in 0..2 {
        let total: f64 = (0..2).map(|y| f64::from(shift[3 * i + y]).exp() - eps).sum();
        assert!((total - 1.0).abs() < 1e-5, "{total}");
    }
}

/// Dividing the logits by T: T = 0.5 on logits z is T = 1 on 2z; a small T makes the held-out
/// probabilities nearly hard, and a held-out mistake then shifts the logits towards the wrong
/// class.
#[test]
fn temperature_divides_the_logits() {
    let ho = vec![
        vec![0.3f32, -0.2],
        vec![0.2, -0.1],
        vec![0.25, 0.0],
        vec![-0.1, 0.4],
    ];
    let doubled: Vec<Vec<f32>> = ho.iter().map(|r| r.iter().map(|v| 2.0 * v).collect()).collect();
    let labels = [0, 0, 1, 1];
    let a = mat_shift(&ho, &labels, 2, 0.5);
    let b = mat_shift(&doubled, &labels, 2, 1.0);
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-6, "{x} vs {y}");
    }
    // At T = 0.01 the held-out predictions are hard: (0, 0, 0, 1). Of the three examples predicted
    // 0, two are labelled 0, so P̂(y|ŷ=0) = (2/3, 1/3): example 3 (label 1, predicted 0) gets the
    // shift (ln 2/3, ln 1/3), favouring the wrong class; example 4 gets (ln 1e-6, ln(1 + 1e-6)).
    let sharp = mat_shift(&ho, &labels, 2, 0.01);
    assert!(close(sharp[4], (2.0f64 / 3.0 + 1e-6).ln()), "{sharp:?}");
    assert!(close(sharp[5], (1.0f64 / 3.0 + 1e-6).ln()), "{sharp:?}");
    assert!(
        close(sharp[6], 1e-6f64.ln()) && close(sharp[7], (1.0f64 + 1e-6).ln()),
        "{sharp:?}"
    );
}

/// A part of `n` rows of random features with random labels (nothing to learn but memorization).
fn random_part(n: usize, dim: usize, seed: u64) -> SpuriousPart {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let features: Vec<f32> = (0..n * dim).map(|_| rng.random_range(-1.0..1.0)).collect();
    let labels: Vec<u32> = (0..n).map(|_| rng.random_range(0..2)).collect();
    let attribute: Vec<u32> = (0..n).map(|_| rng.random_range(0..2)).collect();
    let groups = labels.iter().zip(&attribute).map(|(y, m)| 2 * y + m).collect();
    SpuriousPart {
        n,
        dim,
        features,
        clean_labels: labels.clone(),
        labels,
        attribute,
        groups,
        source_rows: (0..n).collect(),
    }
}

fn accuracy(logits: &[Vec<f32>], labels: &[u32]) -> f64 {
    let pred = argmax_rows(logits);
    pred.iter().zip(labels).filter(|(p, y)| p == y).count() as f64 / labels.len() as f64
}

/// Held-out logits come from the twin that did not train on the example: exactly that twin's
/// logits, and on random labels (where only memorization helps) the held-in twin fits its
/// labels while the held-out predictions stay at chance, as a single model's training
/// predictions would not.
#[test]
fn held_out_logits_come_from_the_other_twin() {
    let part = random_part(240, 24, 7);
    let cfg = MatConfig {
        hidden: vec![128],
        batch_size: 32,
        lr: 1e-2,
        xrm_steps: 300,
        seed: 3,
        ..MatConfig::default()
    };
    let cancel = CancelToken::new();
    let ctx = JobCtx::new(&cancel, &NullSink);
    let out = xrm_held_out(&part, &cfg, &ctx).unwrap();
    let x = Tensor::from_slice(&part.features, (part.n, part.dim), &Device::Cpu).unwrap();
    let (la, lb) = (out.net_a.logits(&x).unwrap(), out.net_b.logits(&x).unwrap());
    let in_a = out.held_in_a.iter().filter(|&&a| a).count();
    assert!(in_a > 80 && in_a < 160, "{in_a} of 240 held in for A");
    for i in 0..part.n {
        let (inn, other) = if out.held_in_a[i] {
            (&la[i], &lb[i])
        } else {
            (&lb[i], &la[i])
        };
        assert_eq!(&out.held_out[i], other, "example {i}");
        assert_eq!(&out.held_in[i], inn, "example {i}");
    }
    let held_in = accuracy(&out.held_in, &out.dynamic_labels);
    let held_out = accuracy(&out.held_out, &part.labels);
    assert!(held_in > 0.9, "held-in accuracy on the dynamic labels {held_in}");
    assert!(held_out < 0.65, "held-out accuracy on random labels {held_out}");
    assert!((0.0..=1.0).contains(&out.flip_rate));
}

/// The coloured digits: exact agreement rates and label noise, groups g = 2y + m, the digit in
/// channel m only, labels from the digit, and the same set for the same seed.
#[test]
fn spurious_set_has_the_stated_rates_and_groups() {
    let cfg = SpuriousConfig {
        data: "digits8x8".into(),
        stride: 1,
        label_noise: 0.1,
        ..SpuriousConfig::default()
    };
    let set = build(&cfg).unwrap();
    assert_eq!(set.shape, [2, 8, 8]);
    let ds = crate::data::load("digits8x8").unwrap();
    for (part, agreement, noise) in [(&set.train, 0.9, 0.1), (&set.test, 0.5, 0.0)] {
        let n = part.n as f64;
        assert_eq!(part.dim, 128);
        assert!(
            (part.agreement() - agreement).abs() <= 0.5 / n + 1e-12,
            "{}",
            part.agreement()
        );
        assert!(
            (part.noise() - noise).abs() <= 0.5 / n + 1e-12,
            "{}",
            part.noise()
        );
        for i in 0..part.n {
            let (y, m) = (part.labels[i], part.attribute[i]);
            assert_eq!(part.groups[i], 2 * y + m);
            assert_eq!(
                part.clean_labels[i],
                u32::from(ds.labels[part.source_rows[i]] < 5)
            );
            let row = &part.features[i * 128..(i + 1) * 128];
            let other = &row[(1 - m as usize) * 64..(2 - m as usize) * 64];
            assert!(
                other.iter().all(|&v| v == 0.0),
                "example {i}: ink outside channel {m}"
            );
            let ink = &row[m as usize * 64..(m as usize + 1) * 64];
            assert!(ink.iter().any(|&v| v > 0.0) && ink.iter().all(|&v| v <= 1.0));
        }
    }
    let counts = set.train.group_counts();
    // Majority groups (colour = label) hold 90 % of training.
    let majority = (counts[0] + counts[3]) as f64 / set.train.n as f64;
    assert!((majority - 0.9).abs() < 1e-3, "{counts:?}");
    assert_eq!(set.description.train_groups, counts);
    assert_eq!(set.train.n + set.test.n, ds.n);
    let again = build(&cfg).unwrap();
    assert_eq!(again.train.features, set.train.features);
    assert_eq!(again.train.labels, set.train.labels);
    let other = build(&SpuriousConfig {
        seed: 1,
        ..cfg.clone()
    })
    .unwrap();
    assert_ne!(other.train.attribute, set.train.attribute);
    assert!(
        build(&SpuriousConfig {
            train_agreement: 1.5,
            ..cfg
        })
        .is_err()
    );
}

#[test]
fn worst_group_is_the_minimum_over_groups() {
    // Groups 0..3: 2/2, 1/2, 0/1 right, group 3 empty.
    let f = figures(&[0, 0, 0, 1, 0], &[0, 0, 0, 0, 1], &[0, 0, 1, 1, 2]);
    assert!((f.average - 0.6).abs() < 1e-12);
    assert_eq!(f.worst, 2);
    assert_eq!(f.worst_group, 0.0);
    assert_eq!(f.groups[1].accuracy, Some(0.5));
    assert_eq!(f.groups[3].accuracy, None);
    assert_eq!((f.groups[2].label, f.groups[2].attribute), (1, 0));
}

/// A short run end to end: the same config gives the same report, and bad settings are refused.
#[test]
fn a_short_run_is_deterministic() {
    let cfg = MatConfig {
        data: SpuriousConfig {
            data: "digits8x8".into(),
            stride: 1,
            max_train: 300,
            ..SpuriousConfig::default()
        },
        hidden: vec![32],
        erm_steps: 20,
        xrm_steps: 20,
        mat_steps: 20,
        ..MatConfig::default()
    };
    let cancel = CancelToken::new();
    let ctx = JobCtx::new(&cancel, &NullSink);
    let a = run(&cfg, &ctx).unwrap();
    let b = run(&cfg, &ctx).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.data.n_train, 300);
    let text = serde_json::to_string(&a).unwrap();
    let back: MatReport = serde_json::from_str(&text).unwrap();
    assert_eq!(back, a);
    for bad in [
        MatConfig {
            temperature: 0.0,
            ..cfg.clone()
        },
        MatConfig {
            batch_size: 0,
            ..cfg.clone()
        },
        MatConfig {
            mat_steps: 0,
            ..cfg.clone()
        },
    ] {
        assert!(run(&bad, &ctx).is_err());
    }
    cancel.cancel();
    assert!(run(&cfg, &ctx).unwrap_err().is_cancelled());
}
