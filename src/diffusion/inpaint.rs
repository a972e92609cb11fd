//! Inpainting with an unconditional DDPM, and the inpainting membership attack.
//!
//! * Replacement (Song et al. 2021 / spec 06 section 1) and RePaint (Lugmayr et al., CVPR 2022,
//!   Algorithm 1 with the jump schedule of the official `get_schedule_jump_paper`): before each
//!   reverse step at t the known region is replaced by a fresh sample of q(x_t | x0) at that same
//!   t; RePaint also diffuses back ("undo", x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps with
//!   the respaced beta) and denoises again. With `jump_n_sample = 1` RePaint is the replacement
//!   method. The exact known pixels are pasted at the end.
//! * The attack (Carlini et al., USENIX Security 2023, section 4 of spec 02): complete a half-hidden
//!   training image with models that trained on it (IN) and models that did not (OUT); the error on
//!   the hidden region (l2 per pixel in [0, 1], best of N samples) is lower for IN models. The ROC
//!   of -error over IN vs OUT completions measures membership.

use candle_core::{DType, Tensor};

use super::denoiser::Denoiser;
use super::model::{NormalStream, batch_noise};
use super::sample::ancestral_step;
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;

/// Which region is hidden.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MaskKind {
    /// Left half hidden.
    Left,
    /// Right half hidden.
    Right,
    /// Top half hidden.
    Top,
    /// Bottom half hidden.
    Bottom,
    /// Central square (half the side) hidden.
    Center,
    /// Seeded random half of 2x2 blocks hidden.
    Random,
}

/// Keep mask (1 = known pixel), H x W, the RePaint convention.
pub fn keep_mask(kind: MaskKind, h: usize, w: usize, seed: u64) -> Vec<f32> {
    let mut m = vec![1f32; h * w];
    let mut r = NormalStream::new(seed, 0xA5A5);
    let mut coin = vec![0f32; h.div_ceil(2) * w.div_ceil(2)];
    r.fill(&mut coin);
    for y in 0..h {
        for x in 0..w {
            let hidden = match kind {
                MaskKind::Left => x < w / 2,
                MaskKind::Right => x >= w / 2,
                MaskKind::Top => y < h / 2,
                MaskKind::Bottom => y >= h / 2,
                MaskKind::Center => (h / 4..h - h / 4).contains(&y) && (w / 4..w - w / 4).contains(&x),
                MaskKind::Random => coin[(y / 2) * w.div_ceil(2) + x / 2] < 0.0,
            };
            if hidden {
                m[y * w + x] = 0.0;
            }
        }
    }
    m
}

/// Which inpainting method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum InpaintMethod {
    /// Conditioning by replacement (no resampling).
    Replace,
    /// RePaint with jumps and resampling.
    Repaint,
}

/// Inpainting settings (spec 06 section 4).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InpaintConfig {
    /// Method.
    pub method: InpaintMethod,
    /// Respaced steps (RePaint's t_T).
    pub steps: usize,
    /// Jump length j.
    pub jump_length: usize,
    /// Resamplings r (1 = none).
    pub jump_n_sample: usize,
}

impl Default for InpaintConfig {
    fn default() -> Self {
        Self {
            method: InpaintMethod::Repaint,
            steps: 50,
            jump_length: 5,
            jump_n_sample: 3,
        }
    }
}

/// RePaint's `get_schedule_jump_paper`: the visited respaced indices, ending with -1. Consecutive
/// entries differ by 1; a decrease is a reverse step, an increase an undo step.
pub fn jump_schedule(t_t: usize, jump_length: usize, jump_n_sample: usize) -> Vec<i64> {
    let (t_t, j) = (t_t as i64, jump_length.max(1) as i64);
    let mut jumps = std::collections::HashMap::new();
    if jump_n_sample > 1 {
        let mut t = 0;
        while t < t_t - j {
            jumps.insert(t, jump_n_sample as i64 - 1);
            t += j;
        }
    }
    let mut t = t_t;
    let mut ts = Vec::new();
    while t >= 1 {
        t -= 1;
        ts.push(t);
        if let Some(left) = jumps.get_mut(&t)
            && *left > 0
        {
            *left -= 1;
            for _ in 0..j {
                t += 1;
                ts.push(t);
            }
        }
    }
    ts.push(-1);
    ts
}

/// Completes `x0` (B x C x H x W, model range) where `keep` (H x W) is 0; noise from streams
/// (seed, stream0 + b) with `(seed, stream0) = noise`. `on_step(done, total, x)` sees every intermediate state.
pub fn inpaint(
    m: &dyn Denoiser,
    x0: &Tensor,
    keep: &[f32],
    cfg: &InpaintConfig,
    noise: (u64, u64),
    ctx: &JobCtx<'_>,
    on_step: &mut dyn FnMut(usize, usize, &Tensor),
) -> CoreResult<Tensor> {
    let [c, h, w] = m.shape();
    if keep.len() != h * w {
        return Err(CoreError::Invalid(format!(
            "mask has {} pixels, images have {}",
            keep.len(),
            h * w
        )));
    }
    let b = x0.dim(0)?;
    let (seed, stream0) = noise;
    let dev = m.device();
    let mask = Tensor::from_vec(keep.to_vec(), (1, 1, h, w), dev)?
        .broadcast_as((b, c, h, w))?
        .contiguous()?;
    let inv = (1.0 - &mask)?;
    let s = m.schedule().respaced(cfg.steps);
    let r = match cfg.method {
        InpaintMethod::Replace => 1,
        InpaintMethod::Repaint => cfg.jump_n_sample.max(1),
    };
    let ts = jump_schedule(s.len(), cfg.jump_length, r);
    let mut streams: Vec<NormalStream> = (0..b)
        .map(|k| NormalStream::new(seed, stream0 + k as u64))
        .collect();
    let shape = [c, h, w];
    let mut x = batch_noise(&mut streams, shape, dev)?;
    let no_mask = keep.iter().all(|&k| k == 0.0);
    let total = ts.len() - 1;
    for (k, pair) in ts.windows(2).enumerate() {
        ctx.checkpoint()?;
        let (last, cur) = (pair[0], pair[1]);
        if cur < last {
            let i = last as usize;
            if !no_mask {
                let ab = s.alpha_bar[i];
                let e = batch_noise(&mut streams, shape, dev)?;
                let known = ((x0 * ab.sqrt())? + (e * (1.0 - ab).sqrt())?)?;
                x = ((known * &mask)? + (&x * &inv)?)?;
            }
            let z = batch_noise(&mut streams, shape, dev)?;
            // Detached, or the chain of activations through the weights' graph piles up.
            x = ancestral_step(m, &s, &x, i, &z)?.detach();
        } else {
            let i = cur as usize;
            let beta = s.betas[i];
            let e = batch_noise(&mut streams, shape, dev)?;
            x = ((&x * (1.0 - beta).sqrt())? + (e * beta.sqrt())?)?;
        }
        on_step(k + 1, total, &x);
        ctx.progress("inpainting", (k + 1) as u64, total as u64);
    }
    Ok(((x0 * &mask)? + (x * &inv)?)?)
}

/// Error of each completion on the hidden region: sqrt(mean over hidden pixels of the squared
/// difference), pixels in [0, 1].
pub fn hidden_error(completed: &Tensor, original: &Tensor, keep: &[f32]) -> CoreResult<Vec<f64>> {
    let (b, c, h, w) = completed.dims4()?;
    let d = ((completed - original)? / 2.0)?
        .to_dtype(DType::F32)?
        .flatten_from(1)?
        .to_vec2::<f32>()?;
    let hidden = keep.iter().filter(|&&k| k == 0.0).count() * c;
    if hidden == 0 {
        return Err(CoreError::Invalid("the mask hides nothing".into()));
    }
    Ok((0..b)
        .map(|i| {
            let mut sum = 0.0f64;
            for ch in 0..c {
                for p in 0..h * w {
                    if keep[p] == 0.0 {
                        sum += f64::from(d[i][ch * h * w + p]).powi(2);
                    }
                }
            }
            (sum / hidden as f64).sqrt()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_schedule_matches_the_repaint_reference() {
        let ts = jump_schedule(250, 10, 10);
        assert_eq!(ts.len(), 4571);
        let evals = ts.windows(2).filter(|p| p[1] < p[0]).count();
        let undos = ts.windows(2).filter(|p| p[1] > p[0]).count();
        assert_eq!((evals, undos), (2410, 2160));
        assert_eq!(&ts[..3], &[249, 248, 247]);
        assert!(ts.windows(2).all(|p| (p[1] - p[0]).abs() == 1));
        // Without resampling it is the plain countdown.
        assert_eq!(jump_schedule(5, 10, 1), vec![4, 3, 2, 1, 0, -1]);
    }

    #[test]
    fn masks_hide_the_named_half() {
        let m = keep_mask(MaskKind::Left, 4, 4, 0);
        assert_eq!(m[0], 0.0);
        assert_eq!(m[3], 1.0);
        assert_eq!(m.iter().filter(|&&v| v == 0.0).count(), 8);
        let c = keep_mask(MaskKind::Center, 8, 8, 0);
        assert_eq!(c.iter().filter(|&&v| v == 0.0).count(), 16);
        let r = keep_mask(MaskKind::Random, 28, 28, 3);
        let hidden = r.iter().filter(|&&v| v == 0.0).count();
        assert!(hidden > 250 && hidden < 534, "{hidden}");
    }
}

#[cfg(test)]
#[path = "inpaint_repaint_tests.rs"]
mod repaint_tests;
