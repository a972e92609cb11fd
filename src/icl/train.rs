//! Training one run of the ICL kinetics experiment (spec 12 §3 "Training", §5): SGD (lr 0.01, no
//! momentum, batch 128) as the paper, or Adam as a labelled speed option; early stop once the ICL
//! test accuracy exceeds 0.99; the final ICL ("generalization") and IWL ("memorization") accuracy.

use candle_nn::{Optimizer as _, ParamsAdamW, SGD};
use rand::SeedableRng as _;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::model::{IclModel, IclModelShape, accuracy};
use super::task::{Draw, ITEM_DIM, ItemBank, MAX_TEST_ITEMS, make_batch};
use crate::error::{CoreError, CoreResult};

/// The optimiser of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum IclOptimizer {
    /// Plain SGD without momentum, as the paper (lr 0.01).
    Sgd,
    /// Adam (β 0.9/0.999, no weight decay): a departure from the paper, faster on a CPU.
    Adam,
}

impl IclOptimizer {
    /// The learning rate used when none is given: the paper's 0.01 for SGD, 1e-3 for Adam.
    pub fn default_lr(self) -> f64 {
        match self {
            Self::Sgd => 0.01,
            Self::Adam => 1e-3,
        }
    }
}

/// ICL test accuracy above which training stops (the reference's early stop).
pub const EARLY_STOP_ACCURACY: f64 = 0.99;

/// Settings of one run (one K, one seed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IclRunConfig {
    /// Task diversity K (number of training items).
    pub k: usize,
    /// Item dimension D.
    pub dim: usize,
    /// Labels L.
    pub labels: usize,
    /// Context items N before the query.
    pub context: usize,
    /// Readout MLP width.
    pub width: usize,
    /// Most optimiser steps.
    pub steps: usize,
    /// Sequences per step.
    pub batch: usize,
    /// Optimiser.
    pub optimizer: IclOptimizer,
    /// Learning rate.
    pub lr: f64,
    /// Steps between ICL evaluations (for early stopping and the onset trace).
    pub eval_every: usize,
    /// Sequences in each evaluation set.
    pub eval_sequences: usize,
    /// Run seed (the item bank, labels, sampler and init seeds derive from it).
    pub seed: u64,
    /// Fewest new items in the ICL test bank. The reference draws min(20,000, K) new items (0
    /// here reproduces that); at small K so few items make the accuracy of a model that ignores
    /// the context swing by ±0.08 around chance with the draw, so the CLI sets a floor.
    pub min_test_items: usize,
}

impl IclRunConfig {
    /// The paper's architecture and optimiser (SGD 0.01, batch 128, D = 63, L = 2, N = 100,
    /// width 512) for diversity `k`; the CLI shrinks N, width and steps (spec 12 §5).
    pub fn paper(k: usize, seed: u64) -> Self {
        Self {
            k,
            dim: ITEM_DIM,
            labels: 2,
            context: 100,
            width: 512,
            steps: 469_000,
            batch: 128,
            optimizer: IclOptimizer::Sgd,
            lr: IclOptimizer::Sgd.default_lr(),
            eval_every: 469,
            eval_sequences: 2000,
            seed,
            min_test_items: 0,
        }
    }
}

/// The separately seeded random streams of one run (spec 12 §6 "Seeds").
#[derive(Clone, Copy, Debug, Serialize)]
pub struct RunSeeds {
    /// Training item vectors.
    pub items: u64,
    /// Training label assignment.
    pub labels: u64,
    /// Training sequence sampler.
    pub sampler: u64,
    /// Model initialisation.
    pub init: u64,
    /// New items and labels of the ICL test, and both evaluation samplers.
    pub test: u64,
}

impl RunSeeds {
    /// Independent seeds derived from the run seed by SplitMix64.
    pub fn derive(seed: u64) -> Self {
        let s = |stream: u64| splitmix64(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        Self {
            items: s(1),
            labels: s(2),
            sampler: s(3),
            init: s(4),
            test: s(5),
        }
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What one run gives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IclRunResult {
    /// Task diversity K.
    pub k: usize,
    /// Run seed.
    pub seed: u64,
    /// ICL accuracy on new items with the query in context (generalization).
    pub generalization: f64,
    /// IWL accuracy on training items with the query absent from context (memorization).
    pub memorization: f64,
    /// Optimiser steps taken (fewer than the budget after an early stop).
    pub steps: usize,
    /// Whether training stopped early at ICL accuracy > 0.99.
    pub early_stopped: bool,
    /// (step, ICL accuracy) at every evaluation: the onset trace.
    pub icl_trace: Vec<(usize, f64)>,
    /// Mean training loss of the last evaluation interval.
    pub final_loss: f64,
}

/// The training items and the new items of the ICL test: K of them, at most 20,000 as the
/// reference, at least `min_test_items`, a multiple of L so that the labels stay balanced.
fn banks(cfg: &IclRunConfig, seeds: &RunSeeds) -> CoreResult<(ItemBank, ItemBank)> {
    let bank = ItemBank::new(cfg.k, cfg.dim, cfg.labels, seeds.items, seeds.labels)?;
    let test_k = cfg
        .k
        .max(cfg.min_test_items)
        .min(MAX_TEST_ITEMS)
        .div_ceil(cfg.labels)
        * cfg.labels;
    let test_bank = ItemBank::new(test_k, cfg.dim, cfg.labels, seeds.test, seeds.test ^ 1)?;
    Ok((bank, test_bank))
}

enum Opt {
    Sgd(SGD),
    Adam(crate::train::AdamWCpu),
}

/// Trains one run. `on_steps(n)` is called after every `n` steps (for progress and cancellation;
/// an error from it stops the run).
pub fn train_run(
    cfg: &IclRunConfig,
    on_steps: &(dyn Fn(u64) -> CoreResult<()> + Sync),
) -> CoreResult<IclRunResult> {
    if cfg.batch == 0 || cfg.eval_every == 0 || cfg.eval_sequences == 0 || cfg.width == 0 {
        return Err(CoreError::Invalid(
            "ICL run: batch, width, eval interval and eval sequences must be positive".into(),
        ));
    }
    let seeds = RunSeeds::derive(cfg.seed);
    let (bank, test_bank) = banks(cfg, &seeds)?;
    let mut eval_rng = ChaCha8Rng::seed_from_u64(seeds.test ^ 2);
    let icl_eval = make_batch(
        &test_bank,
        cfg.context,
        cfg.eval_sequences,
        Draw::QueryInContext,
        &mut eval_rng,
    )?;
    let iwl_eval = make_batch(
        &bank,
        cfg.context,
        cfg.eval_sequences,
        Draw::QueryAbsent,
        &mut eval_rng,
    )?;
    let model = IclModel::new(
        IclModelShape {
            token_dim: bank.token_dim(),
            width: cfg.width,
            labels: cfg.labels,
        },
        seeds.init,
    )?;
    let mut opt = match cfg.optimizer {
        IclOptimizer::Sgd => Opt::Sgd(SGD::new(model.vars(), cfg.lr)?),
        IclOptimizer::Adam => Opt::Adam(crate::train::AdamWCpu::new(
            model.vars(),
            ParamsAdamW {
                lr: cfg.lr,
                weight_decay: 0.0,
                ..ParamsAdamW::default()
            },
        )?),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seeds.sampler);
    let mut icl_trace = Vec::new();
    let mut loss_sum = 0.0f64;
    let mut loss_count = 0usize;
    let mut final_loss = f64::NAN;
    let mut steps = 0;
    let mut early_stopped = false;
    while steps < cfg.steps {
        let batch = make_batch(&bank, cfg.context, cfg.batch, Draw::QueryInContext, &mut rng)?;
        let logits = model.forward(&batch.tokens)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &batch.targets)?;
        match &mut opt {
            Opt::Sgd(o) => o.backward_step(&loss)?,
            Opt::Adam(o) => o.backward_step(&loss)?,
        }
        steps += 1;
        loss_sum += f64::from(loss.to_scalar::<f32>()?);
        loss_count += 1;
        if steps % cfg.eval_every == 0 || steps == cfg.steps {
            on_steps(loss_count as u64)?;
            final_loss = loss_sum / loss_count as f64;
            if !final_loss.is_finite() {
                return Err(CoreError::Invalid(format!(
                    "ICL run K = {} seed {} diverged at step {steps}; lower the learning rate",
                    cfg.k, cfg.seed
                )));
            }
            (loss_sum, loss_count) = (0.0, 0);
            let icl = accuracy(&model.forward(&icl_eval.tokens)?, &icl_eval.target_values)?;
            icl_trace.push((steps, icl));
            if icl > EARLY_STOP_ACCURACY {
                early_stopped = true;
                break;
            }
        }
    }
    let generalization = match icl_trace.last() {
        Some(&(_, acc)) => acc,
        None => accuracy(&model.forward(&icl_eval.tokens)?, &icl_eval.target_values)?,
    };
    let memorization = accuracy(&model.forward(&iwl_eval.tokens)?, &iwl_eval.target_values)?;
    Ok(IclRunResult {
        k: cfg.k,
        seed: cfg.seed,
        generalization,
        memorization,
        steps,
        early_stopped,
        icl_trace,
        final_loss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_icl_test_uses_new_items() {
        let cfg = IclRunConfig {
            k: 64,
            labels: 4,
            min_test_items: 100,
            ..IclRunConfig::paper(64, 3)
        };
        let seeds = RunSeeds::derive(cfg.seed);
        let streams = [seeds.items, seeds.labels, seeds.sampler, seeds.init, seeds.test];
        for (i, a) in streams.iter().enumerate() {
            assert!(streams[i + 1..].iter().all(|b| a != b), "{seeds:?}");
        }
        let (train, test) = banks(&cfg, &seeds).unwrap();
        assert_eq!(train.len(), 64);
        assert_eq!(test.len(), 100, "floor, rounded to a multiple of L");
        for a in 0..train.len() {
            for b in 0..test.len() {
                assert_ne!(train.item(a), test.item(b));
            }
        }
        let reference = IclRunConfig {
            min_test_items: 0,
            ..cfg.clone()
        };
        assert_eq!(
            banks(&reference, &seeds).unwrap().1.len(),
            64,
            "the reference's K"
        );
    }
}
