//! UnitMem and ClassMem of a supervised classifier's hidden units, the supervised side of the
//! "supervised vs SSL" comparison of
//!
//! * W. Wang, A. Dziedzic, M. Backes, F. Boenisch, *Localizing Memorization in SSL Vision
//!   Encoders*, NeurIPS 2024: UnitMem(u) = (μ_max - μ_-max) / (μ_max + μ_-max) over the
//!   per-candidate mean activations μ_{x,u} (averaged over augmentations), and ClassMem, the same
//!   formula over per-class means μ_{c,u};
//! * A. S. Morcos, D. G. T. Barrett, N. C. Rabinowitz, M. Botvinick, *On the importance of single
//!   directions for generalization*, ICLR 2018: class selectivity, which ClassMem is.
//!
//! The paper finds SSL units memorize single data points (UnitMem high, ClassMem lower) while
//! supervised units memorize classes (ClassMem above UnitMem). Activations are the post-ReLU
//! outputs of every hidden layer of an MLP (`hidden1`, `hidden2`, ...), fed [0, 1] pixels through
//! the model's own input normalisation, exactly as `Classifier::forward` does. Candidates are the
//! candidates of an SSL encoder's split (`--like`) or seeded training images of the model.
//! Planted outliers (from another data set) count for UnitMem but not for ClassMem.

use std::path::{Path, PathBuf};

use rand::SeedableRng as _;
use rand::seq::SliceRandom as _;

use super::card::SslCard;
use super::split::{SampleRef, images01};
use super::stats::{MuMinus, mean, unit_mem};
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
use crate::model::load_model;

mod hidden;

pub use hidden::{Candidates, HiddenNet, hidden_means};

/// Options of a supervised UnitMem/ClassMem measurement.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SupervisedConfig {
    /// Training images drawn when no SSL encoder gives the candidates.
    pub candidates: usize,
    /// Augmentations per candidate (1: the clean image only).
    pub augmentations: usize,
    /// μ_-max of UnitMem and ClassMem.
    pub mu_minus: MuMinus,
    /// Seed of the candidate draw and the augmentations.
    pub seed: u64,
    /// `cpu` or `cuda`.
    pub device: String,
}

impl Default for SupervisedConfig {
    fn default() -> Self {
        Self {
            candidates: 500,
            augmentations: 10,
            mu_minus: MuMinus::Median,
            seed: 0,
            device: "cpu".into(),
        }
    }
}

/// UnitMem and ClassMem of every unit of one hidden layer.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SupervisedUnits {
    /// Layer name (`hidden1`, ...).
    pub layer: String,
    /// UnitMem per unit (null for a dead unit).
    pub unitmem: Vec<Option<f32>>,
    /// Candidate position with the highest mean activation, per unit.
    pub argmax: Vec<u32>,
    /// Mean UnitMem over the live units.
    pub unitmem_mean: Option<f64>,
    /// ClassMem per unit (null for a dead unit).
    pub classmem: Vec<Option<f32>>,
    /// Class with the highest mean activation, per unit.
    pub class_argmax: Vec<u16>,
    /// Mean ClassMem over the live units.
    pub classmem_mean: Option<f64>,
    /// Units that never fire on the candidates.
    pub dead: usize,
}

/// The JSON report, `STUDY/results/layermem/supervised-<model>.json`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SupervisedReport {
    /// Model id.
    pub model: String,
    /// SSL encoder whose candidates were used, if any.
    pub like: Option<String>,
    /// Options used.
    pub config: SupervisedConfig,
    /// Layer names, input side first.
    pub layers: Vec<String>,
    /// Stable id of each candidate (main index, or 2^40 + outlier index).
    pub candidates: Vec<u64>,
    /// Number of candidates.
    pub n_candidates: usize,
    /// Per-layer units.
    pub units: Vec<SupervisedUnits>,
    /// Mean UnitMem per layer.
    pub unitmem_mean: Vec<Option<f64>>,
    /// Mean ClassMem per layer.
    pub classmem_mean: Vec<Option<f64>>,
    /// Measurement time.
    pub seconds: f64,
}

/// UnitMem and ClassMem of one layer from μ [candidate][unit].
pub fn layer_units(
    layer: &str,
    mu: &[Vec<f32>],
    labels: &[Option<u16>],
    mu_minus: MuMinus,
) -> SupervisedUnits {
    let units = mu.first().map_or(0, Vec::len);
    let mut classes: Vec<u16> = labels.iter().flatten().copied().collect();
    classes.sort_unstable();
    classes.dedup();
    let mut s = SupervisedUnits {
        layer: layer.to_string(),
        unitmem: Vec::with_capacity(units),
        argmax: Vec::with_capacity(units),
        unitmem_mean: None,
        classmem: Vec::with_capacity(units),
        class_argmax: Vec::with_capacity(units),
        classmem_mean: None,
        dead: 0,
    };
    for u in 0..units {
        let col: Vec<f32> = mu.iter().map(|row| row[u]).collect();
        let (v, arg) = unit_mem(&col, mu_minus);
        s.unitmem.push(v);
        s.argmax.push(arg as u32);
        let per_class: Vec<f32> = classes
            .iter()
            .map(|&cl| {
                let xs: Vec<f32> = col
                    .iter()
                    .zip(labels)
                    .filter(|(_, l)| **l == Some(cl))
                    .map(|(&v, _)| v)
                    .collect();
                xs.iter().sum::<f32>() / xs.len().max(1) as f32
            })
            .collect();
        let (cm, carg) = unit_mem(&per_class, mu_minus);
        s.classmem.push(cm);
        s.class_argmax.push(classes.get(carg).copied().unwrap_or(0));
    }
    let live = |v: &[Option<f32>]| -> Vec<f64> { v.iter().flatten().map(|&x| f64::from(x)).collect() };
    let (um, cm) = (live(&s.unitmem), live(&s.classmem));
    s.dead = units - um.len();
    s.unitmem_mean = (!um.is_empty()).then(|| mean(&um));
    s.classmem_mean = (!cm.is_empty()).then(|| mean(&cm));
    s
}

fn candidates_for(
    card: &crate::model::ModelCard,
    main: &crate::data::Dataset,
    like: Option<&Path>,
    cfg: &SupervisedConfig,
) -> CoreResult<(Candidates, Option<String>)> {
    let shape = [main.c, main.h, main.w];
    let (refs, outliers, like_id) = match like {
        Some(dir) => {
            let p = dir.join("card.json");
            let text = std::fs::read_to_string(&p).map_err(|e| CoreError::io(&p, e))?;
            let ssl = SslCard::from_json(&p, &text)?;
            if ssl.dataset.hash != card.dataset.hash {
                return Err(CoreError::Mismatch(format!(
                    "'{}' was trained on '{}' but model '{}' on '{}'",
                    ssl.id, ssl.dataset.name, card.id, card.dataset.name
                )));
            }
            let out = match &ssl.outlier_dataset {
                Some(r) => Some(crate::data::load(&r.name)?),
                None => None,
            };
            (ssl.split.candidate_refs(), out, Some(ssl.id))
        }
        None => {
            let mut idx = card.train_indices.clone();
            idx.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed));
            idx.truncate(cfg.candidates);
            idx.sort_unstable();
            (idx.into_iter().map(SampleRef::Main).collect(), None, None)
        }
    };
    let pixels = images01(&refs, main, outliers.as_ref())?;
    let labels = refs
        .iter()
        .map(|r| match *r {
            SampleRef::Main(i) => main.labels.get(i as usize).copied(),
            SampleRef::Outlier(_) => None,
        })
        .collect();
    Ok((
        Candidates {
            refs,
            pixels,
            labels,
            shape,
        },
        like_id,
    ))
}

/// Measures the model in `model_dir` (candidates of the SSL encoder in `like`, if given).
pub fn supervised_unitmem(
    model_dir: &Path,
    like: Option<&Path>,
    cfg: &SupervisedConfig,
    ctx: &JobCtx<'_>,
) -> CoreResult<SupervisedReport> {
    if cfg.augmentations == 0 || (like.is_none() && cfg.candidates < 2) {
        return Err(CoreError::Invalid(
            "--augmentations must be positive and --candidates at least 2".into(),
        ));
    }
    let device = crate::model::device(&cfg.device)?;
    let t0 = std::time::Instant::now();
    crate::model::check_model_folder(model_dir)?;
    let card = crate::model::ModelCard::load(&model_dir.join("card.json"))?;
    let main = crate::data::load(&card.dataset.name)?;
    let loaded = load_model(model_dir, Some(&main), &device)?;
    let net = HiddenNet::from_varmap(&card.id, &card.spec, &loaded.varmap, &device)?;
    let (cands, like_id) = candidates_for(&card, &main, like, cfg)?;
    let mu = hidden_means(&net, &cands, cfg.augmentations, cfg.seed, &device, ctx)?;
    let layers = net.names();
    let units: Vec<SupervisedUnits> = layers
        .iter()
        .zip(&mu)
        .map(|(l, m)| layer_units(l, m, &cands.labels, cfg.mu_minus))
        .collect();
    Ok(SupervisedReport {
        model: card.id.clone(),
        like: like_id,
        config: cfg.clone(),
        candidates: cands.refs.iter().map(|r| r.id()).collect(),
        n_candidates: cands.refs.len(),
        unitmem_mean: units.iter().map(|u| u.unitmem_mean).collect(),
        classmem_mean: units.iter().map(|u| u.classmem_mean).collect(),
        units,
        layers,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Measures and writes `STUDY/results/layermem/supervised-<model>.json` (the model in
/// `STUDY/models/<id>`); returns the report and its path.
pub fn supervised_into_study(
    model_dir: &Path,
    like: Option<&Path>,
    cfg: &SupervisedConfig,
    ctx: &JobCtx<'_>,
) -> CoreResult<(SupervisedReport, PathBuf)> {
    let report = supervised_unitmem(model_dir, like, cfg, ctx)?;
    let study = model_dir
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    let path = study
        .join("results")
        .join("layermem")
        .join(format!("supervised-{}.json", report.model));
    crate::study::write_json_atomic(&path, &report)?;
    Ok((report, path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{CancelToken, NullSink};
    use crate::model::{Family, ModelSpec};
    use candle_core::{DType, Device, Tensor};
    use candle_nn::{VarBuilder, VarMap};

    /// Six one-hot 1x2x3 images, class 0 = the first four, class 1 = the last two; hidden units:
    /// 0 fires for image 0 only, 1 for every image equally, 2 for class 0 only.
    #[test]
    fn unitmem_and_classmem_of_a_hand_built_mlp() {
        let dev = Device::Cpu;
        let spec = ModelSpec {
            widths: vec![3],
            ..ModelSpec::default_for(Family::Mlp, [1, 2, 3], 2)
        };
        let mut varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
        crate::model::Classifier::new(&spec, vb).unwrap();
        let w = [[1f32, 0., 0., 0., 0., 0.], [0.; 6], [1., 1., 1., 1., 0., 0.]];
        let w = Tensor::new(&w, &dev).unwrap();
        varmap.set_one("fc1.weight", w).unwrap();
        varmap
            .set_one("fc1.bias", Tensor::new(&[0f32, 1., 0.], &dev).unwrap())
            .unwrap();
        let net = HiddenNet::from_varmap("toy", &spec, &varmap, &dev).unwrap();
        let mut pixels = vec![0f32; 36];
        (0..6).for_each(|i| pixels[i * 6 + i] = 1.0);
        let cands = Candidates {
            refs: (0..6).map(SampleRef::Main).collect(),
            pixels,
            labels: vec![Some(0), Some(0), Some(0), Some(0), Some(1), Some(1)],
            shape: [1, 2, 3],
        };
        let (cancel, sink) = (CancelToken::new(), NullSink);
        let ctx = JobCtx::new(&cancel, &sink);
        let mu = hidden_means(&net, &cands, 1, 0, &dev, &ctx).unwrap();
        let u = layer_units("hidden1", &mu[0], &cands.labels, MuMinus::Median);
        let um: Vec<f32> = u.unitmem.iter().map(|v| v.unwrap()).collect();
        let cm: Vec<f32> = u.classmem.iter().map(|v| v.unwrap()).collect();
        assert!((um[0] - 1.0).abs() < 1e-5 && u.argmax[0] == 0, "{um:?}");
        assert!(um[1].abs() < 1e-5, "{um:?}");
        assert!((cm[2] - 1.0).abs() < 1e-5 && u.class_argmax[2] == 0, "{cm:?}");
        assert!(
            um[2] < 0.5,
            "class unit UnitMem {um:?} should sit below its ClassMem {cm:?}"
        );
        assert!(cm[1].abs() < 1e-5);
        // Augmented views keep the uniform unit uniform.
        let mu = hidden_means(&net, &cands, 4, 0, &dev, &ctx).unwrap();
        let u = layer_units("hidden1", &mu[0], &cands.labels, MuMinus::Mean);
        assert!(u.unitmem[1].unwrap().abs() < 1e-5);
    }
}
