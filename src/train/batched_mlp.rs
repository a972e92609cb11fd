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

fn uniform(seed: u64, name: &str, n: usize, bound: f64) -> Vec<f32> {
    let digest = sha2::Sha256::digest(format!("{seed}:{name}").as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(&digest);
    let mut rng = rand_chacha::ChaCha8Rng::from_seed(key);
    (0..n).map(|_| rng.random_range(-bound..bound) as f32).collect()
}

impl BatchedMlp {
    /// One MLP per seed, widths `dims` (input, hidden..., classes), PyTorch's default init drawn
    /// from each model's own seed; inputs are standardised with the fixed `mean` and `std`.
    pub fn new(seeds: &[u64], dims: &[usize], mean: f32, std: f32, dev: &Device) -> CoreResult<Self> {
        let k = seeds.len();
        let mut layers = Vec::new();
        for (l, pair) in dims.windows(2).enumerate() {
            let (fan_in, out) = (pair[0], pair[1]);
            let bound = 1.0 / (fan_in as f64).sqrt();
            let mut w = Vec::with_capacity(k * fan_in * out);
            let mut b = Vec::with_capacity(k * out);
            for &s in seeds {
                // Stored (in, out) so the forward pass is x @ W.
                w.extend(uniform(s, &format!("layer{l}.weight"), fan_in * out, bound));
                b.extend(uniform(s, &format!("layer{l}.bias"), out, bound));
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

    /// Logits `(K, B, classes)` for inputs `(K, B, in)` in [0, 1].
    pub fn forward(&self, xs: &Tensor) -> CoreResult<Tensor> {
        let mut x = xs.broadcast_sub(&self.mean)?.broadcast_mul(&self.inv_std)?;
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
