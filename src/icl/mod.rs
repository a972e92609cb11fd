//! In-context learning kinetics: the transition from memorization to generalization in a small
//! transformer as the number of distinct training items K grows.
//!
//! After A. Nguyen and G. Reddy, *Differential learning kinetics govern the transition from
//! memorization to generalization during in-context learning*, arXiv:2412.00104 (ICLR 2025),
//! reference code `anhhuyalex/icl-kinetics`; the rote spec is `specs/12-icl-kinetics.md`.
//!
//! * [`task`]: items, balanced labels, sequences and the two evaluation sets (spec §2).
//! * [`model`]: LayerNorm + one single-head attention (scale 1, no positions) + readout MLP (§3).
//! * [`train`]: one run, SGD 0.01 as the paper or Adam as a labelled option, early stop (§3).
//! * this module: the sweep over K with per-seed results and the threshold K* (§4, §5).
//!
//! Departures from the paper are options with labelled defaults in the CLI (`rote icl`): the
//! number of labels L (the paper's 2; the CLI defaults to 4 so chance is 0.25), a shorter
//! context, a narrower MLP and fewer steps (spec §5); `docs/fidelity.md` lists them.

pub mod model;
pub mod task;
pub mod train;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;
use serde::Serialize;

use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
pub use train::{IclOptimizer, IclRunConfig, IclRunResult, train_run};

/// A sweep over task diversities K, several seeds each.
#[derive(Clone, Debug)]
pub struct IclSweepConfig {
    /// Task diversities K, ascending.
    pub diversities: Vec<usize>,
    /// Run seeds (every K is trained once per seed).
    pub seeds: Vec<u64>,
    /// Settings shared by all runs (its `k` and `seed` are replaced per run).
    pub run: IclRunConfig,
    /// Train runs side by side, one per rayon thread, each run on one thread (faster for these
    /// tiny matrices than splitting every matmul across threads; see `docs/performance.md`).
    pub parallel: bool,
}

/// The outcome of a sweep.
#[derive(Clone, Debug, Serialize)]
pub struct IclSweep {
    /// Task diversities K.
    pub diversities: Vec<usize>,
    /// Mean over seeds of the ICL accuracy on new items, per K.
    pub generalization: Vec<f64>,
    /// Mean over seeds of the IWL accuracy on training items, per K.
    pub memorization: Vec<f64>,
    /// Mean steps trained, per K.
    pub steps: Vec<f64>,
    /// Chance accuracy 1 / L.
    pub chance: f64,
    /// Labels L.
    pub labels: usize,
    /// K where mean generalization crosses halfway between chance and 1 (log-linear
    /// interpolation), only when the sweep has points on both sides.
    pub k_star: Option<f64>,
    /// Every run, K-major then seed.
    pub runs: Vec<IclRunResult>,
}

/// Runs the sweep, reporting progress in optimiser steps and honouring cancellation.
pub fn run_sweep(cfg: &IclSweepConfig, ctx: &JobCtx<'_>) -> CoreResult<IclSweep> {
    if cfg.diversities.is_empty() || cfg.seeds.is_empty() {
        return Err(CoreError::Invalid(
            "ICL sweep: need at least one diversity and one seed".into(),
        ));
    }
    let jobs: Vec<IclRunConfig> = cfg
        .diversities
        .iter()
        .flat_map(|&k| {
            cfg.seeds.iter().map(move |&seed| IclRunConfig {
                k,
                seed,
                ..cfg.run.clone()
            })
        })
        .collect();
    let total = (jobs.len() * cfg.run.steps) as u64;
    let done = AtomicU64::new(0);
    let on_steps = |n: u64| -> CoreResult<()> {
        let d = done.fetch_add(n, Ordering::Relaxed) + n;
        ctx.progress("icl sweep", d.min(total), total);
        ctx.checkpoint()
    };
    let finish = |run: &IclRunConfig, result: &IclRunResult| {
        // Early-stopped runs skip their remaining steps.
        let skipped = (run.steps - result.steps) as u64;
        let d = done.fetch_add(skipped, Ordering::Relaxed) + skipped;
        ctx.progress("icl sweep", d.min(total), total);
    };
    let one = |run: &IclRunConfig| -> CoreResult<IclRunResult> {
        let result = train_run(run, &on_steps)?;
        finish(run, &result);
        Ok(result)
    };
    let workers = if cfg.parallel {
        rayon::current_num_threads().clamp(1, jobs.len())
    } else {
        1
    };
    let runs = run_on_workers(&jobs, workers, &one)?;
    Ok(summarize(&cfg.diversities, cfg.run.labels, runs))
}

/// Runs `jobs` on `workers` named threads, each inside its own one-thread rayon pool so that
/// candle's matmuls stay on that thread: splitting these tiny products across threads costs more
/// than it gains (measured 4x slower on the shared 2-core machine, `docs/performance.md`).
fn run_on_workers(
    jobs: &[IclRunConfig],
    workers: usize,
    one: &(dyn Fn(&IclRunConfig) -> CoreResult<IclRunResult> + Sync),
) -> CoreResult<Vec<IclRunResult>> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<CoreResult<IclRunResult>>>> = jobs.iter().map(|_| Mutex::new(None)).collect();
    let work = || -> CoreResult<()> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .map_err(|e| CoreError::Invalid(format!("ICL sweep: thread pool: {e}")))?;
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(job) = jobs.get(i) else {
                return Ok(());
            };
            let result = pool.install(|| one(job));
            let failed = result.is_err();
            *slots[i].lock() = Some(result);
            if failed {
                // Stop handing out work; the error is reported below.
                next.store(jobs.len(), Ordering::Relaxed);
            }
        }
    };
    std::thread::scope(|scope| -> CoreResult<()> {
        let handles = (0..workers)
            .map(|w| {
                std::thread::Builder::new()
                    .name(format!("icl-run-{w}"))
                    .spawn_scoped(scope, work)
                    .map_err(|e| CoreError::Invalid(format!("ICL sweep: thread: {e}")))
            })
            .collect::<CoreResult<Vec<_>>>()?;
        for h in handles {
            h.join()
                .map_err(|_| CoreError::Invalid("ICL sweep: a worker panicked".into()))??;
        }
        Ok(())
    })?;
    slots
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .unwrap_or_else(|| Err(CoreError::Invalid("ICL sweep: a run was not trained".into())))
        })
        .collect()
}

/// Means per K and the threshold estimate.
pub fn summarize(diversities: &[usize], labels: usize, runs: Vec<IclRunResult>) -> IclSweep {
    let mean_of = |k: usize, f: &dyn Fn(&IclRunResult) -> f64| {
        let v: Vec<f64> = runs.iter().filter(|r| r.k == k).map(f).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    let generalization: Vec<f64> = diversities
        .iter()
        .map(|&k| mean_of(k, &|r| r.generalization))
        .collect();
    let memorization = diversities
        .iter()
        .map(|&k| mean_of(k, &|r| r.memorization))
        .collect();
    let steps = diversities
        .iter()
        .map(|&k| mean_of(k, &|r| r.steps as f64))
        .collect();
    let chance = 1.0 / labels as f64;
    let k_star = threshold(diversities, &generalization, f64::midpoint(chance, 1.0));
    IclSweep {
        diversities: diversities.to_vec(),
        generalization,
        memorization,
        steps,
        chance,
        labels,
        k_star,
        runs,
    }
}

/// The first K at which `values` rises through `level`, interpolated linearly in log K between
/// the two bracketing diversities; `None` unless some point lies below and a later one at or above.
pub fn threshold(diversities: &[usize], values: &[f64], level: f64) -> Option<f64> {
    let pairs: Vec<(f64, f64)> = diversities
        .iter()
        .zip(values)
        .map(|(&k, &v)| ((k as f64).ln(), v))
        .collect();
    pairs.windows(2).find_map(|w| {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        (y0 < level && y1 >= level).then(|| (x0 + (level - y0) / (y1 - y0) * (x1 - x0)).exp())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_needs_both_sides_and_interpolates_in_log_k() {
        let ks = [16, 64, 256];
        assert!(threshold(&ks, &[0.9, 0.95, 1.0], 0.625).is_none());
        assert!(threshold(&ks, &[0.3, 0.4, 0.5], 0.625).is_none());
        let k = threshold(&ks, &[0.25, 0.5, 0.75], 0.625).unwrap();
        assert!((k - 128.0).abs() < 1e-6, "{k}");
    }

    /// A small model learns the task at all: on few items it memorizes (IWL far above chance),
    /// and on many items after enough Adam steps it reads labels from context (ICL above chance).
    #[test]
    fn model_memorizes_few_items() {
        let run = IclRunConfig {
            k: 24,
            labels: 4,
            context: 8,
            width: 32,
            steps: 300,
            batch: 64,
            optimizer: IclOptimizer::Adam,
            lr: 3e-3,
            eval_every: 100,
            eval_sequences: 200,
            ..IclRunConfig::paper(24, 0)
        };
        let r = train_run(&run, &|_| Ok(())).unwrap();
        assert!(r.memorization > 0.8, "{r:?}");
        assert!(r.final_loss < 0.5, "{r:?}");
    }
}
