//! The ICL sweep cached in a study: `STUDY/results/icl/icl-seed<S>-L<labels>.json` (with several
//! seeds `icl-seed<S>x<n>-L<labels>.json`), written atomically, holding the sweep with the
//! settings that made it. `rote icl --study` and the Text view's Run ICL sweep write it; a second
//! run with the same settings reads it back instead of training (unless `--fresh`); the Text view
//! and the presentation's ICL slide read it through [`list`] and [`load`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{IclRunConfig, IclSweep, IclSweepConfig, run_sweep};
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
use crate::study::write_json_atomic;

/// A cached sweep: the sweep itself (its fields at the top level of the file) and its settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IclRecord {
    /// The sweep.
    #[serde(flatten)]
    pub sweep: IclSweep,
    /// Run seeds.
    pub seeds: Vec<u64>,
    /// Settings shared by every run (`k` 0, `seed` the first seed).
    pub config: IclRunConfig,
    /// Wall time of the sweep in seconds.
    pub seconds: f64,
}

impl IclRecord {
    /// The record of `sweep` made with `cfg` in `seconds`.
    pub fn new(sweep: IclSweep, cfg: &IclSweepConfig, seconds: f64) -> Self {
        Self {
            sweep,
            seeds: cfg.seeds.clone(),
            config: shared_settings(cfg),
            seconds,
        }
    }

    /// Whether this record was made with the settings of `cfg` (parallelism aside).
    pub fn matches(&self, cfg: &IclSweepConfig) -> bool {
        self.sweep.diversities == cfg.diversities
            && self.seeds == cfg.seeds
            && self.config == shared_settings(cfg)
    }
}

/// The run settings of `cfg` that do not change per run.
fn shared_settings(cfg: &IclSweepConfig) -> IclRunConfig {
    IclRunConfig {
        k: 0,
        seed: cfg.seeds.first().copied().unwrap_or(0),
        ..cfg.run.clone()
    }
}

/// `STUDY/results/icl/`.
pub fn results_dir(study_root: &Path) -> PathBuf {
    study_root.join("results").join("icl")
}

/// Where the sweep of `cfg` is cached in the study at `study_root`.
pub fn sweep_path(study_root: &Path, cfg: &IclSweepConfig) -> PathBuf {
    let first = cfg.seeds.first().copied().unwrap_or(0);
    let seeds = match cfg.seeds.len() {
        0 | 1 => format!("{first}"),
        n => format!("{first}x{n}"),
    };
    results_dir(study_root).join(format!("icl-seed{seeds}-L{}.json", cfg.run.labels))
}

/// Writes a record atomically (creating its folder).
pub fn save(path: &Path, record: &IclRecord) -> CoreResult<()> {
    write_json_atomic(path, record)
}

/// Reads a cached record; an error names the file.
pub fn load(path: &Path) -> CoreResult<IclRecord> {
    let text = std::fs::read_to_string(path).map_err(|e| CoreError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| CoreError::format(path, format!("not an ICL sweep: {e}")))
}

/// Every cached sweep of the study (`icl-*.json`, hidden files skipped), sorted by name; the
/// default sweep (seed 0, 4 labels) first when it is there.
pub fn list(study_root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(results_dir(study_root)) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension().is_some_and(|e| e == "json")
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("icl-"))
        })
        .collect();
    let default = sweep_path(study_root, &super::default_sweep(0));
    out.sort_by_key(|p| (*p != default, p.clone()));
    out
}

/// The cached record of `cfg` in the study, when there is one made with the same settings. A
/// file that does not parse or was made otherwise is not used (and is replaced by the next run).
pub fn cached(study_root: &Path, cfg: &IclSweepConfig) -> Option<IclRecord> {
    let path = sweep_path(study_root, cfg);
    load(&path).ok().filter(|r| r.matches(cfg))
}

/// Runs the sweep of `cfg`, or with `study_root` and without `fresh` reads it from the study's
/// cache when it was made with the same settings; a computed sweep is cached there. Returns the
/// record and whether it came from the cache.
pub fn sweep_into_study(
    study_root: Option<&Path>,
    cfg: &IclSweepConfig,
    fresh: bool,
    ctx: &JobCtx<'_>,
) -> CoreResult<(IclRecord, bool)> {
    if let Some(root) = study_root
        && !fresh
        && let Some(record) = cached(root, cfg)
    {
        return Ok((record, true));
    }
    let started = Instant::now();
    let sweep = run_sweep(cfg, ctx)?;
    let record = IclRecord::new(sweep, cfg, started.elapsed().as_secs_f64());
    if let Some(root) = study_root {
        save(&sweep_path(root, cfg), &record)?;
    }
    Ok((record, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::icl::{IclRunResult, summarize};
    use crate::job::{CancelToken, NullSink};

    fn run(k: usize, seed: u64, g: f64, m: f64) -> IclRunResult {
        IclRunResult {
            k,
            seed,
            generalization: g,
            memorization: m,
            steps: 2000,
            early_stopped: false,
            icl_trace: vec![(100, 0.25), (2000, g)],
            final_loss: 0.125,
        }
    }

    #[test]
    fn record_round_trips_with_the_same_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = crate::icl::default_sweep(0);
        cfg.diversities = vec![32, 8192];
        cfg.seeds = vec![0, 1];
        let runs = vec![
            run(32, 0, 0.27, 1.0),
            run(32, 1, 0.25, 0.96),
            run(8192, 0, 0.99, 0.3),
            run(8192, 1, 0.97, 0.31),
        ];
        let sweep = summarize(&cfg.diversities, cfg.run.labels, runs);
        let record = IclRecord::new(sweep, &cfg, 12.5);
        let path = sweep_path(dir.path(), &cfg);
        assert!(
            path.ends_with("results/icl/icl-seed0x2-L4.json"),
            "{}",
            path.display()
        );
        save(&path, &record).unwrap();
        let back = load(&path).unwrap();
        assert_eq!(back, record);
        assert_eq!(back.sweep.generalization, vec![0.26, 0.98]);
        assert!(back.sweep.k_star.is_some());
        assert!(back.matches(&cfg));
        assert_eq!(list(dir.path()), vec![path.clone()]);
        assert_eq!(cached(dir.path(), &cfg), Some(record));

        // Other settings are not served from this file; a damaged file is not served at all.
        let mut other = cfg.clone();
        other.run.steps = 10;
        assert_eq!(sweep_path(dir.path(), &other), path);
        assert!(cached(dir.path(), &other).is_none());
        std::fs::write(&path, "{ not json").unwrap();
        assert!(cached(dir.path(), &cfg).is_none());
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("icl-seed0x2-L4.json"), "{err}");
    }

    #[test]
    fn second_sweep_with_the_same_settings_comes_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = crate::icl::default_sweep(3);
        cfg.diversities = vec![8];
        cfg.run.context = 4;
        cfg.run.width = 8;
        cfg.run.steps = 2;
        cfg.run.batch = 4;
        cfg.run.eval_every = 1;
        cfg.run.eval_sequences = 8;
        cfg.run.min_test_items = 8;
        let cancel = CancelToken::new();
        let ctx = JobCtx::new(&cancel, &NullSink);
        let (first, was_cached) = sweep_into_study(Some(dir.path()), &cfg, false, &ctx).unwrap();
        assert!(!was_cached);
        assert!(dir.path().join("results/icl/icl-seed3-L4.json").is_file());
        let (second, was_cached) = sweep_into_study(Some(dir.path()), &cfg, false, &ctx).unwrap();
        assert!(was_cached);
        assert_eq!(second, first);
        let (_, was_cached) = sweep_into_study(Some(dir.path()), &cfg, true, &ctx).unwrap();
        assert!(!was_cached, "--fresh trains again");
    }
}
