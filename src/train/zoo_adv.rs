//! PGD adversarial training of a zoo's stacked MLPs, optionally with DeMem-style
//! de-memorization (`defence::demem` has both and their papers), and every model's robust
//! accuracy on the test split afterwards. Model m keeps the plain zoo's subset, initialisation
//! and batch order; its PGD starts come from a stream seeded by its seed and the step, so a zoo
//! resumes, grows and merges shards into the files one run would write.

use candle_core::Device;
use rand::SeedableRng as _;

use super::Optimizer;
use super::batched_mlp::BatchedMlp;
use super::batched_mlp_adv::{Pgd, count_correct, pgd};
use super::batched_mlp_grad::{LayerGrad, cross_entropy_rows, forward_rows, stack_grads, weighted_step};
use crate::data::Dataset;
use crate::defence::demem::{Adversarial, TauRule, median, top_fraction};
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;

/// One model's step result.
struct Step {
    adv_losses: Vec<f32>,
    nat_losses: Vec<f32>,
    grads: Vec<LayerGrad>,
    penalised: usize,
}

/// Model m's DeMem state: its high-risk rows (empty during the warm-up) and threshold τ.
#[derive(Clone, Default)]
struct Risk {
    high: Vec<bool>,
    tau: f32,
    score: Vec<f32>,
    nat: Vec<f32>,
}

/// The rows `idx` of the flat inputs `x` (n x d) and their labels.
fn gather(x: &[f32], labels: &[u32], d: usize, idx: &[usize]) -> (Vec<f32>, Vec<u32>) {
    let mut xb = Vec::with_capacity(idx.len() * d);
    for &i in idx {
        xb.extend_from_slice(&x[i * d..(i + 1) * d]);
    }
    (xb, idx.iter().map(|&i| labels[i]).collect())
}

/// Trains `net` (model j on rows `subsets[j]`, seeds `seeds[j]`) for `epochs` epochs of batches
/// of `bs` with PGD adversarial training as `adv` says (and DeMem when set), SGD on the CPU;
/// returns every model's robust accuracy on the test split.
#[allow(clippy::too_many_arguments, reason = "one zoo group's whole training state")]
pub(super) fn train_adversarial(
    net: &BatchedMlp,
    opt: &mut Optimizer,
    adv: &Adversarial,
    ds: &Dataset,
    subsets: &[Vec<usize>],
    seeds: &[u64],
    (epochs, bs): (usize, usize),
    stage: &str,
    ctx: &JobCtx<'_>,
) -> CoreResult<Vec<f32>> {
    adv.check()?;
    let sgd = opt.as_sgd().ok_or_else(|| {
        CoreError::Invalid("adversarial zoos train with --optimizer sgd (momentum is allowed)".into())
    })?;
    let (k, d) = (subsets.len(), ds.image_len());
    let all: Vec<usize> = (0..ds.n).collect();
    let x = ds.batch_f32(&all);
    let labels: Vec<u32> = ds.labels.iter().map(|&l| u32::from(l)).collect();
    let attack = Pgd {
        epsilon: adv.epsilon as f32,
        step_size: adv.step_size as f32,
        steps: adv.steps,
    };
    let warmup = adv.warmup(epochs);
    let lambda = adv.demem.as_ref().map_or(0.0, |d| d.lambda as f32);
    let mut risk = vec![
        Risk {
            score: vec![0.0; if warmup.is_some() { ds.n } else { 0 }],
            nat: vec![0.0; if warmup.is_some() { ds.n } else { 0 }],
            ..Risk::default()
        };
        k
    ];
    let mut rngs = super::zoo_groups::order_rngs(seeds);
    let m_rows = subsets.iter().map(Vec::len).min().unwrap_or(0);
    let bs = bs.max(1);
    let steps_per_epoch = m_rows.div_ceil(bs);
    let total = (epochs * steps_per_epoch) as u64;
    let mut step = 0u64;
    for epoch in 0..epochs {
        let orders = super::zoo_groups::epoch_orders(subsets, &mut rngs);
        for b in 0..steps_per_epoch {
            ctx.checkpoint()?;
            let (lo, hi) = (b * bs, ((b + 1) * bs).min(m_rows));
            let (dims, results) = net.per_model(k, d, |m, layers, dims, scaling| {
                let rows = &orders[m][lo..hi];
                let (xb, yb) = gather(&x, &labels, d, rows);
                let salt = step.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seeds[m] ^ 0xadd0_0003 ^ salt);
                let xa = pgd(&xb, &yb, layers, dims, scaling, attack, &mut rng)?;
                let n = rows.len();
                let mut nat_losses = Vec::new();
                let mut xs = xa;
                let mut ys = yb.clone();
                let mut penalised = 0;
                if warmup.is_some() {
                    let mut h = forward_rows(&xb, n, layers, dims, scaling)?;
                    let mut z = h
                        .pop()
                        .ok_or_else(|| CoreError::Invalid("an MLP without layers".into()))?;
                    nat_losses = vec![0f32; n];
                    cross_entropy_rows(&mut z, &yb, dims[dims.len() - 1], |i, l| {
                        nat_losses[i] = l;
                        0.0
                    })?;
                    // The hinge's gradient: -λ/B ∇ℓ_i for the high-risk rows fitted below τ.
                    let r = &risk[m];
                    for (j, &i) in rows.iter().enumerate() {
                        if r.high.get(i).copied().unwrap_or(false) && nat_losses[j] < r.tau {
                            xs.extend_from_slice(&xb[j * d..(j + 1) * d]);
                            ys.push(yb[j]);
                            penalised += 1;
                        }
                    }
                }
                let inv_b = 1.0 / n as f32;
                let (losses, grads) = weighted_step(
                    &xs,
                    &ys,
                    |i, _| if i < n { inv_b } else { -lambda * inv_b },
                    layers,
                    dims,
                    scaling,
                )?;
                Ok(Step {
                    adv_losses: losses[..n].to_vec(),
                    nat_losses,
                    grads,
                    penalised,
                })
            })?;
            let grads = stack_grads(&dims, results.iter().map(|r| r.grads.as_slice()), &Device::Cpu)?;
            sgd.step_grads(&grads)?;
            for (m, r) in results.iter().enumerate() {
                let rows = &orders[m][lo..hi];
                let state = &mut risk[m];
                if warmup.is_some_and(|w| epoch < w) {
                    for (&i, &l) in rows.iter().zip(&r.adv_losses) {
                        state.score[i] += l;
                    }
                }
                for (&i, &l) in rows.iter().zip(&r.nat_losses) {
                    state.nat[i] = l;
                }
            }
            step += 1;
            if step.is_multiple_of(5) || step == total {
                ctx.progress(stage, step, total);
                let n: usize = results.iter().map(|r| r.adv_losses.len()).sum();
                let loss: f64 = results
                    .iter()
                    .flat_map(|r| &r.adv_losses)
                    .map(|&l| f64::from(l))
                    .sum::<f64>()
                    / n.max(1) as f64;
                if !loss.is_finite() {
                    return Err(CoreError::Invalid(format!(
                        "adversarial zoo training diverged at step {step}; lower the learning rate"
                    )));
                }
                ctx.metric("adversarial loss", step as f64, loss);
                if warmup.is_some() {
                    let p: usize = results.iter().map(|r| r.penalised).sum();
                    ctx.metric("penalised fraction", step as f64, p as f64 / n.max(1) as f64);
                }
            }
        }
        if let (Some(w), Some(dm)) = (warmup, &adv.demem) {
            for (state, rows) in risk.iter_mut().zip(subsets) {
                if epoch + 1 == w {
                    let top = top_fraction(rows, &state.score, dm.rho);
                    state.high = vec![false; ds.n];
                    for i in top {
                        state.high[i] = true;
                    }
                }
                if epoch + 1 >= w && dm.tau == TauRule::LowRiskTrain {
                    let low: Vec<f32> = rows
                        .iter()
                        .filter(|&&i| !state.high[i])
                        .map(|&i| state.nat[i])
                        .collect();
                    state.tau = median(low).unwrap_or(0.0);
                }
            }
            if epoch + 1 >= w && dm.tau == TauRule::HeldOut {
                for (state, tau) in risk.iter_mut().zip(held_out_mean(net, ds, &x, &labels, k)?) {
                    state.tau = tau;
                }
            }
        }
    }
    robust_accuracy(net, adv, ds, &x, &labels, seeds, ctx)
}

/// Every model's mean natural loss on the test split (rows no model trains on).
fn held_out_mean(
    net: &BatchedMlp,
    ds: &Dataset,
    x: &[f32],
    labels: &[u32],
    k: usize,
) -> CoreResult<Vec<f32>> {
    let test = ds.test_indices();
    let d = ds.image_len();
    let (xb, yb) = gather(x, labels, d, &test);
    let (_, taus) = net.per_model(k, d, |_, layers, dims, scaling| {
        let mut h = forward_rows(&xb, yb.len(), layers, dims, scaling)?;
        let mut z = h
            .pop()
            .ok_or_else(|| CoreError::Invalid("an MLP without layers".into()))?;
        let mut losses = vec![0f32; yb.len()];
        cross_entropy_rows(&mut z, &yb, dims[dims.len() - 1], |i, l| {
            losses[i] = l;
            0.0
        })?;
        Ok(losses.iter().sum::<f32>() / losses.len().max(1) as f32)
    })?;
    Ok(taus)
}

/// Every model's accuracy on the test split under PGD-`eval_steps` with α = ε/4.
fn robust_accuracy(
    net: &BatchedMlp,
    adv: &Adversarial,
    ds: &Dataset,
    x: &[f32],
    labels: &[u32],
    seeds: &[u64],
    ctx: &JobCtx<'_>,
) -> CoreResult<Vec<f32>> {
    let test = ds.test_indices();
    let (k, d) = (seeds.len(), ds.image_len());
    if test.is_empty() {
        return Err(CoreError::Invalid(format!(
            "{}: no test split to measure robust accuracy on",
            ds.source
        )));
    }
    let attack = Pgd {
        epsilon: adv.epsilon as f32,
        step_size: adv.epsilon as f32 / 4.0,
        steps: adv.eval_steps,
    };
    let chunk = 256;
    let mut correct = vec![0usize; k];
    let chunks = test.len().div_ceil(chunk) as u64;
    for (c, rows) in test.chunks(chunk).enumerate() {
        ctx.checkpoint()?;
        ctx.progress("robust accuracy (PGD on the test split)", c as u64, chunks);
        let (xb, yb) = gather(x, labels, d, rows);
        let (_, counts) = net.per_model(k, d, |m, layers, dims, scaling| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seeds[m] ^ 0xe7a1_0004 ^ c as u64);
            let xa = pgd(&xb, &yb, layers, dims, scaling, attack, &mut rng)?;
            count_correct(&xa, &yb, layers, dims, scaling)
        })?;
        for (s, n) in correct.iter_mut().zip(counts) {
            *s += n;
        }
    }
    Ok(correct.iter().map(|&c| c as f32 / test.len() as f32).collect())
}
