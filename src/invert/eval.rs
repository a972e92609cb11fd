//! Identifying inversions with an independently trained classifier.
//!
//! Judging an inversion by the attacked model's own confidence is circular, and a cosine or
//! correlation "nearest class mean" check cannot tell a black image from a face. The evaluation
//! classifier here is independent of the target: a different architecture (an MLP by default, or
//! a CNN) with its own seed, trained only on the **held-out** images of each person (the test
//! split, which no target model saw), each augmented with small shifts, mirror flips and
//! brightness/contrast changes. It ranks all classes for each inversion (top-1, top-5).
//! [`face_distances`] adds pixel l2 and SSIM to the person's mean training face and to the
//! nearest training image.

use std::path::Path;

use candle_core::{D, DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::SeedableRng as _;
use rand::seq::SliceRandom as _;

use super::metrics::{l2, ssim};
use crate::data::Dataset;
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
use crate::model::{Classifier, Family, ModelSpec, fill_varmap, load_model, save_weights};
use crate::study::{replace_dir, staging_name, write_json_atomic};

/// How the evaluation classifier is trained.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct EvalConfig {
    /// Architecture (not the target's).
    pub family: Family,
    /// Hidden widths (MLP) or channels (CNN, 4 numbers).
    pub widths: Vec<usize>,
    /// Epochs over the augmented set.
    pub epochs: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Augmented copies of each held-out image (the first is the image itself).
    pub copies: usize,
    /// Largest shift in pixels.
    pub max_shift: usize,
    /// Seed of augmentation, initialisation and batch order.
    pub seed: u64,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            family: Family::Mlp,
            widths: vec![256],
            epochs: 30,
            lr: 1e-3,
            batch_size: 64,
            copies: 12,
            max_shift: 4,
            seed: 0xe7a1,
        }
    }
}

/// What is stored beside an evaluation classifier's weights (`eval.json`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct EvalCard {
    /// How it was trained.
    pub config: EvalConfig,
    /// Its architecture and input normalisation.
    pub spec: ModelSpec,
    /// Data set name and content hash.
    pub dataset: (String, String),
    /// The held-out images it was trained on.
    pub held_out: Vec<u32>,
    /// Accuracy on its (unaugmented) held-out images.
    pub train_acc: f64,
    /// Training seconds.
    pub seconds: f64,
}

/// One augmented copy of a `[c, h, w]` image: shift (clamped borders), optional mirror, contrast
/// and brightness.
fn augment(img: &[f32], shape: [usize; 3], max_shift: usize, rng: &mut impl rand::Rng) -> Vec<f32> {
    let [c, h, w] = shape;
    let s = max_shift as i64;
    let (dy, dx) = (
        rng.random_range(-s..=s) as isize,
        rng.random_range(-s..=s) as isize,
    );
    let flip = rng.random_bool(0.5);
    let (gain, offset) = (rng.random_range(0.8f32..1.2), rng.random_range(-0.08f32..0.08));
    let mut out = vec![0f32; c * h * w];
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                let sx = if flip { w - 1 - x } else { x } as isize - dx;
                let sy = (y as isize - dy).clamp(0, h as isize - 1) as usize;
                let sx = sx.clamp(0, w as isize - 1) as usize;
                let v = img[ch * h * w + sy * w + sx];
                out[ch * h * w + y * w + x] = (0.5 + gain * (v - 0.5) + offset).clamp(0.0, 1.0);
            }
        }
    }
    out
}

/// Trains the evaluation classifier on the augmented held-out (test-split) images of `ds`.
pub fn train_eval_classifier(
    ds: &Dataset,
    cfg: &EvalConfig,
    dev: &Device,
    ctx: &JobCtx<'_>,
) -> CoreResult<(Classifier, VarMap, EvalCard)> {
    let t0 = std::time::Instant::now();
    let held_out = ds.test_indices();
    if held_out.is_empty() || cfg.epochs == 0 || cfg.copies == 0 {
        return Err(CoreError::Invalid(format!(
            "{}: the evaluation classifier needs held-out (test-split) images, epochs and copies",
            ds.source
        )));
    }
    let shape = [ds.c, ds.h, ds.w];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for &i in &held_out {
        let img = ds.image_f32(i).unwrap_or_default();
        xs.extend_from_slice(&img);
        for _ in 1..cfg.copies {
            xs.extend(augment(&img, shape, cfg.max_shift, &mut rng));
        }
        ys.extend(std::iter::repeat_n(u32::from(ds.labels[i]), cfg.copies));
    }
    let n = ys.len();
    let mean = xs.iter().map(|&v| f64::from(v)).sum::<f64>() / xs.len() as f64;
    let var = xs.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / xs.len() as f64;
    let spec = ModelSpec {
        family: cfg.family,
        input: shape,
        n_classes: ds.n_classes(),
        widths: cfg.widths.clone(),
        input_mean: vec![mean as f32; ds.c],
        input_std: vec![var.sqrt().max(1e-3) as f32; ds.c],
    };
    let varmap = VarMap::new();
    let model = Classifier::new(&spec, VarBuilder::from_varmap(&varmap, DType::F32, dev))?;
    crate::model::seeded_init(&varmap, cfg.seed)?;
    let mut opt = crate::train::Optimizer::new(
        crate::train::OptimizerKind::Adamw,
        varmap.all_vars(),
        cfg.lr,
        0.0,
        0.0,
    )?;
    let x = Tensor::from_vec(xs, (n, shape[0], shape[1], shape[2]), dev)?;
    let y = Tensor::from_vec(ys, n, dev)?;
    let mut order: Vec<u32> = (0..n as u32).collect();
    let batch = cfg.batch_size.max(1);
    for epoch in 0..cfg.epochs {
        order.shuffle(&mut rng);
        for chunk in order.chunks(batch) {
            ctx.checkpoint()?;
            let idx = Tensor::from_slice(chunk, chunk.len(), dev)?;
            let logits = model.forward(&x.index_select(&idx, 0)?)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y.index_select(&idx, 0)?)?;
            opt.backward_step(&loss)?;
        }
        ctx.progress("evaluation classifier", epoch as u64 + 1, cfg.epochs as u64);
    }
    let originals: Vec<f32> = ds.batch_f32(&held_out);
    let labels: Vec<usize> = held_out.iter().map(|&i| usize::from(ds.labels[i])).collect();
    let ids = identify(&model, dev, &originals, shape, &labels)?;
    let train_acc = ids.iter().filter(|r| r.top1).count() as f64 / ids.len() as f64;
    let card = EvalCard {
        config: cfg.clone(),
        spec,
        dataset: (ds.name.clone(), ds.hash.clone()),
        held_out: held_out.iter().map(|&i| i as u32).collect(),
        train_acc,
        seconds: t0.elapsed().as_secs_f64(),
    };
    Ok((model, varmap, card))
}

/// Writes an evaluation classifier to `dir` (`eval.json` + `weights.safetensors`), staged beside
/// it and renamed into place (replacing any folder there), so a killed write leaves no half cache.
pub fn save_eval(dir: &Path, varmap: &VarMap, card: &EvalCard) -> CoreResult<()> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = dir
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "eval".into());
    let staging = parent.join(staging_name(&name));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| CoreError::io(&staging, e))?;
    }
    std::fs::create_dir_all(&staging).map_err(|e| CoreError::io(&staging, e))?;
    let write = || -> CoreResult<()> {
        save_weights(varmap, &staging.join("weights.safetensors"))?;
        write_json_atomic(&staging.join("eval.json"), card)?;
        replace_dir(&staging, dir)
    };
    let result = write();
    if result.is_err() {
        std::fs::remove_dir_all(&staging).ok();
    }
    result
}

/// Loads an evaluation classifier from `dir`: either one written by [`save_eval`] or any rote
/// model folder (`card.json`), which must take the images of `ds`.
pub fn load_eval(dir: &Path, ds: &Dataset, dev: &Device) -> CoreResult<Classifier> {
    crate::model::check_model_folder(dir)?;
    if dir.join("card.json").exists() {
        return Ok(load_model(dir, Some(ds), dev)?.model);
    }
    let path = dir.join("eval.json");
    let text = std::fs::read_to_string(&path).map_err(|e| CoreError::io(&path, e))?;
    let card: EvalCard = serde_json::from_str(&text)
        .map_err(|e| CoreError::format(&path, format!("not an evaluation classifier card: {e}")))?;
    if card.dataset.1 != ds.hash || card.spec.input != [ds.c, ds.h, ds.w] {
        return Err(CoreError::format(
            &path,
            format!(
                "trained on '{}' (hash {}), not on '{}' (hash {})",
                card.dataset.0, card.dataset.1, ds.name, ds.hash
            ),
        ));
    }
    let weights = dir.join("weights.safetensors");
    crate::model::header::check_weights(&card.spec, &path, &weights)?;
    let varmap = VarMap::new();
    let model = Classifier::new(&card.spec, VarBuilder::from_varmap(&varmap, DType::F32, dev))?;
    fill_varmap(&varmap, &weights, card.spec.family.as_str(), dev)?;
    Ok(model)
}

/// How the evaluation classifier ranks the true person for one image.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Identification {
    /// The evaluation classifier's top class.
    pub predicted: usize,
    /// Rank of the true class (1 = top).
    pub rank: usize,
    /// Rank 1.
    pub top1: bool,
    /// Rank at most 5.
    pub top5: bool,
    /// Its probability for the true class.
    pub p_true: f64,
}

/// Ranks the true class `labels[k]` for each image of `images` (flat, `[c, h, w]` each).
pub fn identify(
    model: &Classifier,
    dev: &Device,
    images: &[f32],
    shape: [usize; 3],
    labels: &[usize],
) -> CoreResult<Vec<Identification>> {
    let b = labels.len();
    let x = Tensor::from_slice(images, (b, shape[0], shape[1], shape[2]), dev)?;
    let p = candle_nn::ops::softmax(&model.forward(&x)?, D::Minus1)?.to_vec2::<f32>()?;
    Ok(p.iter()
        .zip(labels)
        .map(|(row, &label)| {
            let pt = row.get(label).copied().unwrap_or(f32::NAN);
            let rank = 1 + row.iter().filter(|&&q| q > pt).count();
            let predicted = row
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) },
                )
                .0;
            Identification {
                predicted,
                rank,
                top1: rank == 1,
                top5: rank <= 5,
                p_true: f64::from(pt),
            }
        })
        .collect())
}

/// Pixel distances of an inversion to its person's training images.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FaceDistances {
    /// l2 to the mean of the person's training images.
    pub l2_mean_face: f64,
    /// SSIM to that mean face.
    pub ssim_mean_face: f64,
    /// The training image nearest in l2 (any person).
    pub nearest_index: usize,
    /// Its person.
    pub nearest_label: usize,
    /// Its l2.
    pub l2_nearest: f64,
    /// Its SSIM.
    pub ssim_nearest: f64,
}

/// Distances of `image` (of person `label`) to the training images `train` of `ds`.
pub fn face_distances(ds: &Dataset, train: &[usize], image: &[f32], label: usize) -> FaceDistances {
    let shape = [ds.c, ds.h, ds.w];
    let own: Vec<usize> = train
        .iter()
        .copied()
        .filter(|&i| usize::from(ds.labels[i]) == label)
        .collect();
    let mut mean = vec![0f32; ds.image_len()];
    for &i in &own {
        for (m, v) in mean.iter_mut().zip(ds.image_f32(i).unwrap_or_default()) {
            *m += v / own.len() as f32;
        }
    }
    let (mut nearest_index, mut l2_nearest, mut nearest_img) = (0, f64::INFINITY, Vec::new());
    for &i in train {
        let img = ds.image_f32(i).unwrap_or_default();
        let d = l2(image, &img);
        if d < l2_nearest {
            (nearest_index, l2_nearest, nearest_img) = (i, d, img);
        }
    }
    FaceDistances {
        l2_mean_face: l2(image, &mean),
        ssim_mean_face: ssim(image, &mean, shape),
        nearest_index,
        nearest_label: ds.labels.get(nearest_index).map_or(0, |&l| usize::from(l)),
        l2_nearest,
        ssim_nearest: ssim(image, &nearest_img, shape),
    }
}
