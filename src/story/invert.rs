//! The inversion step's animation: MI-FACE with the TV prior (Fredrikson et al. 2015, Algorithm 1,
//! with the total-variation regulariser of `invert::tv`) on the demo face classifier for one
//! person, every published iterate (each 10th step) next to one of that person's training faces.
//! The person is the one the saved TV report identifies with the highest evaluation confidence,
//! and the run uses the report's own configuration, so the last frame is the grid's image.

use std::path::Path;

use candle_core::Device;
use parking_lot::Mutex;

use super::{Anim, AnimFrame, Panel, display_bytes, stretch};
use crate::demo::DEMO_FACE_MODEL;
use crate::error::{CoreError, CoreResult};
use crate::invert::{Method, invert_classes, load_report, report_path};
use crate::job::{Frame, JobCtx, JobSink, Progress};
use crate::model::load_model;

/// Collects the iterates and forwards progress to the job.
struct Collect<'a> {
    outer: &'a JobCtx<'a>,
    frames: Mutex<Vec<(usize, f64, Vec<u8>)>>,
}

impl JobSink for Collect<'_> {
    fn progress(&self, p: &Progress) {
        self.outer.progress(&p.stage, p.done, p.total);
    }
    fn metric(&self, _series: &str, _step: f64, _value: f64) {}
    fn log(&self, msg: &str) {
        self.outer.log(msg);
    }
    fn wants_frames(&self) -> bool {
        true
    }
    fn frame(&self, f: &Frame<'_>) {
        let bytes = f
            .pixels
            .iter()
            .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect();
        self.frames.lock().push((f.step, f.value, bytes));
    }
}

/// Inverts the demo face model's best-identified person and returns the iterates.
pub fn invert_anim(study_root: &Path, ctx: &JobCtx<'_>) -> CoreResult<Anim> {
    let path = report_path(study_root, DEMO_FACE_MODEL, Method::Tv);
    let report = load_report(&path)?;
    let best = report
        .classes
        .iter()
        .filter(|c| c.eval_top1)
        .max_by(|a, b| a.eval_p_true.total_cmp(&b.eval_p_true))
        .or_else(|| report.classes.first())
        .ok_or_else(|| CoreError::format(&path, "the report inverts nobody"))?;
    let model_dir = study_root.join("models").join(DEMO_FACE_MODEL);
    let ds = crate::data::load(&report.dataset)?;
    let loaded = load_model(&model_dir, Some(&ds), &Device::Cpu)?;
    let face = loaded
        .card
        .train_indices
        .iter()
        .map(|&i| i as usize)
        .find(|&i| ds.labels.get(i).is_some_and(|&l| usize::from(l) == best.class))
        .and_then(|i| ds.image(i).map(|b| (i, display_bytes(b, ds.max_value))))
        .ok_or_else(|| {
            CoreError::Mismatch(format!(
                "{}: no training face of class {} in the model's training set",
                model_dir.display(),
                best.class
            ))
        })?;
    let sink = Collect {
        outer: ctx,
        frames: Mutex::new(Vec::new()),
    };
    let inner = JobCtx::new(ctx.cancel, &sink);
    let shape = report.shape;
    let out = invert_classes(
        &loaded.model,
        &Device::Cpu,
        shape,
        &[best.class],
        &report.config,
        &inner,
    )?;
    let result = out
        .first()
        .ok_or_else(|| CoreError::Invalid("the inversion returned nothing".into()))?;
    let returned: Vec<u8> = result
        .image
        .iter()
        .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect();
    let panel = |label: String, pixels: Vec<u8>| Panel { label, shape, pixels };
    let training = panel(format!("a training photo of {}", best.name), face.1);
    let mut frames: Vec<AnimFrame> = sink
        .frames
        .into_inner()
        .into_iter()
        .map(|(step, cost, pixels)| AnimFrame {
            caption: format!("iteration {step} of {}: cost {cost:.4}", report.config.alpha),
            panels: vec![
                panel(
                    "the model's idea of this person (contrast stretched)".into(),
                    stretch(&pixels),
                ),
                training.clone(),
            ],
        })
        .collect();
    frames.push(AnimFrame {
        caption: format!(
            "returned iterate {} (the lowest cost): p = {:.3}",
            result.returned_iter,
            result
                .probs
                .get(result.returned_iter)
                .copied()
                .unwrap_or(f32::NAN)
        ),
        panels: vec![
            panel(
                "the reconstruction (contrast stretched)".into(),
                stretch(&returned),
            ),
            training,
        ],
    });
    Ok(Anim {
        focus: Some(best.class),
        subject: format!(
            "{DEMO_FACE_MODEL}: {} ({} method)",
            best.name,
            report.config.method.as_str()
        ),
        frames,
        verdict: format!(
            "an independent classifier names this reconstruction {} (rank {}); over all {} people it identifies {:.0}% (a blank image: {:.0}%)",
            best.name,
            best.eval_rank,
            report.classes.len(),
            report.eval_top1 * 100.0,
            report.blank_top1 * 100.0
        ),
    })
}
