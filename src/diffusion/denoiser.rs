//! One trait for every diffusion model rote attacks: its own DDPM (`STUDY/diffusion/<id>`, with a
//! card naming the training images) and a diffusers `UNet2DModel` folder (config.json,
//! scheduler_config.json, safetensors weights), whose training set the user names with
//! `--train-data`. Extraction, inpainting, membership and sharpness see only this trait.

use std::path::Path;

use candle_core::{Device, Tensor};

use super::diffusers_sched::{DiffusersScheduler, Prediction, SampleSpec};
use super::diffusers_unet::DiffusersUnet;
use super::model::Ddpm;
use super::sample::Sampler;
use super::schedule::Schedule;
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;

/// A diffusion model that predicts the noise of x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps,
/// images in [-1, 1].
pub trait Denoiser: Send + Sync {
    /// Short name (folder name).
    fn id(&self) -> &str;
    /// Image shape C x H x W.
    fn shape(&self) -> [usize; 3];
    /// Device the weights live on.
    fn device(&self) -> &Device;
    /// The full training schedule over t = 0..T.
    fn schedule(&self) -> &Schedule;
    /// Predicted noise at full-schedule timesteps `t` (one per image), differentiable in `x`.
    fn eps(&self, x: &Tensor, t: &[u32]) -> CoreResult<Tensor>;
    /// [`Denoiser::eps`] for sampling (no gradient needed; fused kernels where there are some).
    fn eps_inference(&self, x: &Tensor, t: &[u32]) -> CoreResult<Tensor> {
        self.eps(x, t)
    }
    /// `n` samples (model range), image `j` from noise stream (seed, j), as this kind of model is
    /// sampled: rote's respaced DDIM or ancestral sampler, or diffusers' schedulers.
    fn generate_tensor(
        &self,
        n: usize,
        seed: u64,
        sampler: Sampler,
        batch: usize,
        ctx: &JobCtx<'_>,
    ) -> CoreResult<Tensor>;
    /// rote's card, when the model is rote's own.
    fn card(&self) -> Option<&super::DiffusionCard> {
        None
    }
}

impl Denoiser for Ddpm {
    fn id(&self) -> &str {
        &self.card.id
    }

    fn shape(&self) -> [usize; 3] {
        Ddpm::shape(self)
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    fn eps(&self, x: &Tensor, t: &[u32]) -> CoreResult<Tensor> {
        Ddpm::eps(self, x, t)
    }

    fn eps_inference(&self, x: &Tensor, t: &[u32]) -> CoreResult<Tensor> {
        Ddpm::eps_inference(self, x, t)
    }

    fn generate_tensor(
        &self,
        n: usize,
        seed: u64,
        sampler: Sampler,
        batch: usize,
        ctx: &JobCtx<'_>,
    ) -> CoreResult<Tensor> {
        super::sample::generate_tensor(self, n, seed, sampler, batch, ctx)
    }

    fn card(&self) -> Option<&super::DiffusionCard> {
        Some(&self.card)
    }
}

/// A diffusers `UNet2DModel` with its scheduler.
pub struct DiffusersModel {
    /// Folder name.
    pub id: String,
    /// The UNet.
    pub unet: DiffusersUnet,
    /// Its scheduler (scheduler_config.json).
    pub scheduler: DiffusersScheduler,
    schedule: Schedule,
    device: Device,
    card: Option<super::DiffusionCard>,
}

impl DiffusersModel {
    /// Loads `dir` (config.json, scheduler_config.json, weights) onto `device`, with the card of
    /// a model imported into a study when there is one.
    pub fn load(dir: &Path, device: &Device) -> CoreResult<Self> {
        let card = if dir.join("card.json").exists() {
            Some(super::DiffusionCard::check_folder(dir)?)
        } else {
            None
        };
        let unet = super::diffusers_unet::load(dir, device)?;
        let scheduler = DiffusersScheduler::read(dir)?;
        let schedule =
            Schedule::from_alpha_bar(scheduler.alphas_cumprod.iter().map(|&a| f64::from(a)).collect());
        Ok(Self {
            id: card.as_ref().map_or_else(|| folder_name(dir), |c| c.id.clone()),
            unet,
            scheduler,
            schedule,
            device: device.clone(),
            card,
        })
    }
}

fn folder_name(dir: &Path) -> String {
    let canon = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    canon
        .file_name()
        .map_or_else(|| "model".to_string(), |n| n.to_string_lossy().into_owned())
}

impl Denoiser for DiffusersModel {
    fn id(&self) -> &str {
        &self.id
    }

    fn shape(&self) -> [usize; 3] {
        let c = self.unet.config();
        [c.in_channels, c.sample_size, c.sample_size]
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The UNet's output turned into the noise: epsilon as is, v as sqrt(a) v + sqrt(1 - a) x,
    /// an x0 prediction as (x - sqrt(a) x0) / sqrt(1 - a).
    fn eps(&self, x: &Tensor, t: &[u32]) -> CoreResult<Tensor> {
        let tt = Tensor::from_vec(
            t.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            t.len(),
            &self.device,
        )?;
        let out = self.unet.forward(x, &tt)?;
        if self.scheduler.prediction == Prediction::Epsilon {
            return Ok(out);
        }
        let last = self.schedule.alpha_bar.len().saturating_sub(1);
        let (b, c, h, w) = x.dims4()?;
        let per = |f: &dyn Fn(f64) -> f64| -> CoreResult<Tensor> {
            let v: Vec<f32> = t
                .iter()
                .map(|&s| f(self.schedule.alpha_bar[(s as usize).min(last)]) as f32)
                .collect();
            Ok(Tensor::from_vec(v, (b, 1, 1, 1), &self.device)?.broadcast_as((b, c, h, w))?)
        };
        let sa = per(&|a| a.sqrt())?;
        let sb = per(&|a| (1.0 - a).sqrt())?;
        Ok(match self.scheduler.prediction {
            Prediction::V => ((sa * &out)? + (sb * x)?)?,
            _ => ((x - (sa * &out)?)? / sb)?,
        })
    }

    fn generate_tensor(
        &self,
        n: usize,
        seed: u64,
        sampler: Sampler,
        _batch: usize,
        ctx: &JobCtx<'_>,
    ) -> CoreResult<Tensor> {
        let (ancestral, steps) = match sampler {
            Sampler::Ancestral { steps } => (true, steps),
            Sampler::Ddim { steps, eta } => {
                if eta != 0.0 {
                    return Err(CoreError::Invalid(format!(
                        "{}: diffusers' DDIM is sampled with eta 0 here; eta {eta} is rote's own \
                         sampler's option",
                        self.id
                    )));
                }
                (false, steps)
            }
        };
        let spec = SampleSpec {
            ancestral,
            steps,
            samples: n,
            seed,
        };
        super::diffusers_sched::sample(&self.unet, &self.scheduler, spec, None, &self.device, ctx)
    }

    fn card(&self) -> Option<&super::DiffusionCard> {
        self.card.as_ref()
    }
}

/// Whether `dir` is a diffusers folder without a rote card (its training set must be named).
pub fn is_diffusers_folder(dir: &Path) -> bool {
    !dir.join("card.json").exists() && dir.join("config.json").exists()
}

/// Opens the diffusion model in `dir` on `device`, whichever kind it is; a folder that is neither
/// is named with what it lacks.
pub fn open(dir: &Path, device: &Device) -> CoreResult<Box<dyn Denoiser>> {
    // diffusers' files (an imported model has card.json too): its loader names what is missing.
    let diffusers = [
        "config.json",
        super::diffusers_unet::WEIGHTS,
        "diffusion_pytorch_model.bin",
    ]
    .iter()
    .any(|f| dir.join(f).exists());
    if diffusers {
        return Ok(Box::new(DiffusersModel::load(dir, device)?));
    }
    // Everything else is read as rote's own folder, whose checks name the problem (a file, a
    // pickle, a missing or broken card or weights).
    Ok(Box::new(Ddpm::load(dir, device)?))
}
