//! `rote invert --onnx`: invert an ONNX classifier's classes, write PNGs and a JSON report with
//! the cost curves and target probabilities, and with a data set identify each inversion with the
//! independent evaluation classifier.

#[allow(clippy::wildcard_imports, reason = "the parent module's items and imports")]
use super::*;

/// Options of [`invert_onnx`].
#[derive(Clone, Debug, Default)]
pub struct OnnxInvertOptions {
    /// How to read the input.
    pub onnx: OnnxOptions,
    /// Method and hyper-parameters.
    pub config: InvertConfig,
    /// Classes to invert (`None`: all).
    pub classes: Option<Vec<usize>>,
    /// Data set whose classes the model predicts (enables identification by the evaluation
    /// classifier and distances to the training faces).
    pub data: Option<String>,
    /// Evaluation classifier folder (`None`: train one, cached in the output folder).
    pub eval_model: Option<PathBuf>,
    /// How to train the evaluation classifier.
    pub eval: EvalConfig,
    /// Output folder (`None`: `<file stem>-inversion/` next to the file).
    pub out: Option<PathBuf>,
}

/// Identification of one inversion (with a data set).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct OnnxIdentification {
    /// How the evaluation classifier ranks the person.
    pub identification: Identification,
    /// Distances to the data set's training-split images of the class.
    pub distances: FaceDistances,
}

/// The result for one class.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct OnnxClassReport {
    /// Class index.
    pub class: usize,
    /// Class name (from the data set, else empty).
    pub name: String,
    /// The model's p(class) for the start image.
    pub target_p_start: f64,
    /// The model's p(class) for the returned image.
    pub target_p: f64,
    /// Gradient steps taken.
    pub steps: usize,
    /// Index of the returned iterate.
    pub returned_iter: usize,
    /// Why it stopped.
    pub stop: StopReason,
    /// Seconds until it stopped.
    pub seconds: f64,
    /// (iteration, cost) points, at most 200.
    pub cost_curve: Vec<[f64; 2]>,
    /// (iteration, p(class)) points, at most 200.
    pub prob_curve: Vec<[f64; 2]>,
    /// The PNG of the returned image, relative to the report.
    pub png: String,
    /// Identification and distances (with `--data`).
    pub eval: Option<OnnxIdentification>,
}

/// The result of `rote invert --onnx`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct OnnxInversionReport {
    /// The ONNX file.
    pub file: String,
    /// Image shape C, H, W.
    pub shape: [usize; 3],
    /// Per-channel mean and std applied inside the graph (empty: none).
    pub mean: Vec<f32>,
    /// See `mean`.
    pub std: Vec<f32>,
    /// What the graph's output was.
    pub output: OutputKind,
    /// Number of classes.
    pub n_classes: usize,
    /// Method and hyper-parameters.
    pub config: InvertConfig,
    /// Data set (with `--data`).
    pub dataset: Option<String>,
    /// Evaluation classifier folder (with `--data`).
    pub eval_model: Option<String>,
    /// Fraction of inverted classes the evaluation classifier ranks first (with `--data`).
    pub eval_top1: Option<f64>,
    /// Fraction ranked in its top 5 (with `--data`).
    pub eval_top5: Option<f64>,
    /// Control: fraction of the classes a grey image is "identified" as (with `--data`).
    pub blank_top1: Option<f64>,
    /// Seconds (inversion and evaluation).
    pub seconds: f64,
    /// One entry per class.
    pub classes: Vec<OnnxClassReport>,
}

/// Writes a C x H x W image in [0, 1] (1 or 3 channels; others: the first channel) as PNG.
fn write_png(path: &Path, image: &[f32], [c, h, w]: [usize; 3]) -> CoreResult<()> {
    let px = |k: usize, i: usize| {
        (image.get(k * h * w + i).copied().unwrap_or(0.0).clamp(0.0, 1.0) * 255.0).round() as u8
    };
    let mut bytes = Vec::new();
    let mut cursor = std::io::Cursor::new(&mut bytes);
    let encoded = if c == 3 {
        let raw: Vec<u8> = (0..h * w).flat_map(|i| [px(0, i), px(1, i), px(2, i)]).collect();
        image::RgbImage::from_raw(w as u32, h as u32, raw)
            .map(|img| img.write_to(&mut cursor, image::ImageFormat::Png))
    } else {
        let raw: Vec<u8> = (0..h * w).map(|i| px(0, i)).collect();
        image::GrayImage::from_raw(w as u32, h as u32, raw)
            .map(|img| img.write_to(&mut cursor, image::ImageFormat::Png))
    };
    match encoded {
        Some(Ok(())) => write_atomic(path, &bytes),
        Some(Err(e)) => Err(fmt_err(path, format!("cannot encode PNG: {e}"))),
        None => Err(fmt_err(path, "image buffer of the wrong size")),
    }
}

/// The default output folder of `file`: `<stem>-inversion/` beside it.
pub fn default_out_dir(file: &Path) -> PathBuf {
    let stem = file
        .file_stem()
        .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
    file.with_file_name(format!("{stem}-inversion"))
}

/// Inverts the classes of the ONNX classifier `file`, writes `<out>/<method>.json` and one PNG per
/// class, and returns the report with the path of the JSON.
pub fn invert_onnx(
    file: &Path,
    opts: &OnnxInvertOptions,
    ctx: &JobCtx<'_>,
) -> CoreResult<(OnnxInversionReport, PathBuf)> {
    let ds = opts.data.as_deref().map(crate::data::load).transpose()?;
    let mut onnx_opts = opts.onnx.clone();
    if let Some(ds) = &ds {
        onnx_opts.fallback_shape = Some([ds.c, ds.h, ds.w]);
    }
    let clf = OnnxClassifier::load(file, &onnx_opts)?;
    let shape = clf.shape();
    let n_classes = clf.n_classes();
    if let Some(ds) = &ds {
        if [ds.c, ds.h, ds.w] != shape {
            return Err(CoreError::Mismatch(format!(
                "{}: input shape {shape:?}, but data set '{}' has images {:?}",
                file.display(),
                ds.name,
                [ds.c, ds.h, ds.w]
            )));
        }
        if ds.n_classes() != n_classes {
            return Err(CoreError::Mismatch(format!(
                "{}: {n_classes} classes, but data set '{}' has {}",
                file.display(),
                ds.name,
                ds.n_classes()
            )));
        }
    }
    let classes = opts.classes.clone().unwrap_or_else(|| (0..n_classes).collect());
    if let Some(&bad) = classes.iter().find(|&&c| c >= n_classes) {
        return Err(CoreError::Invalid(format!(
            "class {bad} does not exist: {} has classes 0..{}",
            file.display(),
            n_classes - 1
        )));
    }
    let out_dir = opts.out.clone().unwrap_or_else(|| default_out_dir(file));
    let dev = Device::Cpu;
    let t0 = Instant::now();
    ctx.log(&format!(
        "{}: {} classes, input {shape:?}, output {:?}",
        file.display(),
        n_classes,
        clf.output_kind()
    ));
    let inversions = invert_classes(&clf, &dev, shape, &classes, &opts.config, ctx)?;
    let method = opts.config.method.as_str();
    // Identification with a data set.
    let mut evals: Vec<Option<OnnxIdentification>> = vec![None; inversions.len()];
    let (mut eval_dir, mut blank_top1) = (None, None);
    if let Some(ds) = &ds {
        let dir = match &opts.eval_model {
            Some(d) => d.clone(),
            None => {
                let key = format!(
                    "{}:{}",
                    ds.hash,
                    serde_json::to_string(&opts.eval).unwrap_or_default()
                );
                let hex: String = sha2::Sha256::digest(key.as_bytes())
                    .iter()
                    .take(6)
                    .map(|b| format!("{b:02x}"))
                    .collect();
                out_dir.join(format!("eval-{hex}"))
            }
        };
        let eval_model = if opts.eval_model.is_some() || dir.join("eval.json").exists() {
            load_eval(&dir, ds, &dev)?
        } else {
            ctx.log("training the evaluation classifier on the held-out images");
            let (m, varmap, card) = crate::invert::eval::train_eval_classifier(ds, &opts.eval, &dev, ctx)?;
            save_eval(&dir, &varmap, &card)?;
            m
        };
        let images: Vec<f32> = inversions.iter().flat_map(|i| i.image.iter().copied()).collect();
        let ids = identify(&eval_model, &dev, &images, shape, &classes)?;
        let blank = identify(&eval_model, &dev, &vec![0.5f32; ds.image_len()], shape, &[0])?;
        blank_top1 = blank.first().map(|b| {
            classes.iter().filter(|&&c| c == b.predicted).count() as f64 / classes.len().max(1) as f64
        });
        let train = ds.train_indices();
        for ((slot, inv), id) in evals.iter_mut().zip(&inversions).zip(ids) {
            *slot = Some(OnnxIdentification {
                identification: id,
                distances: face_distances(ds, &train, &inv.image, inv.class),
            });
        }
        eval_dir = Some(dir.display().to_string());
    }
    let mut reports = Vec::with_capacity(inversions.len());
    for (inv, eval) in inversions.iter().zip(evals) {
        ctx.checkpoint()?;
        let png = format!("{method}-class{:03}.png", inv.class);
        write_png(&out_dir.join(&png), &inv.image, shape)?;
        reports.push(OnnxClassReport {
            class: inv.class,
            name: ds
                .as_ref()
                .and_then(|d| d.class_names.get(inv.class).cloned())
                .unwrap_or_default(),
            target_p_start: inv.probs.first().map_or(f64::NAN, |&p| f64::from(p)),
            target_p: inv
                .probs
                .get(inv.returned_iter)
                .map_or(f64::NAN, |&p| f64::from(p)),
            steps: inv.steps,
            returned_iter: inv.returned_iter,
            stop: inv.stop,
            seconds: inv.seconds,
            cost_curve: crate::invert::run::downsample(&inv.costs, 200),
            prob_curve: crate::invert::run::downsample(&inv.probs, 200),
            png,
            eval,
        });
    }
    let n = reports.len().max(1) as f64;
    let rate = |f: &dyn Fn(&Identification) -> bool| {
        ds.as_ref().map(|_| {
            reports
                .iter()
                .filter(|r| r.eval.as_ref().is_some_and(|e| f(&e.identification)))
                .count() as f64
                / n
        })
    };
    let (mean, std) = clf.normalisation();
    let report = OnnxInversionReport {
        file: file.display().to_string(),
        shape,
        mean: mean.to_vec(),
        std: std.to_vec(),
        output: clf.output_kind(),
        n_classes,
        config: opts.config.clone(),
        dataset: ds.as_ref().map(|d| d.name.clone()),
        eval_model: eval_dir,
        eval_top1: rate(&|i| i.top1),
        eval_top5: rate(&|i| i.top5),
        blank_top1,
        seconds: t0.elapsed().as_secs_f64(),
        classes: reports,
    };
    let out = out_dir.join(format!("{method}.json"));
    write_json_atomic(&out, &report)?;
    Ok((report, out))
}
