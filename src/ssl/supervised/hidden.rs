//! The hidden layers of a supervised MLP, read from its checkpoint, and their mean post-ReLU
//! activations over seeded augmentations.

use candle_core::{DType, Device, Module as _, Tensor};
use candle_nn::{Linear, VarMap};

use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
use crate::model::{Family, ModelSpec};
use crate::ssl::augment::{AugConfig, AugPurpose, aug_rng, augment_into};
use crate::ssl::split::SampleRef;

/// The hidden layers of an MLP with its input normalisation.
pub struct HiddenNet {
    layers: Vec<Linear>,
    norm: Option<(Tensor, Tensor)>,
}

fn var(varmap: &VarMap, name: &str) -> CoreResult<Tensor> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| CoreError::Invalid("the parameter map is poisoned".into()))?;
    data.get(name)
        .map(|v| v.as_tensor().to_dtype(DType::F32))
        .transpose()?
        .ok_or_else(|| CoreError::Invalid(format!("the checkpoint has no parameter '{name}'")))
}

impl HiddenNet {
    /// The hidden layers `fc1 .. fcN` of the MLP `spec` from `varmap`; refuses other families.
    pub fn from_varmap(id: &str, spec: &ModelSpec, varmap: &VarMap, device: &Device) -> CoreResult<Self> {
        if spec.family != Family::Mlp || spec.widths.is_empty() {
            return Err(CoreError::Invalid(format!(
                "model '{id}' is a {} with {} hidden layers: supervised UnitMem supports MLPs with hidden layers only",
                spec.family.as_str(),
                spec.widths.len()
            )));
        }
        let layers = (1..=spec.widths.len())
            .map(|k| {
                let w = var(varmap, &format!("fc{k}.weight"))?;
                let b = var(varmap, &format!("fc{k}.bias"))?;
                Ok(Linear::new(w, Some(b)))
            })
            .collect::<CoreResult<Vec<_>>>()?;
        let c = spec.input[0];
        let norm = if spec.input_mean.len() == c && spec.input_std.len() == c {
            let inv: Vec<f32> = spec.input_std.iter().map(|s| 1.0 / s.max(1e-6)).collect();
            Some((
                Tensor::from_vec(spec.input_mean.clone(), (1, c, 1, 1), device)?,
                Tensor::from_vec(inv, (1, c, 1, 1), device)?,
            ))
        } else {
            None
        };
        Ok(Self { layers, norm })
    }

    /// Layer names `hidden1 ..`.
    pub fn names(&self) -> Vec<String> {
        (1..=self.layers.len()).map(|k| format!("hidden{k}")).collect()
    }

    /// Post-ReLU outputs of every hidden layer for `(B, C, H, W)` inputs in [0, 1].
    pub fn activations(&self, xs: &Tensor) -> CoreResult<Vec<Tensor>> {
        let xs = match &self.norm {
            Some((m, inv)) => xs.broadcast_sub(m)?.broadcast_mul(inv)?,
            None => xs.clone(),
        };
        let mut x = xs.flatten_from(1)?;
        let mut out = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            x = l.forward(&x)?.relu()?;
            out.push(x.clone());
        }
        Ok(out)
    }
}

/// Candidate images with their ids and classes.
pub struct Candidates {
    /// Stable ids (seed the augmentations).
    pub refs: Vec<SampleRef>,
    /// Flat f32 pixels in [0, 1].
    pub pixels: Vec<f32>,
    /// Class of each candidate (`None`: left out of ClassMem).
    pub labels: Vec<Option<u16>>,
    /// C, H, W.
    pub shape: [usize; 3],
}

/// Mean post-ReLU activations μ [layer][candidate][unit] over `k` seeded views (clean if 1).
pub fn hidden_means(
    net: &HiddenNet,
    c: &Candidates,
    k: usize,
    seed: u64,
    device: &Device,
    ctx: &JobCtx<'_>,
) -> CoreResult<Vec<Vec<Vec<f32>>>> {
    let len: usize = c.shape.iter().product();
    let n = c.refs.len();
    let k = k.max(1);
    let aug = AugConfig::default();
    let mut out: Vec<Vec<Vec<f32>>> = vec![Vec::with_capacity(n); net.layers.len()];
    for start in (0..n).step_by(64) {
        ctx.checkpoint()?;
        let end = (start + 64).min(n);
        let m = end - start;
        let mut rows = vec![0f32; k * m * len];
        for (r, row) in rows.chunks_mut(len).enumerate() {
            let (j, i) = (r / m, start + r % m);
            let img = &c.pixels[i * len..(i + 1) * len];
            if k == 1 {
                row.copy_from_slice(img);
            } else {
                let mut rng = aug_rng(seed, AugPurpose::UnitMem, c.refs[i].id(), 0, j as u64);
                augment_into(img, c.shape, &aug, &mut rng, row);
            }
        }
        let x = Tensor::from_vec(rows, (k * m, c.shape[0], c.shape[1], c.shape[2]), device)?;
        for (l, t) in net.activations(&x)?.iter().enumerate() {
            let a = t.to_vec2::<f32>()?;
            for i in 0..m {
                let mut mu = vec![0f32; a[i].len()];
                for j in 0..k {
                    mu.iter_mut()
                        .zip(&a[j * m + i])
                        .for_each(|(s, v)| *s += v / k as f32);
                }
                out[l].push(mu);
            }
        }
        ctx.progress("supervised UnitMem", end as u64, n as u64);
    }
    Ok(out)
}
