//! Forward passes behind LayerMem and UnitMem: per-layer alignment losses of a pair of encoders
//! on the same seeded augmentations, and per-unit mean activations.
//!
//! L_align(f, x) = E_j d(f(x), f(a_j(x))) with d the l2 distance between L2-normalised flattened
//! layer outputs: the reference code's form (clean image vs one augmented view, 5 draws). The
//! definition's form E d(f(a(x)), f(a'(x))) is [`AlignForm::TwoView`].

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::augment::{AugConfig, AugPurpose, aug_rng, augment_into};
use super::card::SslEncoder;
use super::encoder::to_input;
use super::split::SampleRef;
use crate::error::CoreResult;
use crate::job::JobCtx;

/// Which views L_align compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum AlignForm {
    /// The clean image against each augmented view (reference code, `layer_mem.py`).
    CleanVsAug,
    /// Two augmented views per draw (the paper's definition).
    TwoView,
}

/// The images being measured and how to augment them.
pub struct Probe<'a> {
    /// Candidate images, flat f32 in [0, 1].
    pub pixels: &'a [f32],
    /// Their stable ids (seed the draws, so f and g see the same views).
    pub refs: &'a [SampleRef],
    /// C, H, W.
    pub shape: [usize; 3],
    /// Augmentations (the training recipe's).
    pub aug: &'a AugConfig,
    /// Seed of the measurement draws.
    pub seed: u64,
    /// Candidates per forward pass.
    pub chunk: usize,
}

/// Rows of one chunk: for each draw `j` in `draws`, one view per candidate (view `None` = clean).
fn build_rows(
    p: &Probe<'_>,
    range: std::ops::Range<usize>,
    draws: &[Option<u64>],
    purpose: AugPurpose,
) -> Vec<f32> {
    let len: usize = p.shape.iter().product();
    let m = range.len();
    let mut rows = vec![0f32; draws.len() * m * len];
    rows.par_chunks_mut(len).enumerate().for_each(|(r, out)| {
        let (d, i) = (r / m, range.start + r % m);
        let img = &p.pixels[i * len..(i + 1) * len];
        match draws[d] {
            None => out.copy_from_slice(img),
            Some(j) => {
                let mut rng = aug_rng(p.seed, purpose, p.refs[i].id(), 0, j);
                augment_into(img, p.shape, p.aug, &mut rng, out);
            }
        }
    });
    rows
}

/// L2-normalised rows of a layer output (rows x features).
fn unit_rows(t: &Tensor) -> CoreResult<Vec<Vec<f32>>> {
    let mut rows = t.flatten_from(1)?.to_vec2::<f32>()?;
    for r in &mut rows {
        let n = r.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        r.iter_mut().for_each(|v| *v /= n);
    }
    Ok(rows)
}

fn dist(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Per-layer alignment losses [encoder][layer][candidate] of `encoders` on `k` draws per candidate.
pub fn align_losses(
    encoders: &[&SslEncoder],
    p: &Probe<'_>,
    k: usize,
    form: AlignForm,
    device: &Device,
    ctx: &JobCtx<'_>,
) -> CoreResult<Vec<Vec<Vec<f64>>>> {
    let n = p.refs.len();
    let n_layers = encoders.first().map_or(0, |e| e.card.layers.len());
    let mut out = vec![vec![vec![0.0; n]; n_layers]; encoders.len()];
    let draws: Vec<Option<u64>> = match form {
        AlignForm::CleanVsAug => std::iter::once(None).chain((0..k as u64).map(Some)).collect(),
        AlignForm::TwoView => (0..2 * k as u64).map(Some).collect(),
    };
    let chunk = p.chunk.max(1);
    for start in (0..n).step_by(chunk) {
        ctx.checkpoint()?;
        let range = start..(start + chunk).min(n);
        let m = range.len();
        let rows = build_rows(p, range.clone(), &draws, AugPurpose::LayerMem);
        let x = to_input(rows, draws.len() * m, p.shape, device)?;
        for (e, enc) in encoders.iter().enumerate() {
            for (l, t) in enc.net.layers(&x)?.iter().enumerate() {
                let z = unit_rows(t)?;
                for i in 0..m {
                    let total: f64 = (0..k)
                        .map(|j| match form {
                            AlignForm::CleanVsAug => dist(&z[i], &z[(j + 1) * m + i]),
                            AlignForm::TwoView => dist(&z[2 * j * m + i], &z[(2 * j + 1) * m + i]),
                        })
                        .sum();
                    out[e][l][range.start + i] = total / k as f64;
                }
            }
        }
        ctx.progress("LayerMem", range.end as u64, n as u64);
    }
    Ok(out)
}

/// Per-unit mean activations μ [layer][candidate][unit] of `enc` over `n_aug` seeded views
/// (spatial mean of each channel).
pub fn unit_activations(
    enc: &SslEncoder,
    p: &Probe<'_>,
    n_aug: usize,
    device: &Device,
    ctx: &JobCtx<'_>,
) -> CoreResult<Vec<Vec<Vec<f32>>>> {
    let n = p.refs.len();
    let mut out: Vec<Vec<Vec<f32>>> = Vec::new();
    let draws: Vec<Option<u64>> = (0..n_aug.max(1) as u64).map(Some).collect();
    let chunk = p.chunk.max(1);
    for start in (0..n).step_by(chunk) {
        ctx.checkpoint()?;
        let range = start..(start + chunk).min(n);
        let m = range.len();
        let rows = build_rows(p, range.clone(), &draws, AugPurpose::UnitMem);
        let x = to_input(rows, draws.len() * m, p.shape, device)?;
        let layers = enc.net.layers(&x)?;
        if out.is_empty() {
            out = vec![Vec::with_capacity(n); layers.len()];
        }
        for (l, t) in layers.iter().enumerate() {
            let t = if t.rank() == 4 { t.mean((2, 3))? } else { t.clone() };
            let a = t.to_vec2::<f32>()?;
            for i in 0..m {
                let units = a[i].len();
                let mut mu = vec![0f32; units];
                for d in 0..draws.len() {
                    mu.iter_mut().zip(&a[d * m + i]).for_each(|(s, v)| *s += v);
                }
                mu.iter_mut().for_each(|s| *s /= draws.len() as f32);
                out[l].push(mu);
            }
        }
        ctx.progress(&format!("UnitMem {}", enc.card.id), range.end as u64, n as u64);
    }
    Ok(out)
}
