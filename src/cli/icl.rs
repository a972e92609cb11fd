//! `rote icl`: the memorization-to-generalization transition of in-context learning across task
//! diversity K (Nguyen & Reddy, arXiv:2412.00104; spec 12). Defaults are the tiny CPU
//! reproduction of spec §5, with 4 labels instead of the paper's 2 (a labelled departure).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;

use super::CliSink;
use super::commands::print;
use crate::error::CoreResult;
use crate::icl::cache::{IclRecord, sweep_into_study, sweep_path};
use crate::icl::{
    DEFAULT_BATCH, DEFAULT_CONTEXT, DEFAULT_DIVERSITIES, DEFAULT_EVAL_EVERY, DEFAULT_EVAL_SEQUENCES,
    DEFAULT_LABELS, DEFAULT_MIN_TEST_ITEMS, DEFAULT_STEPS, DEFAULT_WIDTH, IclOptimizer, IclRunConfig,
    IclSweep, IclSweepConfig, run_sweep,
};
use crate::job::{CancelToken, JobCtx};

/// Options of `rote icl`.
#[derive(Debug, clap::Args)]
pub struct IclArgs {
    /// Task diversities K (number of training items), each a multiple of --labels.
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_DIVERSITIES)]
    pub diversities: Vec<usize>,
    /// First run seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Seeds per diversity (seed, seed + 1, ...).
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// Labels L (the paper's is 2, chance 0.5; the default 4 puts chance at 0.25).
    #[arg(long, default_value_t = DEFAULT_LABELS)]
    pub labels: usize,
    /// Context items N before the query (the paper's 100).
    #[arg(long, default_value_t = DEFAULT_CONTEXT)]
    pub context: usize,
    /// Most optimiser steps per run (early stop at ICL accuracy > 0.99).
    #[arg(long, default_value_t = DEFAULT_STEPS)]
    pub steps: usize,
    /// Readout MLP width (the paper's 512).
    #[arg(long, default_value_t = DEFAULT_WIDTH)]
    pub width: usize,
    /// Sequences per step (the paper's 128).
    #[arg(long, default_value_t = DEFAULT_BATCH)]
    pub batch: usize,
    /// Optimiser: sgd (the paper's, lr 0.01) or adam (lr 1e-3, faster on a CPU).
    #[arg(long, value_enum, default_value = "adam")]
    pub optimizer: IclOptimizer,
    /// Learning rate (default: the optimiser's).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Steps between ICL evaluations.
    #[arg(long, default_value_t = DEFAULT_EVAL_EVERY)]
    pub eval_every: usize,
    /// Sequences per evaluation set.
    #[arg(long, default_value_t = DEFAULT_EVAL_SEQUENCES)]
    pub eval_sequences: usize,
    /// Fewest new items in the ICL test (the reference uses K of them, up to 20,000; 0 does
    /// that). At small K a few items make the accuracy swing around chance with the draw.
    #[arg(long, default_value_t = DEFAULT_MIN_TEST_ITEMS)]
    pub min_test_items: usize,
    /// Train the runs one after another instead of side by side.
    #[arg(long)]
    pub sequential: bool,
    /// Study (or any folder) to cache the sweep in, as results/icl/icl-seed<S>-L<labels>.json;
    /// a cached sweep with the same settings is shown instead of training again.
    #[arg(long)]
    pub study: Option<PathBuf>,
    /// With --study: train again even when the sweep is cached.
    #[arg(long)]
    pub fresh: bool,
}

impl IclArgs {
    /// The sweep these options describe.
    pub fn sweep_config(&self) -> IclSweepConfig {
        let mut diversities = self.diversities.clone();
        diversities.sort_unstable();
        diversities.dedup();
        IclSweepConfig {
            diversities,
            seeds: (self.seed..self.seed + self.seeds.max(1)).collect(),
            run: IclRunConfig {
                labels: self.labels,
                context: self.context,
                width: self.width,
                steps: self.steps,
                batch: self.batch,
                optimizer: self.optimizer,
                lr: self.lr.unwrap_or_else(|| self.optimizer.default_lr()),
                eval_every: self.eval_every,
                eval_sequences: self.eval_sequences,
                min_test_items: self.min_test_items,
                ..IclRunConfig::paper(0, self.seed)
            },
            parallel: !self.sequential,
        }
    }
}

impl IclArgs {
    /// The defaults of `rote icl` with one seed.
    pub fn defaults(seed: u64, sequential: bool) -> Self {
        Self {
            diversities: DEFAULT_DIVERSITIES.to_vec(),
            seed,
            seeds: 1,
            labels: DEFAULT_LABELS,
            context: DEFAULT_CONTEXT,
            steps: DEFAULT_STEPS,
            width: DEFAULT_WIDTH,
            batch: DEFAULT_BATCH,
            optimizer: IclOptimizer::Adam,
            lr: None,
            eval_every: DEFAULT_EVAL_EVERY,
            eval_sequences: DEFAULT_EVAL_SEQUENCES,
            min_test_items: DEFAULT_MIN_TEST_ITEMS,
            sequential,
            study: None,
            fresh: false,
        }
    }
}

/// Runs a sweep with a progress bar on stderr; returns it with its wall time in seconds.
fn timed_sweep(cfg: &IclSweepConfig, json: bool) -> CoreResult<(IclSweep, f64)> {
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let started = Instant::now();
    let sweep = run_sweep(cfg, &JobCtx::new(&cancel, &sink));
    sink.finish();
    Ok((sweep?, started.elapsed().as_secs_f64()))
}

/// `rote bench icl`: the default sweep's wall time and training sequences per second.
pub(super) fn bench(seed: u64, sequential: bool, json: bool) -> CoreResult<()> {
    let cfg = IclArgs::defaults(seed, sequential).sweep_config();
    let (sweep, secs) = timed_sweep(&cfg, json)?;
    let steps: usize = sweep.runs.iter().map(|r| r.steps).sum();
    let sequences = (steps * cfg.run.batch) as f64;
    let per_sec = sequences / secs.max(1e-9);
    let workers = if sequential {
        1
    } else {
        rayon::current_num_threads().min(sweep.runs.len())
    };
    if json {
        println!(
            "{}",
            json!({ "bench": "icl", "seconds": secs, "runs": sweep.runs.len(), "steps": steps,
                    "sequences": sequences, "sequences_per_sec": per_sec, "workers": workers,
                    "diversities": sweep.diversities, "generalization": sweep.generalization,
                    "memorization": sweep.memorization })
        );
    } else {
        println!(
            "ICL sweep (default rote icl, seed {seed}, {} runs on {workers} worker(s)): {secs:.1} s, \
             {steps} steps, {per_sec:.0} training sequences/s; generalization {:?}",
            sweep.runs.len(),
            sweep
                .generalization
                .iter()
                .map(|g| (g * 1000.0).round() / 1000.0)
                .collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// `rote icl`.
pub fn icl(args: IclArgs, json: bool) -> CoreResult<()> {
    let cfg = args.sweep_config();
    let Some(study) = args.study.as_deref() else {
        let (sweep, secs) = timed_sweep(&cfg, json)?;
        let value = sweep_json(&sweep, &cfg, secs);
        print(json, &value, || sweep_text(&sweep, &cfg, secs));
        return Ok(());
    };
    check_study(study)?;
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let made = sweep_into_study(Some(study), &cfg, args.fresh, &JobCtx::new(&cancel, &sink));
    sink.finish();
    let (record, was_cached): (IclRecord, bool) = made?;
    let path = sweep_path(study, &cfg);
    let mut value = sweep_json(&record.sweep, &cfg, record.seconds);
    value["cache"] = json!({ "path": path, "cached": was_cached });
    print(json, &value, || {
        let from = if was_cached {
            "read from the cache (--fresh trains again)"
        } else {
            "cached"
        };
        format!(
            "{}\nsweep {from}: {}",
            sweep_text(&record.sweep, &cfg, record.seconds),
            path.display()
        )
    });
    Ok(())
}

/// `--study` must be an existing folder (a study, or a folder of shipped results such as
/// `assets/demo`).
fn check_study(study: &Path) -> CoreResult<()> {
    if study.is_dir() {
        Ok(())
    } else {
        Err(crate::error::CoreError::format(
            study,
            "--study: not a folder (rote demo --out or rote train --out creates a study)",
        ))
    }
}

/// The JSON report of a sweep.
pub(super) fn sweep_json(sweep: &IclSweep, cfg: &IclSweepConfig, secs: f64) -> serde_json::Value {
    let run = &cfg.run;
    let per_seed: Vec<serde_json::Value> = sweep
        .runs
        .iter()
        .map(|r| {
            json!({
                "k": r.k,
                "seed": r.seed,
                "generalization": r.generalization,
                "memorization": r.memorization,
                "steps": r.steps,
                "early_stopped": r.early_stopped,
                "final_loss": r.final_loss,
                "icl_trace": r.icl_trace,
            })
        })
        .collect();
    json!({
        "diversities": sweep.diversities,
        "generalization": sweep.generalization,
        "memorization": sweep.memorization,
        "steps": sweep.steps,
        "chance": sweep.chance,
        "labels": sweep.labels,
        "k_star": sweep.k_star,
        "seeds": cfg.seeds,
        "per_seed": per_seed,
        "config": {
            "item_dim": run.dim,
            "context": run.context,
            "width": run.width,
            "max_steps": run.steps,
            "batch": run.batch,
            "optimizer": run.optimizer,
            "lr": run.lr,
            "eval_every": run.eval_every,
            "eval_sequences": run.eval_sequences,
            "min_test_items": run.min_test_items,
            "early_stop_accuracy": crate::icl::train::EARLY_STOP_ACCURACY,
        },
        "departures_from_paper": departures(cfg),
        "seconds": secs,
    })
}

/// The settings that differ from the paper's (spec 12 §3), in words.
fn departures(cfg: &IclSweepConfig) -> Vec<String> {
    let run = &cfg.run;
    let paper = IclRunConfig::paper(0, 0);
    let mut out = Vec::new();
    if run.labels != paper.labels {
        out.push(format!(
            "{} labels, chance {:.2} (paper: 2, chance 0.5)",
            run.labels,
            1.0 / run.labels as f64
        ));
    }
    if run.context != paper.context {
        out.push(format!("context N = {} (paper: 100)", run.context));
    }
    if run.width != paper.width {
        out.push(format!("MLP width {} (paper: 512)", run.width));
    }
    if run.optimizer != paper.optimizer || (run.lr - paper.lr).abs() > 1e-12 {
        out.push(format!(
            "optimiser {:?} lr {} (paper: SGD lr 0.01, no momentum)",
            run.optimizer, run.lr
        ));
    }
    if run.batch != paper.batch {
        out.push(format!("batch {} (paper: 128)", run.batch));
    }
    if run.min_test_items > 0 {
        out.push(format!(
            "ICL test on at least {} new items (paper: K of them, up to 20,000)",
            run.min_test_items
        ));
    }
    out.push(format!("at most {} steps (paper: up to 469,000)", run.steps));
    out
}

fn sweep_text(sweep: &IclSweep, cfg: &IclSweepConfig, secs: f64) -> String {
    let mut s = format!(
        "ICL kinetics (Nguyen & Reddy): L = {} labels (chance {:.2}), N = {}, width {}, {:?} lr {}, \
         {} seed(s), {:.1} s\n{:>8}  {:>14}  {:>12}  {:>8}\n",
        sweep.labels,
        sweep.chance,
        cfg.run.context,
        cfg.run.width,
        cfg.run.optimizer,
        cfg.run.lr,
        cfg.seeds.len(),
        secs,
        "K",
        "generalization",
        "memorization",
        "steps"
    );
    for (i, k) in sweep.diversities.iter().enumerate() {
        s.push_str(&format!(
            "{k:>8}  {:>14.3}  {:>12.3}  {:>8.0}\n",
            sweep.generalization[i], sweep.memorization[i], sweep.steps[i]
        ));
    }
    s.push_str(&crate::icl::finding(sweep));
    s.push('.');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The GUI runs `icl::default_sweep`; it must be what `rote icl` runs, so both use one cache.
    #[test]
    fn cli_defaults_are_the_core_default_sweep() {
        for seed in [0, 7] {
            let mut cfg = IclArgs::defaults(seed, false).sweep_config();
            assert_eq!(cfg, crate::icl::default_sweep(seed));
            cfg.parallel = false;
            assert_eq!(IclArgs::defaults(seed, true).sweep_config(), cfg);
        }
    }
}
