//! The paper's descent loop (Fredrikson et al. 2015, Algorithm 1) when no stopping rule depends on
//! the costs (beta = 0, no gamma threshold, no PROCESS): every class runs all alpha steps, so the
//! argmin-cost iterate, its cost and its step are tracked with device-side masks and the costs are
//! read back once at the end (and at preview frames), with no host round trip per step. Results are
//! identical to the host loop in `miface.rs` (the same operations, ties kept by the earlier step).

use std::time::Instant;

use candle_core::{Device, Tensor};

use super::miface::{FRAME_EVERY, Loss, label_tensor, loss_and_grad_t, publish_frames, start_images};
use super::{Inversion, InvertConfig, InvertTarget, StopReason};
use crate::error::CoreResult;
use crate::job::JobCtx;

/// See the module documentation.
#[allow(
    clippy::too_many_arguments,
    reason = "the same arguments as the host loop it stands in for"
)]
pub(crate) fn descend_device(
    model: &dyn InvertTarget,
    dev: &Device,
    input: [usize; 3],
    classes: &[usize],
    cfg: &InvertConfig,
    loss: Loss,
    stage: &str,
    ctx: &JobCtx<'_>,
) -> CoreResult<Vec<Inversion>> {
    let t0 = Instant::now();
    let b = classes.len();
    let len = input.iter().product::<usize>();
    let shape = (b, input[0], input[1], input[2]);
    let mut x = Tensor::from_vec(start_images(cfg.init, b, input, cfg.seed), shape, dev)?;
    let labels = label_tensor(classes, dev)?;
    let mut best = x.clone();
    let mut best_cost = Tensor::full(f32::INFINITY, b, dev)?;
    let mut cost_steps: Vec<Tensor> = Vec::with_capacity(cfg.alpha + 1);
    let mut p_steps: Vec<Tensor> = Vec::with_capacity(cfg.alpha + 1);
    for i in 0..=cfg.alpha {
        ctx.checkpoint()?;
        let (p, per, g) = loss_and_grad_t(model, &x, &labels, loss)?;
        // MI-FACE's cost is 1 - p whatever is differentiated; the TV variant's is its objective.
        let cost = if loss.tv.is_some() {
            per
        } else {
            p.affine(-1.0, 1.0)?
        };
        let improved = cost.lt(&best_cost)?;
        best_cost = improved.where_cond(&cost, &best_cost)?;
        best = improved
            .reshape((b, 1, 1, 1))?
            .broadcast_as(x.shape())?
            .where_cond(&x, &best)?;
        if i.is_multiple_of(FRAME_EVERY) && ctx.wants_frames() {
            let c = cost.to_vec1::<f32>()?;
            publish_frames(ctx, &x, classes, &c, &vec![true; b], i)?;
        }
        cost_steps.push(cost);
        p_steps.push(p);
        if i.is_multiple_of(10) || i == cfg.alpha {
            ctx.progress(stage, i as u64, cfg.alpha as u64);
        }
        if i == cfg.alpha {
            break;
        }
        x = (x - (g * cfg.lambda)?)?.clamp(0f32, 1f32)?.detach();
    }
    let costs = Tensor::stack(&cost_steps, 1)?.to_vec2::<f32>()?; // (B, steps)
    let probs = Tensor::stack(&p_steps, 1)?.to_vec2::<f32>()?;
    let images = best.flatten_all()?.to_vec1::<f32>()?;
    Ok(ran_to_the_end(
        classes,
        costs,
        probs,
        &images,
        len,
        t0.elapsed().as_secs_f64(),
    ))
}

/// The inversions of a loop where every class ran all steps: per class its costs and
/// probabilities by step, its best image (row k of `images`, `len` pixels each) and the first
/// step of its lowest cost (where a strict `<` last improved).
pub(crate) fn ran_to_the_end(
    classes: &[usize],
    costs: Vec<Vec<f32>>,
    probs: Vec<Vec<f32>>,
    images: &[f32],
    len: usize,
    seconds: f64,
) -> Vec<Inversion> {
    costs
        .into_iter()
        .zip(probs)
        .enumerate()
        .map(|(k, (c, p))| Inversion {
            returned_iter: first_argmin(&c),
            class: classes[k],
            image: images[k * len..(k + 1) * len].to_vec(),
            steps: c.len().saturating_sub(1),
            costs: c,
            probs: p,
            stop: StopReason::MaxIters,
            seconds,
        })
        .collect()
}

/// Index of the first minimum (NaN never wins).
pub(crate) fn first_argmin(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x < v[best] || v[best].is_nan() && !x.is_nan() {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use candle_nn::{VarBuilder, VarMap};

    use super::*;
    use crate::invert::miface::descend_host;
    use crate::invert::{Init, Method, Objective};
    use crate::job::{CancelToken, NullSink};
    use crate::model::{Classifier, Family, ModelSpec};

    /// The device loop returns exactly what the host loop returns when no rule stops early.
    #[test]
    fn device_loop_matches_the_host_loop() {
        let spec = ModelSpec::default_for(Family::Mlp, [1, 6, 5], 3);
        let varmap = VarMap::new();
        let model =
            Classifier::new(&spec, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
        crate::model::seeded_init(&varmap, 4).unwrap();
        let cancel = CancelToken::new();
        let ctx = JobCtx::new(&cancel, &NullSink);
        for (objective, tv) in [(Objective::Prob, None), (Objective::LogProb, Some((0.05, 2.0)))] {
            let cfg = InvertConfig {
                method: Method::MiFace,
                objective,
                init: Init::Uniform,
                alpha: 25,
                beta: 0,
                gamma: -1.0,
                lambda: 0.5,
                ..InvertConfig::default()
            };
            let loss = Loss { objective, tv };
            let args = (
                &model as &dyn InvertTarget,
                &Device::Cpu,
                [1, 6, 5],
                &[0usize, 2, 1][..],
            );
            let host = descend_host(args.0, None, args.1, args.2, args.3, &cfg, loss, "t", &ctx).unwrap();
            let dev = descend_device(args.0, args.1, args.2, args.3, &cfg, loss, "t", &ctx).unwrap();
            for (h, d) in host.iter().zip(&dev) {
                assert_eq!(h.class, d.class);
                assert_eq!(h.costs, d.costs);
                assert_eq!(h.probs, d.probs);
                assert_eq!(h.returned_iter, d.returned_iter);
                assert_eq!(h.image, d.image);
                assert_eq!(h.steps, d.steps);
                assert_eq!(h.stop, d.stop);
            }
        }
    }
}
