//! Job bodies and results behind the Extraction view (and the model list both diffusion views
//! share): list a study's diffusion models, open or run an extraction. Everything here runs on
//! job threads; the views only read the results. The Inpainting view's jobs are in
//! `inpaint_jobs.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::data::Dataset;
use crate::diffusion::attack::MemberInpaintReport;
use crate::diffusion::extract::{ExtractionRun, generations, run_extraction_on};
use crate::diffusion::sample::Sampler;
use crate::diffusion::{DiffusionCard, diffusion_dir, list_models};
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
use crate::measure::extraction::ExtractionConfig;

/// The diffusion models of a study and the data sets they trained on.
pub struct DiffusionModels {
    /// Cards, sorted by id.
    pub cards: Vec<DiffusionCard>,
    /// Data sets by content hash.
    pub datasets: BTreeMap<String, Arc<Dataset>>,
    /// Unreadable models and data sets that changed since training.
    pub errors: Vec<String>,
    /// Saved one-model inpainting attacks (`rote inpaint --in-model M` without `--out-model`:
    /// members against held-out images), by model id.
    pub member_inpaints: BTreeMap<String, Arc<MemberInpaintReport>>,
}

impl DiffusionModels {
    /// The card of model `id`.
    pub fn card(&self, id: &str) -> Option<&DiffusionCard> {
        self.cards.iter().find(|c| c.id == id)
    }

    /// The data set model `id` trained on.
    pub fn data(&self, id: &str) -> Option<&Arc<Dataset>> {
        self.card(id).and_then(|c| self.datasets.get(&c.dataset.hash))
    }

    /// The first pair of models on the same data set whose training sets are disjoint, else the
    /// first two models.
    pub fn default_pair(&self) -> Option<(String, String)> {
        for (i, a) in self.cards.iter().enumerate() {
            for b in &self.cards[i + 1..] {
                let disjoint = a
                    .train_indices
                    .iter()
                    .all(|x| b.train_indices.binary_search(x).is_err());
                if a.dataset.hash == b.dataset.hash && disjoint {
                    return Some((a.id.clone(), b.id.clone()));
                }
            }
        }
        match self.cards.as_slice() {
            [a, b, ..] => Some((a.id.clone(), b.id.clone())),
            _ => None,
        }
    }
}

/// Lists the study's diffusion models and loads their data sets (reusing `known` ones).
pub fn load_models(
    study_root: &Path,
    known: &[Arc<Dataset>],
    ctx: &JobCtx<'_>,
) -> CoreResult<DiffusionModels> {
    let (cards, bad) = list_models(study_root);
    let mut errors: Vec<String> = bad.iter().map(ToString::to_string).collect();
    let mut datasets: BTreeMap<String, Arc<Dataset>> = BTreeMap::new();
    for c in &cards {
        ctx.checkpoint()?;
        if datasets.contains_key(&c.dataset.hash) {
            continue;
        }
        if let Some(d) = known.iter().find(|d| d.hash == c.dataset.hash) {
            datasets.insert(d.hash.clone(), d.clone());
            continue;
        }
        match crate::data::load(&c.dataset.name) {
            Ok(d) if d.hash == c.dataset.hash => {
                datasets.insert(d.hash.clone(), Arc::new(d));
            }
            Ok(d) => errors.push(format!(
                "{}: trained on '{}' with hash {}, which now has hash {}",
                c.id, c.dataset.name, c.dataset.hash, d.hash
            )),
            Err(e) => errors.push(format!("{}: {e}", c.id)),
        }
    }
    let mut member_inpaints = BTreeMap::new();
    for c in &cards {
        let path = results_dir(study_root, &c.id).join("inpaint-members.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        match serde_json::from_str::<MemberInpaintReport>(&text) {
            Ok(r) => {
                member_inpaints.insert(c.id.clone(), Arc::new(r));
            }
            Err(e) => errors.push(format!("{}: not an inpainting report: {e}", path.display())),
        }
    }
    Ok(DiffusionModels {
        cards,
        datasets,
        errors,
        member_inpaints,
    })
}

/// `STUDY/results/diffusion/<id>` (where `rote extract` and `rote inpaint` write).
pub fn results_dir(study_root: &Path, id: &str) -> PathBuf {
    study_root.join("results").join("diffusion").join(id)
}

/// An extraction run with its generations, ready to draw.
#[derive(Clone)]
pub struct LoadedExtraction {
    /// The run.
    pub run: ExtractionRun,
    /// Generations, N x C x H x W bytes on the data set's scale.
    pub gens: Arc<[u8]>,
    /// The data set (training images).
    pub data: Arc<Dataset>,
    /// How many times each planted duplicate was in the training list.
    pub dup_factor: usize,
    /// The report file.
    pub source: PathBuf,
}

fn with_generations(
    study_root: &Path,
    card: &DiffusionCard,
    ds: Arc<Dataset>,
    run: ExtractionRun,
    source: PathBuf,
    device: &str,
    ctx: &JobCtx<'_>,
) -> CoreResult<LoadedExtraction> {
    let dir = diffusion_dir(study_root).join(&card.id);
    // The generations are cached; the model only samples when they are missing.
    let model = crate::diffusion::denoiser::open(&dir, &crate::model::device(device)?)?;
    let n = run.report.summary.n_samples;
    let (gens, _) = generations(model.as_ref(), &dir, n, run.seed, run.sampler, ds.max_value, ctx)?;
    Ok(LoadedExtraction {
        run,
        gens: gens.into(),
        data: ds,
        dup_factor: card.dup_factor,
        source,
    })
}

/// Opens the newest saved extraction of `card` (None when there is none). Generations come from
/// the model's cache, or are sampled again (seeded, so identical) when the cache is gone.
pub fn open_extraction(
    study_root: &Path,
    card: &DiffusionCard,
    ds: Arc<Dataset>,
    ctx: &JobCtx<'_>,
) -> CoreResult<Option<LoadedExtraction>> {
    let Some(path) = crate::diffusion::extract::newest_extraction(&results_dir(study_root, &card.id)) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path).map_err(|e| CoreError::io(&path, e))?;
    let run: ExtractionRun = serde_json::from_str(&text)
        .map_err(|e| CoreError::format(&path, format!("not an extraction report: {e}")))?;
    with_generations(study_root, card, ds, run, path, "cpu", ctx).map(Some)
}

/// Where a job computes: the wgpu kernels or their CPU twins, and the candle device.
#[derive(Clone, Debug)]
pub struct Compute {
    /// Use the wgpu kernels when an adapter is there.
    pub wgpu: bool,
    /// `cpu` or `cuda` for the model.
    pub device: String,
}

/// Samples `n` generations (DDIM, 50 steps), scores them, saves the report where `rote extract`
/// would and returns it.
pub fn run_and_save_extraction(
    study_root: &Path,
    card: &DiffusionCard,
    ds: Arc<Dataset>,
    n: usize,
    seed: u64,
    compute: &Compute,
    ctx: &JobCtx<'_>,
) -> CoreResult<LoadedExtraction> {
    let dir = diffusion_dir(study_root).join(&card.id);
    let sampler = Sampler::Ddim { steps: 50, eta: 0.0 };
    let run = run_extraction_on(
        &dir,
        &ds,
        &crate::diffusion::extract::GenSpec { n, seed, sampler },
        &ExtractionConfig::default(),
        compute.wgpu,
        &compute.device,
        ctx,
    )?;
    let out = results_dir(study_root, &card.id).join(format!("extraction-s{seed}-n{n}.json"));
    crate::study::write_json_atomic(&out, &run)?;
    with_generations(study_root, card, ds, run, out, &compute.device, ctx)
}

/// Measures the sharpness (Jeon et al.) of every generation of a loaded extraction and saves the
/// run again where it was read from.
pub fn measure_and_save_sharpness(
    study_root: &Path,
    mut ex: LoadedExtraction,
    device: &str,
    ctx: &JobCtx<'_>,
) -> CoreResult<LoadedExtraction> {
    let dir = diffusion_dir(study_root).join(&ex.run.model);
    let model = crate::diffusion::denoiser::open(&dir, &crate::model::device(device)?)?;
    let cfg = crate::diffusion::sharpness::SharpnessConfig::default();
    ex.run
        .measure_sharpness(model.as_ref(), &dir, ex.data.max_value, &cfg, ctx)?;
    crate::study::write_json_atomic(&ex.source, &ex.run)?;
    Ok(ex)
}
