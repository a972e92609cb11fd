//! Sampled generation ([`CausalLm::generate_sampled_batch`]) against planted truth: on a trigram
//! model that memorized some sequences, the frequency with which sampling reproduces a suffix
//! equals its teacher-forced probability p_z (the quantity (n, p)-extraction is built on), and the
//! degenerate settings (top-1, a vanishing temperature) are greedy decoding.

use super::measure_tests::{Trigram, V, corpus};
use super::{CausalLm, Sampling};
use crate::error::CoreResult;

const K: usize = 12;

fn model() -> (Trigram, Vec<Vec<u32>>) {
    let (members, _, _) = corpus();
    // The first 10 members seen 20 times, the rest once.
    let data: Vec<(&[u32], usize)> = members
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_slice(), if i < 10 { 20 } else { 1 }))
        .collect();
    (Trigram::train(V, &data), members)
}

/// Fraction of `draws` samples after `seq[..K]` that reproduce `seq[K..K + m]`, and the
/// teacher-forced p_z of that suffix.
fn empirical_and_teacher_forced(lm: &Trigram, seq: &[u32], m: usize, draws: usize) -> CoreResult<(f64, f64)> {
    let prompt = &seq[..K];
    let prompts = vec![prompt; draws];
    let out = lm.generate_sampled_batch(&prompts, m, &Sampling::default())?;
    let hits = out.iter().filter(|g| g[..] == seq[K..K + m]).count();
    let lp = lm.token_logprobs(&seq[..K + m])?;
    let ln_p_z: f64 = lp[K - 1..].iter().map(|&x| f64::from(x)).sum();
    Ok((hits as f64 / draws as f64, ln_p_z.exp()))
}

#[test]
fn sampling_reproduces_a_suffix_as_often_as_its_probability() -> CoreResult<()> {
    let (lm, members) = model();
    let draws = 4000;
    // A member seen 20 times (p_z high) and one seen once (p_z small but far above chance).
    for (seq, m) in [(&members[0], 8), (&members[20], 3)] {
        let (freq, p_z) = empirical_and_teacher_forced(&lm, seq, m, draws)?;
        let sigma = (p_z * (1.0 - p_z) / draws as f64).sqrt();
        assert!(p_z > 0.05, "planted suffix should be likely: p_z {p_z}");
        assert!(
            (freq - p_z).abs() < 4.0 * sigma + 1e-3,
            "sampled {freq} vs teacher-forced p_z {p_z} (sigma {sigma})"
        );
    }
    Ok(())
}

#[test]
fn top_one_and_a_cold_temperature_are_greedy() -> CoreResult<()> {
    let (lm, members) = model();
    let prompts: Vec<&[u32]> = members[..10].iter().map(|s| &s[..K]).collect();
    let greedy = lm.generate_greedy_batch(&prompts, 10)?;
    let top1 = Sampling {
        top_k: Some(1),
        seed: 3,
        ..Sampling::default()
    };
    assert_eq!(lm.generate_sampled_batch(&prompts, 10, &top1)?, greedy);
    let cold = Sampling {
        temperature: 1e-4,
        seed: 5,
        ..Sampling::default()
    };
    assert_eq!(lm.generate_sampled_batch(&prompts, 10, &cold)?, greedy);
    // And greedy reproduces the memorized members.
    for (g, s) in greedy.iter().zip(&members) {
        assert_eq!(g[..], s[K..K + 10]);
    }
    Ok(())
}

#[test]
fn a_seed_fixes_the_draws_and_bad_settings_are_refused() -> CoreResult<()> {
    let (lm, members) = model();
    let prompts: Vec<&[u32]> = members[20..30].iter().map(|s| &s[..K]).collect();
    let s = Sampling {
        seed: 9,
        ..Sampling::default()
    };
    let a = lm.generate_sampled_batch(&prompts, 6, &s)?;
    assert_eq!(a, lm.generate_sampled_batch(&prompts, 6, &s)?);
    let other = Sampling { seed: 10, ..s };
    assert_ne!(a, lm.generate_sampled_batch(&prompts, 6, &other)?);
    for bad in [
        Sampling {
            temperature: 0.0,
            ..s
        },
        Sampling {
            temperature: f64::NAN,
            ..s
        },
        Sampling { top_k: Some(0), ..s },
    ] {
        assert!(lm.generate_sampled_batch(&prompts, 2, &bad).is_err(), "{bad:?}");
    }
    Ok(())
}

#[test]
fn top_k_only_draws_the_k_most_likely() {
    let logits = [0.0f32, 5.0, 1.0, 4.0, -2.0];
    let s = Sampling {
        top_k: Some(2),
        ..Sampling::default()
    };
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
    let mut seen = [0usize; 5];
    for _ in 0..2000 {
        seen[s.draw(&logits, &mut rng) as usize] += 1;
    }
    assert_eq!(seen[0] + seen[2] + seen[4], 0, "{seen:?}");
    // p(1) / p(3) = e^1 within the top two.
    let ratio = seen[1] as f64 / seen[3] as f64;
    assert!((ratio - std::f64::consts::E).abs() < 0.4, "{seen:?}");
}
