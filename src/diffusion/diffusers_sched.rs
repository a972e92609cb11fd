//! diffusers' DDPM and DDIM schedulers read from `scheduler_config.json`, stepping as
//! `scheduling_ddpm.py` and `scheduling_ddim.py` do (Ho et al. 2020 eq. 6-7 for the ancestral
//! step with "fixed_small" variance; Song et al. 2021 eq. 12 for DDIM):
//!
//! - betas: "linear" = torch.linspace(beta_start, beta_end, T) in f32 (its two-sided formula),
//!   "scaled_linear" = linspace of the square roots, squared; alphas_cumprod = the running f32
//!   product of 1 - beta, as torch.cumprod.
//! - timesteps for N steps: "leading" (T // N) k + steps_offset, "trailing" round(T - k T / N) - 1,
//!   "linspace" round(linspace(0, T - 1, N)), all in decreasing order; the previous timestep is
//!   t - T // N.
//! - x0 from the model output: epsilon (x - sqrt(1 - a) eps) / sqrt(a), v: sqrt(a) x - sqrt(1 - a) v,
//!   sample: the output; clipped to ±clip_sample_range when clip_sample.
//! - DDIM (eta 0): x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev) eps_hat, a_prev = 1 at the end when
//!   set_alpha_to_one (else alphas_cumprod[0]).
//! - DDPM: mean = sqrt(a_prev) beta_t / (1 - a) x0 + sqrt(alpha_t) (1 - a_prev) / (1 - a) x, plus
//!   sqrt(variance) z when t > 0, variance = (1 - a_prev) / (1 - a) beta_t ("fixed_small", at least
//!   1e-20) or beta_t ("fixed_large").
//!
//! Tested against diffusers' own steps (`tests/diffusers_interop.rs`).

use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::Value;

use crate::error::{CoreError, CoreResult};

/// Which scheduler the config names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedulerKind {
    /// `DDPMScheduler` (ancestral sampling).
    Ddpm,
    /// `DDIMScheduler`.
    Ddim,
}

/// What the model predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prediction {
    /// The noise.
    Epsilon,
    /// v = sqrt(a) eps - sqrt(1 - a) x0.
    V,
    /// x0 itself.
    Sample,
}

/// A diffusers scheduler configuration.
#[derive(Clone, Debug)]
pub struct DiffusersScheduler {
    /// DDPM or DDIM.
    pub kind: SchedulerKind,
    /// Training timesteps T.
    pub num_train_timesteps: usize,
    /// alphas_cumprod[t] for t in 0..T.
    pub alphas_cumprod: Vec<f32>,
    /// What the model predicts.
    pub prediction: Prediction,
    /// Clip x0 to ±`clip_range`.
    pub clip_sample: bool,
    /// The clipping range.
    pub clip_range: f32,
    /// DDIM's final a_prev = 1 (else alphas_cumprod[0]).
    pub set_alpha_to_one: bool,
    /// Added to "leading" timesteps.
    pub steps_offset: usize,
    /// "leading", "trailing" or "linspace".
    pub spacing: String,
    /// DDPM variance: "fixed_large" instead of "fixed_small".
    pub fixed_large: bool,
}

/// torch.linspace(start, end, n) in f32 (the first half counted from start, the rest from end).
fn linspace_f32(start: f32, end: f32, n: usize) -> Vec<f32> {
    if n == 1 {
        return vec![start];
    }
    let step = (end - start) / (n - 1) as f32;
    (0..n)
        .map(|i| {
            if i < n / 2 {
                start + step * i as f32
            } else {
                end - step * (n - 1 - i) as f32
            }
        })
        .collect()
}

impl DiffusersScheduler {
    /// Reads and checks `dir/scheduler_config.json`.
    pub fn read(dir: &Path) -> CoreResult<Self> {
        let (path, v) = super::diffusers_config::read_json(dir, "scheduler_config.json")?;
        Self::from_value(&v, &path)
    }

    /// Parses `text` (the contents of `path`, which errors name).
    pub fn from_json(path: &Path, text: &str) -> CoreResult<Self> {
        Self::from_value(&super::diffusers_config::parse_json(path, text)?, path)
    }

    /// The scheduler in `v` (read from `path`, which errors name).
    pub fn from_value(v: &Value, path: &Path) -> CoreResult<Self> {
        let bad = |why: String| CoreError::format(path, why);
        let s = |key: &str, default: &str| -> String {
            v.get(key).and_then(Value::as_str).unwrap_or(default).to_string()
        };
        let f = |key: &str, default: f64| v.get(key).and_then(Value::as_f64).unwrap_or(default);
        let b = |key: &str, default: bool| v.get(key).and_then(Value::as_bool).unwrap_or(default);
        let kind = match s("_class_name", "DDPMScheduler").as_str() {
            "DDPMScheduler" => SchedulerKind::Ddpm,
            "DDIMScheduler" => SchedulerKind::Ddim,
            other => {
                return Err(bad(format!(
                    "_class_name is {other}; rote samples with DDPMScheduler or DDIMScheduler"
                )));
            }
        };
        let t = v
            .get("num_train_timesteps")
            .and_then(Value::as_u64)
            .unwrap_or(1000) as usize;
        crate::model::limits::in_range("num_train_timesteps", t, crate::model::limits::T_MAX).map_err(bad)?;
        if v.get("trained_betas").is_some_and(|x| !x.is_null()) {
            return Err(bad("trained_betas is not supported; use beta_schedule".into()));
        }
        if b("thresholding", false) || b("rescale_betas_zero_snr", false) {
            return Err(bad(
                "thresholding and rescale_betas_zero_snr are not supported".into()
            ));
        }
        let (b0, b1) = (f("beta_start", 1e-4) as f32, f("beta_end", 0.02) as f32);
        let betas = match s("beta_schedule", "linear").as_str() {
            "linear" => linspace_f32(b0, b1, t),
            "scaled_linear" => linspace_f32(b0.sqrt(), b1.sqrt(), t)
                .iter()
                .map(|x| x * x)
                .collect(),
            other => {
                return Err(bad(format!(
                    "beta_schedule is {other}; rote supports linear and scaled_linear"
                )));
            }
        };
        let mut acc = 1f32;
        let alphas_cumprod = betas
            .iter()
            .map(|beta| {
                acc *= 1.0 - beta;
                acc
            })
            .collect();
        let prediction = match s("prediction_type", "epsilon").as_str() {
            "epsilon" => Prediction::Epsilon,
            "v_prediction" => Prediction::V,
            "sample" => Prediction::Sample,
            other => return Err(bad(format!("prediction_type is {other}"))),
        };
        let spacing = s("timestep_spacing", "leading");
        if !["leading", "trailing", "linspace"].contains(&spacing.as_str()) {
            return Err(bad(format!("timestep_spacing is {spacing}")));
        }
        let fixed_large = match s("variance_type", "fixed_small").as_str() {
            "fixed_small" => false,
            "fixed_large" => true,
            other => {
                return Err(bad(format!(
                    "variance_type is {other}; rote supports fixed_small and fixed_large"
                )));
            }
        };
        Ok(Self {
            kind,
            num_train_timesteps: t,
            alphas_cumprod,
            prediction,
            clip_sample: b("clip_sample", true),
            clip_range: f("clip_sample_range", 1.0) as f32,
            set_alpha_to_one: b("set_alpha_to_one", true),
            steps_offset: v.get("steps_offset").and_then(Value::as_u64).unwrap_or(0) as usize,
            spacing,
            fixed_large,
        })
    }

    /// The timesteps of an `n`-step run, in the order they are visited.
    pub fn timesteps(&self, n: usize) -> Vec<usize> {
        let t = self.num_train_timesteps;
        let n = n.clamp(1, t);
        let mut ts: Vec<usize> = match self.spacing.as_str() {
            "trailing" => {
                let r = t as f64 / n as f64;
                (0..n)
                    .map(|k| ((t as f64 - k as f64 * r).round() as usize).saturating_sub(1))
                    .collect()
            }
            "linspace" => (0..n)
                .rev()
                .map(|k| (k as f64 * (t - 1) as f64 / (n - 1).max(1) as f64).round() as usize)
                .collect(),
            _ => (0..n).rev().map(|k| k * (t / n) + self.steps_offset).collect(),
        };
        ts.iter_mut().for_each(|x| *x = (*x).min(t - 1));
        ts
    }

    fn a(&self, t: isize, end: f32) -> f32 {
        if t >= 0 {
            self.alphas_cumprod[(t as usize).min(self.alphas_cumprod.len() - 1)]
        } else {
            end
        }
    }

    /// x0 and the noise implied by the model `output` at timestep `t` for the sample `x`.
    fn x0_eps(&self, output: &Tensor, t: usize, x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let a = f64::from(self.a(t as isize, 1.0));
        let (sa, sb) = (a.sqrt(), (1.0 - a).sqrt());
        let (x0, eps) = match self.prediction {
            Prediction::Epsilon => (((x - (output * sb)?)? / sa)?, output.clone()),
            Prediction::V => (((x * sa)? - (output * sb)?)?, ((output * sa)? + (x * sb)?)?),
            Prediction::Sample => (output.clone(), ((x - (output * sa)?)? / sb)?),
        };
        let x0 = if self.clip_sample {
            let r = f64::from(self.clip_range);
            x0.clamp(-r, r)?
        } else {
            x0
        };
        Ok((x0, eps))
    }

    /// One DDIM step (eta 0) from timestep `t` of an `n`-step run.
    pub fn ddim_step(&self, output: &Tensor, t: usize, x: &Tensor, n: usize) -> candle_core::Result<Tensor> {
        let prev = t as isize - (self.num_train_timesteps / n.max(1)) as isize;
        let end = if self.set_alpha_to_one {
            1.0
        } else {
            self.alphas_cumprod[0]
        };
        let a_prev = f64::from(self.a(prev, end));
        let (x0, eps) = self.x0_eps(output, t, x)?;
        (x0 * a_prev.sqrt())? + (eps * (1.0 - a_prev).sqrt())?
    }

    /// One ancestral DDPM step from timestep `t` of an `n`-step run; `noise` is the variance
    /// noise (unused at t = 0).
    pub fn ddpm_step(
        &self,
        output: &Tensor,
        t: usize,
        x: &Tensor,
        n: usize,
        noise: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let prev = t as isize - (self.num_train_timesteps / n.max(1)) as isize;
        let a_t = self.a(t as isize, 1.0);
        let a_prev = self.a(prev, 1.0);
        let (beta_prod, beta_prod_prev) = (1.0 - a_t, 1.0 - a_prev);
        let alpha_t = a_t / a_prev;
        let beta_t = 1.0 - alpha_t;
        let (x0, _) = self.x0_eps(output, t, x)?;
        let c0 = f64::from(a_prev.sqrt() * beta_t / beta_prod);
        let ct = f64::from(alpha_t.sqrt() * beta_prod_prev / beta_prod);
        let mean = ((x0 * c0)? + (x * ct)?)?;
        if t == 0 {
            return Ok(mean);
        }
        let var = if self.fixed_large {
            beta_t
        } else {
            (beta_prod_prev / beta_prod * beta_t).max(1e-20)
        };
        mean + (noise * f64::from(var.sqrt()))?
    }
}

/// How `sample` draws: DDIM (eta 0) or ancestral DDPM steps, `steps` of them.
#[derive(Clone, Copy, Debug)]
pub struct SampleSpec {
    /// Ancestral (DDPM) instead of DDIM.
    pub ancestral: bool,
    /// Sampler steps.
    pub steps: usize,
    /// Images.
    pub samples: usize,
    /// Seed of the noise streams (one per image, as rote's own sampler).
    pub seed: u64,
}

/// Samples the diffusers UNet `unet` with `sched`: from `x_t` (N x C x S x S) when given, else
/// seeded noise; returns the final samples in the model's value range, before any
/// quantization. Batches of 16 images; `ctx` reports progress and cancels.
pub fn sample(
    unet: &super::diffusers_unet::DiffusersUnet,
    sched: &DiffusersScheduler,
    spec: SampleSpec,
    x_t: Option<Tensor>,
    device: &Device,
    ctx: &crate::job::JobCtx<'_>,
) -> CoreResult<Tensor> {
    use super::model::{NormalStream, batch_noise};
    let c = unet.config();
    let shape = [c.in_channels, c.sample_size, c.sample_size];
    let n = x_t.as_ref().map_or(Ok(spec.samples), |x| x.dim(0))?;
    let ts = sched.timesteps(spec.steps);
    let steps = ts.len();
    let mut out = Vec::new();
    for start in (0..n).step_by(16) {
        let b = 16.min(n - start);
        let mut streams: Vec<NormalStream> = (start..start + b)
            .map(|i| NormalStream::new(spec.seed, i as u64))
            .collect();
        let mut x = match &x_t {
            Some(x) => x.narrow(0, start, b)?,
            None => batch_noise(&mut streams, shape, device)?,
        };
        for (k, &t) in ts.iter().enumerate() {
            ctx.checkpoint()?;
            let tt = Tensor::new(vec![t as f32; b], device)?;
            let output = unet.forward(&x, &tt)?;
            x = if spec.ancestral {
                let z = batch_noise(&mut streams, shape, device)?;
                sched.ddpm_step(&output, t, &x, steps, &z)?
            } else {
                sched.ddim_step(&output, t, &x, steps)?
            };
            ctx.progress(
                "sampling",
                (start * steps + (k + 1) * b) as u64,
                (n * steps) as u64,
            );
        }
        out.push(x);
    }
    Ok(Tensor::cat(&out, 0)?)
}
