//! `rote bench ddim` and `rote bench tiled`: DDIM images per second, DDPM training images per
//! second, and the tiled-l2 search on both backends. They print figures and assert nothing.

use std::time::Instant;

use candle_core::Tensor;

use super::model::{Ddpm, DiffusionCard};
use super::sample::{Sampler, generate_tensor};
use super::schedule::ScheduleKind;
use super::unet::UNetConfig;
use crate::error::CoreResult;
use crate::gpu::{
    PackedImages, SkipColumn, TiledImages, gpu, tiled_sq_l2_cpu, tiled_sq_l2_gpu, tiled_top_k_gpu, top_k_rows,
};
use crate::job::JobCtx;
use crate::model::DatasetRef;

/// DDIM sampling figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DdimBench {
    /// Image shape.
    pub shape: [usize; 3],
    /// UNet base width.
    pub base: usize,
    /// Parameters.
    pub n_params: usize,
    /// Images generated.
    pub samples: usize,
    /// DDIM steps.
    pub steps: usize,
    /// Device.
    pub device: String,
    /// Seconds.
    pub secs: f64,
    /// Images per second.
    pub images_per_sec: f64,
    /// UNet evaluations (image x step) per second.
    pub evals_per_sec: f64,
    /// Largest |difference| between the UNet's training forward and its sampling forward (fused
    /// GroupNorm + SiLU on CUDA) on one batch of noise: a correctness check of the fused kernel.
    /// On the CPU both forwards use the same GroupNorm op, so this checks the sampling forward's
    /// batch chunks (0 when the chunks change nothing).
    pub fused_max_abs_diff: f64,
}

/// Samples `samples` images with DDIM from a freshly initialised UNet (speed does not depend on
/// the weights).
pub fn bench_ddim(
    shape: [usize; 3],
    base: usize,
    samples: usize,
    steps: usize,
    device: &str,
    ctx: &JobCtx<'_>,
) -> CoreResult<DdimBench> {
    let dev = crate::model::device(device)?;
    let card = DiffusionCard {
        format: super::model::DiffusionFormat::Rote,
        id: "bench".into(),
        unet: UNetConfig::for_image(shape[0], shape[1], shape[2], base),
        schedule: ScheduleKind::Linear,
        t_max: 1000,
        dataset: DatasetRef {
            name: "none".into(),
            source: String::new(),
            hash: String::new(),
            n: 0,
        },
        train_indices: Vec::new(),
        duplicated: Vec::new(),
        dup_factor: 1,
        steps: 0,
        batch_size: 0,
        lr: 0.0,
        seed: 0,
        final_loss: f64::NAN,
        loss_curve: Vec::new(),
        seconds: 0.0,
        n_params: 0,
        device: device.into(),
        command: String::new(),
        rote_version: env!("CARGO_PKG_VERSION").into(),
        dedup: None,
    };
    let m = Ddpm::fresh(card, &dev)?;
    let n_params = m.varmap.all_vars().iter().map(|v| v.elem_count()).sum();
    // Warm-up (module loading, first allocations), as the PyTorch peer does.
    generate_tensor(&m, 2, 0, Sampler::Ddim { steps: 1, eta: 0.0 }, 256, ctx)?
        .sum_all()?
        .to_vec0::<f32>()?;
    let start = Instant::now();
    let x = generate_tensor(&m, samples, 0, Sampler::Ddim { steps, eta: 0.0 }, 256, ctx)?;
    let _ = x.sum_all()?.to_vec0::<f32>()?;
    let secs = start.elapsed().as_secs_f64();
    let noise = Tensor::randn(0f32, 1., (8, shape[0], shape[1], shape[2]), &dev)?;
    let t = Tensor::new(&[17u32, 150, 300, 450, 600, 750, 900, 999][..], &dev)?;
    let plain = m.unet.forward(&noise, &t)?;
    let fused = m.unet.forward_inference(&noise, &t)?;
    let fused_max_abs_diff = f64::from((plain - fused)?.abs()?.max_all()?.to_scalar::<f32>()?);
    Ok(DdimBench {
        shape,
        base,
        n_params,
        samples,
        steps,
        device: device.into(),
        secs,
        images_per_sec: samples as f64 / secs,
        evals_per_sec: (samples * steps) as f64 / secs,
        fused_max_abs_diff,
    })
}

/// Tiled-l2 search figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TiledBench {
    /// Queries.
    pub m: usize,
    /// References.
    pub n: usize,
    /// Tiles per side.
    pub grid: usize,
    /// CPU twin seconds.
    pub cpu_secs: f64,
    /// wgpu seconds (after a warm-up dispatch), the whole matrix read back.
    pub gpu_secs: Option<f64>,
    /// Adapter.
    pub gpu_adapter: Option<String>,
    /// Why no GPU figure.
    pub gpu_unavailable: Option<String>,
    /// Whether both matrices are identical.
    pub identical: Option<bool>,
    /// Neighbours per query in the search figures.
    pub search_k: usize,
    /// CPU twin seconds for the top-`search_k` search (each query skipping itself): the matrix
    /// above (`cpu_secs`) plus `top_k_rows` on it, which is what `tiled_top_k_cpu` does.
    pub cpu_search_secs: f64,
    /// wgpu seconds (after a warm-up) for the same search with `tiled_top_k_gpu`: repacking,
    /// distances and top-k selection on the device, only `search_k` (distance, index) pairs per
    /// query read back.
    pub gpu_search_secs: Option<f64>,
    /// Whether both searches return the same neighbours and distances.
    pub search_identical: Option<bool>,
}

/// The m x n tiled-l2 matrix between the first `m` and first `n` images of `ds`, read back whole,
/// and the top-10 search over the same pairs (query i skips reference i), on both backends.
pub fn bench_tiled(ds: &crate::data::Dataset, m: usize, n: usize, grid: usize) -> CoreResult<TiledBench> {
    const K: usize = 10;
    let (m, n) = (m.min(ds.n), n.min(ds.n));
    let shape = [ds.c, ds.h, ds.w];
    let a = PackedImages::from_dataset(ds, &(0..m).collect::<Vec<_>>());
    let b = PackedImages::from_dataset(ds, &(0..n).collect::<Vec<_>>());
    // Query i is reference i.
    let skip = SkipColumn::Diagonal(0);
    let t = Instant::now();
    let cpu = tiled_sq_l2_cpu(&a, &b, shape, grid)?;
    let cpu_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let cpu_top = top_k_rows(&cpu, m, n, K, &|i, j| skip.column(i) == Some(j));
    let cpu_search_secs = cpu_secs + t.elapsed().as_secs_f64();
    let search = |g: &crate::gpu::Gpu, q: &PackedImages| {
        let (ta, tb) = (
            TiledImages::new(q, shape, grid)?,
            TiledImages::new(&b, shape, grid)?,
        );
        tiled_top_k_gpu(g, &ta, &tb, K, skip)
    };
    let (gpu_secs, gpu_adapter, gpu_unavailable, identical, gpu_search_secs, search_identical) = match gpu() {
        Ok(g) => {
            // Warm-up: the first dispatch compiles the pipelines.
            let warm = PackedImages::from_dataset(ds, &(0..m.min(64)).collect::<Vec<_>>());
            tiled_sq_l2_gpu(&g, &warm, &b, shape, grid)?;
            let t = Instant::now();
            let d = tiled_sq_l2_gpu(&g, &a, &b, shape, grid)?;
            let gpu_secs = t.elapsed().as_secs_f64();
            let identical = d == cpu;
            drop(d);
            search(&g, &warm)?;
            let t = Instant::now();
            let top = search(&g, &a)?;
            let gpu_search_secs = t.elapsed().as_secs_f64();
            (
                Some(gpu_secs),
                Some(g.info.name.clone()),
                None,
                Some(identical),
                Some(gpu_search_secs),
                Some(top == cpu_top),
            )
        }
        Err(why) => (None, None, Some(why), None, None, None),
    };
    Ok(TiledBench {
        m,
        n,
        grid,
        cpu_secs,
        gpu_secs,
        gpu_adapter,
        gpu_unavailable,
        identical,
        search_k: K,
        cpu_search_secs,
        gpu_search_secs,
        search_identical,
    })
}

/// DDPM training figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DdpmTrainBench {
    /// Data set.
    pub data: String,
    /// Image shape.
    pub shape: [usize; 3],
    /// UNet base width.
    pub base: usize,
    /// Parameters.
    pub n_params: usize,
    /// Optimiser steps.
    pub steps: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Device.
    pub device: String,
    /// Seconds.
    pub secs: f64,
    /// Training images (forward + backward) per second.
    pub images_per_sec: f64,
}

/// Trains a DDPM for `steps` steps on 256 images of `data` and reports the rate.
pub fn bench_ddpm_train(
    data: &str,
    base: usize,
    steps: usize,
    batch_size: usize,
    device: &str,
    ctx: &JobCtx<'_>,
) -> CoreResult<DdpmTrainBench> {
    let ds = crate::data::load(data)?;
    let cfg = super::train::DdpmTrainConfig {
        data: data.into(),
        images: 256,
        base,
        steps,
        batch_size,
        device: device.into(),
        ..Default::default()
    };
    let plan = super::train::plan_models(&cfg, &ds)?.remove(0);
    let m = super::train::train_one(&cfg, &ds, &plan, "bench", ctx)?;
    Ok(DdpmTrainBench {
        data: data.into(),
        shape: m.shape(),
        base,
        n_params: m.card.n_params,
        steps,
        batch_size,
        device: device.into(),
        secs: m.card.seconds,
        images_per_sec: (steps * batch_size) as f64 / m.card.seconds,
    })
}

/// A diffusers model's DDIM sampling and sharpness figures (`rote bench diffusers`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct DiffusersBench {
    /// Model folder name.
    pub model: String,
    /// Image shape.
    pub shape: [usize; 3],
    /// Images sampled.
    pub samples: usize,
    /// DDIM steps.
    pub steps: usize,
    /// Sampling seconds (after one untimed UNet evaluation).
    pub ddim_seconds: f64,
    /// UNet evaluations (image x step) per second while sampling.
    pub evals_per_sec: f64,
    /// Images whose sharpness was measured.
    pub sharpness_images: usize,
    /// Lanczos iterations per image.
    pub iterations: usize,
    /// Seconds per image of the sharpness (t = 50, `iterations` Hessian-vector products).
    pub sharpness_seconds_per_image: f64,
}

/// Times DDIM sampling and the sharpness of `sharpness_images` samples of the diffusers model in
/// `dir` on `device`, as `benches/peers/diffusers_bench.py` does with diffusers.
pub fn bench_diffusers(
    dir: &std::path::Path,
    samples: usize,
    steps: usize,
    sharpness_images: usize,
    iterations: usize,
    device: &str,
    ctx: &JobCtx<'_>,
) -> CoreResult<DiffusersBench> {
    use super::denoiser::{Denoiser, DiffusersModel};
    let dev = crate::model::device(device)?;
    let m = DiffusersModel::load(dir, &dev)?;
    let shape = m.shape();
    let warm = Tensor::zeros((1, shape[0], shape[1], shape[2]), candle_core::DType::F32, &dev)?;
    m.eps_inference(&warm, &[500])?.sum_all()?.to_vec0::<f32>()?;
    let sampler = Sampler::Ddim { steps, eta: 0.0 };
    let start = Instant::now();
    let x = m.generate_tensor(samples, 0, sampler, samples, ctx)?;
    x.sum_all()?.to_vec0::<f32>()?;
    let ddim_seconds = start.elapsed().as_secs_f64();
    let k = sharpness_images.min(samples).max(1);
    let cfg = super::sharpness::SharpnessConfig {
        iterations,
        batch: k,
        ..super::sharpness::SharpnessConfig::default()
    };
    let x0 = x.narrow(0, 0, k)?.clamp(-1f32, 1f32)?;
    let start = Instant::now();
    let rows = super::sharpness::sharpness(&m, &x0, &(0..k).collect::<Vec<_>>(), &cfg, ctx)?;
    let sharp_secs = start.elapsed().as_secs_f64();
    debug_assert_eq!(rows.len(), k);
    Ok(DiffusersBench {
        model: m.id().to_string(),
        shape,
        samples,
        steps,
        ddim_seconds,
        evals_per_sec: (samples * steps) as f64 / ddim_seconds.max(1e-9),
        sharpness_images: k,
        iterations,
        sharpness_seconds_per_image: sharp_secs / k as f64,
    })
}
