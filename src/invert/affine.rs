//! MI-FACE on a softmax regression as one pass per step (CPU fast path).
//!
//! Fredrikson et al. (CCS 2015) invert a softmax regression, whose logits are affine in the
//! pixels: with the input normalisation folded in, `z = W' x + b'` where
//! `W'[k, d] = W[k, d] / std[c(d)]` and `b'_k = b_k - sum_d W'[k, d] mean[c(d)]`. The gradient of a
//! per-image loss L(z) is then `dL/dx = W'^T dL/dz`, so a step of the descent (Algorithm 1's
//! `x - lambda grad c(x)`) is two matrix products over the batch and a few K-length vectors:
//!
//! * `Z = X W'^T + b'` (B x K), one gemm;
//! * per image, `log p = z - max z - ln sum exp(z - max z)`, `p_y = exp(log p_y)` and `dL/dz`:
//!   `1 - p_y` gives `p_y (p - e_y)`, `-ln p_y` gives `p - e_y`, `-z_y` gives `-e_y`;
//! * `G = (dL/dZ) W'` (B x D), one gemm;
//! * one pass over the pixels: the best iterate kept where the cost improved, then
//!   `x <- clip(x - lambda g, 0, 1)`.
//!
//! The generic path (`miface::loss_and_grad_t` + `descend_device`) computes the same through
//! candle's autograd: normalisation, log-softmax, gather, exp and the backward graph are about
//! fifteen tensor operations and temporaries a step. Its reference: `descend_device`; the test
//! below holds the two to float tolerance.

use std::time::Instant;

use candle_core::{CpuStorage, DType, Device, InplaceOp2, Layout, Tensor};
use rayon::prelude::*;

use super::miface::{FRAME_EVERY, start_images};
use super::{Inversion, InvertConfig, Objective};
use crate::cpu_slices::{f32s, f32s_mut};
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;

/// A classifier whose logits are affine in the pixels, normalisation folded in.
pub struct AffineHead {
    /// W' (K, D).
    w: Tensor,
    /// W'^T (D, K), contiguous for the forward gemm.
    wt: Tensor,
    /// b' (K).
    b: Vec<f32>,
}

impl AffineHead {
    /// The head of `weight` (K, D) and `bias` (K) applied to `(x - mean[c]) * inv_std[c]` for
    /// images of `channels` channels (mean and inv_std empty: no normalisation).
    pub fn new(
        weight: &Tensor,
        bias: &Tensor,
        channels: usize,
        mean: &[f32],
        inv_std: &[f32],
    ) -> CoreResult<Self> {
        let weight = weight.to_dtype(DType::F32)?.to_device(&Device::Cpu)?;
        let (k, d) = weight.dims2()?;
        if channels == 0 || !d.is_multiple_of(channels) {
            return Err(CoreError::Invalid(format!(
                "an affine head of {d} inputs cannot read {channels}-channel images"
            )));
        }
        let mut b = bias
            .to_dtype(DType::F32)?
            .to_device(&Device::Cpu)?
            .to_vec1::<f32>()?;
        if b.len() != k {
            return Err(CoreError::Invalid(format!(
                "an affine head of {k} classes has {} biases",
                b.len()
            )));
        }
        let w = if mean.len() == channels && inv_std.len() == channels {
            let scale = Tensor::from_slice(inv_std, (1, channels, 1), &Device::Cpu)?;
            let w = weight
                .reshape((k, channels, d / channels))?
                .broadcast_mul(&scale)?;
            let m = Tensor::from_slice(mean, (1, channels, 1), &Device::Cpu)?;
            let shift = w.broadcast_mul(&m)?.sum((1, 2))?.to_vec1::<f32>()?;
            for (bk, s) in b.iter_mut().zip(shift) {
                *bk -= s;
            }
            w.reshape((k, d))?
        } else {
            weight
        };
        let wt = w.t()?.contiguous()?;
        Ok(Self { w, wt, b })
    }

    /// Classes K.
    pub fn classes(&self) -> usize {
        self.b.len()
    }

    /// Inputs D (C x H x W).
    pub fn inputs(&self) -> usize {
        self.wt.dims()[0]
    }

    /// p_label, the per-image loss and its gradient (B, D) at the images `x` (B x D, row-major),
    /// the quantities `miface::loss_and_grad` computes.
    pub fn loss_and_grad(
        &self,
        x: &Tensor,
        labels: &[usize],
        objective: Objective,
    ) -> CoreResult<(Vec<f32>, Vec<f32>, Tensor)> {
        let b = labels.len();
        let k = self.classes();
        let z = x
            .reshape((b, self.inputs()))?
            .matmul(&self.wt)?
            .to_vec2::<f32>()?;
        let mut p_label = Vec::with_capacity(b);
        let mut per = Vec::with_capacity(b);
        let mut dz = Vec::with_capacity(b * k);
        for (row, &y) in z.iter().zip(labels) {
            let (p, l, g) = softmax_terms(row, &self.b, y, objective)?;
            p_label.push(p);
            per.push(l);
            dz.extend(g);
        }
        let g = Tensor::from_vec(dz, (b, k), &Device::Cpu)?
            .matmul(&self.w)?
            .reshape(x.shape())?;
        Ok((p_label, per, g))
    }
}

/// For one image's raw products `row` (K) plus `bias`: p_y, the loss and dL/dz (K).
fn softmax_terms(
    row: &[f32],
    bias: &[f32],
    y: usize,
    objective: Objective,
) -> CoreResult<(f32, f32, Vec<f32>)> {
    let z: Vec<f32> = row.iter().zip(bias).map(|(a, b)| a + b).collect();
    if y >= z.len() {
        return Err(CoreError::Invalid(format!(
            "class {y} is not one of the model's {} classes",
            z.len()
        )));
    }
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = z.iter().map(|v| (v - max).exp()).sum();
    let log_sum = sum.ln();
    let p: Vec<f32> = z.iter().map(|v| (v - max - log_sum).exp()).collect();
    let log_py = z[y] - max - log_sum;
    let py = log_py.exp();
    let (loss, mut g) = match objective {
        Objective::Prob => (1.0 - py, p.iter().map(|pj| py * pj).collect::<Vec<f32>>()),
        Objective::LogProb => (-log_py, p),
        Objective::Logit => (-z[y], vec![0.0; z.len()]),
    };
    g[y] -= match objective {
        Objective::Prob => py,
        Objective::LogProb | Objective::Logit => 1.0,
    };
    Ok((py, loss, g))
}

/// best[k] <- x[k] for the rows k marked `keep` (in place on best; rows of equal length).
struct KeepRows {
    keep: Vec<bool>,
}

/// x <- clip(x - lambda g, 0, 1) in place on x (candle's `(x - g * lambda).clamp(0, 1)`).
struct StepClip {
    lambda: f32,
}

impl InplaceOp2 for KeepRows {
    fn name(&self) -> &'static str {
        "mi-face-keep-rows"
    }

    fn cpu_fwd(
        &self,
        best: &mut CpuStorage,
        lb: &Layout,
        x: &CpuStorage,
        lx: &Layout,
    ) -> candle_core::Result<()> {
        let n = self.name();
        let (best, x) = (f32s_mut(best, lb, n)?, f32s(x, lx, n)?);
        if best.len() != x.len() || self.keep.is_empty() || !x.len().is_multiple_of(self.keep.len()) {
            candle_core::bail!("{}: shapes do not match", self.name());
        }
        let len = x.len() / self.keep.len();
        best.par_chunks_mut(len)
            .zip(x.par_chunks(len))
            .zip(self.keep.par_iter())
            .filter(|(_, keep)| **keep)
            .for_each(|((b, x), _)| b.copy_from_slice(x));
        Ok(())
    }
}

impl InplaceOp2 for StepClip {
    fn name(&self) -> &'static str {
        "mi-face-step-clip"
    }

    fn cpu_fwd(
        &self,
        x: &mut CpuStorage,
        lx: &Layout,
        g: &CpuStorage,
        lg: &Layout,
    ) -> candle_core::Result<()> {
        let n = self.name();
        let (x, g) = (f32s_mut(x, lx, n)?, f32s(g, lg, n)?);
        if x.len() != g.len() {
            candle_core::bail!("{}: shapes do not match", self.name());
        }
        let lambda = self.lambda;
        x.par_chunks_mut(4096).zip(g.par_chunks(4096)).for_each(|(x, g)| {
            for (v, &gv) in x.iter_mut().zip(g) {
                *v = (*v - (gv * lambda + 0.0)).clamp(0.0, 1.0);
            }
        });
        Ok(())
    }
}

/// `descend_device` (every class runs all alpha steps, no PROCESS, no TV) for an affine head on
/// the CPU: the same argmin-cost iterate, costs and probabilities to float tolerance.
pub(crate) fn descend_affine(
    head: &AffineHead,
    input: [usize; 3],
    classes: &[usize],
    cfg: &InvertConfig,
    stage: &str,
    ctx: &JobCtx<'_>,
) -> CoreResult<Vec<Inversion>> {
    let t0 = Instant::now();
    let b = classes.len();
    let len = input.iter().product::<usize>();
    if len != head.inputs() {
        return Err(CoreError::Invalid(format!(
            "images of {len} pixels do not fit a model of {} inputs",
            head.inputs()
        )));
    }
    let x = Tensor::from_vec(start_images(cfg.init, b, input, cfg.seed), (b, len), &Device::Cpu)?;
    let best = x.copy()?;
    let mut best_cost = vec![f32::INFINITY; b];
    let mut costs: Vec<Vec<f32>> = vec![Vec::with_capacity(cfg.alpha + 1); b];
    let mut probs: Vec<Vec<f32>> = vec![Vec::with_capacity(cfg.alpha + 1); b];
    for i in 0..=cfg.alpha {
        ctx.checkpoint()?;
        let (p, _, g) = head.loss_and_grad(&x, classes, cfg.objective)?;
        // MI-FACE's cost is 1 - p whatever is differentiated.
        let cost: Vec<f32> = p.iter().map(|&q| 1.0 - q).collect();
        let improved: Vec<bool> = cost.iter().zip(&best_cost).map(|(c, b)| c < b).collect();
        for k in 0..b {
            if improved[k] {
                best_cost[k] = cost[k];
            }
            costs[k].push(cost[k]);
            probs[k].push(p[k]);
        }
        if i.is_multiple_of(FRAME_EVERY) && ctx.wants_frames() {
            let shown = x.reshape((b, input[0], input[1], input[2]))?;
            super::miface::publish_frames(ctx, &shown, classes, &cost, &vec![true; b], i)?;
        }
        if i.is_multiple_of(10) || i == cfg.alpha {
            ctx.progress(stage, i as u64, cfg.alpha as u64);
        }
        // In place, no temporaries: keep the improved rows, then step and clip.
        best.inplace_op2(&x, &KeepRows { keep: improved })?;
        if i < cfg.alpha {
            x.inplace_op2(
                &g,
                &StepClip {
                    lambda: cfg.lambda as f32,
                },
            )?;
        }
    }
    let best = best.flatten_all()?.to_vec1::<f32>()?;
    let seconds = t0.elapsed().as_secs_f64();
    Ok(super::descend_device::ran_to_the_end(
        classes, costs, probs, &best, len, seconds,
    ))
}

#[cfg(test)]
#[path = "affine_tests.rs"]
mod tests;
