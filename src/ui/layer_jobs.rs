//! Job bodies behind the Layers view: open a study's LayerMem reports with the candidates' images,
//! and drill into one candidate (its augmentations and its nearest neighbours in f's and g's
//! representation).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;

use crate::data::Dataset;
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
use crate::ssl::augment::{AugPurpose, aug_rng, augment};
use crate::ssl::encoder::to_input;
use crate::ssl::split::{SampleRef, images01};
use crate::ssl::supervised::SupervisedReport;
use crate::ssl::{LayerMemReport, Role, SslCard, SslEncoder, ssl_dir};

/// A LayerMem report with what the view needs to draw it.
pub struct LoadedLayers {
    /// The report file.
    pub path: PathBuf,
    /// The report.
    pub report: LayerMemReport,
    /// The candidate encoder's card (split, recipe).
    pub f_card: SslCard,
    /// The main data set.
    pub main: Arc<Dataset>,
    /// The outlier data set, when outliers were planted.
    pub outliers: Option<Arc<Dataset>>,
    /// The candidates as samples.
    pub refs: Vec<SampleRef>,
    /// Candidate positions, most memorized (final layer) first.
    pub order: Vec<usize>,
    /// Whether each candidate position is a planted outlier.
    pub planted: Vec<bool>,
    /// Supervised models' UnitMem/ClassMem reports in the same study (for comparison).
    pub supervised: Vec<SupervisedReport>,
}

impl LoadedLayers {
    /// The data set and index of a sample.
    pub fn locate(&self, r: SampleRef) -> Option<(&Arc<Dataset>, usize)> {
        match r {
            SampleRef::Main(i) => Some((&self.main, i as usize)),
            SampleRef::Outlier(i) => self.outliers.as_ref().map(|d| (d, i as usize)),
        }
    }
}

fn is_supervised(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("supervised-"))
}

/// The supervised UnitMem reports (`rote unitmem`) in `STUDY/results/layermem/`; unreadable ones
/// are skipped.
fn supervised_reports(study: &Path) -> Vec<SupervisedReport> {
    let dir = study.join("results").join("layermem");
    let Ok(it) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<SupervisedReport> = it
        .flatten()
        .map(|e| e.path())
        .filter(|p| is_supervised(p))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter_map(|t| serde_json::from_str(&t).ok())
        .collect();
    out.sort_by(|a, b| a.model.cmp(&b.model));
    out
}

/// The LayerMem report files in `STUDY/results/layermem/` (not the supervised ones), sorted.
pub fn list_reports(study: &Path) -> Vec<PathBuf> {
    let dir = study.join("results").join("layermem");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|it| {
            it.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .filter(|p| !is_supervised(p))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn dataset(name: &str, known: &[Arc<Dataset>]) -> CoreResult<Arc<Dataset>> {
    match known.iter().find(|d| d.name == name) {
        Some(d) => Ok(d.clone()),
        None => Ok(Arc::new(crate::data::load(name)?)),
    }
}

/// Opens the report at `path` of `study`.
pub fn open_layers(
    study: &Path,
    path: &Path,
    known: &[Arc<Dataset>],
    ctx: &JobCtx<'_>,
) -> CoreResult<LoadedLayers> {
    let text = std::fs::read_to_string(path).map_err(|e| CoreError::io(path, e))?;
    let report: LayerMemReport = serde_json::from_str(&text)
        .map_err(|e| CoreError::format(path, format!("not a LayerMem report: {e}")))?;
    let f_card = SslCard::check_folder(&ssl_dir(study).join(&report.f))?;
    ctx.progress("loading the data sets", 0, 1);
    let main = dataset(&f_card.dataset.name, known)?;
    let outliers = match &f_card.outlier_dataset {
        Some(d) => Some(dataset(&d.name, known)?),
        None => None,
    };
    let refs = f_card.split.candidate_refs();
    if refs.len() != report.candidates.len() {
        return Err(CoreError::format(
            path,
            format!(
                "{} candidates in the report but {} in encoder {}'s split",
                report.candidates.len(),
                refs.len(),
                report.f
            ),
        ));
    }
    let last = report.layermem.last().cloned().unwrap_or_default();
    let mut order: Vec<usize> = (0..refs.len()).collect();
    order.sort_by(|&a, &b| {
        let (va, vb) = (
            last.get(a).copied().unwrap_or(0.0),
            last.get(b).copied().unwrap_or(0.0),
        );
        vb.total_cmp(&va).then(a.cmp(&b))
    });
    let mut planted = vec![false; refs.len()];
    for p in f_card.split.planted_slots() {
        if let Some(x) = planted.get_mut(p) {
            *x = true;
        }
    }
    Ok(LoadedLayers {
        path: path.to_path_buf(),
        report,
        f_card,
        main,
        outliers,
        refs,
        order,
        planted,
        supervised: supervised_reports(study),
    })
}

/// One candidate in detail.
pub struct Drill {
    /// Candidate position.
    pub position: usize,
    /// The measurement's augmented views of it (the first `augmentations` LayerMem draws), [0, 1].
    pub views: Vec<Vec<f32>>,
    /// Nearest training images of f (S_S and S_C) in f's representation: (sample, distance).
    pub neighbours_f: Vec<(SampleRef, f32)>,
    /// The same pool in g's representation.
    pub neighbours_g: Vec<(SampleRef, f32)>,
}

/// What [`drill`] needs.
#[derive(Clone, Debug)]
pub struct DrillRequest {
    /// The study folder.
    pub study: PathBuf,
    /// The candidate encoder's card.
    pub f_card: SslCard,
    /// Independent encoder id.
    pub g: String,
    /// Candidate position.
    pub position: usize,
    /// Seed and number of the measurement draws.
    pub seed: u64,
    /// Views to show.
    pub views: usize,
    /// Neighbours per encoder.
    pub k: usize,
    /// The data sets.
    pub main: Arc<Dataset>,
    /// The outlier data set.
    pub outliers: Option<Arc<Dataset>>,
    /// `cpu` or `cuda` for the encoders.
    pub device: String,
}

/// L2-normalised final-layer representations of `pixels` (n images).
fn representations(
    enc: &SslEncoder,
    pixels: &[f32],
    shape: [usize; 3],
    ctx: &JobCtx<'_>,
) -> CoreResult<Vec<Vec<f32>>> {
    let len: usize = shape.iter().product();
    let n = pixels.len() / len.max(1);
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(256) {
        ctx.checkpoint()?;
        let end = (start + 256).min(n);
        let x = to_input(
            pixels[start * len..end * len].to_vec(),
            end - start,
            shape,
            enc.varmap.all_vars().first().map_or(&Device::Cpu, |v| v.device()),
        )?;
        let layers = enc.net.layers(&x)?;
        let last = layers
            .last()
            .ok_or_else(|| CoreError::Invalid("the encoder has no layers".into()))?;
        for mut row in last.flatten_from(1)?.to_vec2::<f32>()? {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            row.iter_mut().for_each(|v| *v /= norm);
            out.push(row);
        }
    }
    Ok(out)
}

fn nearest(
    query: &[f32],
    pool: &[Vec<f32>],
    refs: &[SampleRef],
    skip: SampleRef,
    k: usize,
) -> Vec<(SampleRef, f32)> {
    let mut d: Vec<(SampleRef, f32)> = pool
        .iter()
        .zip(refs)
        .filter(|(_, r)| **r != skip)
        .map(|(p, &r)| {
            let dist = p
                .iter()
                .zip(query)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f32>()
                .sqrt();
            (r, dist)
        })
        .collect();
    d.sort_by(|a, b| a.1.total_cmp(&b.1));
    d.truncate(k);
    d
}

/// Computes the drill-down of one candidate.
pub fn drill(req: &DrillRequest, ctx: &JobCtx<'_>) -> CoreResult<Drill> {
    let card = &req.f_card;
    let refs = card.split.candidate_refs();
    let target = *refs
        .get(req.position)
        .ok_or_else(|| CoreError::Invalid(format!("no candidate at position {}", req.position)))?;
    let shape = [req.main.c, req.main.h, req.main.w];
    let img = images01(&[target], &req.main, req.outliers.as_deref())?;
    let views = (0..req.views as u64)
        .map(|j| {
            let mut rng = aug_rng(req.seed, AugPurpose::LayerMem, target.id(), 0, j);
            augment(&img, shape, &card.recipe.aug, &mut rng)
        })
        .collect();
    let dir = ssl_dir(&req.study);
    ctx.progress("loading the encoders", 0, 3);
    let dev = crate::model::device(&req.device)?;
    let f = SslEncoder::load(&dir.join(&card.id), &dev)?;
    let g = SslEncoder::load(&dir.join(&req.g), &dev)?;
    let pool_refs = card.split.train_refs(Role::F);
    let pool = images01(&pool_refs, &req.main, req.outliers.as_deref())?;
    ctx.progress("f's representation", 1, 3);
    let rep_f = representations(&f, &pool, shape, ctx)?;
    let q_f = representations(&f, &img, shape, ctx)?;
    ctx.progress("g's representation", 2, 3);
    let rep_g = representations(&g, &pool, shape, ctx)?;
    let q_g = representations(&g, &img, shape, ctx)?;
    ctx.progress("nearest neighbours", 3, 3);
    let first = |v: &[Vec<f32>]| v.first().cloned().unwrap_or_default();
    Ok(Drill {
        position: req.position,
        views,
        neighbours_f: nearest(&first(&q_f), &rep_f, &pool_refs, target, req.k),
        neighbours_g: nearest(&first(&q_g), &rep_g, &pool_refs, target, req.k),
    })
}
