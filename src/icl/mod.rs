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

pub mod cache;
pub mod model;
pub mod task;
pub mod train;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
pub use train::{IclOptimizer, IclRunConfig, IclRunResult, train_run};

/// Default labels of `rote icl`: 4 (chance 0.25), a departure from the paper's 2.
pub const DEFAULT_LABELS: usize = 4;
/// Default context items before the query.
pub const DEFAULT_CONTEXT: usize = 20;
/// Default readout MLP width.
pub const DEFAULT_WIDTH: usize = 128;
/// Default step budget per run.
pub const DEFAULT_STEPS: usize = 2000;
/// Default sequences per step (the paper's 128).
pub const DEFAULT_BATCH: usize = 128;
/// Default diversities.
pub const DEFAULT_DIVERSITIES: [usize; 5] = [32, 128, 512, 2048, 8192];
/// Default steps between ICL evaluations.
pub const DEFAULT_EVAL_EVERY: usize = 100;
/// Default sequences per evaluation set.
pub const DEFAULT_EVAL_SEQUENCES: usize = 1000;
/// Default floor on the number of new items in the ICL test.
pub const DEFAULT_MIN_TEST_ITEMS: usize = 1000;

/// A sweep over task diversities K, several seeds each.
#[derive(Clone, Debug, PartialEq)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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

/// The sweep `rote icl` runs without options (one seed, Adam, runs side by side): the tiny CPU
/// reproduction of spec 12 §5, also what the GUI's Run ICL sweep runs, so both share a cache file.
pub fn default_sweep(seed: u64) -> IclSweepConfig {
    let optimizer = IclOptimizer::Adam;
    IclSweepConfig {
        diversities: DEFAULT_DIVERSITIES.to_vec(),
        seeds: vec![seed],
        run: IclRunConfig {
            labels: DEFAULT_LABELS,
            context: DEFAULT_CONTEXT,
            width: DEFAULT_WIDTH,
            steps: DEFAULT_STEPS,
            batch: DEFAULT_BATCH,
            optimizer,
            lr: optimizer.default_lr(),
            eval_every: DEFAULT_EVAL_EVERY,
            eval_sequences: DEFAULT_EVAL_SEQUENCES,
            min_test_items: DEFAULT_MIN_TEST_ITEMS,
            ..IclRunConfig::paper(0, seed)
        },
        parallel: true,
    }
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

/// The sweep's finding in one sentence: memorization without in-context learning at the smallest
/// K, and from which K the model learns in context (K*), with the accuracies that show it.
pub fn finding(sweep: &IclSweep) -> String {
    let (Some(&k0), Some(&kn)) = (sweep.diversities.first(), sweep.diversities.last()) else {
        return "The sweep has no diversities".to_string();
    };
    let at = |v: &[f64], i: usize| v.get(i).copied().unwrap_or(f64::NAN);
    let last = sweep.diversities.len() - 1;
    let (icl0, iwl0, icln) = (
        at(&sweep.generalization, 0),
        at(&sweep.memorization, 0),
        at(&sweep.generalization, last),
    );
    let chance = sweep.chance;
    let half = f64::midpoint(chance, 1.0);
    let memorizes = if iwl0 >= half {
        format!("memorizes (IWL {iwl0:.2})")
    } else {
        format!("does not even memorize (IWL {iwl0:.2})")
    };
    match sweep.k_star {
        Some(k) => format!(
            "At K = {k0} training items the transformer {memorizes} and cannot learn in context \
             (ICL {icl0:.2}, chance {chance:.2}); from K ≈ {:.0} it learns in context ({icln:.2} at \
             K = {kn})",
            round_significant(k, 2)
        ),
        None if icl0 >= half => format!(
            "Already at K = {k0} training items the transformer learns in context (ICL {icl0:.2}, \
             chance {chance:.2}; {icln:.2} at K = {kn}): the sweep starts above the transition"
        ),
        None => {
            let best = sweep.generalization.iter().copied().fold(f64::NAN, f64::max);
            format!(
                "At K = {k0} training items the transformer {memorizes}; up to K = {kn} it does \
                 not learn in context (ICL at most {best:.2}, chance {chance:.2}): the sweep ends \
                 below the transition"
            )
        }
    }
}

/// `x` rounded to `digits` significant digits (870.3 -> 870, 12,345 -> 12,000 for 2).
pub fn round_significant(x: f64, digits: i32) -> f64 {
    if x <= 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(x.log10().floor() as i32 + 1 - digits);
    (x / scale).round() * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sweep of two diversities with the given means, for the finding's wording.
    pub(crate) fn sweep_of(generalization: [f64; 2], memorization: [f64; 2]) -> IclSweep {
        let ks = [32, 8192];
        IclSweep {
            diversities: ks.to_vec(),
            generalization: generalization.to_vec(),
            memorization: memorization.to_vec(),
            steps: vec![2000.0, 300.0],
            chance: 0.25,
            labels: 4,
            k_star: threshold(&ks, &generalization, 0.625),
            runs: Vec::new(),
        }
    }

    #[test]
    fn finding_names_memorization_and_the_threshold() {
        let s = finding(&sweep_of([0.27, 0.99], [1.0, 0.3]));
        assert!(
            s.starts_with("At K = 32 training items the transformer memorizes (IWL 1.00)"),
            "{s}"
        );
        assert!(
            s.contains("cannot learn in context (ICL 0.27, chance 0.25)"),
            "{s}"
        );
        assert!(
            s.contains("from K ≈ 490 it learns in context (0.99 at K = 8192)"),
            "{s}"
        );
        let below = finding(&sweep_of([0.26, 0.3], [0.9, 0.5]));
        assert!(below.contains("the sweep ends below the transition"), "{below}");
        let above = finding(&sweep_of([0.9, 0.99], [0.9, 0.5]));
        assert!(above.starts_with("Already at K = 32"), "{above}");
        assert!((round_significant(870.3, 2) - 870.0).abs() < 1e-9);
        assert!((round_significant(12_345.0, 2) - 12_000.0).abs() < 1e-9);
    }

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
