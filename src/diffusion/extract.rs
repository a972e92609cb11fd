//! The extraction attack on one DDPM (Carlini et al., USENIX Security 2023, section 2b of spec
//! 02): sample, then score every generation against the model's own training images with the
//! plain, tiled and relative l2 of `measure::extraction`. Generations are cached next to the model
//! (keyed by sampler, seed and count) so a second run opens at once.

use std::path::{Path, PathBuf};

use super::model::Ddpm;
use super::sample::{Sampler, generate};
use crate::data::Dataset;
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
use crate::measure::extraction::{ExtractionConfig, ExtractionReport, PlantedTruth, extraction_report};

/// Everything an extraction run produced.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ExtractionRun {
    /// Model id.
    pub model: String,
    /// Sampler used.
    pub sampler: Sampler,
    /// Seed of the generations.
    pub seed: u64,
    /// Data-set index of each training row of the report (row r is image `train_rows[r]`).
    pub train_rows: Vec<usize>,
    /// Data-set indices of planted duplicates.
    pub duplicated: Vec<usize>,
    /// The scores.
    pub report: ExtractionReport,
    /// Whether the generations came from the cache.
    pub cached: bool,
}

/// Where the generations of (sampler, seed, n) are cached in a model folder.
pub(crate) fn cache_path(model_dir: &Path, sampler: &Sampler, seed: u64, n: usize) -> PathBuf {
    let tag = match sampler {
        Sampler::Ancestral { steps } => format!("anc{steps}"),
        Sampler::Ddim { steps, eta } => format!("ddim{steps}e{eta}"),
    };
    model_dir
        .join("generations")
        .join(format!("{tag}-s{seed}-n{n}.u8"))
}

/// Generated images of `model`, from the cache when present. Returns flat bytes (N x C x H x W,
/// data-set scale) and whether they were cached.
pub fn generations(
    model: &Ddpm,
    model_dir: &Path,
    n: usize,
    seed: u64,
    sampler: Sampler,
    max_value: u8,
    ctx: &JobCtx<'_>,
) -> CoreResult<(Vec<u8>, bool)> {
    let path = cache_path(model_dir, &sampler, seed, n);
    let len = n * model.shape().iter().product::<usize>();
    if let Ok(bytes) = std::fs::read(&path)
        && bytes.len() == len
    {
        return Ok((bytes, true));
    }
    let imgs = generate(model, n, seed, sampler, 64, max_value, ctx)?;
    let flat: Vec<u8> = imgs.concat();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| CoreError::io(dir, e))?;
    }
    crate::study::write_atomic(&path, &flat)?;
    Ok((flat, false))
}

/// Rescales bytes of a `max_value` data set to 0..=255 (the distances assume that range).
fn to_255(v: &[u8], max_value: u8) -> Vec<u8> {
    if max_value == 255 {
        return v.to_vec();
    }
    let m = f32::from(max_value.max(1));
    v.iter()
        .map(|&p| (f32::from(p) / m * 255.0).round() as u8)
        .collect()
}

/// Which generations to score: `n` images from noise seed `seed` with `sampler`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GenSpec {
    /// Number of generations.
    pub n: usize,
    /// Noise seed.
    pub seed: u64,
    /// Sampler.
    pub sampler: Sampler,
}

/// Samples the generations of `spec` from the model in `model_dir` and scores them against its
/// training set.
pub fn run_extraction(
    model_dir: &Path,
    ds: &Dataset,
    spec: &GenSpec,
    cfg: &ExtractionConfig,
    prefer_gpu: bool,
    ctx: &JobCtx<'_>,
) -> CoreResult<ExtractionRun> {
    run_extraction_on(model_dir, ds, spec, cfg, prefer_gpu, "cpu", ctx)
}

/// [`run_extraction`] with the model on `device` (`cpu` or `cuda`).
pub fn run_extraction_on(
    model_dir: &Path,
    ds: &Dataset,
    spec: &GenSpec,
    cfg: &ExtractionConfig,
    prefer_gpu: bool,
    device: &str,
    ctx: &JobCtx<'_>,
) -> CoreResult<ExtractionRun> {
    let model = Ddpm::load(model_dir, &crate::model::device(device)?)?;
    if model.card.dataset.hash != ds.hash {
        return Err(CoreError::Mismatch(format!(
            "{}: the model was trained on '{}' (hash {}), the data set given has hash {}",
            model_dir.display(),
            model.card.dataset.name,
            model.card.dataset.hash,
            ds.hash
        )));
    }
    let GenSpec { n, seed, sampler } = *spec;
    let (gens, cached) = generations(&model, model_dir, n, seed, sampler, ds.max_value, ctx)?;
    let train_rows: Vec<usize> = model.card.train_indices.iter().map(|&i| i as usize).collect();
    let mut train = Vec::with_capacity(train_rows.len() * ds.image_len());
    for &i in &train_rows {
        train.extend_from_slice(
            ds.image(i)
                .ok_or_else(|| CoreError::Invalid(format!("training index {i} is outside the data set")))?,
        );
    }
    let duplicated: Vec<usize> = model.card.duplicated.iter().map(|&i| i as usize).collect();
    let dup_rows: Vec<usize> = duplicated
        .iter()
        .filter_map(|d| train_rows.binary_search(d).ok())
        .collect();
    let single_rows: Vec<usize> = (0..train_rows.len()).filter(|r| !dup_rows.contains(r)).collect();
    let truth = PlantedTruth {
        duplicated: (!dup_rows.is_empty()).then_some(dup_rows.as_slice()),
        singletons: Some(single_rows.as_slice()),
    };
    let shape = model.shape();
    let report = extraction_report(
        &to_255(&gens, ds.max_value),
        &to_255(&train, ds.max_value),
        shape,
        cfg,
        &truth,
        prefer_gpu,
        Some(ctx),
    )?;
    Ok(ExtractionRun {
        model: model.card.id.clone(),
        sampler,
        seed,
        train_rows,
        duplicated,
        report,
        cached,
    })
}
