//! The networks and batches of MAT (`super`): an MLP with Xavier-uniform weights from a seeded
//! ChaCha stream and zero biases (XRM's `networks.py` MLP), seeded epochs of shuffled
//! mini-batches, and the training side of the coloured digits as tensors.

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::Linear;
use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

use super::super::spurious::SpuriousPart;
use crate::error::CoreResult;

/// Rows per forward pass when evaluating.
const EVAL_CHUNK: usize = 2048;

/// An MLP on feature rows: `hidden` ReLU layers, then the logits.
pub struct Net {
    layers: Vec<Linear>,
    vars: Vec<Var>,
}

impl Net {
    /// Xavier-uniform weights from a ChaCha stream keyed by `seed` and the layer, zero biases.
    pub fn new(input: usize, hidden: &[usize], classes: usize, seed: u64) -> CoreResult<Self> {
        let mut dims = vec![input];
        dims.extend_from_slice(hidden);
        dims.push(classes);
        let mut layers = Vec::with_capacity(dims.len() - 1);
        let mut vars = Vec::with_capacity(2 * layers.capacity());
        for (k, pair) in dims.windows(2).enumerate() {
            let (fan_in, fan_out) = (pair[0], pair[1]);
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(k as u64);
            let bound = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
            let values: Vec<f32> = (0..fan_in * fan_out)
                .map(|_| rng.random_range(-bound..bound))
                .collect();
            let weight = Var::from_vec(values, (fan_out, fan_in), &Device::Cpu)?;
            let bias = Var::zeros(fan_out, DType::F32, &Device::Cpu)?;
            layers.push(Linear::new(
                weight.as_tensor().clone(),
                Some(bias.as_tensor().clone()),
            ));
            vars.push(weight);
            vars.push(bias);
        }
        Ok(Self { layers, vars })
    }

    /// The trainable parameters.
    pub fn vars(&self) -> Vec<Var> {
        self.vars.clone()
    }

    /// Logits of every row of `x` (n × classes), in chunks, as host rows.
    pub fn logits(&self, x: &Tensor) -> CoreResult<Vec<Vec<f32>>> {
        let n = x.dim(0)?;
        let mut out = Vec::with_capacity(n);
        for start in (0..n).step_by(EVAL_CHUNK) {
            let len = EVAL_CHUNK.min(n - start);
            out.extend(self.forward(&x.narrow(0, start, len)?)?.to_vec2::<f32>()?);
        }
        Ok(out)
    }
}

impl Module for Net {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = xs.clone();
        let last = self.layers.len().saturating_sub(1);
        for (k, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x)?;
            if k < last {
                x = x.relu()?;
            }
        }
        Ok(x)
    }
}

/// Seeded epochs of shuffled mini-batches (the last batch of an epoch may be shorter).
pub(super) struct Batches {
    order: Vec<u32>,
    pos: usize,
    size: usize,
    rng: ChaCha8Rng,
}

impl Batches {
    pub(super) fn new(n: usize, size: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(1000);
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.shuffle(&mut rng);
        Self {
            order,
            pos: 0,
            size,
            rng,
        }
    }

    pub(super) fn next_batch(&mut self) -> Vec<u32> {
        if self.pos >= self.order.len() {
            self.order.shuffle(&mut self.rng);
            self.pos = 0;
        }
        let end = (self.pos + self.size).min(self.order.len());
        let batch = self.order[self.pos..end].to_vec();
        self.pos = end;
        batch
    }
}

/// The training side as tensors: features (n × dim) and labels (n, u32).
pub(super) struct TrainTensors {
    pub(super) x: Tensor,
    pub(super) y: Tensor,
}

impl TrainTensors {
    pub(super) fn new(part: &SpuriousPart) -> CoreResult<Self> {
        Ok(Self {
            x: Tensor::from_slice(&part.features, (part.n, part.dim), &Device::Cpu)?,
            y: Tensor::from_slice(&part.labels, part.n, &Device::Cpu)?,
        })
    }

    pub(super) fn batch(&self, idx: &[u32]) -> CoreResult<(Tensor, Tensor)> {
        let idx = Tensor::from_slice(idx, idx.len(), &Device::Cpu)?;
        Ok((self.x.index_select(&idx, 0)?, self.y.index_select(&idx, 0)?))
    }
}
