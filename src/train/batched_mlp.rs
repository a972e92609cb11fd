//! K MLPs trained together as stacked weights: every layer is a `(K, in, out)` tensor and one
//! batched matmul runs all models at once, each on its own mini-batch. Models never interact:
//! each model's loss term touches only its own parameters, the optimisers are element-wise, and
//! every batched matmul has the same per-model shape whatever K is, so a model's result does not
//! depend on which other models it trained with (shards merge byte-identically).

use candle_core::{D, DType, Device, Tensor, Var};
use rand::{Rng as _, SeedableRng as _};
use sha2::Digest as _;

use crate::error::CoreResult;

/// Stacked MLPs.
pub struct BatchedMlp {
    /// (weight (K, in, out), bias (K, 1, out)) per layer.
    layers: Vec<(Var, Var)>,
    mean: Tensor,
    inv_std: Tensor,
}

fn named_rng(seed: u64, name: &str) -> rand_chacha::ChaCha8Rng {
    let digest = sha2::Sha256::digest(format!("{seed}:{name}").as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(&digest);
    rand_chacha::ChaCha8Rng::from_seed(key)
}

fn uniform(seed: u64, name: &str, n: usize, bound: f64) -> Vec<f32> {
    let mut rng = named_rng(seed, name);
    (0..n).map(|_| rng.random_range(-bound..bound) as f32).collect()
}

/// Seeded N(0, std²) values (Box-Muller).
fn normal(seed: u64, name: &str, n: usize, std: f64) -> Vec<f32> {
    let mut rng = named_rng(seed, &format!("{name}:normal"));
    (0..n)
        .map(|_| {
            let (u1, u2): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random::<f64>());
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos() * std) as f32
        })
        .collect()
}

/// Seeded standard normals truncated to [-2, 2] (JAX's `truncated_normal`), scaled by `std`.
fn truncated_normal(seed: u64, name: &str, n: usize, std: f64) -> Vec<f32> {
    let mut rng = named_rng(seed, name);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        // Box-Muller: two normals from two uniforms in (0, 1].
        let (u1, u2): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random::<f64>());
        let r = (-2.0 * u1.ln()).sqrt();
        for z in [
            r * (std::f64::consts::TAU * u2).cos(),
            r * (std::f64::consts::TAU * u2).sin(),
        ] {
            if z.abs() <= 2.0 && out.len() < n {
                out.push((z * std) as f32);
            }
        }
    }
    out
}

/// How a zoo's MLPs are initialised and fed their pixels.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum MlpInit {
    /// PyTorch's `nn.Linear` default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) weights and biases, on
    /// inputs standardised with the training split's mean and standard deviation (rote's zoos
    /// before `glorot-normal` became the default; a `zoo.json` without `init` means this).
    #[default]
    Uniform,
    /// JAX stax's `Dense` default, as the official Feldman–Zhang MNIST script
    /// (`mnist_infl_mem.py`): Glorot-normal weights (variance 2 / (fan_in + fan_out), truncated at
    /// two standard deviations and rescaled as `jax.nn.initializers.glorot_normal`), N(0, 0.01²)
    /// biases, on pixels / 255 without standardisation.
    GlorotNormal,
}

impl MlpInit {
    /// Whether the serde default (omitted from `zoo.json`).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl BatchedMlp {
    /// One MLP per seed, widths `dims` (input, hidden..., classes), initialised as `init` says
    /// from each model's own seed; inputs are standardised with the fixed `mean` and `std`
    /// (pass 0 and 1 for none).
    pub fn new(
        seeds: &[u64],
        dims: &[usize],
        init: MlpInit,
        (mean, std): (f32, f32),
        dev: &Device,
    ) -> CoreResult<Self> {
        let k = seeds.len();
        let mut layers = Vec::new();
        for (l, pair) in dims.windows(2).enumerate() {
            let (fan_in, out) = (pair[0], pair[1]);
            let bound = 1.0 / (fan_in as f64).sqrt();
            // JAX: stddev = sqrt(1 / fan_avg) / 0.8796..., the std of a unit normal truncated at 2.
            let glorot = (2.0 / (fan_in + out) as f64).sqrt() / 0.879_625_661_034_239_8;
            let mut w = Vec::with_capacity(k * fan_in * out);
            let mut b = Vec::with_capacity(k * out);
            for &s in seeds {
                // Stored (in, out) so the forward pass is x @ W.
                let (wn, bn) = (format!("layer{l}.weight"), format!("layer{l}.bias"));
                match init {
                    MlpInit::Uniform => {
                        w.extend(uniform(s, &wn, fan_in * out, bound));
                        b.extend(uniform(s, &bn, out, bound));
                    }
                    MlpInit::GlorotNormal => {
                        w.extend(truncated_normal(s, &wn, fan_in * out, glorot));
                        b.extend(normal(s, &bn, out, 0.01));
                    }
                }
            }
            let w = Var::from_tensor(&Tensor::from_vec(w, (k, fan_in, out), dev)?)?;
            let b = Var::from_tensor(&Tensor::from_vec(b, (k, 1, out), dev)?)?;
            layers.push((w, b));
        }
        let mean = Tensor::new(mean, dev)?;
        let inv_std = Tensor::new(1.0 / std.max(1e-6), dev)?;
        Ok(Self {
            layers,
            mean,
            inv_std,
        })
    }

    /// All parameters, for the optimiser.
    pub fn vars(&self) -> Vec<Var> {
        self.layers
            .iter()
            .flat_map(|(w, b)| [w.clone(), b.clone()])
            .collect()
    }

    /// (weight (K, in, out), bias (K, 1, out)) of every layer, input first.
    pub(super) fn layer_vars(&self) -> impl Iterator<Item = (&Tensor, &Tensor)> {
        self.layers.iter().map(|(w, b)| (w.as_tensor(), b.as_tensor()))
    }

    /// The input scaling as numbers: (mean, 1 / std).
    pub(super) fn scaling(&self) -> CoreResult<(f32, f32)> {
        let num = |t: &Tensor| t.to_dtype(DType::F32)?.to_scalar::<f32>();
        Ok((num(&self.mean)?, num(&self.inv_std)?))
    }

    /// Inputs in [0, 1] standardised as the first layer reads them.
    pub(super) fn normalise(&self, xs: &Tensor) -> CoreResult<Tensor> {
        Ok(xs.broadcast_sub(&self.mean)?.broadcast_mul(&self.inv_std)?)
    }

    /// Logits `(K, B, classes)` for inputs `(K, B, in)` in [0, 1].
    pub fn forward(&self, xs: &Tensor) -> CoreResult<Tensor> {
        let mut x = self.normalise(xs)?;
        let last = self.layers.len() - 1;
        for (l, (w, b)) in self.layers.iter().enumerate() {
            x = x.matmul(w.as_tensor())?.broadcast_add(b.as_tensor())?;
            if l < last {
                x = x.relu()?;
            }
        }
        Ok(x)
    }
}

/// Sum over models of each model's mean cross-entropy; `logits` (K, B, C), `labels` (K, B) u32.
pub fn stacked_cross_entropy(logits: &Tensor, labels: &Tensor) -> CoreResult<Tensor> {
    let log_p = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let picked = log_p.gather(&labels.unsqueeze(2)?, 2)?.squeeze(2)?;
    Ok(picked.mean(1)?.sum_all()?.neg()?)
}

/// Per-sample loss, margin and correctness `(K, B)` each, for logits `(K, B, C)` and labels `(B,)`.
pub fn stacked_scores(logits: &Tensor, labels: &Tensor) -> CoreResult<(Vec<f32>, Vec<f32>, Vec<bool>)> {
    let (k, b, c) = logits.dims3()?;
    let labels = labels.unsqueeze(0)?.broadcast_as((k, b))?.contiguous()?;
    let idx = labels.unsqueeze(2)?;
    let log_p = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let loss = log_p.gather(&idx, 2)?.squeeze(2)?.neg()?;
    let true_logit = logits.gather(&idx, 2)?;
    let onehot = candle_nn::encoding::one_hot(labels.flatten_all()?, c, 1f32, 0f32)?.reshape((k, b, c))?;
    let other = (logits - (onehot * 1e30)?)?.max_keepdim(2)?;
    let margin = (true_logit - other)?.squeeze(2)?;
    let pred = logits.argmax(D::Minus1)?;
    let correct = pred.eq(&labels)?.to_dtype(DType::U8)?;
    Ok((
        loss.flatten_all()?.to_vec1::<f32>()?,
        margin.flatten_all()?.to_vec1::<f32>()?,
        correct
            .flatten_all()?
            .to_vec1::<u8>()?
            .into_iter()
            .map(|v| v == 1)
            .collect(),
    ))
}

#[cfg(test)]
mod init_tests {
    #![allow(clippy::unwrap_used, reason = "tests unwrap freely")]
    use super::*;

    fn stats(v: &[f32]) -> (f64, f64, f64) {
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = v.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>() / n;
        let max = v.iter().map(|x| f64::from(x.abs())).fold(0.0, f64::max);
        (mean, var.sqrt(), max)
    }

    /// JAX's glorot_normal: variance 2 / (fan_in + fan_out) after truncation at 2 sigma of the
    /// unscaled normal; stax's bias init: N(0, 0.01^2).
    #[test]
    fn glorot_normal_matches_jax_moments() {
        let net = BatchedMlp::new(
            &[3],
            &[784, 512, 10],
            MlpInit::GlorotNormal,
            (0.0, 1.0),
            &Device::Cpu,
        )
        .unwrap();
        let w: Vec<f32> = net.layers[0]
            .0
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let (mean, std, max) = stats(&w);
        let want = (2.0f64 / (784.0 + 512.0)).sqrt();
        assert!(
            mean.abs() < 1e-3 && (std / want - 1.0).abs() < 0.01,
            "mean {mean} std {std} want {want}"
        );
        assert!(
            max <= 2.0 * want / 0.879_625_661_034_239_8 + 1e-6,
            "truncated: {max}"
        );
        let b: Vec<f32> = net.layers[0]
            .1
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let (_, bstd, _) = stats(&b);
        assert!((bstd / 0.01 - 1.0).abs() < 0.15, "bias std {bstd}");
        // The default stays PyTorch's uniform init, bounded by 1/sqrt(fan_in).
        let net = BatchedMlp::new(&[3], &[784, 512, 10], MlpInit::Uniform, (0.0, 1.0), &Device::Cpu).unwrap();
        let w: Vec<f32> = net.layers[0]
            .0
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let (_, std, max) = stats(&w);
        assert!(max <= 1.0 / 28.0 && (std / (1.0 / 28.0 / 3f64.sqrt()) - 1.0).abs() < 0.01);
    }
}
