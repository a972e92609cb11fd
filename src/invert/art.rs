//! **ART-compatible** MIFace: the loop of IBM ART 1.20.1
//! (`art/attacks/inference/model_inversion/mi_face.py`), reproduced for side-by-side comparison,
//! not MI-FACE as published:
//!
//! ```text
//! active = [True]*B ; window = +inf (B x window_length) ; i = 0
//! while i < max_iter and any(active):
//!     batch[active] += learning_rate * class_gradient(batch[active], label[active])   # ascent
//!     batch[active] = clip(batch[active], 0, 1)
//!     cost = 1 - predict(batch)[:, label]                      # every sample, active or not
//!     active = (cost <= threshold) OR (cost >= max(window, axis=1))
//!     window[:, i % window_length] = cost
//!     i += 1
//! return batch                                                 # the last iterate
//! ```
//!
//! Differences from the paper: no PROCESS and no AUXTERM; the last iterate is returned; and the
//! stopping rule is reversed: a sample keeps going while p(label) >= 1 - threshold or while it has
//! stopped improving, and pauses once p(label) < 1 - threshold while it still improves (from a
//! black start most classes of a 40-person model pause after one step and come out black). A
//! paused sample's cost stays put, so once it fills the window it is active again. What the
//! gradient differentiates depends on ART's estimator: its scikit-learn logistic regression gives
//! the gradient of log p (`Objective::LogProb`, the default here), a Keras softmax model of p and
//! a PyTorch logits model of the logit.

use std::time::Instant;

use candle_core::{Device, Tensor};

use super::miface::{
    FRAME_EVERY, Loss, label_tensor, loss_and_grad, mask_tensor, publish_frames, start_images,
};
use super::{Inversion, InvertConfig, InvertTarget, StopReason};
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;

/// ART's `MIFace.infer` for `classes` with `max_iter = cfg.alpha`, `window_length = cfg.beta`,
/// `threshold = cfg.gamma`, `learning_rate = cfg.lambda`, clip values (0, 1).
pub fn art_miface(
    model: &dyn InvertTarget,
    dev: &Device,
    input: [usize; 3],
    classes: &[usize],
    cfg: &InvertConfig,
    ctx: &JobCtx<'_>,
) -> CoreResult<Vec<Inversion>> {
    if cfg.beta == 0 {
        return Err(CoreError::Invalid(
            "ART's window_length (beta) must be at least 1".into(),
        ));
    }
    let b = classes.len();
    if b == 0 {
        return Ok(Vec::new());
    }
    let t0 = Instant::now();
    let labels = label_tensor(classes, dev)?;
    let loss = Loss {
        objective: cfg.objective,
        tv: None,
    };
    let mut x = Tensor::from_vec(
        start_images(cfg.init, b, input, cfg.seed),
        (b, input[0], input[1], input[2]),
        dev,
    )?;
    let window_len = cfg.beta;
    let mut window = vec![f32::INFINITY; b * window_len];
    let mut active = vec![true; b];
    let mut costs: Vec<Vec<f32>> = vec![Vec::new(); b];
    let mut probs: Vec<Vec<f32>> = vec![Vec::new(); b];
    let mut steps = vec![0usize; b];
    let mut seconds = vec![0.0; b];
    // x_0's cost, for the curve only (ART does not compute it).
    let (mut p, _, mut g) = loss_and_grad(model, &x, &labels, loss)?;
    for k in 0..b {
        costs[k].push(1.0 - p[k]);
        probs[k].push(p[k]);
    }
    let mut i = 0usize;
    while i < cfg.alpha && active.iter().any(|&a| a) {
        ctx.checkpoint()?;
        // Descending the loss of the objective is ascending the class output.
        let step = g.broadcast_mul(&mask_tensor(&active, dev)?)?;
        x = (x - (step * cfg.lambda)?)?.clamp(0f32, 1f32)?.detach();
        for (k, s) in steps.iter_mut().enumerate() {
            *s += usize::from(active[k]);
        }
        let (p_new, _, g_new) = loss_and_grad(model, &x, &labels, loss)?;
        (p, g) = (p_new, g_new);
        for k in 0..b {
            let cost = 1.0 - p[k];
            let row = &mut window[k * window_len..(k + 1) * window_len];
            let window_max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            active[k] = f64::from(cost) <= cfg.gamma || cost >= window_max;
            row[i % window_len] = cost;
            costs[k].push(cost);
            probs[k].push(p[k]);
            if active[k] {
                seconds[k] = t0.elapsed().as_secs_f64();
            }
        }
        i += 1;
        if i.is_multiple_of(FRAME_EVERY) {
            let cost: Vec<f32> = p.iter().map(|&q| 1.0 - q).collect();
            publish_frames(ctx, &x, classes, &cost, &vec![true; b], i)?;
        }
        if i.is_multiple_of(10) || i == cfg.alpha {
            ctx.progress("art mi-face", i as u64, cfg.alpha as u64);
        }
    }
    let len = input.iter().product::<usize>();
    let v = x.flatten_all()?.to_vec1::<f32>()?;
    Ok((0..b)
        .map(|k| Inversion {
            class: classes[k],
            image: v[k * len..(k + 1) * len].to_vec(),
            returned_iter: costs[k].len() - 1,
            costs: std::mem::take(&mut costs[k]),
            probs: std::mem::take(&mut probs[k]),
            steps: steps[k],
            stop: if active[k] {
                StopReason::MaxIters
            } else {
                StopReason::ArtInactive
            },
            seconds: seconds[k],
        })
        .collect())
}

#[cfg(test)]
#[path = "art_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "art_parity_tests.rs"]
mod parity_tests;
