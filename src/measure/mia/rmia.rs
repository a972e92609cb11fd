//! **RMIA** (Zarifzadeh, Liu, Cheng & Shokri 2024, "Low-Cost High-Power Membership Inference
//! Attacks", ICML; the pairwise likelihood ratio LR_θ(x, z) and Score_MIA), with
//! `p(x|θ) = exp(−ℓ_θ(x))`:
//!
//! ```text
//! P(x)          = mean over reference models θ' of p(x|θ')          (online: all models ≠ t)
//! P(x)          = ((1 + a)·P_OUT(x) + (1 − a)) / 2                   (offline: OUT references only)
//! LR_t(x)       = p(x|θ_t) / P(x)
//! score(t, x)   = Pr_{z ∈ Z}[ LR_t(x) / LR_t(z) ≥ γ ]
//! ```
//!
//! In log space throughout; the population's ln LR_t(z) are sorted once per target so a score is
//! a binary search.

use rayon::prelude::*;

use super::stats::{LOSS_CAP, log_add_exp};
use super::types::{MiaConfig, ZooView};

/// For sample i: ln p(i|θ_m) for every model m, and ln P_t(i) (the reference probability of
/// target t, its leave-one-out reference set) for targets 0..t_count. O(K) via prefix and suffix
/// log-sum-exps.
pub(super) fn rmia_parts(
    zoo: &ZooView<'_>,
    i: usize,
    t_count: usize,
    cfg: &MiaConfig,
) -> (Vec<f64>, Vec<f64>) {
    let (k, n) = (zoo.k, zoo.n);
    let ln_p: Vec<f64> = (0..k)
        .map(|m| -f64::from(zoo.loss[m * n + i]).clamp(0.0, LOSS_CAP))
        .collect();
    let is_out: Vec<bool> = (0..k).map(|m| !zoo.member[m * n + i]).collect();
    // Suffix log-sum-exp and counts, over all models and over OUT models.
    let neg = f64::NEG_INFINITY;
    let mut suf_all = vec![(neg, 0usize); k + 1];
    let mut suf_out = vec![(neg, 0usize); k + 1];
    for m in (0..k).rev() {
        let (a, ca) = suf_all[m + 1];
        suf_all[m] = (log_add_exp(a, ln_p[m]), ca + 1);
        let (o, co) = suf_out[m + 1];
        suf_out[m] = if is_out[m] {
            (log_add_exp(o, ln_p[m]), co + 1)
        } else {
            (o, co)
        };
    }
    let ln_hi = ((1.0 + cfg.rmia_a) / 2.0).ln();
    let ln_lo = ((1.0 - cfg.rmia_a) / 2.0).ln();
    let (mut pre_all, mut pre_out) = ((neg, 0usize), (neg, 0usize));
    let mut ln_ref = Vec::with_capacity(t_count);
    for t in 0..t_count {
        let (sa, ca) = suf_all[t + 1];
        let c_all = pre_all.1 + ca;
        let ln_mean_all = log_add_exp(pre_all.0, sa) - (c_all as f64).ln();
        ln_ref.push(if cfg.rmia_offline {
            let (so, co) = suf_out[t + 1];
            let c_out = pre_out.1 + co;
            let ln_p_out = if c_out > 0 {
                log_add_exp(pre_out.0, so) - (c_out as f64).ln()
            } else {
                ln_mean_all
            };
            log_add_exp(ln_hi + ln_p_out, ln_lo)
        } else {
            ln_mean_all
        });
        pre_all = (log_add_exp(pre_all.0, ln_p[t]), pre_all.1 + 1);
        if is_out[t] {
            pre_out = (log_add_exp(pre_out.0, ln_p[t]), pre_out.1 + 1);
        }
    }
    (ln_p, ln_ref)
}

/// RMIA's reference population: per target, ln LR_t(z) over z ∈ Z, ascending.
pub(super) struct RmiaPopulation {
    sorted: Vec<Vec<f64>>,
    /// How often each sample occurs in Z.
    multiplicity: Vec<usize>,
    ln_gamma: f64,
}

impl RmiaPopulation {
    pub(super) fn new(zoo: &ZooView<'_>, population: &[usize], cfg: &MiaConfig, t_count: usize) -> Self {
        let nz = population.len();
        let mut pop = vec![0.0; nz * t_count];
        pop.par_chunks_mut(t_count)
            .zip(population.par_iter())
            .for_each(|(row, &z)| {
                let (ln_p, ln_ref) = rmia_parts(zoo, z, t_count, cfg);
                for (t, v) in row.iter_mut().enumerate() {
                    *v = ln_p[t] - ln_ref[t];
                }
            });
        let sorted: Vec<Vec<f64>> = (0..t_count)
            .into_par_iter()
            .map(|t| {
                let mut v: Vec<f64> = (0..nz).map(|j| pop[j * t_count + t]).collect();
                v.sort_unstable_by(f64::total_cmp);
                v
            })
            .collect();
        let mut multiplicity = vec![0usize; zoo.n];
        for &z in population {
            multiplicity[z] += 1;
        }
        Self {
            sorted,
            multiplicity,
            ln_gamma: cfg.rmia_gamma.ln(),
        }
    }

    /// The fraction of z ∈ Z \ {i} with LR_t(x) / LR_t(z) >= γ, for sample i with ln LR_t(x) =
    /// `ln_lr`; `own` is i's own entry in target t's population list (used if i ∈ Z).
    pub(super) fn score(&self, t: usize, i: usize, ln_lr: f64, own: f64) -> f64 {
        let zs = &self.sorted[t];
        // LR(x) / LR(z) >= γ  <=>  ln LR(z) <= ln LR(x) − ln γ.
        let thr = ln_lr - self.ln_gamma;
        let mut count = zs.partition_point(|&v| v <= thr);
        let mult = self.multiplicity[i];
        if mult > 0 && own <= thr {
            // i itself is in Z (mult times): do not compare it with itself.
            count = count.saturating_sub(mult);
        }
        let denom = zs.len() - mult;
        if denom > 0 {
            count as f64 / denom as f64
        } else {
            0.0
        }
    }
}
