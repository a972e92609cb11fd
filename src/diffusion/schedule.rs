//! Noise schedules and their respacing (Ho et al. 2020 eq. 4; Nichol & Dhariwal 2021 eq. 17 for
//! the cosine schedule; guided-diffusion's respacing, which recomputes the betas from the kept
//! alpha-bars: beta'_i = 1 - abar_{s_i} / abar_{s_{i-1}}).

/// Which beta schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// Linear betas from 1e-4 to 0.02 (Ho et al.).
    Linear,
    /// Cosine alpha-bar with s = 0.008, betas clipped at 0.999 (Nichol & Dhariwal).
    Cosine,
}

/// A schedule over `t = 0..T` (the model's timestep index), possibly a respaced subset.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// The original timestep index of each kept step (ascending).
    pub timesteps: Vec<usize>,
    /// beta of each kept step.
    pub betas: Vec<f64>,
    /// alpha-bar of each kept step.
    pub alpha_bar: Vec<f64>,
}

impl Schedule {
    /// The full schedule with `t_max` steps.
    pub fn new(kind: ScheduleKind, t_max: usize) -> Self {
        let betas: Vec<f64> = match kind {
            ScheduleKind::Linear => {
                let (lo, hi) = (1e-4, 0.02);
                (0..t_max)
                    .map(|i| lo + (hi - lo) * i as f64 / (t_max.max(2) - 1) as f64)
                    .collect()
            }
            ScheduleKind::Cosine => {
                let s = 0.008;
                let f = |t: f64| {
                    ((t / t_max as f64 + s) / (1.0 + s) * std::f64::consts::FRAC_PI_2)
                        .cos()
                        .powi(2)
                };
                (0..t_max)
                    .map(|i| (1.0 - f(i as f64 + 1.0) / f(i as f64)).min(0.999))
                    .collect()
            }
        };
        let mut alpha_bar = Vec::with_capacity(t_max);
        let mut acc = 1.0;
        for b in &betas {
            acc *= 1.0 - b;
            alpha_bar.push(acc);
        }
        Self {
            timesteps: (0..t_max).collect(),
            betas,
            alpha_bar,
        }
    }

    /// The full schedule of given alpha-bars (a diffusers scheduler's `alphas_cumprod`), betas
    /// recomputed as 1 - abar_t / abar_{t-1}.
    pub fn from_alpha_bar(alpha_bar: Vec<f64>) -> Self {
        let mut prev = 1.0;
        let betas = alpha_bar
            .iter()
            .map(|&ab| {
                let b = 1.0 - ab / prev;
                prev = ab;
                b
            })
            .collect();
        Self {
            timesteps: (0..alpha_bar.len()).collect(),
            betas,
            alpha_bar,
        }
    }

    /// Number of kept steps.
    pub fn len(&self) -> usize {
        self.timesteps.len()
    }

    /// True when no step is kept.
    pub fn is_empty(&self) -> bool {
        self.timesteps.is_empty()
    }

    /// Keeps `steps` evenly spaced timesteps (always including the last), recomputing betas.
    pub fn respaced(&self, steps: usize) -> Self {
        let n = self.len();
        let steps = steps.clamp(1, n.max(1));
        let mut keep: Vec<usize> = (0..steps)
            .map(|i| ((i as f64 + 1.0) * n as f64 / steps as f64).round() as usize - 1)
            .collect();
        keep.dedup();
        let mut betas = Vec::with_capacity(keep.len());
        let mut prev = 1.0;
        let mut alpha_bar = Vec::with_capacity(keep.len());
        for &k in &keep {
            let ab = self.alpha_bar[k];
            betas.push(1.0 - ab / prev);
            alpha_bar.push(ab);
            prev = ab;
        }
        Self {
            timesteps: keep.iter().map(|&k| self.timesteps[k]).collect(),
            betas,
            alpha_bar,
        }
    }

    /// alpha-bar before step `i` (1 before the first step).
    pub fn alpha_bar_prev(&self, i: usize) -> f64 {
        if i == 0 { 1.0 } else { self.alpha_bar[i - 1] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_schedule_matches_ho_et_al() {
        let s = Schedule::new(ScheduleKind::Linear, 1000);
        assert!((s.betas[0] - 1e-4).abs() < 1e-12);
        assert!((s.betas[999] - 0.02).abs() < 1e-12);
        // Ho et al.: abar_T is about 4e-5, so x_T is nearly pure noise.
        assert!(s.alpha_bar[999] < 1e-4 && s.alpha_bar[999] > 1e-5);
    }

    #[test]
    fn cosine_schedule_is_monotone_and_ends_near_zero() {
        let s = Schedule::new(ScheduleKind::Cosine, 1000);
        assert!(s.alpha_bar.windows(2).all(|w| w[1] < w[0]));
        assert!(s.alpha_bar[999] < 1e-3);
        assert!(s.betas.iter().all(|&b| b > 0.0 && b <= 0.999));
    }

    #[test]
    fn respacing_keeps_alpha_bars_and_recomputes_betas() {
        let s = Schedule::new(ScheduleKind::Linear, 1000);
        let r = s.respaced(250);
        assert_eq!(r.len(), 250);
        assert_eq!(*r.timesteps.last().unwrap(), 999);
        for i in 0..r.len() {
            assert_eq!(r.alpha_bar[i], s.alpha_bar[r.timesteps[i]]);
            let prod: f64 = r.betas[..=i].iter().map(|b| 1.0 - b).product();
            assert!((prod - r.alpha_bar[i]).abs() < 1e-9);
        }
    }
}
