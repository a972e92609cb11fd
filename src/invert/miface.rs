//! MI-FACE (Fredrikson, Jha, Ristenpart, ACM CCS 2015, doi:10.1145/2810103.2813677, Algorithm 1).
//!
//! Cost (paper, section 5.2): `c(x) = 1 - f~_label(x) + AUXTERM(x)`, with f~_label the softmax
//! probability of the target label and AUXTERM = 0 (no side information). Algorithm
//! MI-FACE(label, alpha, beta, gamma, lambda):
//!
//! ```text
//! x_0 <- start image
//! for i = 1..alpha:
//!     x_i <- PROCESS(x_{i-1} - lambda * grad c(x_{i-1}))
//!     if c(x_i) >= max(c(x_{i-1}), ..., c(x_{i-beta})): break     # no improvement
//!     if c(x_i) <= gamma: break                                   # good enough
//! return (argmin_i c(x_i), min_i c(x_i))
//! ```
//!
//! Here the beta rule needs a full window (i >= beta), PROCESS is followed by clipping to the box
//! [0, 1], and the start image is configurable (the spec's default is grey 0.5, because gradients
//! can vanish on a black image). Paper values: alpha 5000, beta 100, gamma 0.99, lambda 0.1. With
//! gamma 0.99 the loop stops as soon as p(label) >= 0.01; pass a smaller gamma (or a negative one,
//! which disables the rule) to keep descending.
//!
//! The cost c(x) = 1 - p_label(x) drives the stopping rules and the choice of the returned iterate
//! whatever the step differentiates (`Objective::Prob` is the paper; `LogProb` descends -log p,
//! whose gradient does not vanish where p is tiny).
//!
//! All classes of a batch are inverted together: the cost is per image, so summing the costs of
//! the batch gives every image its own gradient.

use std::time::Instant;

use candle_core::{D, DType, Device, Tensor, Var};
use rand::{Rng as _, SeedableRng as _};

use super::{Init, Inversion, InvertConfig, InvertTarget, Objective, Process, StopReason, process};
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;

/// What a descent minimises, per image.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Loss {
    /// The classifier term.
    pub objective: Objective,
    /// Optional total-variation prior: (weight, beta).
    pub tv: Option<(f64, f64)>,
}

/// One forward and backward pass at `x` (B, C, H, W): p_label per image, the loss per image and
/// the gradient of the summed loss with respect to `x`.
pub(crate) fn loss_and_grad(
    model: &dyn InvertTarget,
    x: &Tensor,
    labels: &Tensor,
    loss: Loss,
) -> CoreResult<(Vec<f32>, Vec<f32>, Tensor)> {
    let (p, per, g) = loss_and_grad_t(model, x, labels, loss)?;
    Ok((p.to_vec1::<f32>()?, per.to_vec1::<f32>()?, g))
}

/// [`loss_and_grad`] with p and the loss left on the device (no host round trip).
pub(crate) fn loss_and_grad_t(
    model: &dyn InvertTarget,
    x: &Tensor,
    labels: &Tensor,
    loss: Loss,
) -> CoreResult<(Tensor, Tensor, Tensor)> {
    let var = Var::from_tensor(x)?;
    let logits = model.logits(var.as_tensor())?;
    let log_p = candle_nn::ops::log_softmax(&logits, D::Minus1)?
        .gather(labels, 1)?
        .squeeze(1)?;
    let p = log_p.exp()?;
    let mut per = match loss.objective {
        Objective::Prob => p.affine(-1.0, 1.0)?,
        Objective::LogProb => log_p.neg()?,
        Objective::Logit => logits.gather(labels, 1)?.squeeze(1)?.neg()?,
    };
    if let Some((weight, beta)) = loss.tv {
        per = (per + (super::tv::tv_per_image(var.as_tensor(), beta)? * weight)?)?;
    }
    let grads = per.sum_all()?.backward()?;
    let g = grads
        .get(var.as_tensor())
        .cloned()
        .ok_or_else(|| CoreError::Invalid("the classifier gave no input gradient".into()))?;
    // Detached: kept across steps, they must not hold this step's graph alive.
    Ok((p.detach(), per.detach(), g.detach()))
}

/// The start images for `b` targets of `input` shape.
pub(crate) fn start_images(init: Init, b: usize, input: [usize; 3], seed: u64) -> Vec<f32> {
    let n = b * input.iter().product::<usize>();
    match init {
        Init::Zeros => vec![0.0; n],
        Init::Grey => vec![0.5; n],
        Init::Uniform => {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x1_0e7e);
            (0..n).map(|_| rng.random_range(0.0f32..1.0)).collect()
        }
    }
}

/// Label tensor (B, 1) for `classes`.
pub(crate) fn label_tensor(classes: &[usize], dev: &Device) -> CoreResult<Tensor> {
    let v: Vec<u32> = classes.iter().map(|&c| c as u32).collect();
    Ok(Tensor::from_vec(v, (classes.len(), 1), dev)?)
}

/// A (B, 1, 1, 1) f32 mask from flags.
pub(crate) fn mask_tensor(flags: &[bool], dev: &Device) -> CoreResult<Tensor> {
    let v: Vec<f32> = flags.iter().map(|&a| if a { 1.0 } else { 0.0 }).collect();
    Ok(Tensor::from_vec(v, (flags.len(), 1, 1, 1), dev)?)
}

/// Applies PROCESS to every image of `x` (on the CPU) and returns it on `x`'s device.
pub(crate) fn apply_process(x: &Tensor, proc_step: Process, input: [usize; 3]) -> CoreResult<Tensor> {
    if proc_step == Process::None {
        return Ok(x.clone());
    }
    let dev = x.device().clone();
    let shape = x.shape().clone();
    let mut v = x.flatten_all()?.to_vec1::<f32>()?;
    let len = input.iter().product::<usize>();
    for img in v.chunks_exact_mut(len) {
        process::apply(img, input, proc_step);
    }
    Ok(Tensor::from_vec(v, shape, &dev)?)
}

/// Steps between two published frames (GUI previews).
pub(crate) const FRAME_EVERY: usize = 10;

/// Publishes the current iterate of every active image, when the sink wants frames.
pub(crate) fn publish_frames(
    ctx: &JobCtx<'_>,
    x: &Tensor,
    classes: &[usize],
    cost: &[f32],
    active: &[bool],
    step: usize,
) -> CoreResult<()> {
    if !ctx.wants_frames() {
        return Ok(());
    }
    let v = x.flatten_all()?.to_vec1::<f32>()?;
    let len = v.len() / classes.len().max(1);
    for (k, &class) in classes.iter().enumerate() {
        if active.get(k) == Some(&true) {
            ctx.frame(&crate::job::Frame {
                key: class,
                step,
                value: f64::from(cost.get(k).copied().unwrap_or(f32::NAN)),
                pixels: &v[k * len..(k + 1) * len],
            });
        }
    }
    Ok(())
}

/// MI-FACE for each class of `classes` on `model` (input shape `input`, parameters on `dev`), as
/// the paper says: gradient descent on the per-image loss with the alpha, beta and gamma rules,
/// PROCESS after every `process_every` steps, clipping to [0, 1], and the argmin-cost iterate
/// returned.
pub fn mi_face(
    model: &dyn InvertTarget,
    dev: &Device,
    input: [usize; 3],
    classes: &[usize],
    cfg: &InvertConfig,
    ctx: &JobCtx<'_>,
) -> CoreResult<Vec<Inversion>> {
    let loss = Loss {
        objective: cfg.objective,
        tv: None,
    };
    descend(model, dev, input, classes, cfg, loss, "mi-face", ctx)
}

/// The paper's loop for any per-image loss (MI-FACE and the TV variant share it).
#[allow(
    clippy::too_many_arguments,
    reason = "the shared loop of two public entry points"
)]
pub(crate) fn descend(
    model: &dyn InvertTarget,
    dev: &Device,
    input: [usize; 3],
    classes: &[usize],
    cfg: &InvertConfig,
    loss: Loss,
    stage: &str,
    ctx: &JobCtx<'_>,
) -> CoreResult<Vec<Inversion>> {
    if !(cfg.lambda.is_finite() && cfg.lambda > 0.0) {
        return Err(CoreError::Invalid(format!(
            "step size lambda {} must be positive",
            cfg.lambda
        )));
    }
    let b = classes.len();
    if b == 0 {
        return Ok(Vec::new());
    }
    let head = if dev.is_cpu() && loss.tv.is_none() {
        model.affine_head(input)?
    } else {
        None
    };
    if cfg.beta == 0 && cfg.gamma < 0.0 && cfg.process == super::Process::None {
        if let Some(head) = &head {
            // A softmax regression on the CPU: one pass per step (`affine`).
            return super::affine::descend_affine(head, input, classes, cfg, stage, ctx);
        }
        // No rule depends on the costs: the whole loop can stay on the device.
        return super::descend_device::descend_device(model, dev, input, classes, cfg, loss, stage, ctx);
    }
    descend_host(model, head.as_ref(), dev, input, classes, cfg, loss, stage, ctx)
}

/// The loop on the host: costs read back every step for the stopping rules and PROCESS. With
/// `head` (a softmax regression on the CPU) the gradient comes from its one-pass formula.
#[allow(
    clippy::too_many_arguments,
    reason = "the shared loop of two public entry points"
)]
pub(crate) fn descend_host(
    model: &dyn InvertTarget,
    head: Option<&super::affine::AffineHead>,
    dev: &Device,
    input: [usize; 3],
    classes: &[usize],
    cfg: &InvertConfig,
    loss: Loss,
    stage: &str,
    ctx: &JobCtx<'_>,
) -> CoreResult<Vec<Inversion>> {
    let b = classes.len();
    let t0 = Instant::now();
    let len = input.iter().product::<usize>();
    let x0 = start_images(cfg.init, b, input, cfg.seed);
    // `x`, `best` and `labels` hold the still-running classes only, in the order of `rows`
    // (indices into `classes`): a class that stops hands its best image out and leaves the batch,
    // so late steps cost only what is still running.
    let mut x = Tensor::from_vec(x0, (b, input[0], input[1], input[2]), dev)?;
    let mut best = x.clone();
    let mut labels = label_tensor(classes, dev)?;
    let mut rows: Vec<usize> = (0..b).collect();
    let mut best_out: Vec<Vec<f32>> = vec![Vec::new(); b];
    let mut costs: Vec<Vec<f32>> = vec![Vec::new(); b];
    let mut probs: Vec<Vec<f32>> = vec![Vec::new(); b];
    let mut best_cost = vec![f32::INFINITY; b];
    let mut best_iter = vec![0usize; b];
    let mut stop = vec![StopReason::MaxIters; b];
    let mut seconds = vec![0.0; b];
    let every = cfg.process_every.max(1);
    for i in 0..=cfg.alpha {
        ctx.checkpoint()?;
        let (p, per, g) = match head {
            Some(h) => {
                let running: Vec<usize> = rows.iter().map(|&k| classes[k]).collect();
                h.loss_and_grad(&x, &running, loss.objective)?
            }
            None => loss_and_grad(model, &x, &labels, loss)?,
        };
        // MI-FACE's cost is 1 - p whatever is differentiated; the TV variant's is its objective.
        let cost: Vec<f32> = if loss.tv.is_some() {
            per
        } else {
            p.iter().map(|&q| 1.0 - q).collect()
        };
        if i.is_multiple_of(FRAME_EVERY) {
            let running: Vec<usize> = rows.iter().map(|&k| classes[k]).collect();
            publish_frames(ctx, &x, &running, &cost, &vec![true; rows.len()], i)?;
        }
        let mut improved = vec![false; rows.len()];
        let mut keep = vec![true; rows.len()];
        for (r, &k) in rows.iter().enumerate() {
            let c = cost[r];
            let window_max = (cfg.beta > 0 && i >= cfg.beta).then(|| {
                costs[k][i - cfg.beta..i]
                    .iter()
                    .copied()
                    .fold(f32::NEG_INFINITY, f32::max)
            });
            costs[k].push(c);
            probs[k].push(p[r]);
            if c < best_cost[k] {
                best_cost[k] = c;
                best_iter[k] = i;
                improved[r] = true;
            }
            let reason = if i == 0 {
                None
            } else if window_max.is_some_and(|m| c >= m) {
                Some(StopReason::NoImprovement)
            } else if cfg.gamma >= 0.0 && f64::from(c) <= cfg.gamma {
                Some(StopReason::Threshold)
            } else if i == cfg.alpha {
                Some(StopReason::MaxIters)
            } else {
                None
            };
            if let Some(reason) = reason {
                stop[k] = reason;
                keep[r] = false;
                seconds[k] = t0.elapsed().as_secs_f64();
            }
        }
        if improved.iter().any(|&v| v) {
            let m = mask_tensor(&improved, dev)?
                .to_dtype(DType::U8)?
                .broadcast_as(x.shape())?;
            best = m.where_cond(&x, &best)?;
        }
        if i.is_multiple_of(10) || i == cfg.alpha {
            ctx.progress(stage, i as u64, cfg.alpha as u64);
        }
        let mut g = g;
        if keep.iter().any(|&v| !v) {
            let best_v = best.flatten_all()?.to_vec1::<f32>()?;
            for (r, &k) in rows.iter().enumerate() {
                if !keep[r] {
                    best_out[k] = best_v[r * len..(r + 1) * len].to_vec();
                }
            }
            let kept: Vec<u32> = (0..rows.len()).filter(|&r| keep[r]).map(|r| r as u32).collect();
            if kept.is_empty() {
                rows.clear();
                break;
            }
            let idx = Tensor::from_vec(kept.clone(), kept.len(), dev)?;
            x = x.index_select(&idx, 0)?;
            best = best.index_select(&idx, 0)?;
            labels = labels.index_select(&idx, 0)?;
            g = g.index_select(&idx, 0)?;
            rows = kept.iter().map(|&r| rows[r as usize]).collect();
        }
        x = (x - (g * cfg.lambda)?)?;
        if (i + 1).is_multiple_of(every) {
            x = apply_process(&x, cfg.process, input)?;
        }
        x = x.clamp(0f32, 1f32)?.detach();
    }
    if !rows.is_empty() {
        let best_v = best.flatten_all()?.to_vec1::<f32>()?;
        for (r, &k) in rows.iter().enumerate() {
            best_out[k] = best_v[r * len..(r + 1) * len].to_vec();
        }
    }
    Ok((0..b)
        .map(|k| Inversion {
            class: classes[k],
            image: std::mem::take(&mut best_out[k]),
            steps: costs[k].len().saturating_sub(1),
            costs: std::mem::take(&mut costs[k]),
            probs: std::mem::take(&mut probs[k]),
            returned_iter: best_iter[k],
            stop: stop[k],
            seconds: seconds[k],
        })
        .collect())
}
