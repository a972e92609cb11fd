//! Sampling: ancestral (Ho et al. 2020, Algorithm 2, through the clipped x0 prediction and the
//! posterior q(x_{t-1} | x_t, x0), eq. 6-7, as guided-diffusion does with `clip_denoised`) and
//! DDIM (Song et al. 2021, eq. 12, eta = 0 deterministic). Both run on a respaced schedule. Every
//! image has its own seeded noise stream, so the same seed gives the same images whatever the
//! batch size.

use candle_core::Tensor;

use super::denoiser::Denoiser;
use super::model::{NormalStream, batch_noise, to_bytes};
use super::schedule::Schedule;
use crate::error::CoreResult;
use crate::job::JobCtx;

/// Which sampler.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Sampler {
    /// Ancestral DDPM sampling over `steps` respaced steps (T for the original).
    Ancestral {
        /// Respaced steps.
        steps: usize,
    },
    /// DDIM over `steps` steps with stochasticity `eta` (0 = deterministic).
    Ddim {
        /// Respaced steps.
        steps: usize,
        /// 0 deterministic, 1 like ancestral.
        eta: f64,
    },
}

impl Sampler {
    /// Short label for results.
    pub fn label(&self) -> String {
        match self {
            Self::Ancestral { steps } => format!("ancestral, {steps} steps"),
            Self::Ddim { steps, eta } => format!("DDIM, {steps} steps, eta {eta}"),
        }
    }
}

/// The clipped x0 prediction and the noise consistent with it, at respaced step `i`.
pub fn predict_x0(m: &dyn Denoiser, s: &Schedule, x: &Tensor, i: usize) -> CoreResult<(Tensor, Tensor)> {
    let b = x.dim(0)?;
    let t = vec![s.timesteps[i] as u32; b];
    let eps = m.eps_inference(x, &t)?;
    let ab = s.alpha_bar[i];
    let x0 = ((x - (eps * (1.0 - ab).sqrt())?)? / ab.sqrt())?.clamp(-1f32, 1f32)?;
    let eps = ((x - (&x0 * ab.sqrt())?)? / (1.0 - ab).sqrt())?;
    Ok((x0, eps))
}

/// One ancestral step from respaced step `i` to `i - 1`, with `noise` for the posterior sample.
pub fn ancestral_step(
    m: &dyn Denoiser,
    s: &Schedule,
    x: &Tensor,
    i: usize,
    noise: &Tensor,
) -> CoreResult<Tensor> {
    let (x0, _) = predict_x0(m, s, x, i)?;
    let ab = s.alpha_bar[i];
    let ab_prev = s.alpha_bar_prev(i);
    let beta = s.betas[i];
    let c0 = beta * ab_prev.sqrt() / (1.0 - ab);
    let ct = (1.0 - ab_prev) * (1.0 - beta).sqrt() / (1.0 - ab);
    let mean = ((x0 * c0)? + (x * ct)?)?;
    if i == 0 {
        return Ok(mean);
    }
    let var = beta * (1.0 - ab_prev) / (1.0 - ab);
    Ok((mean + (noise * var.sqrt())?)?)
}

/// One DDIM step from respaced step `i` to `i - 1`.
pub fn ddim_step(
    m: &dyn Denoiser,
    s: &Schedule,
    x: &Tensor,
    i: usize,
    eta: f64,
    noise: &Tensor,
) -> CoreResult<Tensor> {
    let (x0, eps) = predict_x0(m, s, x, i)?;
    let ab = s.alpha_bar[i];
    let ab_prev = s.alpha_bar_prev(i);
    let sigma = eta * ((1.0 - ab_prev) / (1.0 - ab)).sqrt() * (1.0 - ab / ab_prev).sqrt();
    let dir = (1.0 - ab_prev - sigma * sigma).max(0.0).sqrt();
    let mut out = ((x0 * ab_prev.sqrt())? + (eps * dir)?)?;
    if sigma > 0.0 && i > 0 {
        out = (out + (noise * sigma)?)?;
    }
    Ok(out)
}

/// rote's sampler: `n` images (model range), image `j` from noise stream (seed, j). Progress
/// counts model evaluations. Models sample through [`Denoiser::generate_tensor`], which is this
/// for rote's DDPMs and diffusers' schedulers for a diffusers folder.
pub fn generate_tensor(
    m: &dyn Denoiser,
    n: usize,
    seed: u64,
    sampler: Sampler,
    batch: usize,
    ctx: &JobCtx<'_>,
) -> CoreResult<Tensor> {
    let shape = m.shape();
    let steps = match sampler {
        Sampler::Ancestral { steps } | Sampler::Ddim { steps, .. } => steps,
    };
    let s = m.schedule().respaced(steps);
    let batch = batch.max(1);
    let total = (n.div_ceil(batch) * s.len()) as u64;
    let mut done = 0u64;
    let mut outs = Vec::new();
    for start in (0..n).step_by(batch) {
        let end = (start + batch).min(n);
        let mut streams: Vec<NormalStream> =
            (start..end).map(|j| NormalStream::new(seed, j as u64)).collect();
        let mut x = batch_noise(&mut streams, shape, m.device())?;
        // Deterministic DDIM never adds noise: skip drawing and uploading it every step (each
        // image's stream is its own, so the images do not change).
        let noiseless = matches!(sampler, Sampler::Ddim { eta, .. } if eta == 0.0);
        let unused = Tensor::zeros(1, x.dtype(), m.device())?;
        for i in (0..s.len()).rev() {
            ctx.checkpoint()?;
            let z = if noiseless {
                unused.clone()
            } else {
                batch_noise(&mut streams, shape, m.device())?
            };
            // Detached: the weights are variables, so without this every step would keep the
            // whole chain of activations alive for a backward pass that never comes.
            x = match sampler {
                Sampler::Ancestral { .. } => ancestral_step(m, &s, &x, i, &z)?,
                Sampler::Ddim { eta, .. } => ddim_step(m, &s, &x, i, eta, &z)?,
            }
            .detach();
            done += 1;
            ctx.progress("sampling", done, total);
        }
        outs.push(x);
    }
    Ok(Tensor::cat(&outs, 0)?)
}

/// Generates `n` images as bytes in the data set's format (C x H x W, `max_value` = white).
pub fn generate(
    m: &dyn Denoiser,
    n: usize,
    seed: u64,
    sampler: Sampler,
    batch: usize,
    max_value: u8,
    ctx: &JobCtx<'_>,
) -> CoreResult<Vec<Vec<u8>>> {
    let x = m.generate_tensor(n, seed, sampler, batch, ctx)?;
    to_bytes(&x, max_value)
}
