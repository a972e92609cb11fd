//! Tests of the membership inference attacks (planted, null and hand-computed zoos).
use super::lira::{SIGMA_FLOOR, logit_confidence};
use super::stats::ln_norm_pdf;
use super::*;

mod brute;

/// xorshift64* generator.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unif(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let u1 = self.unif().max(1e-300);
        let u2 = self.unif();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

struct Zoo {
    k: usize,
    n: usize,
    member: Vec<bool>,
    loss: Vec<f32>,
}

impl Zoo {
    fn view(&self) -> ZooView<'_> {
        ZooView {
            k: self.k,
            n: self.n,
            member: &self.member,
            loss: &self.loss,
        }
    }
}

/// K models; samples 0..n_train: each model trains on a seeded random half; samples
/// n_train..n_train+n_pop: never trained on. A member sample with `signal(i)` gets loss
/// 0.3·base_i + noise, everything else base_i + noise, base_i ~ U(0.5, 2.5).
fn synthetic(k: usize, n_train: usize, n_pop: usize, seed: u64, signal: impl Fn(usize) -> bool) -> Zoo {
    let n = n_train + n_pop;
    let mut rng = Rng(seed);
    let base: Vec<f64> = (0..n).map(|_| 0.5 + 2.0 * rng.unif()).collect();
    let mut member = vec![false; k * n];
    let mut loss = vec![0f32; k * n];
    for t in 0..k {
        let mut idx: Vec<usize> = (0..n_train).collect();
        for j in (1..n_train).rev() {
            let r = (rng.next_u64() % (j as u64 + 1)) as usize;
            idx.swap(j, r);
        }
        for &i in &idx[..n_train / 2] {
            member[t * n + i] = true;
        }
        for i in 0..n {
            let m = member[t * n + i];
            let mean = if m && signal(i) { 0.3 * base[i] } else { base[i] };
            loss[t * n + i] = (mean + 0.05 * rng.normal()).max(1e-3) as f32;
        }
    }
    Zoo { k, n, member, loss }
}

fn configs() -> Vec<(Attack, MiaConfig)> {
    let mut v: Vec<(Attack, MiaConfig)> = Attack::ALL.iter().map(|&a| (a, MiaConfig::default())).collect();
    v.push((
        Attack::LiraOnline,
        MiaConfig {
            fix_variance: true,
            ..MiaConfig::default()
        },
    ));
    v.push((
        Attack::LiraOffline,
        MiaConfig {
            fix_variance: true,
            ..MiaConfig::default()
        },
    ));
    v.push((
        Attack::Rmia,
        MiaConfig {
            rmia_offline: true,
            ..MiaConfig::default()
        },
    ));
    v
}

/// Loss that gives logit-scaled confidence φ: ℓ = ln(1 + e^{−φ}).
fn loss_for_phi(phi: f64) -> f32 {
    (-phi).exp().ln_1p() as f32
}

#[test]
fn planted_signal_is_found_and_lira_beats_loss_at_low_fpr() {
    let zoo = synthetic(32, 400, 200, 7, |_| true);
    let eval: Vec<usize> = (0..400).collect();
    let pop: Vec<usize> = (400..600).collect();
    let mut tpr1 = std::collections::HashMap::new();
    for (attack, cfg) in configs() {
        let r = run_attack(&zoo.view(), attack, &eval, &pop, &cfg).unwrap();
        eprintln!(
            "{attack:?} fix_var={} rmia_off={}: auc {:.4} tpr@0.1% {:.4} tpr@1% {:.4}",
            cfg.fix_variance, cfg.rmia_offline, r.auc, r.tpr_at_0_1pct_fpr, r.tpr_at_1pct_fpr
        );
        assert!(r.auc > 0.85, "{attack:?} {cfg:?}: auc {}", r.auc);
        assert_eq!(r.n_targets, 32);
        assert_eq!(r.n_scores, 32 * 400);
        assert_eq!(r.auc, r.roc.auc);
        assert_eq!(r.vulnerability.len(), 600);
        assert!(r.vulnerability[400..].iter().all(|v| v.is_nan()));
        if !cfg.fix_variance && !cfg.rmia_offline {
            tpr1.insert(attack, r.tpr_at_1pct_fpr);
        }
    }
    let (lira, loss) = (tpr1[&Attack::LiraOnline], tpr1[&Attack::Loss]);
    assert!(lira > loss + 0.2, "LiRA TPR@1% {lira} vs LOSS {loss}");
    assert!(lira > 0.9, "LiRA TPR@1% {lira}");
}

#[test]
fn null_zoo_gives_chance() {
    let zoo = synthetic(32, 400, 200, 11, |_| false);
    let eval: Vec<usize> = (0..400).collect();
    let pop: Vec<usize> = (400..600).collect();
    for (attack, cfg) in configs() {
        let r = run_attack(&zoo.view(), attack, &eval, &pop, &cfg).unwrap();
        assert!((r.auc - 0.5).abs() < 0.06, "{attack:?} {cfg:?}: auc {}", r.auc);
    }
}

#[test]
fn lira_hand_computed_scores() {
    // One sample, five models. φ: target 0 (IN) 1; IN shadows 0 and 4; OUT shadows -1 and -3.
    let phis = [1.0, 0.0, 4.0, -1.0, -3.0];
    let zoo = Zoo {
        k: 5,
        n: 1,
        member: vec![true, true, true, false, false],
        loss: phis.iter().map(|&p| loss_for_phi(p)).collect(),
    };
    let cfg = MiaConfig::default();
    let (on, t, _) = attack_scores(&zoo.view(), Attack::LiraOnline, &[0], &[], &cfg).unwrap();
    assert_eq!(t, 5);
    // Target 0: μ_in = 2, σ_in = 2 (ddof 0); μ_out = −2, σ_out = 1.
    // ln N(1; 2, 4) − ln N(1; −2, 1) = (−ln 2 − 1/8) − (−9/2) = 4.375 − ln 2.
    let want = 4.375 - 2f64.ln();
    assert!((on[0] - want).abs() < 1e-5, "{} vs {want}", on[0]);
    // Target 3 (OUT, φ = −1): IN shadows {1, 0, 4}: μ = 5/3, σ² = 26/9; a single OUT shadow
    // (−3) so μ_out = −3 with the global σ_out, which falls back to 1 (no sample has two OUT
    // shadows, and all OUT values pooled are just one).
    let (mu, var): (f64, f64) = (5.0 / 3.0, 26.0 / 9.0);
    let want3 = (-0.5 * var.ln() - (-1.0 - mu).powi(2) / (2.0 * var)) - (-(2.0f64.powi(2)) / 2.0);
    assert!((on[3] - want3).abs() < 1e-5, "{} vs {want3}", on[3]);

    let (off, _, _) = attack_scores(&zoo.view(), Attack::LiraOffline, &[0], &[], &cfg).unwrap();
    // Target 0: ln Φ((1 − (−2)) / 1) = ln Φ(3).
    assert!((off[0] - (-0.001_350_809_964_748_2)).abs() < 1e-6, "{}", off[0]);

    // LOSS is −loss.
    let (loss, _, _) = attack_scores(&zoo.view(), Attack::Loss, &[0], &[], &cfg).unwrap();
    for (s, l) in loss.iter().zip(&zoo.loss) {
        assert_eq!(*s, -f64::from(*l));
    }
}

#[test]
fn vulnerability_finds_planted_samples() {
    let zoo = synthetic(32, 400, 200, 23, |i| i < 20);
    let eval: Vec<usize> = (0..400).collect();
    let pop: Vec<usize> = (400..600).collect();
    for (attack, cfg) in configs() {
        let r = run_attack(&zoo.view(), attack, &eval, &pop, &cfg).unwrap();
        let v = &r.vulnerability;
        assert!(v[..400].iter().all(|x| (0.0..=1.0).contains(x)));
        let planted = v[..20].iter().map(|&x| f64::from(x)).sum::<f64>() / 20.0;
        let rest = v[20..400].iter().map(|&x| f64::from(x)).sum::<f64>() / 380.0;
        eprintln!("{attack:?} {cfg:?}: planted {planted:.3} rest {rest:.3}");
        assert!(planted > 0.8, "{attack:?} {cfg:?}: planted {planted}");
        assert!((rest - 0.5).abs() < 0.05, "{attack:?} {cfg:?}: rest {rest}");
    }
}

#[test]
fn per_sample_vulnerability_is_a_pairwise_fraction() {
    // One sample, targets 0..4: members 0 and 1 with LOSS scores −0.1, −0.5; non-members 2, 3
    // with −0.3, −0.5. Pairs (m, nm): (0,2) win, (0,3) win, (1,2) loss, (1,3) tie → 2.5 / 4.
    let zoo = Zoo {
        k: 4,
        n: 2,
        member: vec![true, false, true, true, false, false, false, true],
        loss: vec![0.1, 1.0, 0.5, 1.0, 0.3, 1.0, 0.5, 1.0],
    };
    let r = run_attack(&zoo.view(), Attack::Loss, &[0, 1], &[], &MiaConfig::default()).unwrap();
    assert!((r.vulnerability[0] - 0.625).abs() < 1e-6);
    // Sample 1 has all losses tied: 0.5.
    assert!((r.vulnerability[1] - 0.5).abs() < 1e-6);
    // With targets 0 and 1 only, sample 0 has no non-member target: NaN. Sample 1 has one of
    // each, tied: 0.5.
    let cfg = MiaConfig {
        max_targets: 2,
        ..MiaConfig::default()
    };
    let r = run_attack(&zoo.view(), Attack::Loss, &[0, 1], &[], &cfg).unwrap();
    assert_eq!(r.n_targets, 2);
    assert!(r.vulnerability[0].is_nan());
    assert!((r.vulnerability[1] - 0.5).abs() < 1e-6);
}

#[test]
fn ln_norm_cdf_is_accurate_in_the_tails() {
    let cases = [
        (-40.0, -804.608_442_013_753_8),
        (-30.0, -454.321_243_956_343_1),
        (-20.0, -203.917_155_371_097_24),
        (-10.0, -53.231_285_150_512_46),
        (-5.0, -15.064_998_393_988_724),
        (-1.0, -1.841_021_645_009_263_4),
        (0.0, -std::f64::consts::LN_2),
        (3.0, -0.001_350_809_964_748_202_7),
        (10.0, -7.619_853_024_160_593e-24),
    ];
    for (x, want) in cases {
        let got = ln_norm_cdf(x);
        // The erfc approximation has relative error < 1.2e-7: an absolute error that small in
        // ln Φ for x <= 0, a relative one for x > 0.
        let tol = 3e-7 * want.abs().min(1.0);
        assert!((got - want).abs() <= tol, "ln Φ({x}) = {got}, want {want}");
    }
    assert_eq!(ln_norm_cdf(f64::INFINITY), 0.0);
    assert_eq!(ln_norm_cdf(f64::NEG_INFINITY), f64::NEG_INFINITY);
    assert!(ln_norm_cdf(f64::NAN).is_nan());
    // Monotone across 0 and finite far out.
    let mut prev = f64::NEG_INFINITY;
    for j in -4000..=4000 {
        let v = ln_norm_cdf(j as f64 * 0.01);
        assert!(v.is_finite() && v >= prev, "at {}", j as f64 * 0.01);
        prev = v;
    }
    assert!(ln_norm_cdf(-1e6).is_finite());
}

#[test]
fn logit_confidence_is_stable() {
    // p = 0.5 → φ = 0; p = e/(1+e) → φ = 1; tiny and huge losses stay finite.
    assert!(logit_confidence(std::f32::consts::LN_2).abs() < 1e-6);
    assert!((logit_confidence(loss_for_phi(1.0)) - 1.0).abs() < 1e-5);
    assert!((logit_confidence(0.0) - 69.077_552_789_821_37).abs() < 1e-9);
    assert!(logit_confidence(f32::INFINITY).is_finite());
    assert!((logit_confidence(50.0) + 50.0).abs() < 1e-9);
}

#[test]
fn rejects_bad_input() {
    let zoo = synthetic(4, 10, 5, 3, |_| true);
    let v = zoo.view();
    let cfg = MiaConfig::default();
    let eval: Vec<usize> = (0..10).collect();
    let pop: Vec<usize> = (10..15).collect();
    assert!(run_attack(&v, Attack::Loss, &eval, &pop, &cfg).is_ok());
    assert!(run_attack(&v, Attack::Loss, &[], &pop, &cfg).is_err());
    assert!(run_attack(&v, Attack::Loss, &[15], &pop, &cfg).is_err());
    assert!(run_attack(&v, Attack::Rmia, &eval, &[15], &cfg).is_err());
    assert!(run_attack(&v, Attack::Rmia, &eval, &[], &cfg).is_err());
    assert!(
        run_attack(
            &v,
            Attack::Rmia,
            &eval,
            &pop,
            &MiaConfig {
                rmia_gamma: 0.0,
                ..cfg.clone()
            }
        )
        .is_err()
    );
    assert!(
        run_attack(
            &v,
            Attack::Rmia,
            &eval,
            &pop,
            &MiaConfig {
                rmia_a: 1.5,
                ..cfg.clone()
            }
        )
        .is_err()
    );
    assert!(
        run_attack(
            &v,
            Attack::Loss,
            &eval,
            &pop,
            &MiaConfig {
                max_targets: 0,
                ..cfg.clone()
            }
        )
        .is_err()
    );
    let short = ZooView {
        loss: &zoo.loss[1..],
        ..v
    };
    assert!(run_attack(&short, Attack::Loss, &eval, &pop, &cfg).is_err());
    let short = ZooView {
        member: &zoo.member[1..],
        ..v
    };
    assert!(run_attack(&short, Attack::Loss, &eval, &pop, &cfg).is_err());
    let one = ZooView {
        k: 1,
        n: 15,
        member: &zoo.member[..15],
        loss: &zoo.loss[..15],
    };
    assert!(run_attack(&one, Attack::Loss, &eval, &pop, &cfg).is_err());
    let mut nan = zoo.loss.clone();
    nan[7] = f32::NAN;
    assert!(run_attack(&ZooView { loss: &nan, ..v }, Attack::Loss, &eval, &pop, &cfg).is_err());
    // Only non-members evaluated: no ROC.
    assert!(run_attack(&v, Attack::Loss, &pop, &pop, &cfg).is_err());
    // LiRA with shadows that trained on everything has no OUT data.
    let all = Zoo {
        k: 3,
        n: 2,
        member: vec![true; 6],
        loss: vec![0.1; 6],
    };
    assert!(run_attack(&all.view(), Attack::LiraOffline, &[0, 1], &[], &cfg).is_err());
}

#[test]
fn deterministic_and_serde_names() {
    let zoo = synthetic(16, 300, 100, 5, |_| true);
    let eval: Vec<usize> = (0..300).collect();
    let pop: Vec<usize> = (300..400).collect();
    for attack in Attack::ALL {
        let a = run_attack(&zoo.view(), attack, &eval, &pop, &MiaConfig::default()).unwrap();
        let b = run_attack(&zoo.view(), attack, &eval, &pop, &MiaConfig::default()).unwrap();
        assert_eq!(a.roc, b.roc);
        assert_eq!(
            a.vulnerability.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            b.vulnerability.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }
    assert_eq!(
        serde_json::to_string(&Attack::LiraOnline).unwrap(),
        "\"lira-online\""
    );
    assert_eq!(serde_json::from_str::<Attack>("\"rmia\"").unwrap(), Attack::Rmia);
    let cfg: MiaConfig = serde_json::from_str("{\"rmia_gamma\": 2.0}").unwrap();
    assert_eq!((cfg.rmia_gamma, cfg.rmia_a, cfg.max_targets), (2.0, 0.3, 64));
}

#[test]
fn slugs_match_serde_names() {
    for a in Attack::ALL {
        assert_eq!(serde_json::to_value(a).unwrap(), a.slug());
    }
}
