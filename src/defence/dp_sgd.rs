//! DP-SGD (Abadi et al. 2016, "Deep Learning with Differential Privacy", Algorithm 1) as Opacus
//! runs it (spec 13 §C.1): each step draws a Poisson batch (every training row independently with
//! probability q), clips each row's gradient to norm C over all parameters jointly,
//!
//! ```text
//! g_i <- g_i * min(1, C / (||g_i||_2 + 1e-6))
//! G    = (sum_{i in B} g_i + N(0, sigma^2 C^2 I)) / (q m)
//! ```
//!
//! dividing by the expected batch size q m (m = the model's training rows), never by |B|, so the
//! noise scale does not depend on the data; then the base optimiser (SGD with momentum) steps on G.
//! The privacy cost of T such steps is that of T Poisson-subsampled Gaussian mechanisms with
//! noise multiplier sigma and rate q, counted by the Rényi-DP accountant (`accountant`).
//!
//! Per-sample gradients come batched, not one backward pass per row: for an MLP the gradient of
//! row i at layer l is the outer product of its input h_i and its output gradient d_i, so
//! `||g_i||^2 = sum_l ||d_{l,i}||^2 (||h_{l,i}||^2 + 1)` and the clipped sum is
//! `sum_l H_l^T diag(c) D_l` (`train::batched_mlp_dp`).
//!
//! Noise comes from a seeded ChaCha stream per model (reproducible demos), not Opacus's
//! `secure_mode`; hyperparameter tuning on the private data is not accounted for.

use super::accountant;
use crate::error::{CoreError, CoreResult};

/// DP-SGD as asked for: a clipping norm and either a target ε (the noise multiplier is
/// calibrated for the run's steps and sampling rate) or the noise multiplier itself.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DpSettings {
    /// Per-sample clipping norm C.
    pub clip: f64,
    /// Target ε (calibrates σ).
    pub epsilon: Option<f64>,
    /// Noise multiplier σ (the accountant then gives ε).
    pub noise_multiplier: Option<f64>,
    /// δ of the (ε, δ) guarantee.
    pub delta: f64,
}

/// What a DP run records (`zoo.json`'s `"dp"`): the guarantee and everything it depends on.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DpRecord {
    /// ε of the whole run (each model, against its own training rows) at `delta`.
    pub epsilon: f64,
    /// δ.
    pub delta: f64,
    /// Noise multiplier σ (noise std = σ C per coordinate of the summed gradient).
    pub noise_multiplier: f64,
    /// Clipping norm C.
    pub clip: f64,
    /// Poisson sampling rate q (expected batch = q m).
    pub sample_rate: f64,
    /// Steps T.
    pub steps: u64,
    /// The Rényi order at which the conversion to (ε, δ) was tightest.
    pub order: f64,
    /// How ε was counted.
    pub accountant: String,
}

impl DpSettings {
    /// One clear error for settings no run can use.
    pub fn check(&self) -> CoreResult<()> {
        let bad = |what: String| Err(CoreError::Invalid(what));
        if !(self.clip.is_finite() && self.clip > 0.0) {
            return bad(format!("--dp-clip must be a positive number, not {}", self.clip));
        }
        if !(self.delta.is_finite() && self.delta > 0.0 && self.delta < 1.0) {
            return bad(format!(
                "--dp-delta must lie strictly between 0 and 1, not {}",
                self.delta
            ));
        }
        match (self.epsilon, self.noise_multiplier) {
            (Some(e), None) if !(e.is_finite() && e > 0.0) => {
                bad(format!("--dp-epsilon must be a positive number, not {e}"))
            }
            (None, Some(s)) if !(s.is_finite() && s >= 0.0) => {
                bad(format!("--dp-noise must be a non-negative number, not {s}"))
            }
            (Some(_), Some(_)) => bad("give --dp-epsilon or --dp-noise, not both".into()),
            (None, None) => bad("DP-SGD needs --dp-epsilon E or --dp-noise S".into()),
            _ => Ok(()),
        }
    }

    /// The record of a run of `steps` steps at sampling rate `sample_rate`: σ calibrated to the
    /// target ε (the smallest σ on the accountant's grid whose ε does not exceed it), or ε of the
    /// given σ.
    pub fn record(&self, sample_rate: f64, steps: u64) -> CoreResult<DpRecord> {
        self.check()?;
        let sigma = match (self.epsilon, self.noise_multiplier) {
            (Some(e), _) => accountant::noise_for_epsilon(e, sample_rate, steps, self.delta)?,
            (_, Some(s)) => s,
            (None, None) => return Err(CoreError::Invalid("DP-SGD needs ε or σ".into())),
        };
        let acc = accountant::epsilon(sample_rate, sigma, steps, self.delta)?;
        Ok(DpRecord {
            epsilon: acc.epsilon,
            delta: self.delta,
            noise_multiplier: sigma,
            clip: self.clip,
            sample_rate,
            steps,
            order: acc.order,
            accountant: "RDP of the Poisson-subsampled Gaussian (Mironov et al. 2019), \
                         dp_accounting's orders, Balle et al. 2020 conversion"
                .into(),
        })
    }
}

/// The rows of a Poisson batch: each of `rows` independently with probability `q`.
pub fn poisson_batch(rows: &[usize], q: f64, rng: &mut impl rand::Rng) -> Vec<usize> {
    rows.iter().copied().filter(|_| rng.random::<f64>() < q).collect()
}

/// Adds N(0, std²) to every value of `v` and multiplies by `scale` (Ziggurat normals from the
/// seeded stream).
pub fn add_noise_and_scale(v: &mut [f32], std: f64, scale: f64, rng: &mut impl rand::Rng) {
    use rand_distr::Distribution as _;
    let normal = rand_distr::StandardNormal;
    for x in v {
        let z: f64 = normal.sample(rng);
        *x = ((f64::from(*x) + z * std) * scale) as f32;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests unwrap freely")]
    use rand::SeedableRng as _;

    use super::*;

    fn settings() -> DpSettings {
        DpSettings {
            clip: 1.0,
            epsilon: Some(2.0),
            noise_multiplier: None,
            delta: 1e-5,
        }
    }

    #[test]
    fn bad_settings_are_one_clear_error() {
        for (s, word) in [
            (
                DpSettings {
                    epsilon: Some(0.0),
                    ..settings()
                },
                "--dp-epsilon",
            ),
            (
                DpSettings {
                    epsilon: Some(-1.0),
                    ..settings()
                },
                "--dp-epsilon",
            ),
            (
                DpSettings {
                    clip: 0.0,
                    ..settings()
                },
                "--dp-clip",
            ),
            (
                DpSettings {
                    clip: f64::NAN,
                    ..settings()
                },
                "--dp-clip",
            ),
            (
                DpSettings {
                    delta: 1.0,
                    ..settings()
                },
                "--dp-delta",
            ),
            (
                DpSettings {
                    delta: 0.0,
                    ..settings()
                },
                "--dp-delta",
            ),
            (
                DpSettings {
                    noise_multiplier: Some(1.0),
                    ..settings()
                },
                "not both",
            ),
        ] {
            let e = s.check().unwrap_err().to_string();
            assert!(e.contains(word), "{s:?}: {e}");
        }
        settings().check().unwrap();
    }

    /// The calibrated σ meets the target: its ε is at most the target and within 2% of it.
    #[test]
    fn calibrated_noise_meets_the_target() {
        let r = settings().record(128.0 / 900.0, 280).unwrap();
        assert!(r.epsilon <= 2.0 && r.epsilon > 1.96, "{r:?}");
        let given = DpSettings {
            epsilon: None,
            noise_multiplier: Some(r.noise_multiplier),
            ..settings()
        };
        assert_eq!(given.record(128.0 / 900.0, 280).unwrap().epsilon, r.epsilon);
    }

    #[test]
    fn poisson_batches_have_the_expected_size_and_noise_its_std() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let rows: Vec<usize> = (0..10_000).collect();
        let b = poisson_batch(&rows, 0.1, &mut rng);
        assert!((b.len() as f64 - 1000.0).abs() < 4.0 * 30.0, "{}", b.len());
        let mut v = vec![1f32; 20_001];
        add_noise_and_scale(&mut v, 3.0, 0.5, &mut rng);
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = v.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>() / n;
        assert!(
            (mean - 0.5).abs() < 0.05 && (var.sqrt() - 1.5).abs() < 0.03,
            "{mean} {var}"
        );
    }
}
