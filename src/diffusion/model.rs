//! A trained DDPM on disk: `STUDY/diffusion/<id>/{card.json, weights.safetensors}`. The card says
//! exactly which images the model saw (and which were planted as duplicates), so every attack can
//! be scored against ground truth.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use super::schedule::{Schedule, ScheduleKind};
use super::unet::{UNet, UNetConfig};
use crate::data::Dataset;
use crate::error::{CoreError, CoreResult};
use crate::model::DatasetRef;
use crate::model::limits;

/// What kind of weights a diffusion model folder holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiffusionFormat {
    /// rote's UNet (`weights.safetensors`), trained by rote.
    #[default]
    Rote,
    /// A diffusers UNet2DModel imported with its training set (config.json,
    /// scheduler_config.json, diffusion_pytorch_model.safetensors); `unet` only summarises it.
    Diffusers,
}

/// Everything about one trained diffusion model.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct DiffusionCard {
    /// Model id (folder name).
    pub id: String,
    /// rote's own model, or an imported diffusers one.
    #[serde(default, skip_serializing_if = "is_rote")]
    pub format: DiffusionFormat,
    /// Denoiser architecture.
    pub unet: UNetConfig,
    /// Noise schedule.
    pub schedule: ScheduleKind,
    /// Diffusion steps T.
    pub t_max: usize,
    /// Data set trained on.
    pub dataset: DatasetRef,
    /// Distinct data-set indices the model trained on (sorted).
    pub train_indices: Vec<u32>,
    /// Of those, the images planted as duplicates.
    pub duplicated: Vec<u32>,
    /// How many times each planted duplicate appears in the training list.
    pub dup_factor: usize,
    /// Optimiser steps.
    pub steps: usize,
    /// Batch size.
    pub batch_size: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// Seed of initialisation, batches, timesteps and noise.
    pub seed: u64,
    /// Mean training loss over the last 10% of steps (NaN, written null, for an imported model).
    #[serde(deserialize_with = "nan_from_null")]
    pub final_loss: f64,
    /// (step, mean loss) points.
    pub loss_curve: Vec<[f64; 2]>,
    /// Training time.
    pub seconds: f64,
    /// Parameter count.
    pub n_params: usize,
    /// Device trained on.
    pub device: String,
    /// Command that reproduces the model.
    pub command: String,
    /// rote version.
    pub rote_version: String,
    /// Deduplication applied to the training list before training (`--dedup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup: Option<crate::defence::dedup::DedupRecord>,
}

impl DiffusionCard {
    /// Parses the text of a diffusion card and validates its UNet; `path` only names the file in
    /// errors.
    pub fn from_json(path: &Path, text: &str) -> CoreResult<Self> {
        let card: Self = serde_json::from_str(text)
            .map_err(|e| CoreError::format(path, format!("not a diffusion model card: {e}")))?;
        limits::in_range("t_max", card.t_max, limits::T_MAX)
            .and_then(|()| limits::in_range("dataset.n", card.dataset.n, limits::DATASET_N))
            .and_then(|()| limits::validate(&card.unet))
            .map_err(|why| CoreError::format(path, why))?;
        Ok(card)
    }

    /// Reads and validates `dir/card.json` and checks its UNet against the header of
    /// `dir/weights.safetensors` (an imported diffusers model: its config against the header of
    /// its weights), allocating nothing of the model's size.
    pub fn check_folder(dir: &Path) -> CoreResult<Self> {
        let card_path = dir.join("card.json");
        if let Ok(text) = std::fs::read_to_string(&card_path)
            && let Ok(card) = Self::from_json(&card_path, &text)
            && card.format == DiffusionFormat::Diffusers
        {
            super::diffusers_unet::check(dir)?;
            return Ok(card);
        }
        crate::model::check_model_folder(dir)?;
        let text = std::fs::read_to_string(&card_path).map_err(|e| CoreError::io(&card_path, e))?;
        let card = Self::from_json(&card_path, &text)?;
        crate::model::header::check_weights(&card.unet, &card_path, &dir.join("weights.safetensors"))?;
        Ok(card)
    }
}

/// A number, or null for NaN (JSON has no NaN; serde_json writes it as null).
fn nan_from_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    use serde::Deserialize as _;
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

fn is_rote(f: &DiffusionFormat) -> bool {
    *f == DiffusionFormat::Rote
}

impl limits::Architecture for UNetConfig {
    fn kind(&self) -> &'static str {
        "UNet"
    }

    fn check_sizes(&self) -> Result<(), String> {
        limits::check_image("unet.", self.channels, self.height, self.width)?;
        limits::in_range("unet.base", self.base, limits::WIDTH)?;
        limits::all_in_range("unet.mults", &self.mults, limits::LEVELS, limits::MULT)?;
        let widest = self.mults.iter().copied().max().unwrap_or(1);
        limits::product("unet.base x mult", &[self.base, widest], *limits::WIDTH.end())?;
        limits::product(
            "unet.base x 2 x mult x height x width (activations of one image)",
            &[self.base, 2, widest, self.height, self.width],
            limits::MAX_ACTIVATIONS,
        )?;
        self.validate()
    }

    fn declare(&self, vb: VarBuilder<'_>) -> CoreResult<()> {
        Ok(UNet::new(self, vb).map(|_| ())?)
    }

    fn size_fields(&self) -> Vec<(String, usize)> {
        let mut v = vec![
            ("unet.base".to_string(), self.base),
            ("unet.channels".to_string(), self.channels),
        ];
        v.extend(
            self.mults
                .iter()
                .enumerate()
                .map(|(k, &m)| (format!("unet.mults[{k}]"), m)),
        );
        v
    }

    fn with_size(&self, field: &str, value: usize) -> Option<Self> {
        let mut c = self.clone();
        match field {
            "unet.base" => c.base = value,
            "unet.channels" => c.channels = value,
            _ => {
                let k: usize = field
                    .strip_prefix("unet.mults[")?
                    .strip_suffix(']')?
                    .parse()
                    .ok()?;
                *c.mults.get_mut(k)? = value;
            }
        }
        Some(c)
    }
}

/// A DDPM ready to sample.
pub struct Ddpm {
    /// The denoiser.
    pub unet: UNet,
    /// Its parameters.
    pub varmap: VarMap,
    /// The full training schedule.
    pub schedule: Schedule,
    /// The card.
    pub card: DiffusionCard,
    /// Device the weights live on.
    pub device: Device,
}

/// `STUDY/diffusion`.
pub fn diffusion_dir(study_root: &Path) -> PathBuf {
    study_root.join("diffusion")
}

impl Ddpm {
    /// A freshly initialised model for `card` (weights seeded from `card.seed`).
    pub fn fresh(card: DiffusionCard, device: &Device) -> CoreResult<Self> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let unet = UNet::new(&card.unet, vb)?;
        crate::model::seeded_init(&varmap, card.seed)?;
        let schedule = Schedule::new(card.schedule, card.t_max);
        Ok(Self {
            unet,
            varmap,
            schedule,
            card,
            device: device.clone(),
        })
    }

    /// Loads `dir` (card.json + weights.safetensors), checking the weights against the card.
    pub fn load(dir: &Path, device: &Device) -> CoreResult<Self> {
        let card = DiffusionCard::check_folder(dir)?;
        if card.format == DiffusionFormat::Diffusers {
            return Err(CoreError::format(
                dir,
                "holds an imported diffusers UNet2DModel, not rote's UNet (open it with \
                 diffusion::denoiser::open)",
            ));
        }
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let unet = UNet::new(&card.unet, vb)?;
        crate::model::fill_varmap(&varmap, &dir.join("weights.safetensors"), "UNet", device)?;
        let schedule = Schedule::new(card.schedule, card.t_max);
        Ok(Self {
            unet,
            varmap,
            schedule,
            card,
            device: device.clone(),
        })
    }

    /// Writes card and weights into `dir` (created), weights in `dtype`.
    pub fn save(&self, dir: &Path, dtype: DType) -> CoreResult<()> {
        std::fs::create_dir_all(dir).map_err(|e| CoreError::io(dir, e))?;
        crate::model::save_weights_as(&self.varmap, &dir.join("weights.safetensors"), dtype)?;
        crate::study::write_json_atomic(&dir.join("card.json"), &self.card)
    }

    /// Predicted noise at full-schedule timesteps `t` (one per image).
    pub fn eps(&self, x: &Tensor, t: &[u32]) -> CoreResult<Tensor> {
        let t = Tensor::new(t, &self.device)?;
        Ok(self.unet.forward(x, &t)?)
    }

    /// [`Ddpm::eps`] for sampling (no gradient; fused GroupNorm + SiLU on CUDA).
    pub fn eps_inference(&self, x: &Tensor, t: &[u32]) -> CoreResult<Tensor> {
        let t = Tensor::new(t, &self.device)?;
        Ok(self.unet.forward_inference(x, &t)?)
    }

    /// Image shape C x H x W.
    pub fn shape(&self) -> [usize; 3] {
        [
            self.card.unet.channels,
            self.card.unet.height,
            self.card.unet.width,
        ]
    }
}

/// Lists the diffusion models of a study (sorted by id), with unreadable ones as errors: a card
/// that does not parse, has sizes out of range, or does not match its weights' header.
pub fn list_models(study_root: &Path) -> (Vec<DiffusionCard>, Vec<CoreError>) {
    let dir = diffusion_dir(study_root);
    let mut cards = Vec::new();
    let mut errors = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return (cards, errors);
    };
    // Dot folders are staging leftovers of an interrupted training, never models.
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    paths.sort();
    for p in paths {
        match DiffusionCard::check_folder(&p) {
            Ok(c) => cards.push(c),
            Err(e) => errors.push(e),
        }
    }
    (cards, errors)
}

/// Pixels of data-set images as floats in [-1, 1] (the DDPM's range), B x C x H x W.
pub fn to_model_range(ds: &Dataset, indices: &[usize], device: &Device) -> CoreResult<Tensor> {
    let max = f32::from(ds.max_value.max(1));
    let mut v = Vec::with_capacity(indices.len() * ds.image_len());
    for &i in indices {
        let img = ds
            .image(i)
            .ok_or_else(|| CoreError::Invalid(format!("image {i} is outside the data set")))?;
        v.extend(img.iter().map(|&p| f32::from(p) / max * 2.0 - 1.0));
    }
    Ok(Tensor::from_vec(v, (indices.len(), ds.c, ds.h, ds.w), device)?)
}

/// Model-range images (B x C x H x W in [-1, 1]) back to bytes with `max_value` as white.
pub fn to_bytes(x: &Tensor, max_value: u8) -> CoreResult<Vec<Vec<u8>>> {
    let b = x.dim(0)?;
    let flat = x.flatten_from(1)?.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    let max = f32::from(max_value.max(1));
    Ok((0..b)
        .map(|i| {
            flat[i]
                .iter()
                .map(|&v| (((v.clamp(-1.0, 1.0) + 1.0) / 2.0) * max).round() as u8)
                .collect()
        })
        .collect())
}

/// A seeded stream of standard normal numbers (Box-Muller on ChaCha8), so sampling with the same
/// seed gives the same images on every machine and batch size.
pub struct NormalStream(rand_chacha::ChaCha8Rng);

impl NormalStream {
    /// Stream keyed by `seed` and a per-item `stream` number.
    pub fn new(seed: u64, stream: u64) -> Self {
        use rand::SeedableRng as _;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Self(rng)
    }

    /// Fills `out` with N(0, 1) samples.
    pub fn fill(&mut self, out: &mut [f32]) {
        use rand::Rng as _;
        for pair in out.chunks_mut(2) {
            let u1: f64 = self.0.random::<f64>().max(1e-300);
            let u2: f64 = self.0.random();
            let r = (-2.0 * u1.ln()).sqrt();
            let th = std::f64::consts::TAU * u2;
            pair[0] = (r * th.cos()) as f32;
            if pair.len() > 1 {
                pair[1] = (r * th.sin()) as f32;
            }
        }
    }

    /// A tensor of `shape` N(0, 1) samples.
    pub fn tensor(&mut self, shape: &[usize], device: &Device) -> CoreResult<Tensor> {
        let mut v = vec![0f32; shape.iter().product()];
        self.fill(&mut v);
        Ok(Tensor::from_vec(v, shape, device)?)
    }
}

/// Noise for a batch: one stream per item, each advanced by one image's worth.
pub fn batch_noise(streams: &mut [NormalStream], shape: [usize; 3], device: &Device) -> CoreResult<Tensor> {
    let len: usize = shape.iter().product();
    let mut v = vec![0f32; streams.len() * len];
    for (s, chunk) in streams.iter_mut().zip(v.chunks_mut(len)) {
        s.fill(chunk);
    }
    Ok(Tensor::from_vec(
        v,
        (streams.len(), shape[0], shape[1], shape[2]),
        device,
    )?)
}
