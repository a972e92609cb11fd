//! Benchmarks behind `rote bench`: they print figures and never assert times. Results go into
//! `docs/performance.md` with the command and machine.

use std::time::Instant;

use crate::data::Dataset;
use crate::error::CoreResult;
use crate::gpu::{
    Backend, PackedImages, SkipColumn, TopK, gpu, pairwise_sq_l2_cpu, pairwise_top_k_gpu, top_k_rows,
};
use crate::job::JobCtx;
use crate::train::{TrainConfig, train};

/// A neighbour search under test: the top-k of a block of queries starting at query `s`.
type BlockTopK<'a> = dyn Fn(&PackedImages, usize) -> CoreResult<TopK> + 'a;

/// Figures from the neighbour-search benchmark.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NnBench {
    /// Queries.
    pub m: usize,
    /// References.
    pub n: usize,
    /// Pixels per image.
    pub dim: usize,
    /// CPU twin seconds (distance matrix + top-k).
    pub cpu_secs: f64,
    /// wgpu seconds (distance matrix + top-k), when an adapter exists.
    pub gpu_secs: Option<f64>,
    /// The adapter used.
    pub gpu_adapter: Option<String>,
    /// Why there is no GPU figure.
    pub gpu_unavailable: Option<String>,
    /// Whether both backends gave identical neighbours.
    pub identical: Option<bool>,
    /// Squared-difference operations per second on the CPU (x 1e9).
    pub cpu_gops: f64,
    /// The same on the GPU.
    pub gpu_gops: Option<f64>,
}

/// Nearest neighbours of the first `m` images among the first `n` of `ds`, k = 10, on both backends.
pub fn bench_nn(ds: &Dataset, m: usize, n: usize) -> CoreResult<NnBench> {
    let m = m.min(ds.n);
    let n = n.min(ds.n);
    let qi: Vec<usize> = (0..m).collect();
    let ri: Vec<usize> = (0..n).collect();
    let a = PackedImages::from_dataset(ds, &qi);
    let b = PackedImages::from_dataset(ds, &ri);
    let ops = (m * n * ds.image_len()) as f64;
    let block = 1024;
    let run = |f: &BlockTopK<'_>| -> CoreResult<(f64, TopK)> {
        let t0 = Instant::now();
        let mut tops = Vec::new();
        for s in (0..m).step_by(block) {
            let e = (s + block).min(m);
            let rows: Vec<&[u8]> = (s..e)
                .map(|r| &a.data[r * a.row_bytes..(r + 1) * a.row_bytes])
                .collect();
            let qa = PackedImages::from_rows(&rows);
            tops.extend(f(&qa, s)?);
        }
        Ok((t0.elapsed().as_secs_f64(), tops))
    };
    // Each query skips itself: query i is reference i.
    let (cpu_secs, cpu_top) = run(&|qa, s| {
        let d = pairwise_sq_l2_cpu(qa, &b);
        Ok(top_k_rows(&d, qa.rows, n, 10, &|i, j| i + s == j))
    })?;
    let (gpu_secs, gpu_adapter, gpu_unavailable, identical) = match gpu() {
        Ok(g) => {
            // Warm up (pipeline compile) before timing.
            let warm = PackedImages::from_rows(&[&a.data[..a.row_bytes]]);
            pairwise_top_k_gpu(&g, &warm, &b, 10, SkipColumn::Diagonal(0))?;
            // Distances and top-k on the device; only 10 (distance, index) pairs per query return.
            let (secs, top) = run(&|qa, s| pairwise_top_k_gpu(&g, qa, &b, 10, SkipColumn::Diagonal(s)))?;
            (
                Some(secs),
                Some(Backend::Wgpu(g.info.name.clone()).to_string()),
                None,
                Some(top == cpu_top),
            )
        }
        Err(why) => (None, None, Some(why), None),
    };
    Ok(NnBench {
        m,
        n,
        dim: ds.image_len(),
        cpu_secs,
        gpu_secs,
        gpu_adapter,
        gpu_unavailable,
        identical,
        cpu_gops: ops / cpu_secs / 1e9,
        gpu_gops: gpu_secs.map(|s| ops / s / 1e9),
    })
}

/// Figures from the training benchmark.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TrainBench {
    /// Family.
    pub family: String,
    /// Device.
    pub device: String,
    /// Training samples.
    pub n_train: usize,
    /// Epochs run.
    pub epochs: usize,
    /// Mean seconds per epoch (training steps + evaluation).
    pub secs_per_epoch: f64,
    /// Samples per second.
    pub samples_per_sec: f64,
    /// Final test accuracy.
    pub test_acc: f64,
}

/// Trains `cfg` on `ds` and reports the epoch time.
pub fn bench_train(cfg: &TrainConfig, ds: &Dataset, ctx: &JobCtx<'_>) -> CoreResult<TrainBench> {
    let t0 = Instant::now();
    let out = train(cfg, ds, ctx)?;
    let secs = t0.elapsed().as_secs_f64();
    let n_train = out.card.metrics.n_train;
    Ok(TrainBench {
        family: cfg.family.as_str().into(),
        device: cfg.device.clone(),
        n_train,
        epochs: cfg.epochs,
        secs_per_epoch: secs / cfg.epochs as f64,
        samples_per_sec: (n_train * cfg.epochs) as f64 / secs,
        test_acc: out.card.metrics.test_acc,
    })
}

/// Figures from the zoo benchmark.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ZooBench {
    /// Models.
    pub models: u32,
    /// Epochs per model.
    pub epochs: usize,
    /// Samples per model (subset of the training split).
    pub n_per_model: usize,
    /// Device.
    pub device: String,
    /// Seconds, all models batched.
    pub batched_secs: f64,
    /// models x epochs per second, batched.
    pub batched_model_epochs_per_sec: f64,
    /// Seconds, the same models one after another.
    pub sequential_secs: Option<f64>,
    /// models x epochs per second, one by one.
    pub sequential_model_epochs_per_sec: Option<f64>,
}

/// Trains `models` Feldman-Zhang MLPs (r = 0.7) on `ds` batched, then one by one.
pub fn bench_zoo(
    ds: &Dataset,
    models: u32,
    epochs: usize,
    device: &str,
    sequential: bool,
    ctx: &JobCtx<'_>,
) -> CoreResult<ZooBench> {
    let cfg = zoo_bench_config(epochs, device);
    let batched_secs = time_zoo(&cfg, ds, models, "zoo", ctx)?;
    let n_per_model = crate::train::draw_subset(&ds.train_indices(), cfg.train.subset_ratio, 0).len();
    let sequential_secs = if sequential {
        let t1 = Instant::now();
        for k in 0..models {
            let tc = TrainConfig {
                seed: crate::train::zoo::model_seed(0, k),
                ..cfg.train.clone()
            };
            train(&tc, ds, ctx)?;
        }
        Some(t1.elapsed().as_secs_f64())
    } else {
        None
    };
    let me = f64::from(models) * epochs as f64;
    Ok(ZooBench {
        models,
        epochs,
        n_per_model,
        device: device.into(),
        batched_secs,
        batched_model_epochs_per_sec: me / batched_secs,
        sequential_secs,
        sequential_model_epochs_per_sec: sequential_secs.map(|s| me / s),
    })
}

/// The benchmarks' zoo recipe: `rote zoo`'s defaults (MLP 784-512-256-10, r = 0.7, batch 128, SGD
/// lr 0.1 momentum 0.9) with `epochs` on `device`.
pub(crate) fn zoo_bench_config(epochs: usize, device: &str) -> crate::train::zoo::ZooConfig {
    use crate::train::zoo::ZooConfig;
    ZooConfig {
        id: "bench".into(),
        train: TrainConfig {
            epochs,
            device: device.into(),
            ..ZooConfig::default().train
        },
        ..ZooConfig::default()
    }
}

/// Seconds to train the zoo `cfg` of `models` models on `ds` in one group, into a fresh temporary
/// study folder (`rote-bench-<tag>-<pid>`, removed afterwards): training, the scoring pass and
/// writing the model records, as `rote zoo` does them.
pub(crate) fn time_zoo(
    cfg: &crate::train::zoo::ZooConfig,
    ds: &Dataset,
    models: u32,
    tag: &str,
    ctx: &JobCtx<'_>,
) -> CoreResult<f64> {
    let tmp = std::env::temp_dir().join(format!("rote-bench-{tag}-{}", std::process::id()));
    // A folder left by an earlier process of the same id would resume its zoo instead of training.
    std::fs::remove_dir_all(&tmp).ok();
    let study = crate::study::Study::open_or_create(&tmp)?;
    let t0 = Instant::now();
    let run = crate::train::zoo::train_zoo(cfg, ds, &study, models, None, models as usize, ctx);
    let secs = t0.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&tmp).ok();
    run?;
    Ok(secs)
}
