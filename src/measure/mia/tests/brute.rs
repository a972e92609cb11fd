//! The O(K·n) LiRA and RMIA against straightforward O(K²·n) versions.

use super::*;

/// Straightforward O(K²·n) LiRA and RMIA, to check the O(K·n) ones.
struct Brute<'a> {
    zoo: &'a Zoo,
    cfg: &'a MiaConfig,
    pop: &'a [usize],
}

impl Brute<'_> {
    fn phi(&self, m: usize, i: usize) -> f64 {
        logit_confidence(self.zoo.loss[m * self.zoo.n + i])
    }

    /// φ of the models not in `excl` on sample i, split into IN and OUT.
    fn split(&self, excl: &[usize], i: usize) -> (Vec<f64>, Vec<f64>) {
        let (mut a, mut b) = (vec![], vec![]);
        for m in (0..self.zoo.k).filter(|m| !excl.contains(m)) {
            if self.zoo.member[m * self.zoo.n + i] {
                a.push(self.phi(m, i));
            } else {
                b.push(self.phi(m, i));
            }
        }
        (a, b)
    }

    /// (mean, ddof-0 sd, sum of squared deviations).
    fn stats(v: &[f64]) -> (f64, f64, f64) {
        let mu = v.iter().sum::<f64>() / v.len() as f64;
        let ss = v.iter().map(|x| (x - mu).powi(2)).sum::<f64>();
        (mu, (ss / v.len() as f64).sqrt(), ss)
    }

    /// Global (σ_in, σ_out, μ_out) of target gt.
    fn globals(&self, gt: usize) -> (f64, f64, f64) {
        let (mut m2i, mut ni, mut m2o, mut no) = (0.0, 0.0, 0.0, 0.0);
        let (mut all_in, mut all_out) = (vec![], vec![]);
        for i in 0..self.zoo.n {
            let (a, b) = self.split(&[gt], i);
            if a.len() >= 2 {
                m2i += Self::stats(&a).2;
                ni += a.len() as f64;
            }
            if b.len() >= 2 {
                m2o += Self::stats(&b).2;
                no += b.len() as f64;
            }
            all_in.extend(a);
            all_out.extend(b);
        }
        let g = |m2: f64, c: f64, all: &[f64]| {
            let sd = if c > 0.0 {
                (m2 / c).sqrt()
            } else if all.len() >= 2 {
                Self::stats(all).1
            } else {
                1.0
            };
            sd.max(SIGMA_FLOOR)
        };
        (g(m2i, ni, &all_in), g(m2o, no, &all_out), Self::stats(&all_out).0)
    }

    /// LiRA score of model x on sample i, shadows = all models not in `excl`, globals of gt.
    fn lira(&self, online: bool, gt: usize, excl: &[usize], x: usize, i: usize) -> f64 {
        let (gsi, gso, gmo) = self.globals(gt);
        let (a, b) = self.split(excl, i);
        let fix = self.cfg.fix_variance;
        let so = if fix || b.len() < 2 {
            gso
        } else {
            Self::stats(&b).1.max(SIGMA_FLOOR)
        };
        let mo = if b.is_empty() { gmo } else { Self::stats(&b).0 };
        let v = self.phi(x, i);
        if online && !a.is_empty() {
            let si = if fix || a.len() < 2 {
                gsi
            } else {
                Self::stats(&a).1.max(SIGMA_FLOOR)
            };
            ln_norm_pdf(v, Self::stats(&a).0, si) - ln_norm_pdf(v, mo, so)
        } else {
            ln_norm_cdf((v - mo) / so)
        }
    }

    /// RMIA LR of model t on sample i with references = models not in `excl`.
    fn lr(&self, t: usize, excl: &[usize], i: usize) -> f64 {
        let (zoo, cfg) = (self.zoo, self.cfg);
        let p = |m: usize| (-f64::from(zoo.loss[m * zoo.n + i])).exp();
        let refs: Vec<usize> = (0..zoo.k).filter(|m| !excl.contains(m)).collect();
        let all: Vec<f64> = refs.iter().map(|&m| p(m)).collect();
        let outs: Vec<f64> = refs
            .iter()
            .filter(|&&m| !zoo.member[m * zoo.n + i])
            .map(|&m| p(m))
            .collect();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let pr = if cfg.rmia_offline {
            let po = if outs.is_empty() { mean(&all) } else { mean(&outs) };
            ((1.0 + cfg.rmia_a) * po + (1.0 - cfg.rmia_a)) / 2.0
        } else {
            mean(&all)
        };
        p(t) / pr
    }

    /// RMIA score of target t on sample i with LR(x) computed with references not in `excl`.
    fn rmia(&self, t: usize, excl: &[usize], i: usize) -> f64 {
        let x = self.lr(t, excl, i);
        let others: Vec<usize> = self.pop.iter().copied().filter(|&z| z != i).collect();
        let c = others
            .iter()
            .filter(|&&z| x / self.lr(t, &[t], z) >= self.cfg.rmia_gamma)
            .count();
        c as f64 / others.len() as f64
    }

    fn score(&self, attack: Attack, t: usize, i: usize) -> f64 {
        match attack {
            Attack::Loss => -f64::from(self.zoo.loss[t * self.zoo.n + i]),
            Attack::LiraOnline => self.lira(true, t, &[t], t, i),
            Attack::LiraOffline => self.lira(false, t, &[t], t, i),
            Attack::Rmia => self.rmia(t, &[t], i),
        }
    }

    /// Per-sample vulnerability, scoring each (member t, non-member u) pair leave-pair-out.
    fn vulnerability(&self, attack: Attack, t_count: usize, i: usize) -> f32 {
        let n = self.zoo.n;
        let mem: Vec<usize> = (0..t_count).filter(|&t| self.zoo.member[t * n + i]).collect();
        let non: Vec<usize> = (0..t_count).filter(|&t| !self.zoo.member[t * n + i]).collect();
        if mem.is_empty() || non.is_empty() {
            return f32::NAN;
        }
        let mut wins = 0.0;
        for &t in &mem {
            for &u in &non {
                let (a, b) = match attack {
                    Attack::LiraOnline | Attack::LiraOffline => {
                        let on = attack == Attack::LiraOnline;
                        let g = t.min(u);
                        (self.lira(on, g, &[t, u], t, i), self.lira(on, g, &[t, u], u, i))
                    }
                    Attack::Rmia if self.cfg.rmia_offline => {
                        (self.rmia(t, &[t, u], i), self.score(attack, u, i))
                    }
                    _ => (self.score(attack, t, i), self.score(attack, u, i)),
                };
                wins += if a > b {
                    1.0
                } else if a == b {
                    0.5
                } else {
                    0.0
                };
            }
        }
        (wins / (mem.len() * non.len()) as f64) as f32
    }
}

#[test]
fn fast_attacks_match_brute_force() {
    // Small zoo with random membership (so some samples have < 2 IN or OUT shadows) and
    // random losses.
    let (k, n) = (7, 40);
    let mut rng = Rng(99);
    let mut member: Vec<bool> = (0..k * n).map(|_| rng.unif() < 0.5).collect();
    // Sample 0: every model but the last trained on it; sample 1: none did.
    for t in 0..k {
        member[t * n] = t + 1 < k;
        member[t * n + 1] = false;
    }
    let loss: Vec<f32> = (0..k * n).map(|_| (0.01 + 3.0 * rng.unif()) as f32).collect();
    let zoo = Zoo { k, n, member, loss };
    let eval: Vec<usize> = (0..n).collect();
    let pop: Vec<usize> = (25..n).collect();
    let mut cases = configs();
    let d = MiaConfig::default();
    cases.push((
        Attack::Rmia,
        MiaConfig {
            rmia_gamma: 2.0,
            max_targets: 5,
            ..d.clone()
        },
    ));
    cases.push((
        Attack::Rmia,
        MiaConfig {
            rmia_offline: true,
            rmia_a: 1.0,
            ..d.clone()
        },
    ));
    cases.push((
        Attack::Rmia,
        MiaConfig {
            rmia_offline: true,
            rmia_gamma: 0.5,
            ..d.clone()
        },
    ));
    cases.push((
        Attack::LiraOnline,
        MiaConfig {
            max_targets: 3,
            ..d.clone()
        },
    ));
    for (attack, cfg) in cases {
        let (fast, t_count, _) = attack_scores(&zoo.view(), attack, &eval, &pop, &cfg).unwrap();
        assert_eq!(t_count, k.min(cfg.max_targets));
        let brute = Brute {
            zoo: &zoo,
            cfg: &cfg,
            pop: &pop,
        };
        for (j, &i) in eval.iter().enumerate() {
            for t in 0..t_count {
                let (a, b) = (fast[j * t_count + t], brute.score(attack, t, i));
                assert!(
                    (a - b).abs() < 1e-9 * (1.0 + b.abs()),
                    "{attack:?} {cfg:?} t{t} i{i}: {a} vs {b}"
                );
            }
        }
        let r = run_attack(&zoo.view(), attack, &eval, &pop, &cfg).unwrap();
        for &i in &eval {
            let (a, b) = (r.vulnerability[i], brute.vulnerability(attack, t_count, i));
            assert!(
                (a.is_nan() && b.is_nan()) || (a - b).abs() < 1e-6,
                "{attack:?} {cfg:?} i{i}: {a} vs {b}"
            );
        }
        // Sample 0's only OUT model is the last one, a target only if all 7 are; sample 1 has
        // no IN target.
        assert_eq!(r.vulnerability[0].is_nan(), t_count < k);
        assert!(r.vulnerability[1].is_nan());
    }
}
