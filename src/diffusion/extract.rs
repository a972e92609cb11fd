//! The extraction attack on one DDPM (Carlini et al., USENIX Security 2023, section 2b of spec
//! 02): sample, then score every generation against the model's own training images with the
//! plain, tiled and relative l2 of `measure::extraction`. Generations are cached next to the model
//! (keyed by sampler, seed and count) so a second run opens at once.

use std::path::{Path, PathBuf};

use super::denoiser::Denoiser;
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
    /// Sharpness of every generation (Jeon et al.), when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharpness: Option<super::sharpness::GenerationSharpness>,
}

impl ExtractionRun {
    /// Which generations the attack counted as extracted (at the run's threshold).
    pub fn extracted(&self) -> Vec<bool> {
        let mut out = vec![false; self.report.summary.n_samples];
        for r in &self.report.rows {
            if let Some(e) = out.get_mut(r.generation) {
                *e = f64::from(r.score) <= self.report.config.delta;
            }
        }
        out
    }

    /// Measures the sharpness of every generation of this run (from the cache next to the
    /// model, or sampled again) and stores it in the run.
    pub fn measure_sharpness(
        &mut self,
        model: &dyn Denoiser,
        model_dir: &Path,
        max_value: u8,
        cfg: &super::sharpness::SharpnessConfig,
        ctx: &JobCtx<'_>,
    ) -> CoreResult<()> {
        let n = self.report.summary.n_samples;
        let (gens, _) = generations(model, model_dir, n, self.seed, self.sampler, max_value, ctx)?;
        let extracted = self.extracted();
        self.sharpness = Some(super::sharpness::generation_sharpness(
            model, &gens, max_value, &extracted, cfg, ctx,
        )?);
        Ok(())
    }
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
    model: &dyn Denoiser,
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
    let stored = path
        .parent()
        .map_or(Ok(()), |dir| {
            std::fs::create_dir_all(dir).map_err(|e| CoreError::io(dir, e))
        })
        .and_then(|()| crate::study::write_atomic(&path, &flat));
    match stored {
        Ok(()) => {}
        // A model rote trained lives in a study it owns; a user's model folder may be read-only,
        // and the generations are still good without the cache.
        Err(e) if model.card().is_none() => ctx.log(&format!("generations not cached: {e}")),
        Err(e) => return Err(e),
    }
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

/// [`run_extraction`] with the model on `device` (`cpu` or `cuda`). The model folder is rote's
/// (scored against the training images its card names in `ds`) or a diffusers UNet2DModel
/// (scored against every image of `ds`, the user's training set).
pub fn run_extraction_on(
    model_dir: &Path,
    ds: &Dataset,
    spec: &GenSpec,
    cfg: &ExtractionConfig,
    prefer_gpu: bool,
    device: &str,
    ctx: &JobCtx<'_>,
) -> CoreResult<ExtractionRun> {
    let model = super::denoiser::open(model_dir, &crate::model::device(device)?)?;
    run_extraction_with(model.as_ref(), model_dir, ds, spec, cfg, prefer_gpu, ctx)
}

/// [`run_extraction_on`] with the model already open (`model_dir` holds the generation cache).
pub fn run_extraction_with(
    model: &dyn Denoiser,
    model_dir: &Path,
    ds: &Dataset,
    spec: &GenSpec,
    cfg: &ExtractionConfig,
    prefer_gpu: bool,
    ctx: &JobCtx<'_>,
) -> CoreResult<ExtractionRun> {
    let (train_rows, duplicated) = training_rows(model, model_dir, ds)?;
    let GenSpec { n, seed, sampler } = *spec;
    let (gens, cached) = generations(model, model_dir, n, seed, sampler, ds.max_value, ctx)?;
    let mut train = Vec::with_capacity(train_rows.len() * ds.image_len());
    for &i in &train_rows {
        train.extend_from_slice(
            ds.image(i)
                .ok_or_else(|| CoreError::Invalid(format!("training index {i} is outside the data set")))?,
        );
    }
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
        model: model.id().to_string(),
        sampler,
        seed,
        train_rows,
        duplicated,
        report,
        cached,
        sharpness: None,
    })
}

/// The training images of `model` in `ds` and which of them are duplicated: from rote's card
/// (checked against the data set's hash), or for a user's model every image of `ds`, with the
/// images that occur more than once (byte for byte) as the duplicated ones.
pub fn training_rows(
    model: &dyn Denoiser,
    model_dir: &Path,
    ds: &Dataset,
) -> CoreResult<(Vec<usize>, Vec<usize>)> {
    check_shape(model, ds)?;
    if let Some(card) = model.card() {
        if card.dataset.hash != ds.hash {
            return Err(CoreError::Mismatch(format!(
                "{}: the model was trained on '{}' (hash {}), the data set given has hash {}",
                model_dir.display(),
                card.dataset.name,
                card.dataset.hash,
                ds.hash
            )));
        }
        let rows = card.train_indices.iter().map(|&i| i as usize).collect();
        let dups = card.duplicated.iter().map(|&i| i as usize).collect();
        return Ok((rows, dups));
    }
    Ok(((0..ds.n).collect(), exact_duplicates(ds)))
}

/// Images of `ds` whose pixels occur more than once (every copy listed), ascending.
pub fn exact_duplicates(ds: &Dataset) -> Vec<usize> {
    let mut out: Vec<usize> = duplicate_groups(ds).into_iter().flatten().collect();
    out.sort_unstable();
    out
}

/// The newest saved extraction (`extraction-s*-n*.json`) in a model's results folder `dir`.
pub fn newest_extraction(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.starts_with("extraction-") && name.ends_with(".json")
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max()
        .map(|(_, p)| p)
}

/// The groups of byte-identical images of `ds` (two or more each).
pub fn duplicate_groups(ds: &Dataset) -> Vec<Vec<usize>> {
    let mut groups: std::collections::HashMap<&[u8], Vec<usize>> = std::collections::HashMap::new();
    for i in 0..ds.n {
        if let Some(img) = ds.image(i) {
            groups.entry(img).or_default().push(i);
        }
    }
    groups.into_values().filter(|g| g.len() > 1).collect()
}

/// One clear error when the data set's images are not the model's shape.
pub fn check_shape(model: &dyn Denoiser, ds: &Dataset) -> CoreResult<()> {
    check_shape_of(model.id(), model.shape(), ds)
}

/// [`check_shape`] for model `id` taking `[c, h, w]` images.
pub fn check_shape_of(id: &str, [c, h, w]: [usize; 3], ds: &Dataset) -> CoreResult<()> {
    if [ds.c, ds.h, ds.w] != [c, h, w] {
        let kind = |c: usize| if c == 1 { "grey" } else { "colour" };
        return Err(CoreError::Mismatch(format!(
            "the model '{id}' takes {c}x{h}x{w} ({}) images; the training data {} has {}x{}x{} ({}): \
             give the images the model was trained on, at its size",
            kind(c),
            ds.source,
            ds.c,
            ds.h,
            ds.w,
            kind(ds.c)
        )));
    }
    Ok(())
}
