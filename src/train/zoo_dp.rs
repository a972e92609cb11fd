//! DP-SGD training of a zoo's stacked MLPs (`defence::dp_sgd` has the algorithm and its spec):
//! each model draws its own Poisson batches from its own training rows and its own noise, both
//! from streams seeded by the model's seed alone, so a DP zoo also resumes, grows and merges
//! shards into the files one run would write.

use candle_core::Device;
use rand::SeedableRng as _;
use rayon::prelude::*;

use super::Optimizer;
use super::batched_mlp::BatchedMlp;
use super::batched_mlp_grad::stack_grads;
use crate::data::Dataset;
use crate::defence::dp_sgd::{DpRecord, add_noise_and_scale, poisson_batch};
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;

/// The zoo's DP-SGD record for the recipe `cfg` on training rows of `m` per model: sampling rate
/// batch size / m, and as many steps as the non-private recipe takes (epochs x ⌈m / batch⌉).
pub fn dp_record(
    settings: &crate::defence::dp_sgd::DpSettings,
    batch_size: usize,
    epochs: usize,
    m: usize,
) -> CoreResult<DpRecord> {
    if m == 0 {
        return Err(CoreError::Invalid(
            "DP-SGD: the models have no training rows".into(),
        ));
    }
    let bs = batch_size.max(1);
    let q = (bs as f64 / m as f64).min(1.0);
    let steps = (epochs * m.div_ceil(bs)) as u64;
    settings.record(q, steps)
}

/// Trains `net` (model j on rows `subsets[j]` of `ds`, seeds `seeds[j]`) for `dp.steps` DP-SGD
/// steps with the SGD optimiser `opt`, on the CPU.
#[allow(clippy::too_many_arguments, reason = "one zoo group's whole training state")]
pub(super) fn train_dp(
    net: &BatchedMlp,
    opt: &mut Optimizer,
    dp: &DpRecord,
    ds: &Dataset,
    subsets: &[Vec<usize>],
    seeds: &[u64],
    stage: &str,
    ctx: &JobCtx<'_>,
) -> CoreResult<()> {
    let sgd = opt.as_sgd().ok_or_else(|| {
        CoreError::Invalid("DP-SGD zoos train with --optimizer sgd (momentum is allowed)".into())
    })?;
    let d = ds.image_len();
    let all: Vec<usize> = (0..ds.n).collect();
    let x = ds.batch_f32(&all);
    let labels: Vec<u32> = ds.labels.iter().map(|&l| u32::from(l)).collect();
    let seeded = |salt: u64| -> Vec<rand_chacha::ChaCha8Rng> {
        seeds
            .iter()
            .map(|&s| rand_chacha::ChaCha8Rng::seed_from_u64(s ^ salt))
            .collect()
    };
    let mut batch_rngs = seeded(0xd95d_0001);
    let mut noise_rngs = seeded(0xd95d_0002);
    let std = dp.noise_multiplier * dp.clip;
    for step in 1..=dp.steps {
        ctx.checkpoint()?;
        let batches: Vec<Vec<usize>> = subsets
            .iter()
            .zip(&mut batch_rngs)
            .map(|(rows, rng)| poisson_batch(rows, dp.sample_rate, rng))
            .collect();
        let (dims, mut sums) = net.dp_clipped_sums(&x, d, &labels, &batches, dp.clip as f32)?;
        sums.par_iter_mut()
            .zip(noise_rngs.par_iter_mut())
            .zip(subsets.par_iter())
            .for_each(|((sum, rng), rows)| {
                // Divide by the expected batch size q m, never by |B| (spec 13 §C.1 step 5).
                let scale = 1.0 / (dp.sample_rate * rows.len() as f64);
                for (w, b) in &mut sum.grads {
                    add_noise_and_scale(w, std, scale, rng);
                    add_noise_and_scale(b, std, scale, rng);
                }
            });
        let grads = stack_grads(&dims, sums.iter().map(|s| s.grads.as_slice()), &Device::Cpu)?;
        sgd.step_grads(&grads)?;
        if step.is_multiple_of(5) || step == dp.steps {
            ctx.progress(stage, step, dp.steps);
            let rows: usize = sums.iter().map(|s| s.rows).sum();
            let loss: f64 = sums.iter().map(|s| f64::from(s.loss_sum)).sum::<f64>() / rows.max(1) as f64;
            if !loss.is_finite() {
                return Err(CoreError::Invalid(format!(
                    "DP-SGD zoo training diverged at step {step}; lower the learning rate"
                )));
            }
            ctx.metric("zoo loss", step as f64, loss);
            let clipped: usize = sums.iter().map(|s| s.clipped).sum();
            ctx.metric(
                "clipped fraction",
                step as f64,
                clipped as f64 / rows.max(1) as f64,
            );
        }
    }
    Ok(())
}
