//! Training one group of a zoo's models: MLPs stacked and trained side by side (plain, DP-SGD or
//! PGD adversarial training), other families one model at a time.

use candle_core::Tensor;
use rand::SeedableRng as _;
use rand::seq::SliceRandom as _;

use super::batched_mlp::{BatchedMlp, MlpInit, stacked_cross_entropy};
use super::zoo::{ZooConfig, ZooModel, model_seed, subset_for};
use super::zoo_subsets::Subsets;
use super::{Optimizer, TrainConfig, train_on_subset};
use crate::data::Dataset;
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
use crate::model::device;

/// Each model's batch-order stream, seeded by the model's seed alone.
pub(super) fn order_rngs(seeds: &[u64]) -> Vec<rand_chacha::ChaCha8Rng> {
    seeds
        .iter()
        .map(|&s| rand_chacha::ChaCha8Rng::seed_from_u64(s ^ 0xba7c_0002))
        .collect()
}

/// One epoch's order of every model's training rows, from its stream.
pub(super) fn epoch_orders(subsets: &[Vec<usize>], rngs: &mut [rand_chacha::ChaCha8Rng]) -> Vec<Vec<usize>> {
    subsets
        .iter()
        .zip(rngs)
        .map(|(s, rng)| {
            let mut o = s.clone();
            o.shuffle(rng);
            o
        })
        .collect()
}

/// Trains zoo models `models` side by side as stacked MLPs (plain, DP-SGD or adversarial) and
/// returns their records.
pub(super) fn train_group_mlp(
    cfg: &ZooConfig,
    ds: &Dataset,
    given: Option<&Subsets>,
    models: &[u32],
    stage: &str,
    ctx: &JobCtx<'_>,
) -> CoreResult<Vec<ZooModel>> {
    let tc = &cfg.train;
    let dev = device(&tc.device)?;
    let k = models.len();
    let seeds: Vec<u64> = models.iter().map(|&m| model_seed(tc.seed, m)).collect();
    let subsets: Vec<Vec<usize>> = models
        .iter()
        .zip(&seeds)
        .map(|(&k, &s)| subset_for(ds, given, k, tc.subset_ratio, s))
        .collect::<CoreResult<_>>()?;
    let m = subsets[0].len();
    let d = ds.image_len();
    let mut dims = vec![d];
    dims.extend(&cfg.hidden);
    dims.push(ds.n_classes());
    let scaling = match cfg.init {
        MlpInit::Uniform => {
            let (m, s) = super::run::channel_stats(ds, &ds.train_indices());
            (
                m.iter().sum::<f32>() / m.len() as f32,
                s.iter().sum::<f32>() / s.len() as f32,
            )
        }
        MlpInit::GlorotNormal => (0.0, 1.0),
    };
    let net = BatchedMlp::new(&seeds, &dims, cfg.init, scaling, &dev)?;
    let mut opt = Optimizer::new(tc.optimizer, net.vars(), tc.lr, tc.momentum, tc.weight_decay)?;
    let all: Vec<usize> = (0..ds.n).collect();
    let x = Tensor::from_vec(ds.batch_f32(&all), (ds.n, d), &dev)?;
    let y = Tensor::from_vec(
        ds.labels.iter().map(|&l| u32::from(l)).collect::<Vec<u32>>(),
        ds.n,
        &dev,
    )?;
    if let Some(dp) = &cfg.dp {
        if !dev.is_cpu() {
            return Err(CoreError::Invalid(
                "DP-SGD zoos train on the CPU (--device cpu)".into(),
            ));
        }
        super::zoo_dp::train_dp(&net, &mut opt, dp, ds, &subsets, &seeds, stage, ctx)?;
        return super::zoo_record::signals(&net, &x, &y, ds, models, &subsets, ctx);
    }
    if let Some(adv) = &cfg.adversarial {
        if !dev.is_cpu() {
            return Err(CoreError::Invalid(
                "adversarial zoos train on the CPU (--device cpu)".into(),
            ));
        }
        let robust = super::zoo_adv::train_adversarial(
            &net,
            &mut opt,
            adv,
            ds,
            &subsets,
            &seeds,
            (tc.epochs, tc.batch_size),
            stage,
            ctx,
        )?;
        let mut records = super::zoo_record::signals(&net, &x, &y, ds, models, &subsets, ctx)?;
        for (r, acc) in records.iter_mut().zip(robust) {
            r.robust_accuracy = Some(acc);
        }
        return Ok(records);
    }
    let bs = tc.batch_size.max(1);
    let steps_per_epoch = m.div_ceil(bs);
    let total = (tc.epochs * steps_per_epoch) as u64;
    let mut rngs = order_rngs(&seeds);
    let mut step = 0u64;
    for _epoch in 0..tc.epochs {
        let orders = epoch_orders(&subsets, &mut rngs);
        for b in 0..steps_per_epoch {
            ctx.checkpoint()?;
            let lo = b * bs;
            let hi = (lo + bs).min(m);
            let idx: Vec<u32> = orders
                .iter()
                .flat_map(|o| o[lo..hi].iter().map(|&i| i as u32))
                .collect();
            let idx = Tensor::from_vec(idx, k * (hi - lo), &dev)?;
            let xb = x.index_select(&idx, 0)?.reshape((k, hi - lo, d))?;
            let yb = y.index_select(&idx, 0)?.reshape((k, hi - lo))?;
            let loss = match opt.as_sgd() {
                // On the CPU: the hand-written backward pass (`batched_mlp_grad`).
                Some(sgd) if net.hand_backward_applies(&xb) => {
                    let (loss, grads) = net.loss_and_grads(&xb, &yb)?;
                    sgd.step_grads(&grads)?;
                    Tensor::new(loss, xb.device())?
                }
                _ => {
                    let loss = stacked_cross_entropy(&net.forward(&xb)?, &yb)?;
                    opt.backward_step(&loss)?;
                    loss
                }
            };
            step += 1;
            if step.is_multiple_of(5) || step == total {
                ctx.progress(stage, step, total);
                let v = f64::from(loss.to_scalar::<f32>()?) / k as f64;
                if !v.is_finite() {
                    return Err(CoreError::Invalid(format!(
                        "zoo training diverged at step {step}; lower the learning rate"
                    )));
                }
                ctx.metric("zoo loss", step as f64, v);
            }
        }
    }
    super::zoo_record::signals(&net, &x, &y, ds, models, &subsets, ctx)
}

/// Trains zoo models `models` one after another (CNN and softmax families, with DP-SGD when
/// configured) and returns their records.
pub(super) fn train_group_sequential(
    cfg: &ZooConfig,
    ds: &Dataset,
    given: Option<&Subsets>,
    models: &[u32],
    stage: &str,
    ctx: &JobCtx<'_>,
) -> CoreResult<Vec<ZooModel>> {
    let mut out = Vec::new();
    for (j, &index) in models.iter().enumerate() {
        ctx.checkpoint()?;
        ctx.progress(stage, j as u64, models.len() as u64);
        let tc = TrainConfig {
            seed: model_seed(cfg.train.seed, index),
            ..cfg.train.clone()
        };
        let sub = crate::job::NullSink;
        let inner = JobCtx::new(ctx.cancel, &sub);
        let subset = subset_for(ds, given, index, tc.subset_ratio, tc.seed)?;
        let o = match &cfg.dp {
            Some(dp) => super::classifier_dp::train_on_subset_dp(&tc, ds, subset, dp, &inner)?,
            None => train_on_subset(&tc, ds, subset, &inner)?,
        };
        let member = o.card.member_mask();
        out.push(ZooModel {
            index,
            member,
            correct: o.scores.correct,
            loss: o.scores.loss,
            margin: o.scores.margin,
            robust_accuracy: None,
        });
    }
    Ok(out)
}
