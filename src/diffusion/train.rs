//! Training DDPMs (Ho et al. 2020, Algorithm 1: eps-prediction with the simple loss
//! ||eps - eps_theta(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t)||^2, t uniform), on a seeded image
//! pool with optional planted duplicates, singly or as in/out families on random subsets.

use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use candle_nn::{Optimizer as _, ParamsAdamW};
use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};

use super::model::{Ddpm, DiffusionCard, NormalStream, diffusion_dir, to_model_range};
use super::schedule::ScheduleKind;
use super::unet::UNetConfig;
use crate::data::Dataset;
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
use crate::model::DatasetRef;

/// How to train one DDPM or a family of them.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct DdpmTrainConfig {
    /// Data set name or path.
    pub data: String,
    /// Size of the image pool drawn (seeded) from the training split (0 = the whole split).
    pub images: usize,
    /// Number of pool images planted as duplicates.
    pub plant_duplicates: usize,
    /// How many times each planted duplicate appears.
    pub dup_factor: usize,
    /// UNet base width.
    pub base: usize,
    /// Noise schedule.
    pub schedule: ScheduleKind,
    /// Diffusion steps T.
    pub t_max: usize,
    /// Optimiser steps.
    pub steps: usize,
    /// Batch size.
    pub batch_size: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// Seed.
    pub seed: u64,
    /// `cpu` or `cuda`.
    pub device: String,
    /// Number of models (1 = one model on the whole pool).
    pub models: usize,
    /// Fraction of the pool each model of a family trains on. At 0.5, models 2j and 2j+1 get
    /// complementary halves, so every image is IN for exactly half of the models.
    pub subset_ratio: f64,
    /// Model id (a family appends `-kNN`).
    pub id: String,
    /// Deduplicate the training list before training (`--dedup`): the RMS threshold of
    /// `defence::dedup` (None: train on the list as planted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup: Option<f64>,
}

impl Default for DdpmTrainConfig {
    fn default() -> Self {
        Self {
            data: "mnist10k".into(),
            images: 256,
            plant_duplicates: 0,
            dup_factor: 16,
            base: 32,
            schedule: ScheduleKind::Linear,
            t_max: 1000,
            steps: 4000,
            batch_size: 32,
            lr: 1e-3,
            seed: 0,
            device: "cpu".into(),
            models: 1,
            subset_ratio: 0.5,
            id: String::new(),
            dedup: None,
        }
    }
}

/// What one model of a family trains on.
#[derive(Clone, Debug)]
pub struct ModelPlan {
    /// Model id.
    pub id: String,
    /// Distinct data-set indices (sorted).
    pub train: Vec<usize>,
    /// Of those, the planted duplicates.
    pub duplicated: Vec<usize>,
    /// Seed of this model.
    pub seed: u64,
}

fn rng(seed: u64, stream: u64) -> rand_chacha::ChaCha8Rng {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

/// The id a config gets when none is given.
pub fn default_id(cfg: &DdpmTrainConfig) -> String {
    if cfg.id.is_empty() {
        let stem = std::path::Path::new(&cfg.data)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("data")
            .to_string();
        format!("ddpm-{stem}-s{}", cfg.seed)
    } else {
        cfg.id.clone()
    }
}

/// Which images each model trains on, and which are planted duplicates.
pub fn plan_models(cfg: &DdpmTrainConfig, ds: &Dataset) -> CoreResult<Vec<ModelPlan>> {
    let mut pool = ds.train_indices();
    if pool.is_empty() {
        return Err(CoreError::Invalid(format!(
            "data set '{}' has no training images",
            ds.name
        )));
    }
    pool.shuffle(&mut rng(cfg.seed, 1));
    if cfg.images > 0 {
        pool.truncate(cfg.images);
    }
    if cfg.plant_duplicates > pool.len() {
        return Err(CoreError::Invalid(format!(
            "cannot plant {} duplicates in a pool of {} images",
            cfg.plant_duplicates,
            pool.len()
        )));
    }
    if cfg.plant_duplicates > 0 && cfg.dup_factor < 2 {
        return Err(CoreError::Invalid("--dup-factor must be at least 2".into()));
    }
    // The first images of the shuffled pool are the duplicates (a seeded, uniform choice).
    let dups: Vec<usize> = pool[..cfg.plant_duplicates].to_vec();
    let base = default_id(cfg);
    let k = cfg.models.max(1);
    if k == 1 {
        let mut train = pool.clone();
        train.sort_unstable();
        let mut duplicated = dups;
        duplicated.sort_unstable();
        return Ok(vec![ModelPlan {
            id: base,
            train,
            duplicated,
            seed: cfg.seed,
        }]);
    }
    if !(cfg.subset_ratio > 0.0 && cfg.subset_ratio < 1.0) {
        return Err(CoreError::Invalid(format!(
            "--subset-ratio must be in (0, 1), got {}",
            cfg.subset_ratio
        )));
    }
    let m = ((pool.len() as f64) * cfg.subset_ratio).round().max(1.0) as usize;
    let mut plans = Vec::with_capacity(k);
    let mut last_perm: Vec<usize> = Vec::new();
    for j in 0..k {
        let complementary = j % 2 == 1 && (cfg.subset_ratio - 0.5).abs() < 1e-9;
        let chosen: Vec<usize> = if complementary {
            last_perm[m..].to_vec()
        } else {
            let mut perm = pool.clone();
            perm.shuffle(&mut rng(cfg.seed, 100 + j as u64));
            let c = perm[..m].to_vec();
            last_perm = perm;
            c
        };
        let mut train = chosen;
        train.sort_unstable();
        let mut duplicated: Vec<usize> = dups
            .iter()
            .copied()
            .filter(|d| train.binary_search(d).is_ok())
            .collect();
        duplicated.sort_unstable();
        plans.push(ModelPlan {
            id: format!("{base}-k{j:02}"),
            train,
            duplicated,
            seed: cfg.seed.wrapping_mul(1000).wrapping_add(j as u64 + 1),
        });
    }
    Ok(plans)
}

/// Trains one DDPM on `plan`. Progress per step; cancellable between steps.
///
/// On the CPU the steps run on one of rayon's threads: each convolution's groups of images then
/// start on the thread that asked for them, and while that thread runs the small candle ops
/// between the convolutions only one other worker waits, instead of two spinning beside it
/// (DDPM training at 8x8 on two cores: +8%, docs/performance.md).
pub fn train_one(
    cfg: &DdpmTrainConfig,
    ds: &Dataset,
    plan: &ModelPlan,
    command: &str,
    ctx: &JobCtx<'_>,
) -> CoreResult<Ddpm> {
    let on_cpu = crate::model::device(&cfg.device)?.is_cpu();
    if on_cpu && rayon::current_thread_index().is_none() {
        return rayon::scope(|_| train_steps(cfg, ds, plan, command, ctx));
    }
    train_steps(cfg, ds, plan, command, ctx)
}

/// [`train_one`] on the calling thread.
fn train_steps(
    cfg: &DdpmTrainConfig,
    ds: &Dataset,
    plan: &ModelPlan,
    command: &str,
    ctx: &JobCtx<'_>,
) -> CoreResult<Ddpm> {
    let device = crate::model::device(&cfg.device)?;
    let unet = UNetConfig::for_image(ds.c, ds.h, ds.w, cfg.base);
    unet.validate()
        .map_err(|why| CoreError::Invalid(format!("data set '{}': {why}", ds.name)))?;
    if cfg.steps == 0 || cfg.batch_size == 0 {
        return Err(CoreError::Invalid(
            "--steps and --batch-size must be positive".into(),
        ));
    }
    let card = DiffusionCard {
        format: super::model::DiffusionFormat::Rote,
        id: plan.id.clone(),
        unet,
        schedule: cfg.schedule,
        t_max: cfg.t_max,
        dataset: DatasetRef {
            name: ds.name.clone(),
            source: ds.source.clone(),
            hash: ds.hash.clone(),
            n: ds.n,
        },
        train_indices: plan.train.iter().map(|&i| i as u32).collect(),
        duplicated: plan.duplicated.iter().map(|&i| i as u32).collect(),
        dup_factor: if plan.duplicated.is_empty() {
            1
        } else {
            cfg.dup_factor
        },
        steps: cfg.steps,
        batch_size: cfg.batch_size,
        lr: cfg.lr,
        seed: plan.seed,
        final_loss: f64::NAN,
        loss_curve: Vec::new(),
        seconds: 0.0,
        n_params: 0,
        device: cfg.device.clone(),
        command: command.to_string(),
        rote_version: env!("CARGO_PKG_VERSION").to_string(),
        dedup: None,
    };
    let mut model = Ddpm::fresh(card, &device)?;
    model.card.n_params = model.varmap.all_vars().iter().map(|v| v.elem_count()).sum();
    let x_all = to_model_range(ds, &plan.train, &device)?;
    // The training list: every image once, planted duplicates dup_factor times.
    let mut list: Vec<u32> = (0..plan.train.len() as u32).collect();
    for d in &plan.duplicated {
        if let Ok(pos) = plan.train.binary_search(d) {
            list.extend(std::iter::repeat_n(pos as u32, cfg.dup_factor - 1));
        }
    }
    if let Some(threshold) = cfg.dedup {
        // Deduplicated: one entry per cluster of near duplicates (repeats included).
        let entries: Vec<usize> = list.iter().map(|&p| plan.train[p as usize]).collect();
        let (kept, record) = crate::defence::dedup::dedup(ds, &entries, threshold, false)?;
        list = kept
            .iter()
            .filter_map(|i| plan.train.binary_search(i).ok().map(|p| p as u32))
            .collect();
        ctx.log(&format!(
            "dedup (RMS threshold {threshold} in the worst of {}x{} tiles): kept {} of {} entries, {} clusters of near-duplicate images",
            record.grid,
            record.grid,
            record.kept,
            record.entries_before,
            record.clusters.len()
        ));
        model.card.dedup = Some(record);
    }
    // candle_nn's AdamW, bit for bit, as one in-place pass per parameter on the CPU.
    let mut opt = crate::train::AdamWCpu::new(
        model.varmap.all_vars(),
        ParamsAdamW {
            lr: cfg.lr,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let sqrt_ab: Vec<f32> = model.schedule.alpha_bar.iter().map(|a| a.sqrt() as f32).collect();
    let sqrt_1mab: Vec<f32> = model
        .schedule
        .alpha_bar
        .iter()
        .map(|a| (1.0 - a).sqrt() as f32)
        .collect();
    let shape = model.shape();
    let mut r = rng(plan.seed, 2);
    let mut noise = NormalStream::new(plan.seed, 3);
    let mut order: Vec<u32> = Vec::new();
    let mut cursor = 0;
    let start = std::time::Instant::now();
    let mut window = (0.0f64, 0usize);
    let mut tail = (0.0f64, 0usize);
    let tail_from = cfg.steps - cfg.steps.div_ceil(10);
    let curve_every = (cfg.steps / 200).max(1);
    for step in 0..cfg.steps {
        ctx.checkpoint()?;
        let mut batch = Vec::with_capacity(cfg.batch_size);
        while batch.len() < cfg.batch_size {
            if cursor >= order.len() {
                order.clone_from(&list);
                order.shuffle(&mut r);
                cursor = 0;
            }
            batch.push(order[cursor]);
            cursor += 1;
        }
        let b = batch.len();
        let idx = Tensor::new(batch.as_slice(), &device)?;
        let x0 = x_all.index_select(&idx, 0)?;
        let t: Vec<u32> = (0..b).map(|_| r.random_range(0..cfg.t_max as u32)).collect();
        let a: Vec<f32> = t.iter().map(|&t| sqrt_ab[t as usize]).collect();
        let s: Vec<f32> = t.iter().map(|&t| sqrt_1mab[t as usize]).collect();
        let a = Tensor::from_vec(a, (b, 1, 1, 1), &device)?;
        let s = Tensor::from_vec(s, (b, 1, 1, 1), &device)?;
        let eps = noise.tensor(&[b, shape[0], shape[1], shape[2]], &device)?;
        let xt = (x0.broadcast_mul(&a)? + eps.broadcast_mul(&s)?)?;
        let pred = model.eps(&xt, &t)?;
        let loss = (pred - &eps)?.sqr()?.mean_all()?;
        opt.backward_step(&loss)?;
        let l = f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?);
        if !l.is_finite() {
            return Err(CoreError::Invalid(format!(
                "training diverged at step {step} (loss {l}); lower --lr"
            )));
        }
        window.0 += l;
        window.1 += 1;
        if step >= tail_from {
            tail.0 += l;
            tail.1 += 1;
        }
        if (step + 1) % curve_every == 0 || step + 1 == cfg.steps {
            let mean = window.0 / window.1.max(1) as f64;
            model.card.loss_curve.push([(step + 1) as f64, mean]);
            ctx.metric("ddpm loss", (step + 1) as f64, mean);
            window = (0.0, 0);
        }
        ctx.progress(
            &format!("training {}", plan.id),
            (step + 1) as u64,
            cfg.steps as u64,
        );
    }
    model.card.final_loss = tail.0 / tail.1.max(1) as f64;
    model.card.seconds = start.elapsed().as_secs_f64();
    Ok(model)
}

/// Trains every model of `cfg` into `STUDY/diffusion/<id>` (staged, then renamed). Models already
/// there are kept (so a demo opens instantly the second time) unless `force`. Returns the ids.
pub fn train_into_study(
    cfg: &DdpmTrainConfig,
    study_root: &Path,
    command: &str,
    force: bool,
    ctx: &JobCtx<'_>,
) -> CoreResult<Vec<(String, bool)>> {
    let ds = crate::data::load(&cfg.data)?;
    let plans = plan_models(cfg, &ds)?;
    let dir = diffusion_dir(study_root);
    let mut out = Vec::new();
    for plan in &plans {
        let final_dir = dir.join(&plan.id);
        if final_dir.join("card.json").is_file() && !force {
            out.push((plan.id.clone(), false));
            continue;
        }
        let model = train_one(cfg, &ds, plan, command, ctx)?;
        // Staged beside the others, then swapped in whole: a kill leaves the old model or the new.
        let staging: PathBuf = dir.join(crate::study::staging_name(&plan.id));
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|e| CoreError::io(&staging, e))?;
        }
        model.save(&staging, DType::F32)?;
        crate::study::replace_dir(&staging, &final_dir)?;
        out.push((plan.id.clone(), true));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_ds() -> Dataset {
        crate::data::load("digits8x8").unwrap()
    }

    #[test]
    fn halves_are_complementary_and_duplicates_recorded() {
        let ds = tiny_ds();
        let cfg = DdpmTrainConfig {
            data: "digits8x8".into(),
            images: 40,
            plant_duplicates: 4,
            models: 4,
            ..Default::default()
        };
        let plans = plan_models(&cfg, &ds).unwrap();
        assert_eq!(plans.len(), 4);
        for pair in plans.chunks(2) {
            assert_eq!(pair[0].train.len() + pair[1].train.len(), 40);
            assert!(
                pair[0]
                    .train
                    .iter()
                    .all(|i| pair[1].train.binary_search(i).is_err())
            );
            assert_eq!(pair[0].duplicated.len() + pair[1].duplicated.len(), 4);
        }
        assert_ne!(plans[0].train, plans[2].train);
    }
}
