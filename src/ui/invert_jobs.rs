//! Job bodies and results behind the Inversion view: open a face classifier's saved inversion
//! reports with its data set, and invert one person or all of them while publishing the
//! current iterates (frames) and costs for the live preview.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::data::Dataset;
use crate::error::CoreResult;
use crate::invert::{
    EvalConfig, InversionReport, InvertConfig, InvertOptions, Method, invert_model, load_report, report_path,
};
use crate::job::{Frame, JobCtx, JobSink, Progress};
use crate::model::ModelCard;

/// Every method, in the order the view offers them.
pub const METHODS: [Method; 4] = [Method::Tv, Method::MiFace, Method::MiFacePaper, Method::Art];

/// A face classifier with its data set and saved reports.
pub struct LoadedInversion {
    /// Model id.
    pub model: String,
    /// Its card (train indices: the faces it saw).
    pub card: ModelCard,
    /// The data set.
    pub data: Arc<Dataset>,
    /// Saved reports by method.
    pub reports: BTreeMap<&'static str, InversionReport>,
    /// Unreadable report files.
    pub errors: Vec<String>,
    /// Distinct per load (keys textures).
    pub serial: u64,
}

impl LoadedInversion {
    /// The saved report of `method`.
    pub fn report(&self, method: Method) -> Option<&InversionReport> {
        self.reports.get(method.as_str())
    }

    /// Training (`true`) or held-out images of person `class`.
    pub fn faces(&self, class: usize, train: bool) -> Vec<usize> {
        let seen: std::collections::BTreeSet<u32> = self.card.train_indices.iter().copied().collect();
        (0..self.data.n)
            .filter(|&i| usize::from(self.data.labels[i]) == class)
            .filter(|&i| seen.contains(&(i as u32)) == train)
            .collect()
    }
}

/// A fresh serial (keys the textures of a new result).
pub fn next_serial() -> u64 {
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    SERIAL.fetch_add(1, Ordering::Relaxed)
}

/// Loads `card`'s data set (reusing a known one with the same content) and its saved reports.
pub fn open_inversion(
    study: &Path,
    card: ModelCard,
    known: &[Arc<Dataset>],
    ctx: &JobCtx<'_>,
) -> CoreResult<LoadedInversion> {
    let data = match known.iter().find(|d| d.hash == card.dataset.hash) {
        Some(d) => d.clone(),
        None => {
            ctx.progress(&format!("loading {}", card.dataset.name), 0, 1);
            Arc::new(crate::data::load(&card.dataset.name)?)
        }
    };
    let mut reports = BTreeMap::new();
    let mut errors = Vec::new();
    for method in METHODS {
        let path = report_path(study, &card.id, method);
        if !path.is_file() {
            continue;
        }
        match load_report(&path) {
            Ok(r) => {
                reports.insert(method.as_str(), r);
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    Ok(LoadedInversion {
        model: card.id.clone(),
        card,
        data,
        reports,
        errors,
        serial: next_serial(),
    })
}

/// What the running inversion has shown so far: the newest iterate and the cost curve of each
/// person.
#[derive(Debug, Default)]
pub struct LiveInversion {
    /// Bumped at every new frame.
    pub version: u64,
    /// Newest iterate per person (bytes 0..255, C x H x W) and its step.
    pub frames: BTreeMap<usize, (usize, Vec<u8>)>,
    /// (step, cost) per person.
    pub curves: BTreeMap<usize, Vec<[f64; 2]>>,
}

/// Shared live state.
pub type LiveCell = Arc<Mutex<LiveInversion>>;

/// An inversion to run.
#[derive(Clone, Debug)]
pub struct InvertRequest {
    /// Model folder.
    pub model_dir: PathBuf,
    /// Method and hyper-parameters.
    pub config: InvertConfig,
    /// People to invert (`None`: all).
    pub classes: Option<Vec<usize>>,
    /// How to train the evaluation classifier when the study has none cached for it.
    pub eval: EvalConfig,
    /// `cpu` or `cuda`.
    pub device: String,
    /// Where frames go.
    pub live: LiveCell,
}

/// Forwards everything to the job's sink and keeps the frames in the live cell (the loops report
/// progress at the same cadence as frames, which wakes the UI).
struct LiveSink<'a> {
    outer: &'a JobCtx<'a>,
    live: &'a LiveCell,
}

impl JobSink for LiveSink<'_> {
    fn progress(&self, p: &Progress) {
        self.outer.progress(&p.stage, p.done, p.total);
    }
    fn metric(&self, series: &str, step: f64, value: f64) {
        self.outer.metric(series, step, value);
    }
    fn log(&self, msg: &str) {
        self.outer.log(msg);
    }
    fn wants_frames(&self) -> bool {
        true
    }
    fn frame(&self, f: &Frame<'_>) {
        let bytes: Vec<u8> = f
            .pixels
            .iter()
            .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect();
        let mut live = self.live.lock();
        live.version += 1;
        live.frames.insert(f.key, (f.step, bytes));
        live.curves
            .entry(f.key)
            .or_default()
            .push([f.step as f64, f.value]);
    }
}

/// Runs the inversion, merging the result into the saved report of the same method and
/// hyper-parameters, and returns the merged report.
pub fn run_inversion(req: &InvertRequest, ctx: &JobCtx<'_>) -> CoreResult<InversionReport> {
    *req.live.lock() = LiveInversion::default();
    let sink = LiveSink {
        outer: ctx,
        live: &req.live,
    };
    let inner = JobCtx::new(ctx.cancel, &sink);
    let opts = InvertOptions {
        config: req.config.clone(),
        classes: req.classes.clone(),
        eval: req.eval.clone(),
        device: req.device.clone(),
        merge: true,
        eval_model: None,
    };
    let (report, _) = invert_model(&req.model_dir, &opts, &inner)?;
    Ok(report)
}
