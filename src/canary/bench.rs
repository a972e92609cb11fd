//! `rote bench exposure`: candidates scored per second by the exact rank (the whole 10^digits
//! space through the digit tree), references scored per second for the estimates, and the
//! extraction search's time on the demo LM. Prints figures, never asserts times.

use std::time::Instant;

use super::card::{CanaryLm, lm_dir};
use super::extract::{SearchOptions, search_secret};
use super::report::draw_references;
use super::score::{exact_space, score_secrets};
use crate::error::CoreResult;
use crate::job::JobCtx;

/// Figures of one run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ExposureBench {
    /// Device name.
    pub device: String,
    /// LSTM units.
    pub hidden: usize,
    /// Slot digits of the exact rank.
    pub digits: usize,
    /// Seconds to score the whole space.
    pub exact_seconds: f64,
    /// Candidates per second.
    pub candidates_per_sec: f64,
    /// References scored (one sequence each).
    pub references: usize,
    /// References per second.
    pub references_per_sec: f64,
    /// Seconds of the Dijkstra search for the first candidate.
    pub search_seconds: f64,
    /// Its expansions.
    pub search_expanded: usize,
}

/// Times the demo LM (or, with `hidden`, an untrained LM of that width with the demo's vocabulary
/// and formats) on `device`.
pub fn bench_exposure(
    digits: usize,
    hidden: Option<usize>,
    references: usize,
    device: &str,
    ctx: &JobCtx<'_>,
) -> CoreResult<ExposureBench> {
    let dev = crate::model::device(device)?;
    let demo = lm_dir(&crate::demo::demo_assets_dir()).join("lm-demo");
    let mut lm = CanaryLm::load(&demo, &dev)?;
    if let Some(h) = hidden {
        let mut card = lm.card.clone();
        card.arch.hidden = h;
        lm = CanaryLm::fresh(card, &dev)?;
    }
    // Warm-up (CUDA compiles its kernels at first use): a 3-digit space and a few references.
    lm.card.formats[0].digits = 3;
    exact_space(&lm, &lm.card.formats[0], ctx)?;
    score_secrets(
        &lm,
        &lm.card.formats[0],
        &draw_references(&lm.canary_set(), 0, 16, 1)?,
        ctx,
    )?;
    lm.card.formats[0].digits = digits;
    let t0 = Instant::now();
    let space = exact_space(&lm, &lm.card.formats[0], ctx)?;
    let exact_seconds = t0.elapsed().as_secs_f64();
    let refs = draw_references(&lm.canary_set(), 0, references.min(space.len() / 2), 0)?;
    let t1 = Instant::now();
    score_secrets(&lm, &lm.card.formats[0], &refs, ctx)?;
    let ref_seconds = t1.elapsed().as_secs_f64();
    let prefix = lm.card.formats[0].prefix.clone();
    let t2 = Instant::now();
    let s = search_secret(
        &lm,
        &prefix,
        digits,
        &SearchOptions {
            candidates: 1,
            ..SearchOptions::default()
        },
        &mut |_| {},
        ctx,
    )?;
    Ok(ExposureBench {
        device: device.to_string(),
        hidden: lm.card.arch.hidden,
        digits,
        exact_seconds,
        candidates_per_sec: space.len() as f64 / exact_seconds.max(1e-9),
        references: refs.len(),
        references_per_sec: refs.len() as f64 / ref_seconds.max(1e-9),
        search_seconds: t2.elapsed().as_secs_f64(),
        search_expanded: s.expanded,
    })
}
