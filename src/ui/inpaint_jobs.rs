//! Job bodies and results behind the Inpainting view: inpaint one image with the IN and the OUT
//! model while publishing intermediate states, run the attack on a batch, open a saved report.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::diffusion_jobs::results_dir;
use crate::data::Dataset;
use crate::diffusion::attack::{InpaintReport, inpaint_attack, pick_images};
use crate::diffusion::denoiser::{Denoiser, open};
use crate::diffusion::inpaint::{InpaintConfig, MaskKind, hidden_error, inpaint, keep_mask};
use crate::diffusion::model::{to_bytes, to_model_range};
use crate::diffusion::{DiffusionCard, diffusion_dir};
use crate::error::{CoreError, CoreResult};
use crate::job::{JobCtx, JobSink, Progress};

/// Live state of an inpainting job, written by the job and read by the view.
#[derive(Debug, Default)]
pub struct LiveInpaint {
    /// Bumped at every new frame.
    pub version: u64,
    /// The current x of the first sample of the IN (0) and OUT (1) model, data-set bytes.
    pub frames: [Option<Vec<u8>>; 2],
}

/// Shared live state.
pub type LiveCell = Arc<Mutex<LiveInpaint>>;

/// What to inpaint.
#[derive(Clone, Debug)]
pub struct InpaintRequest {
    /// Model A.
    pub a: String,
    /// Model B.
    pub b: String,
    /// Hidden region.
    pub mask: MaskKind,
    /// Image (single mode).
    pub image: usize,
    /// Images (batch mode).
    pub count: usize,
    /// Method and schedule.
    pub cfg: InpaintConfig,
    /// Completions per image and model (best of N).
    pub samples: usize,
    /// Seed.
    pub seed: u64,
    /// Where previews go.
    pub live: LiveCell,
}

/// One inpainted image.
pub struct InpaintOne {
    /// Data-set index.
    pub index: usize,
    /// Model that trained on it, and the one that did not.
    pub models: [String; 2],
    /// Keep mask (1 = known), H x W.
    pub keep: Vec<f32>,
    /// Best completion of the IN and the OUT model.
    pub completions: [Vec<u8>; 2],
    /// Their hidden-region l2.
    pub errors: [f64; 2],
    /// The data set.
    pub data: Arc<Dataset>,
}

/// An inpainting attack report with its data set.
pub struct LoadedInpaint {
    /// The report.
    pub report: InpaintReport,
    /// The data set.
    pub data: Arc<Dataset>,
    /// The report file.
    pub source: PathBuf,
    /// Distinct per load (keys its textures).
    pub serial: u64,
}

fn next_serial() -> u64 {
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    SERIAL.fetch_add(1, Ordering::Relaxed)
}

/// Maps the progress of `runs` consecutive inpaintings (each counting 1..=total) onto one bar.
struct Overall<'a> {
    outer: &'a JobCtx<'a>,
    runs: u64,
    stage: String,
    completed: Mutex<u64>,
}

impl JobSink for Overall<'_> {
    fn progress(&self, p: &Progress) {
        if p.total == 0 {
            return;
        }
        let mut completed = self.completed.lock();
        let done = if p.done >= p.total {
            *completed += 1;
            *completed * p.total
        } else {
            *completed * p.total + p.done
        };
        self.outer.progress(&self.stage, done, self.runs * p.total);
    }
    fn metric(&self, series: &str, step: f64, value: f64) {
        self.outer.metric(series, step, value);
    }
    fn log(&self, msg: &str) {
        self.outer.log(msg);
    }
}

type Model = Box<dyn Denoiser>;

/// The card of a study model (every model in a study has one).
fn card(m: &dyn Denoiser) -> CoreResult<&DiffusionCard> {
    m.card()
        .ok_or_else(|| CoreError::Invalid(format!("{} has no card", m.id())))
}

fn trains_on(m: &dyn Denoiser, i: usize) -> bool {
    m.card()
        .is_some_and(|c| c.train_indices.binary_search(&(i as u32)).is_ok())
}

fn load_pair(root: &Path, req: &InpaintRequest, device: &str) -> CoreResult<(Model, Model)> {
    let dev = crate::model::device(device)?;
    let dir = diffusion_dir(root);
    let a = open(&dir.join(&req.a), &dev)?;
    let b = open(&dir.join(&req.b), &dev)?;
    if card(a.as_ref())?.dataset.hash != card(b.as_ref())?.dataset.hash || a.shape() != b.shape() {
        return Err(CoreError::Mismatch(format!(
            "'{}' and '{}' were trained on different data sets",
            req.a, req.b
        )));
    }
    Ok((a, b))
}

/// Inpaints `req.image` with the model that trained on it and the one that did not, publishing
/// the first sample's current state to `req.live` (at most every 40 ms) so the view animates.
pub fn inpaint_one(
    root: &Path,
    req: &InpaintRequest,
    ds: Arc<Dataset>,
    device: &str,
    ctx: &JobCtx<'_>,
) -> CoreResult<InpaintOne> {
    let (a, b) = load_pair(root, req, device)?;
    let i = req.image;
    let in_a = trains_on(a.as_ref(), i);
    let in_b = trains_on(b.as_ref(), i);
    if in_a == in_b {
        return Err(CoreError::Invalid(format!(
            "image {i} is in the training sets of both models or of neither"
        )));
    }
    let (mi, mo) = if in_a {
        (a.as_ref(), b.as_ref())
    } else {
        (b.as_ref(), a.as_ref())
    };
    let [_, h, w] = a.shape();
    let keep = keep_mask(req.mask, h, w, req.seed);
    let x0 = to_model_range(&ds, &vec![i; req.samples.max(1)], a.device())?;
    let overall = Overall {
        outer: ctx,
        runs: 2,
        stage: format!("inpainting #{i}"),
        completed: Mutex::new(0),
    };
    let inner = JobCtx::new(ctx.cancel, &overall);
    {
        let mut l = req.live.lock();
        l.frames = [None, None];
        l.version += 1;
    }
    let mut completions: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut errors = [0.0; 2];
    for (role, m) in [mi, mo].into_iter().enumerate() {
        let mut last: Option<Instant> = None;
        let live = req.live.clone();
        let max_value = ds.max_value;
        let mut on_step = |done: usize, total: usize, x: &candle_core::Tensor| {
            if done < total && last.is_some_and(|t| t.elapsed() < Duration::from_millis(40)) {
                return;
            }
            last = Some(Instant::now());
            let frame = x
                .narrow(0, 0, 1)
                .ok()
                .and_then(|f| to_bytes(&f, max_value).ok())
                .and_then(|mut v| v.pop());
            if let Some(frame) = frame {
                let mut l = live.lock();
                l.frames[role] = Some(frame);
                l.version += 1;
            }
        };
        let out = inpaint(
            m,
            &x0,
            &keep,
            &req.cfg,
            (req.seed, (i as u64) << 16),
            &inner,
            &mut on_step,
        )?;
        let errs = hidden_error(&out, &x0, &keep)?;
        let best = errs
            .iter()
            .enumerate()
            .min_by(|x, y| x.1.total_cmp(y.1))
            .map_or(0, |(k, _)| k);
        completions[role] = to_bytes(&out.narrow(0, best, 1)?, ds.max_value)?.remove(0);
        errors[role] = errs[best];
    }
    Ok(InpaintOne {
        index: i,
        models: [mi.id().to_string(), mo.id().to_string()],
        keep,
        completions,
        errors,
        data: ds,
    })
}

fn inpaint_report_path(root: &Path, a: &str, b: &str) -> PathBuf {
    results_dir(root, a).join(format!("inpaint-{b}.json"))
}

/// Runs the attack on `req.count` images balanced between the two models and saves the report
/// where `rote inpaint` would.
pub fn inpaint_batch(
    root: &Path,
    req: &InpaintRequest,
    ds: Arc<Dataset>,
    device: &str,
    ctx: &JobCtx<'_>,
) -> CoreResult<LoadedInpaint> {
    let (a, b) = load_pair(root, req, device)?;
    let images = pick_images(card(a.as_ref())?, card(b.as_ref())?, req.count, req.seed);
    if images.is_empty() {
        return Err(CoreError::Invalid(
            "no image is in exactly one of the two models' training sets".into(),
        ));
    }
    let overall = Overall {
        outer: ctx,
        runs: 2 * images.len() as u64,
        stage: format!("inpainting {} images", images.len()),
        completed: Mutex::new(0),
    };
    let inner = JobCtx::new(ctx.cancel, &overall);
    let report = inpaint_attack(
        a.as_ref(),
        b.as_ref(),
        &ds,
        &images,
        &crate::diffusion::attack::AttackSpec {
            mask: req.mask,
            config: req.cfg.clone(),
            samples: req.samples,
            seed: req.seed,
        },
        &inner,
    )?;
    let source = inpaint_report_path(root, &req.a, &req.b);
    crate::study::write_json_atomic(&source, &report)?;
    Ok(LoadedInpaint {
        report,
        data: ds,
        source,
        serial: next_serial(),
    })
}

/// Opens the saved attack report of models `a` and `b` (either order), None when there is none.
pub fn open_inpaint_report(
    root: &Path,
    a: &str,
    b: &str,
    ds: Arc<Dataset>,
) -> CoreResult<Option<LoadedInpaint>> {
    for p in [inpaint_report_path(root, a, b), inpaint_report_path(root, b, a)] {
        if !p.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&p).map_err(|e| CoreError::io(&p, e))?;
        let report: InpaintReport = serde_json::from_str(&text)
            .map_err(|e| CoreError::format(&p, format!("not an inpainting report: {e}")))?;
        return Ok(Some(LoadedInpaint {
            report,
            data: ds,
            source: p,
            serial: next_serial(),
        }));
    }
    Ok(None)
}
