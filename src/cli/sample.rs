//! `rote sample`: the final samples of a diffusers UNet2DModel folder (config.json,
//! diffusion_pytorch_model.safetensors, scheduler_config.json) as an f32 NPY array N x C x H x W
//! in the model's value range, before quantization.

use std::path::PathBuf;

use serde_json::json;

use super::CliSink;
use super::commands::print;
use crate::diffusion::diffusers_sched::{DiffusersScheduler, SampleSpec, sample as draw};
use crate::diffusion::diffusers_unet;
use crate::error::{CoreError, CoreResult};
use crate::job::{CancelToken, JobCtx};

/// Options of `rote sample`.
#[derive(Debug, clap::Args)]
pub struct SampleArgs {
    /// A diffusers UNet2DModel folder (config.json, diffusion_pytorch_model.safetensors,
    /// scheduler_config.json).
    pub model: PathBuf,
    /// ddim (eta 0) or ancestral (the DDPM scheduler's steps).
    #[arg(long, default_value = "ddim", value_parser = ["ddim", "ancestral"])]
    pub sampler: String,
    /// Sampler steps.
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// Images (ignored with --noise).
    #[arg(long, default_value_t = 16)]
    pub samples: usize,
    /// Seed of the noise (one stream per image).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The initial x_T: an NPY array N x C x H x W.
    #[arg(long)]
    pub noise: Option<PathBuf>,
    /// Output NPY file (f32, N x C x H x W).
    #[arg(long)]
    pub out: PathBuf,
}

/// `rote sample`.
pub fn sample(args: SampleArgs, json: bool) -> CoreResult<()> {
    let dev = candle_core::Device::Cpu;
    let unet = diffusers_unet::load(&args.model, &dev)?;
    let sched = DiffusersScheduler::read(&args.model)?;
    let c = unet.config().clone();
    let want = [c.in_channels, c.sample_size, c.sample_size];
    let x_t = match &args.noise {
        Some(p) => {
            let bytes = std::fs::read(p).map_err(|e| CoreError::io(p, e))?;
            let (shape, values) = crate::data::parse_npy_f32_array(p, &bytes)?;
            if shape.len() != 4 || shape[1..] != want || shape[0] == 0 {
                return Err(CoreError::format(
                    p,
                    format!(
                        "shape {shape:?}; the model needs N x {} x {} x {}",
                        want[0], want[1], want[2]
                    ),
                ));
            }
            Some(candle_core::Tensor::from_vec(values, shape, &dev)?)
        }
        None => None,
    };
    let spec = SampleSpec {
        ancestral: args.sampler == "ancestral",
        steps: args.steps.max(1),
        samples: args.samples.max(1),
        seed: args.seed,
    };
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let ctx = JobCtx::new(&cancel, &sink);
    let started = std::time::Instant::now();
    let x = draw(&unet, &sched, spec, x_t, &dev, &ctx);
    sink.finish();
    let x = x?;
    let dims = x.dims().to_vec();
    let values = x.flatten_all()?.to_vec1::<f32>()?;
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    crate::study::write_atomic(&args.out, &crate::data::npy_bytes("<f4", &dims, &bytes))?;
    let (lo, hi) = values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let value = json!({
        "model": args.model,
        "out": args.out,
        "shape": dims,
        "sampler": args.sampler,
        "steps": spec.steps,
        "timesteps": sched.timesteps(spec.steps),
        "seed": args.seed,
        "min": lo,
        "max": hi,
        "seconds": started.elapsed().as_secs_f64(),
    });
    print(json, &value, || {
        format!(
            "{} samples {:?} ({} steps of {}) written to {}; values {lo:.3} to {hi:.3}",
            dims.first().copied().unwrap_or(0),
            &dims[1..],
            spec.steps,
            args.sampler,
            args.out.display()
        )
    });
    Ok(())
}
