//! The whole attack on a model folder: invert every requested person, identify each inversion
//! with the evaluation classifier (trained once per data set and cached in
//! `STUDY/results/inversion/eval-<hash>/`), measure distances to the training faces, and write
//! `STUDY/results/inversion/<model id>/<method>.json` atomically.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use sha2::Digest as _;

use super::eval::{EvalConfig, FaceDistances, face_distances, identify, load_eval, save_eval};
use super::{Inversion, InvertConfig, InvertTarget, Method, StopReason};
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
use crate::model::load_model;
use crate::study::write_json_atomic;

/// Inverts `classes` of `model` with the method of `cfg`.
pub fn invert_classes(
    model: &dyn InvertTarget,
    dev: &Device,
    input: [usize; 3],
    classes: &[usize],
    cfg: &InvertConfig,
    ctx: &JobCtx<'_>,
) -> CoreResult<Vec<Inversion>> {
    match cfg.method {
        Method::MiFace | Method::MiFacePaper => super::miface::mi_face(model, dev, input, classes, cfg, ctx),
        Method::Tv => super::tv::invert_tv(model, dev, input, classes, cfg, ctx),
        Method::Art => super::art::art_miface(model, dev, input, classes, cfg, ctx),
    }
}

/// Options of [`invert_model`].
#[derive(Clone, Debug, Default)]
pub struct InvertOptions {
    /// Method and hyper-parameters.
    pub config: InvertConfig,
    /// Classes to invert (`None`: all).
    pub classes: Option<Vec<usize>>,
    /// Evaluation classifier folder (`None`: train one, or reuse the study's cached one).
    pub eval_model: Option<PathBuf>,
    /// How to train the evaluation classifier when none is given.
    pub eval: EvalConfig,
    /// `cpu` or `cuda`.
    pub device: String,
    /// Keep the other people of a saved report with the same method, hyper-parameters and
    /// evaluation classifier (the GUI inverts one person at a time into the grid).
    pub merge: bool,
}

/// Image bytes as one base64 string (a JSON array of numbers is 4x larger).
pub(crate) mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// The result for one person.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ClassReport {
    /// Class index.
    pub class: usize,
    /// Class name.
    pub name: String,
    /// The evaluation classifier ranks the person first.
    pub eval_top1: bool,
    /// Rank of the person (1 = top) among all classes.
    pub eval_rank: usize,
    /// Rank at most 5.
    pub eval_top5: bool,
    /// The evaluation classifier's top class.
    pub eval_predicted: usize,
    /// Its probability for the person.
    pub eval_p_true: f64,
    /// The target model's p(label) for the returned image.
    pub target_p: f64,
    /// Gradient steps taken.
    pub steps: usize,
    /// Index of the returned iterate.
    pub returned_iter: usize,
    /// Why it stopped.
    pub stop: StopReason,
    /// Distances to the person's training faces.
    pub distances: FaceDistances,
    /// Seconds until it stopped.
    pub seconds: f64,
    /// (iteration, cost) points, at most 200.
    pub cost_curve: Vec<[f64; 2]>,
    /// The returned image, C x H x W, bytes 0..255 (base64 in the JSON file).
    #[serde(with = "base64_bytes")]
    pub image: Vec<u8>,
}

/// The result of `rote invert`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct InversionReport {
    /// Attacked model id.
    pub model_id: String,
    /// Its architecture family.
    pub family: String,
    /// Data set name.
    pub dataset: String,
    /// Image shape C, H, W.
    pub shape: [usize; 3],
    /// Number of classes of the model.
    pub n_classes: usize,
    /// Method and hyper-parameters.
    pub config: InvertConfig,
    /// Evaluation classifier folder.
    pub eval_model: String,
    /// Fraction of inverted people the evaluation classifier ranks first.
    pub eval_top1: f64,
    /// Fraction ranked in its top 5.
    pub eval_top5: f64,
    /// Control: fraction of the people a plain grey image would be "identified" as (the
    /// evaluation classifier's chance floor on a blank image).
    pub blank_top1: f64,
    /// Control: the same for the method's start image (black for ART's default start).
    #[serde(default)]
    pub start_top1: f64,
    /// Total seconds (inversion and evaluation, without training the evaluation classifier).
    pub seconds: f64,
    /// One entry per inverted person.
    pub classes: Vec<ClassReport>,
}

/// At most `max` evenly spaced (index, value) points of `curve`, always ending at its last point.
pub(crate) fn downsample(curve: &[f32], max: usize) -> Vec<[f64; 2]> {
    let stride = curve.len().div_ceil(max.max(1)).max(1);
    let mut out: Vec<[f64; 2]> = curve
        .iter()
        .enumerate()
        .step_by(stride)
        .map(|(i, &c)| [i as f64, f64::from(c)])
        .collect();
    if let Some(&last) = curve.last()
        && out.last().is_some_and(|p| p[0] as usize != curve.len() - 1)
    {
        out.push([(curve.len() - 1) as f64, f64::from(last)]);
    }
    out
}

/// The study folder holding a model folder (`STUDY/models/<id>`).
fn study_of(model_dir: &Path) -> PathBuf {
    model_dir
        .parent()
        .and_then(Path::parent)
        .unwrap_or(model_dir)
        .to_path_buf()
}

/// Inverts the model in `model_dir`, identifies the inversions and writes the report; returns it
/// with the path written.
pub fn invert_model(
    model_dir: &Path,
    opts: &InvertOptions,
    ctx: &JobCtx<'_>,
) -> CoreResult<(InversionReport, PathBuf)> {
    crate::model::check_model_folder(model_dir)?;
    let card_path = model_dir.join("card.json");
    if !card_path.exists() {
        return Err(CoreError::format(
            &card_path,
            "no model card here (expected STUDY/models/<id>/)",
        ));
    }
    let card = crate::model::ModelCard::load(&card_path)?;
    let ds = crate::data::load(&card.dataset.name)?;
    let dev = crate::model::device(if opts.device.is_empty() {
        "cpu"
    } else {
        &opts.device
    })?;
    let target = load_model(model_dir, Some(&ds), &dev)?;
    let shape = [ds.c, ds.h, ds.w];
    let study = study_of(model_dir);
    let eval_dir = match &opts.eval_model {
        Some(dir) => dir.clone(),
        None => {
            let key = format!(
                "{}:{}",
                ds.hash,
                serde_json::to_string(&opts.eval).unwrap_or_default()
            );
            let digest = sha2::Sha256::digest(key.as_bytes());
            let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
            study
                .join("results")
                .join("inversion")
                .join(format!("eval-{hex}"))
        }
    };
    let eval_model = if opts.eval_model.is_some() || eval_dir.join("eval.json").exists() {
        ctx.log(&format!("evaluation classifier: {}", eval_dir.display()));
        load_eval(&eval_dir, &ds, &dev)?
    } else {
        ctx.log("training the evaluation classifier on the held-out images");
        let (m, varmap, ecard) = super::eval::train_eval_classifier(&ds, &opts.eval, &dev, ctx)?;
        ctx.log(&format!(
            "evaluation classifier: accuracy {:.3} on the (unaugmented) held-out faces it trained on",
            ecard.train_acc
        ));
        save_eval(&eval_dir, &varmap, &ecard)?;
        m
    };
    let n_classes = card.spec.n_classes;
    let classes = opts.classes.clone().unwrap_or_else(|| (0..n_classes).collect());
    if let Some(&bad) = classes.iter().find(|&&c| c >= n_classes) {
        return Err(CoreError::Invalid(format!(
            "class {bad} does not exist: model '{}' has classes 0..{}",
            card.id,
            n_classes - 1
        )));
    }
    let t0 = Instant::now();
    // Parameters as plain tensors: the descent differentiates only the images.
    let frozen = crate::model::Classifier::frozen(&target.card.spec, &target.varmap, &dev)?;
    let inversions = invert_classes(&frozen, &dev, shape, &classes, &opts.config, ctx)?;
    let images: Vec<f32> = inversions
        .iter()
        .flat_map(|inv| inv.image.iter().copied())
        .collect();
    let ids = identify(&eval_model, &dev, &images, shape, &classes)?;
    let grey = vec![0.5f32; ds.image_len()];
    let blank = identify(&eval_model, &dev, &grey, shape, &[0])?;
    // The start image itself (black for ART's default): a person the evaluator already sees in
    // it gets an "identification" for free.
    let start = super::miface::start_images(opts.config.init, 1, shape, opts.config.seed);
    let start_id = identify(&eval_model, &dev, &start, shape, &[0])?;
    let train: Vec<usize> = card.train_indices.iter().map(|&i| i as usize).collect();
    let mut reports = Vec::with_capacity(classes.len());
    for (inv, id) in inversions.iter().zip(&ids) {
        ctx.checkpoint()?;
        reports.push(ClassReport {
            class: inv.class,
            name: ds.class_names.get(inv.class).cloned().unwrap_or_default(),
            eval_top1: id.top1,
            eval_rank: id.rank,
            eval_top5: id.top5,
            eval_predicted: id.predicted,
            eval_p_true: id.p_true,
            target_p: inv
                .probs
                .get(inv.returned_iter)
                .map_or(f64::NAN, |&p| f64::from(p)),
            steps: inv.steps,
            returned_iter: inv.returned_iter,
            stop: inv.stop,
            distances: face_distances(&ds, &train, &inv.image, inv.class),
            seconds: inv.seconds,
            cost_curve: downsample(&inv.costs, 200),
            image: inv
                .image
                .iter()
                .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
                .collect(),
        });
    }
    let out = report_path(&study, &card.id, opts.config.method);
    if opts.merge
        && let Ok(old) = load_report(&out)
        && old.config == opts.config
        && Path::new(&old.eval_model).file_name() == eval_dir.file_name()
    {
        let mine: Vec<usize> = reports.iter().map(|r| r.class).collect();
        reports.extend(old.classes.into_iter().filter(|r| !mine.contains(&r.class)));
        reports.sort_by_key(|r| r.class);
    }
    let n = reports.len().max(1) as f64;
    let blank_top1 = reports.iter().filter(|r| r.class == blank[0].predicted).count() as f64 / n;
    let start_top1 = reports
        .iter()
        .filter(|r| r.class == start_id[0].predicted)
        .count() as f64
        / n;
    let report = InversionReport {
        model_id: card.id.clone(),
        family: card.spec.family.as_str().into(),
        dataset: card.dataset.name.clone(),
        shape,
        n_classes,
        config: opts.config.clone(),
        eval_model: eval_dir.display().to_string(),
        eval_top1: reports.iter().filter(|r| r.eval_top1).count() as f64 / n,
        eval_top5: reports.iter().filter(|r| r.eval_top5).count() as f64 / n,
        blank_top1,
        start_top1,
        seconds: t0.elapsed().as_secs_f64(),
        classes: reports,
    };
    write_json_atomic(&out, &report)?;
    Ok((report, out))
}

/// Reads a report written by [`invert_model`].
pub fn load_report(path: &Path) -> CoreResult<InversionReport> {
    let text = std::fs::read_to_string(path).map_err(|e| CoreError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| CoreError::format(path, format!("not an inversion report: {e}")))
}

/// The saved report of `model_id` and `method` in `study`, if any.
pub fn report_path(study: &Path, model_id: &str, method: Method) -> PathBuf {
    study
        .join("results")
        .join("inversion")
        .join(model_id)
        .join(format!("{}.json", method.as_str()))
}
