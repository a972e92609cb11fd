//! The extraction step's animation: one generation of the demo DDPM re-run step by step from its
//! own noise stream (Carlini et al. 2023, section 4: sample, then compare with the training set),
//! showing x_t and the model's x0 prediction at every DDIM step next to the planted training
//! image the finished generation copies. The generation is the extraction report's best match
//! of the most often extracted planted duplicate; its last frame is the cached generation.

use std::path::{Path, PathBuf};

use candle_core::Device;

use super::{Anim, AnimFrame, Panel, display_bytes};
use crate::demo::diffusion::DUP_MODEL;
use crate::diffusion::extract::ExtractionRun;
use crate::diffusion::model::{Ddpm, NormalStream, batch_noise, diffusion_dir, to_bytes};
use crate::diffusion::sample::{Sampler, ancestral_step, ddim_step, predict_x0};
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;

/// The newest extraction report of `model` in the study.
fn extraction_report(study_root: &Path, model: &str) -> CoreResult<(PathBuf, ExtractionRun)> {
    let dir = study_root.join("results").join("diffusion").join(model);
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| CoreError::io(&dir, e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("extraction-") && n.ends_with(".json"))
        })
        .collect();
    found.sort();
    let path = found.pop().ok_or_else(|| {
        CoreError::Invalid(format!(
            "{}: no extraction report (run `rote extract` or the Extraction view first)",
            dir.display()
        ))
    })?;
    let text = std::fs::read_to_string(&path).map_err(|e| CoreError::io(&path, e))?;
    let run = serde_json::from_str(&text)
        .map_err(|e| CoreError::format(&path, format!("not an extraction report: {e}")))?;
    Ok((path, run))
}

/// Re-runs the chosen generation of the demo extraction and returns its frames.
pub fn denoise_anim(study_root: &Path, ctx: &JobCtx<'_>) -> CoreResult<Anim> {
    let (path, run) = extraction_report(study_root, DUP_MODEL)?;
    // The planted duplicate extracted by the most generations, and its closest generation.
    let target = run
        .report
        .extracted
        .iter()
        .filter(|e| {
            run.train_rows
                .get(e.train_index)
                .is_some_and(|i| run.duplicated.contains(i))
        })
        .max_by_key(|e| e.generations.len())
        .or_else(|| run.report.extracted.first())
        .ok_or_else(|| CoreError::format(&path, "the report extracts no training image"))?;
    let index = *run
        .train_rows
        .get(target.train_index)
        .ok_or_else(|| CoreError::format(&path, "an extracted row is outside the training rows"))?;
    let j = target.best_generation;
    let m = Ddpm::load(&diffusion_dir(study_root).join(&run.model), &Device::Cpu)?;
    let ds = crate::data::load(&m.card.dataset.name)?;
    let shape = m.shape();
    let steps = match run.sampler {
        Sampler::Ancestral { steps } | Sampler::Ddim { steps, .. } => steps,
    };
    let s = m.schedule.respaced(steps);
    // Image j's own stream, drawn in the same order as `generate_tensor` draws it.
    let mut streams = vec![NormalStream::new(run.seed, j as u64)];
    let mut x = batch_noise(&mut streams, shape, &m.device)?;
    let noiseless = matches!(run.sampler, Sampler::Ddim { eta, .. } if eta == 0.0);
    let original = ds
        .image(index)
        .map(|b| display_bytes(b, ds.max_value))
        .ok_or_else(|| CoreError::format(&path, format!("training image {index} is not in the data set")))?;
    let panel = |label: &str, bytes: Vec<u8>| Panel {
        label: label.into(),
        shape,
        pixels: bytes,
    };
    let as_display = |t: &candle_core::Tensor| -> CoreResult<Vec<u8>> {
        let b = to_bytes(t, ds.max_value)?.pop().unwrap_or_default();
        Ok(display_bytes(&b, ds.max_value))
    };
    let mut frames = vec![AnimFrame {
        caption: format!("pure noise: step 0 of {}", s.len()),
        panels: vec![
            panel("x_t (noise)", as_display(&x)?),
            panel("predicted x_0", vec![128; original.len()]),
            panel(&format!("training image #{index}"), original.clone()),
        ],
    }];
    for (done, i) in (0..s.len()).rev().enumerate() {
        ctx.checkpoint()?;
        let (x0, _) = predict_x0(&m, &s, &x, i)?;
        let z = if noiseless {
            candle_core::Tensor::zeros(1, x.dtype(), &m.device)?
        } else {
            batch_noise(&mut streams, shape, &m.device)?
        };
        x = match run.sampler {
            Sampler::Ancestral { .. } => ancestral_step(&m, &s, &x, i, &z)?,
            Sampler::Ddim { eta, .. } => ddim_step(&m, &s, &x, i, eta, &z)?,
        };
        frames.push(AnimFrame {
            caption: format!("denoising step {} of {}", done + 1, s.len()),
            panels: vec![
                panel("x_t", as_display(&x)?),
                panel("predicted x_0", as_display(&x0)?),
                panel(&format!("training image #{index}"), original.clone()),
            ],
        });
        ctx.progress("denoising", (done + 1) as u64, s.len() as u64);
    }
    Ok(Anim {
        focus: Some(j),
        subject: format!(
            "{}: generation {j} of seed {} ({})",
            run.model,
            run.seed,
            run.sampler.label()
        ),
        frames,
        verdict: format!(
            "generation {j} copies training image #{index}, planted {} times (score {:.3} <= 1/3: extracted; {} of {} generations extract it)",
            m.card.dup_factor,
            target.best_score,
            target.generations.len(),
            run.report.summary.n_samples
        ),
    })
}
