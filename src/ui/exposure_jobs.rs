//! Job bodies behind the Exposure view: list and open a study's character LMs with their saved
//! exposure report, measure exposure, and run the extraction search with its progress shared
//! with the view (the candidates it has found and the partial secret it is expanding).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::canary::card::{CanaryLm, LmCard, lm_dir};
use crate::canary::extract::{Candidate, SearchOptions, SearchResult, search_secret};
use crate::canary::report::{
    Estimate, ExposureOptions, ExposureReport, load_report, measure_exposure, report_path,
};
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;

/// A character LM with its saved exposure report.
pub struct LoadedExposure {
    /// Model folder.
    pub dir: PathBuf,
    /// Its card.
    pub card: LmCard,
    /// The saved `both` report, if measured.
    pub report: Option<ExposureReport>,
}

/// The character LM folders under `STUDY/lm/` (those with a card and no Hugging Face
/// `config.json`: a transformer's card belongs to the Text view), sorted.
pub fn list_lms(study: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(lm_dir(study))
        .map(|it| {
            it.flatten()
                .map(|e| e.path())
                .filter(|p| p.join("card.json").is_file() && !crate::lm::card::is_hf_folder(p))
                .filter(|p| {
                    !p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Reads a model's card (checked against its weights' header) and its saved report.
pub fn open_lm(study: &Path, dir: &Path) -> CoreResult<LoadedExposure> {
    let card = LmCard::check_folder(dir)?;
    let path = report_path(study, &card.id, Estimate::Both);
    let report = if path.is_file() {
        Some(load_report(&path)?)
    } else {
        None
    };
    Ok(LoadedExposure {
        dir: dir.to_path_buf(),
        card,
        report,
    })
}

/// Measures exact and skew-normal exposure and saves the report where [`open_lm`] finds it.
pub fn measure(study: &Path, dir: &Path, device: &str, ctx: &JobCtx<'_>) -> CoreResult<ExposureReport> {
    let lm = CanaryLm::load(dir, &crate::model::device(device)?)?;
    let report = measure_exposure(&lm, &ExposureOptions::default(), ctx)?;
    let path = report_path(study, &lm.card.id, Estimate::Both);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| CoreError::io(parent, e))?;
    }
    crate::study::write_json_atomic(&path, &report)?;
    Ok(report)
}

/// What the running search has shown so far.
#[derive(Debug, Default)]
pub struct LiveSearch {
    /// Bumped at every update.
    pub version: u64,
    /// The partial secret being expanded.
    pub frontier: String,
    /// Its cost in bits.
    pub frontier_bits: f64,
    /// Expansions so far.
    pub expanded: usize,
    /// Complete candidates so far.
    pub candidates: Vec<Candidate>,
}

/// A search to run.
#[derive(Clone, Debug)]
pub struct ExtractRequest {
    /// Model folder.
    pub dir: PathBuf,
    /// Prefix.
    pub prefix: String,
    /// Slot digits.
    pub digits: usize,
    /// Search settings.
    pub options: SearchOptions,
    /// `cpu` or `cuda`.
    pub device: String,
    /// Where progress goes.
    pub live: Arc<Mutex<LiveSearch>>,
}

/// Runs the search, publishing every step into the live cell.
pub fn run_extract(req: &ExtractRequest, ctx: &JobCtx<'_>) -> CoreResult<SearchResult> {
    *req.live.lock() = LiveSearch::default();
    let lm = CanaryLm::load(&req.dir, &crate::model::device(&req.device)?)?;
    let live = req.live.clone();
    let mut on_event = move |e: &crate::canary::extract::SearchEvent<'_>| {
        let mut l = live.lock();
        l.version += 1;
        l.frontier = e.frontier.clone();
        l.frontier_bits = e.frontier_bits;
        l.expanded = e.expanded;
        l.candidates = e.candidates.to_vec();
    };
    let r = search_secret(&lm, &req.prefix, req.digits, &req.options, &mut on_event, ctx)?;
    let mut l = req.live.lock();
    l.version += 1;
    l.candidates = r.candidates.clone();
    l.expanded = r.expanded;
    Ok(r)
}
