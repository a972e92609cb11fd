//! The training loop.

use std::time::Instant;

use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand::SeedableRng as _;
use rand::seq::SliceRandom as _;

use super::{Optimizer, TrainConfig};
use crate::data::Dataset;
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
use crate::model::{
    Classifier, DatasetRef, EpochRecord, Hyper, ModelCard, ModelSpec, SampleScores, TrainMetrics, device,
    save_weights, seeded_init,
};
use crate::study::{Study, write_json_atomic};

/// The result of a training run.
pub struct TrainOutcome {
    /// The card (id filled in by [`train_into_study`]).
    pub card: ModelCard,
    /// The trained parameters.
    pub varmap: VarMap,
    /// The trained model.
    pub model: Classifier,
    /// Per-sample scores over the whole data set.
    pub scores: SampleScores,
}

/// Evaluation batch size.
const EVAL_BATCH: usize = 1000;

fn validate(cfg: &TrainConfig, ds: &Dataset) -> CoreResult<()> {
    if cfg.epochs == 0 {
        return Err(CoreError::Invalid("epochs must be at least 1".into()));
    }
    if cfg.batch_size == 0 {
        return Err(CoreError::Invalid("batch size must be at least 1".into()));
    }
    if !(cfg.subset_ratio > 0.0 && cfg.subset_ratio <= 1.0) {
        return Err(CoreError::Invalid(format!(
            "subset ratio {} is not in (0, 1]",
            cfg.subset_ratio
        )));
    }
    if !(cfg.lr.is_finite() && cfg.lr > 0.0) {
        return Err(CoreError::Invalid(format!(
            "learning rate {} must be a positive number",
            cfg.lr
        )));
    }
    let classes_present = ds.class_counts().iter().filter(|&&c| c > 0).count();
    if classes_present < 2 {
        return Err(CoreError::Invalid(format!(
            "{}: only {classes_present} class has images; a classifier needs at least 2",
            ds.source
        )));
    }
    Ok(())
}

/// Draws the training subset: `ratio` of the training split, without replacement, seeded; sorted.
pub fn draw_subset(train_pool: &[usize], ratio: f64, seed: u64) -> Vec<usize> {
    let mut pool = train_pool.to_vec();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_0001);
    pool.shuffle(&mut rng);
    let m = ((pool.len() as f64) * ratio).round() as usize;
    let mut subset: Vec<usize> = pool.into_iter().take(m.max(1)).collect();
    subset.sort_unstable();
    subset
}

fn all_images(ds: &Dataset, dev: &Device) -> CoreResult<(Tensor, Tensor)> {
    let idx: Vec<usize> = (0..ds.n).collect();
    let x = Tensor::from_vec(ds.batch_f32(&idx), (ds.n, ds.c, ds.h, ds.w), dev)?;
    let y = Tensor::from_vec(
        ds.labels.iter().map(|&l| u32::from(l)).collect::<Vec<u32>>(),
        ds.n,
        dev,
    )?;
    Ok((x, y))
}

pub(super) fn index_tensor(idx: &[usize], dev: &Device) -> CoreResult<Tensor> {
    Ok(Tensor::from_vec(
        idx.iter().map(|&i| i as u32).collect::<Vec<u32>>(),
        idx.len(),
        dev,
    )?)
}

/// Logits for the samples at `indices`, in evaluation batches.
fn logits_for(model: &Classifier, x: &Tensor, indices: &[usize], dev: &Device) -> CoreResult<Tensor> {
    let mut parts = Vec::new();
    for chunk in indices.chunks(EVAL_BATCH) {
        let xb = x.index_select(&index_tensor(chunk, dev)?, 0)?;
        parts.push(model.forward(&xb)?.detach());
    }
    Ok(Tensor::cat(&parts, 0)?)
}

/// Accuracy of `model` on `indices` (0 when empty).
pub fn evaluate(model: &Classifier, x: &Tensor, y: &Tensor, indices: &[usize]) -> CoreResult<f64> {
    if indices.is_empty() {
        return Ok(0.0);
    }
    let dev = x.device();
    let logits = logits_for(model, x, indices, dev)?;
    let yb = y.index_select(&index_tensor(indices, dev)?, 0)?;
    let correct = logits
        .argmax(D::Minus1)?
        .eq(&yb)?
        .to_dtype(DType::F32)?
        .sum_all()?
        .to_scalar::<f32>()?;
    Ok(f64::from(correct) / indices.len() as f64)
}

/// Loss, margin and correctness of `model` on every sample of the data set.
pub fn sample_scores(model: &Classifier, x: &Tensor, y: &Tensor) -> CoreResult<SampleScores> {
    let n = y.dim(0)?;
    let dev = x.device();
    let all: Vec<usize> = (0..n).collect();
    let logits = logits_for(model, x, &all, dev)?;
    let log_p = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let y2 = y.unsqueeze(1)?;
    let loss = log_p.gather(&y2, 1)?.squeeze(1)?.neg()?.to_vec1::<f32>()?;
    let true_logit = logits.gather(&y2, 1)?;
    // Largest other logit: mask the true class with -inf.
    let n_classes = logits.dim(1)?;
    let onehot = candle_nn::encoding::one_hot(y.clone(), n_classes, 1f32, 0f32)?;
    let masked = (&logits - (onehot * 1e30)?)?;
    let other = masked.max_keepdim(1)?;
    let margin = (true_logit - other)?.squeeze(1)?.to_vec1::<f32>()?;
    let pred = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
    let labels = y.to_vec1::<u32>()?;
    let correct = pred.iter().zip(&labels).map(|(p, l)| p == l).collect();
    Ok(SampleScores {
        loss,
        margin,
        correct,
    })
}

/// Per-channel mean and standard deviation of the pixels (in [0, 1]) of `indices`.
pub fn channel_stats(ds: &Dataset, indices: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let hw = ds.h * ds.w;
    let scale = 1.0 / f64::from(ds.max_value.max(1));
    let mut sum = vec![0f64; ds.c];
    let mut sq = vec![0f64; ds.c];
    for &i in indices {
        if let Some(img) = ds.image(i) {
            for (ch, plane) in img.chunks_exact(hw).enumerate() {
                for &p in plane {
                    let v = f64::from(p) * scale;
                    sum[ch] += v;
                    sq[ch] += v * v;
                }
            }
        }
    }
    let count = (indices.len() * hw).max(1) as f64;
    let mean: Vec<f32> = sum.iter().map(|s| (s / count) as f32).collect();
    let std: Vec<f32> = sq
        .iter()
        .zip(&mean)
        .map(|(q, m)| ((q / count - f64::from(*m) * f64::from(*m)).max(1e-12).sqrt() as f32).max(1e-3))
        .collect();
    (mean, std)
}

fn downsample(points: &[[f64; 2]], max: usize) -> Vec<[f64; 2]> {
    if points.len() <= max {
        return points.to_vec();
    }
    let stride = points.len().div_ceil(max);
    points
        .chunks(stride)
        .map(|c| {
            [
                c[c.len() - 1][0],
                c.iter().map(|p| p[1]).sum::<f64>() / c.len() as f64,
            ]
        })
        .collect()
}

/// Trains a classifier on `ds` as `cfg` says. Deterministic for a seed on the CPU.
pub fn train(cfg: &TrainConfig, ds: &Dataset, ctx: &JobCtx<'_>) -> CoreResult<TrainOutcome> {
    let subset = draw_subset(&ds.train_indices(), cfg.subset_ratio, cfg.seed);
    train_on_subset(cfg, ds, subset, ctx)
}

/// Everything a training run sets up before its first step, and what it records as it goes
/// (shared by plain and DP-SGD training).
pub(super) struct Setup {
    t0: Instant,
    /// The device.
    pub dev: Device,
    spec: ModelSpec,
    varmap: VarMap,
    /// The parameters, sorted by name (the optimiser's order).
    pub vars: Vec<Var>,
    /// The model.
    pub model: Classifier,
    /// The optimiser over `vars`.
    pub opt: Optimizer,
    /// Every image of the data set (N, C, H, W) in [0, 1].
    pub x: Tensor,
    /// Every label (N, u32).
    pub y: Tensor,
    test: Vec<usize>,
    history: Vec<EpochRecord>,
    /// (step, loss) points of the loss curve.
    pub loss_curve: Vec<[f64; 2]>,
}

/// Checks `cfg`, builds the model (input normalisation from `subset`, seeded initialisation)
/// and its optimiser, and puts the data set on the device.
pub(super) fn setup(
    cfg: &TrainConfig,
    ds: &Dataset,
    subset: &[usize],
    ctx: &JobCtx<'_>,
) -> CoreResult<Setup> {
    validate(cfg, ds)?;
    let t0 = Instant::now();
    let dev = device(&cfg.device)?;
    if ds.train_indices().is_empty() {
        return Err(CoreError::Invalid(format!(
            "{}: the training split is empty",
            ds.source
        )));
    }
    let test = ds.test_indices();
    let mut spec = ModelSpec::default_for(cfg.family, [ds.c, ds.h, ds.w], ds.n_classes());
    (spec.input_mean, spec.input_std) = channel_stats(ds, subset);
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    let model = Classifier::new(&spec, vb)?;
    seeded_init(&varmap, cfg.seed)?;
    let vars = sorted_vars(&varmap)?;
    let opt = Optimizer::new(
        cfg.optimizer,
        vars.clone(),
        cfg.lr,
        cfg.momentum,
        cfg.weight_decay,
    )?;
    ctx.log(&format!(
        "training {} on {} ({} samples, {} test)",
        cfg.family.as_str(),
        ds.name,
        subset.len(),
        test.len()
    ));
    let (x, y) = all_images(ds, &dev)?;
    Ok(Setup {
        t0,
        dev,
        spec,
        varmap,
        vars,
        model,
        opt,
        x,
        y,
        test,
        history: Vec::new(),
        loss_curve: Vec::new(),
    })
}

/// The parameters of `varmap`, sorted by name (a fixed order, unlike the map's).
fn sorted_vars(varmap: &VarMap) -> CoreResult<Vec<Var>> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("var map lock poisoned".into()))?;
    let mut named: Vec<(&String, &Var)> = data.iter().collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    Ok(named.into_iter().map(|(_, v)| v.clone()).collect())
}

impl Setup {
    /// Evaluates the model at the end of `epoch` (mean training loss `train_loss`), reports and
    /// records it.
    pub(super) fn end_epoch(
        &mut self,
        epoch: usize,
        train_loss: f64,
        subset: &[usize],
        ctx: &JobCtx<'_>,
    ) -> CoreResult<()> {
        ctx.checkpoint()?;
        let train_acc = evaluate(&self.model, &self.x, &self.y, subset)?;
        let test_acc = evaluate(&self.model, &self.x, &self.y, &self.test)?;
        ctx.metric("train acc", epoch as f64, train_acc);
        ctx.metric("test acc", epoch as f64, test_acc);
        ctx.log(&format!(
            "epoch {epoch}: loss {train_loss:.4}, train acc {train_acc:.4}, test acc {test_acc:.4}"
        ));
        self.history.push(EpochRecord {
            epoch,
            train_loss,
            train_acc,
            test_acc,
        });
        Ok(())
    }

    /// Scores every sample and writes the card of the run on `subset` after `total_steps`.
    pub(super) fn finish(
        self,
        cfg: &TrainConfig,
        ds: &Dataset,
        subset: Vec<usize>,
        total_steps: u64,
        ctx: &JobCtx<'_>,
    ) -> CoreResult<TrainOutcome> {
        ctx.progress("scoring samples", total_steps, total_steps);
        let scores = sample_scores(&self.model, &self.x, &self.y)?;
        let last = self.history.last().cloned().unwrap_or(EpochRecord {
            epoch: 0,
            train_loss: 0.0,
            train_acc: 0.0,
            test_acc: 0.0,
        });
        let n_params = self.vars.iter().map(|v| v.elem_count()).sum();
        let card = ModelCard {
            id: cfg.id.clone(),
            spec: self.spec,
            n_params,
            hyper: Hyper {
                optimizer: cfg.optimizer.as_str().into(),
                lr: cfg.lr,
                momentum: cfg.momentum,
                weight_decay: cfg.weight_decay,
                batch_size: cfg.batch_size,
                subset_ratio: cfg.subset_ratio,
            },
            dataset: DatasetRef {
                name: cfg.data.clone(),
                source: ds.source.clone(),
                hash: ds.hash.clone(),
                n: ds.n,
            },
            train_indices: subset.iter().map(|&i| i as u32).collect(),
            seed: cfg.seed,
            epochs: cfg.epochs,
            metrics: TrainMetrics {
                n_train: subset.len(),
                n_test: self.test.len(),
                train_acc: last.train_acc,
                test_acc: last.test_acc,
                train_loss: last.train_loss,
                seconds: self.t0.elapsed().as_secs_f64(),
            },
            history: self.history,
            loss_curve: downsample(&self.loss_curve, 300),
            device: cfg.device.clone(),
            command: String::new(),
            rote_version: crate::VERSION.into(),
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        Ok(TrainOutcome {
            card,
            varmap: self.varmap,
            model: self.model,
            scores,
        })
    }
}

/// [`train`] on exactly the training rows `subset` (ascending) instead of a seeded draw of
/// `cfg.subset_ratio` of the training split.
pub fn train_on_subset(
    cfg: &TrainConfig,
    ds: &Dataset,
    subset: Vec<usize>,
    ctx: &JobCtx<'_>,
) -> CoreResult<TrainOutcome> {
    let mut s = setup(cfg, ds, &subset, ctx)?;
    let batches_per_epoch = subset.len().div_ceil(cfg.batch_size);
    let total_steps = (cfg.epochs * batches_per_epoch) as u64;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xba7c_0002);
    let mut step = 0u64;
    let report_every = (batches_per_epoch / 50).max(1) as u64;
    for epoch in 1..=cfg.epochs {
        let stage = format!("epoch {epoch}/{}", cfg.epochs);
        let mut order = subset.clone();
        order.shuffle(&mut rng);
        let mut loss_sum = Tensor::zeros((), DType::F32, &s.dev)?;
        for batch in order.chunks(cfg.batch_size) {
            ctx.checkpoint()?;
            let idx = index_tensor(batch, &s.dev)?;
            let xb = s.x.index_select(&idx, 0)?;
            let yb = s.y.index_select(&idx, 0)?;
            let logits = s.model.forward(&xb)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &yb)?;
            s.opt.backward_step(&loss)?;
            let detached = loss.detach();
            loss_sum = (loss_sum + (&detached * batch.len() as f64)?)?;
            step += 1;
            if step.is_multiple_of(report_every) || step == total_steps {
                let v = f64::from(detached.to_scalar::<f32>()?);
                if !v.is_finite() {
                    return Err(CoreError::Invalid(format!(
                        "training diverged at step {step} (loss is {v}); lower the learning rate"
                    )));
                }
                s.loss_curve.push([step as f64, v]);
                ctx.metric("train loss", step as f64, v);
                ctx.progress(&stage, step, total_steps);
            }
        }
        let train_loss = f64::from(loss_sum.to_scalar::<f32>()?) / subset.len() as f64;
        s.end_epoch(epoch, train_loss, &subset, ctx)?;
    }
    s.finish(cfg, ds, subset, total_steps, ctx)
}

/// Trains and writes `models/<id>/` (weights, card, scores) into `study`. The folder appears only
/// when complete: a cancelled or failed run leaves nothing behind.
pub fn train_into_study(
    cfg: &TrainConfig,
    ds: &Dataset,
    study: &mut Study,
    ctx: &JobCtx<'_>,
) -> CoreResult<TrainOutcome> {
    cfg.family.check_data(ds)?;
    let id = if cfg.id.is_empty() {
        study.new_model_id(&format!("{}-{}-s{}", cfg.family.as_str(), ds.name, cfg.seed))
    } else if study.models_dir().join(&cfg.id).exists() {
        return Err(CoreError::Invalid(format!(
            "model '{}' already exists in {}",
            cfg.id,
            study.root.display()
        )));
    } else {
        cfg.id.clone()
    };
    let mut outcome = train(cfg, ds, ctx)?;
    outcome.card.id = id.clone();
    outcome.card.command = cfg.command(&study.root.display().to_string());
    let staging = study.staging_dir(&id)?;
    let write = || -> CoreResult<()> {
        save_weights(&outcome.varmap, &staging.join("weights.safetensors"))?;
        write_json_atomic(&staging.join("scores.json"), &outcome.scores)?;
        write_json_atomic(&staging.join("card.json"), &outcome.card)?;
        Ok(())
    };
    if let Err(e) = write() {
        std::fs::remove_dir_all(&staging).ok();
        return Err(e);
    }
    study.commit_model(&staging, &id)?;
    study.add_dataset(&cfg.data)?;
    Ok(outcome)
}
