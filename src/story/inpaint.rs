//! The inpainting step's animation: RePaint (Lugmayr et al. 2022) completes the hidden half of a
//! training image with the DDPM that trained on it and with the one that did not (the inpainting
//! membership attack of Carlini et al. 2023, section 5.3), frame by frame from the same noise.
//! The image is the demo attack report's clearest member: the largest OUT minus IN error.

use std::path::Path;

use candle_core::Device;

use super::{Anim, AnimFrame, Panel, display_bytes, thin};
use crate::demo::diffusion::PAIR_STEM;
use crate::diffusion::attack::InpaintReport;
use crate::diffusion::inpaint::{hidden_error, inpaint};
use crate::diffusion::model::{Ddpm, diffusion_dir, to_bytes, to_model_range};
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;

/// Frames kept of the RePaint schedule (it visits several hundred states).
const MAX_FRAMES: usize = 60;

/// Inpaints the demo pair's clearest member with both models and returns the frames.
pub fn inpaint_anim(study_root: &Path, ctx: &JobCtx<'_>) -> CoreResult<Anim> {
    let (a_id, b_id) = (format!("{PAIR_STEM}-k00"), format!("{PAIR_STEM}-k01"));
    let report_path = study_root
        .join("results")
        .join("diffusion")
        .join(&a_id)
        .join(format!("inpaint-{b_id}.json"));
    let text = std::fs::read_to_string(&report_path).map_err(|e| CoreError::io(&report_path, e))?;
    let report: InpaintReport = serde_json::from_str(&text)
        .map_err(|e| CoreError::format(&report_path, format!("not an inpainting report: {e}")))?;
    let row = report
        .rows
        .iter()
        .max_by(|x, y| (x.err_out - x.err_in).total_cmp(&(y.err_out - y.err_in)))
        .ok_or_else(|| CoreError::format(&report_path, "the report has no rows"))?;
    let dir = diffusion_dir(study_root);
    let m_in = Ddpm::load(&dir.join(&row.in_model), &Device::Cpu)?;
    let m_out = Ddpm::load(&dir.join(&row.out_model), &Device::Cpu)?;
    let ds = crate::data::load(&m_in.card.dataset.name)?;
    let shape = m_in.shape();
    let i = row.index;
    // Best of the report's N completions per model, as the attack scores them; the animation
    // follows the best one's trajectory.
    let samples = report.samples.max(1);
    let x0 = to_model_range(&ds, &vec![i; samples], &m_in.device)?;
    let keep = &report.keep;
    let original = ds
        .image(i)
        .map(|b| display_bytes(b, ds.max_value))
        .ok_or_else(|| CoreError::format(&report_path, format!("image {i} is not in the data set")))?;
    let masked: Vec<u8> = original
        .iter()
        .enumerate()
        .map(|(k, &v)| if keep[k % keep.len()] > 0.5 { v } else { 64 })
        .collect();
    let mut states: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
    let mut errors = [0.0; 2];
    for (role, m) in [&m_in, &m_out].into_iter().enumerate() {
        let mut all: Vec<Vec<Vec<u8>>> = Vec::new();
        let mut on_step = |_done: usize, _total: usize, x: &candle_core::Tensor| {
            if let Ok(v) = to_bytes(x, ds.max_value) {
                all.push(v);
            }
        };
        // The attack's own noise: only what the two models learned differs.
        let out = inpaint(
            m,
            &x0,
            keep,
            &report.config,
            (report.seed, (i as u64) << 16),
            ctx,
            &mut on_step,
        )?;
        let errs = hidden_error(&out, &x0, keep)?;
        let best = errs
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(k, _)| k);
        errors[role] = errs.get(best).copied().unwrap_or(f64::NAN);
        let done = to_bytes(&out, ds.max_value)?;
        all.push(done);
        states[role] = all
            .iter()
            .map(|v| display_bytes(v.get(best).map_or(&[][..], Vec::as_slice), ds.max_value))
            .collect();
    }
    let n = states[0].len().min(states[1].len());
    let picks = thin(&(0..n).collect::<Vec<_>>(), MAX_FRAMES);
    let panel = |label: String, pixels: Vec<u8>| Panel { label, shape, pixels };
    let frames = picks
        .iter()
        .map(|&k| AnimFrame {
            caption: if k + 1 == n {
                format!(
                    "completed: hidden-region error IN {:.3}, OUT {:.3}",
                    errors[0], errors[1]
                )
            } else {
                format!("RePaint state {} of {}", k + 1, n)
            },
            panels: vec![
                panel("what both models see".into(), masked.clone()),
                panel(format!("IN: {}", row.in_model), states[0][k].clone()),
                panel(format!("OUT: {}", row.out_model), states[1][k].clone()),
                panel(format!("original #{i}"), original.clone()),
            ],
        })
        .collect();
    Ok(Anim {
        focus: Some(i),
        subject: format!("image #{i}, trained on by {} only", row.in_model),
        frames,
        verdict: format!(
            "the member's completion is {:.1}x closer to the hidden truth (error {:.3} vs {:.3}); over the report's {} images the attack's AUC is {:.2}",
            errors[1] / errors[0].max(1e-9),
            errors[0],
            errors[1],
            report.rows.len(),
            report.auc
        ),
    })
}
