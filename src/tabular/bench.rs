//! `rote bench tabular`: TabDDPM-style training rows per second on Adult, sampling rows per second,
//! and the memorization-ratio search time (every synthetic row against every training row, both
//! distances).

use std::time::Instant;

use super::memorization::{DistanceRule, nearest_two};
use super::train::{TabTrainConfig, train_tabular};
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;

/// Figures of one run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TabularBench {
    /// Training rows.
    pub rows: usize,
    /// Epochs trained.
    pub epochs: usize,
    /// Training rows per second (forward, backward, AdamW and the weights' average).
    pub train_rows_per_second: f64,
    /// Synthetic rows drawn.
    pub samples: usize,
    /// Diffusion steps per synthetic row.
    pub timesteps: usize,
    /// Seconds to draw them.
    pub sample_seconds: f64,
    /// Seconds for the nearest-two search of every synthetic row over every training row, with
    /// the reference code's distance.
    pub search_seconds_code: f64,
    /// The same with the global distance.
    pub search_seconds_global: f64,
    /// Synthetic x training pairs compared per second (code distance).
    pub pairs_per_second: f64,
    /// Rayon threads.
    pub threads: usize,
}

/// Trains a default-recipe model on `rows` Adult rows for `epochs` epochs, draws `samples`
/// rows, and times the memorization search.
pub fn bench_tabular(
    rows: usize,
    epochs: usize,
    samples: usize,
    ctx: &JobCtx<'_>,
) -> CoreResult<TabularBench> {
    let study = std::env::temp_dir().join(format!("rote-bench-tabular-{}", std::process::id()));
    let cfg = TabTrainConfig {
        rows,
        epochs,
        checkpoints: 1,
        samples,
        id: "bench".into(),
        ..TabTrainConfig::default()
    };
    let started = Instant::now();
    let result = train_tabular(&cfg, &study, ctx);
    let total = started.elapsed().as_secs_f64();
    let card = result?;
    let dir = super::train::tabular_dir(&study).join("bench");
    let syn = super::table::MixedTable::read_csv(&dir.join("samples.csv"), &card.codec.schema)?;
    let data = super::train::load_table(&cfg.data, None)?;
    let real = super::table::MixedTable::from_data(&data, &card.members);
    let t = Instant::now();
    let pairs = nearest_two(&real, &syn, DistanceRule::Code);
    let search_code = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let _ = nearest_two(&real, &syn, DistanceRule::Global);
    let search_global = t.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&study).ok();
    if pairs.len() != syn.n_rows() {
        return Err(CoreError::Invalid("the search lost rows".into()));
    }
    // Sampling and measuring happen after training: what is not training is theirs.
    let sample_seconds = (total - card.train_seconds - search_code - search_global).max(0.0);
    Ok(TabularBench {
        rows: card.members.len(),
        epochs,
        train_rows_per_second: card.rows_per_second,
        samples: syn.n_rows(),
        timesteps: cfg.arch.timesteps,
        sample_seconds,
        search_seconds_code: search_code,
        search_seconds_global: search_global,
        pairs_per_second: (syn.n_rows() * real.n_rows()) as f64 / search_code.max(1e-9),
        threads: rayon::current_num_threads(),
    })
}
