//! **LiRA** (Carlini, Chien, Nasr, Song, Terzis & Tramèr 2022, "Membership Inference Attacks From
//! First Principles", IEEE S&P, Sec. IV and Algorithm 1), online and offline, on logit-scaled
//! confidences `φ = ln(p / (1 − p))`, `p = exp(−ℓ)`:
//!
//! ```text
//! online:  score = ln N(φ_t; μ_in, σ²_in) − ln N(φ_t; μ_out, σ²_out)      (the likelihood ratio Λ)
//! offline: score = ln Φ((φ_t − μ_out) / σ_out)                            (one-sided: 1 − Pr[Z > φ_t])
//! ```
//!
//! Leave-one-out IN/OUT moments per sample, the global ("fixed") variances per target, and the
//! score of one (target, sample) pair; the fallbacks are described in the parent module's docs.

use rayon::prelude::*;

use super::stats::{LOSS_CAP, LOSS_FLOOR, Moments, ln_norm_cdf, ln_norm_pdf};
use super::types::ZooView;
use crate::error::{CoreError, CoreResult};

/// Smallest standard deviation LiRA uses.
pub(super) const SIGMA_FLOOR: f64 = 1e-6;
/// Samples per work item in the LiRA global pass (fixed, so the reduction order is fixed).
const CHUNK: usize = 256;

/// Logit-scaled confidence φ = ln(p / (1 − p)) with p = exp(−loss).
pub(super) fn logit_confidence(loss: f32) -> f64 {
    let l = f64::from(loss).clamp(LOSS_FLOOR, LOSS_CAP);
    -l - (-(-l).exp_m1()).ln()
}

/// What LiRA knows about one (target, sample) pair.
#[derive(Clone, Copy, Debug)]
pub(super) struct LiraStats {
    /// The target's φ.
    pub(super) phi: f64,
    /// φ over the IN shadows (target excluded).
    pub(super) inn: Moments,
    /// φ over the OUT shadows (target excluded).
    pub(super) out: Moments,
}

/// Per-target global LiRA parameters.
#[derive(Clone, Copy, Debug)]
pub(super) struct LiraGlobal {
    sd_in: f64,
    sd_out: f64,
    mu_out: f64,
}

/// Leave-one-out IN/OUT moments of sample i for targets 0..t_count, in O(K).
pub(super) fn lira_loo(zoo: &ZooView<'_>, i: usize, t_count: usize) -> Vec<LiraStats> {
    let (k, n) = (zoo.k, zoo.n);
    let phi: Vec<f64> = (0..k).map(|m| logit_confidence(zoo.loss[m * n + i])).collect();
    let mut suf_in = vec![Moments::default(); k + 1];
    let mut suf_out = vec![Moments::default(); k + 1];
    for m in (0..k).rev() {
        let (mut a, mut b) = (suf_in[m + 1], suf_out[m + 1]);
        if zoo.member[m * n + i] {
            a.push(phi[m]);
        } else {
            b.push(phi[m]);
        }
        suf_in[m] = a;
        suf_out[m] = b;
    }
    let (mut pre_in, mut pre_out) = (Moments::default(), Moments::default());
    let mut out = Vec::with_capacity(t_count);
    for t in 0..t_count {
        out.push(LiraStats {
            phi: phi[t],
            inn: pre_in.merge(&suf_in[t + 1]),
            out: pre_out.merge(&suf_out[t + 1]),
        });
        if zoo.member[t * n + i] {
            pre_in.push(phi[t]);
        } else {
            pre_out.push(phi[t]);
        }
    }
    out
}

/// Per-target sums over samples for the global LiRA parameters.
#[derive(Clone, Copy, Debug, Default)]
struct GlobalAcc {
    within_in_m2: f64,
    within_in_n: f64,
    within_out_m2: f64,
    within_out_n: f64,
    all_in: Moments,
    all_out: Moments,
}

impl GlobalAcc {
    fn add(&mut self, s: &LiraStats) {
        if s.inn.n >= 2.0 {
            self.within_in_m2 += s.inn.m2;
            self.within_in_n += s.inn.n;
        }
        if s.out.n >= 2.0 {
            self.within_out_m2 += s.out.m2;
            self.within_out_n += s.out.n;
        }
        self.all_in = self.all_in.merge(&s.inn);
        self.all_out = self.all_out.merge(&s.out);
    }

    fn absorb(&mut self, o: &GlobalAcc) {
        self.within_in_m2 += o.within_in_m2;
        self.within_in_n += o.within_in_n;
        self.within_out_m2 += o.within_out_m2;
        self.within_out_n += o.within_out_n;
        self.all_in = self.all_in.merge(&o.all_in);
        self.all_out = self.all_out.merge(&o.all_out);
    }
}

/// Global σ_in, σ_out (pooled within-sample) and μ_out of each target's shadows, over all n samples.
pub(super) fn lira_globals(zoo: &ZooView<'_>, t_count: usize) -> CoreResult<Vec<LiraGlobal>> {
    let n = zoo.n;
    let partials: Vec<Vec<GlobalAcc>> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let mut acc = vec![GlobalAcc::default(); t_count];
            for i in c * CHUNK..((c + 1) * CHUNK).min(n) {
                for (a, s) in acc.iter_mut().zip(lira_loo(zoo, i, t_count).iter()) {
                    a.add(s);
                }
            }
            acc
        })
        .collect();
    let mut total = vec![GlobalAcc::default(); t_count];
    for part in &partials {
        for (a, p) in total.iter_mut().zip(part) {
            a.absorb(p);
        }
    }
    let pooled = |m2: f64, cnt: f64, all: &Moments| {
        let sd = if cnt > 0.0 {
            (m2.max(0.0) / cnt).sqrt()
        } else if all.n >= 2.0 {
            all.std()
        } else {
            1.0
        };
        sd.max(SIGMA_FLOOR)
    };
    total
        .iter()
        .enumerate()
        .map(|(t, a)| {
            if a.all_out.n == 0.0 {
                return Err(CoreError::Invalid(format!(
                    "LiRA: the shadow models of target {t} trained on every sample, so there are no OUT \
                     observations"
                )));
            }
            Ok(LiraGlobal {
                sd_in: pooled(a.within_in_m2, a.within_in_n, &a.all_in),
                sd_out: pooled(a.within_out_m2, a.within_out_n, &a.all_out),
                mu_out: a.all_out.mean,
            })
        })
        .collect()
}

/// The LiRA score of one (target, sample) pair.
pub(super) fn lira_score(s: &LiraStats, g: &LiraGlobal, online: bool, fix_variance: bool) -> f64 {
    let sd = |m: &Moments, global: f64| {
        if fix_variance || m.n < 2.0 {
            global
        } else {
            m.std().max(SIGMA_FLOOR)
        }
    };
    let sd_out = sd(&s.out, g.sd_out);
    let mu_out = if s.out.n > 0.0 { s.out.mean } else { g.mu_out };
    if online && s.inn.n > 0.0 {
        let sd_in = sd(&s.inn, g.sd_in);
        ln_norm_pdf(s.phi, s.inn.mean, sd_in) - ln_norm_pdf(s.phi, mu_out, sd_out)
    } else {
        ln_norm_cdf((s.phi - mu_out) / sd_out)
    }
}
