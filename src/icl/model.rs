//! The one-layer attention model of Nguyen & Reddy (arXiv:2412.00104, spec 12 §3; the second
//! `CausalTransformer` of the reference `attention.py`): LayerNorm over the token, one single-head
//! causal self-attention (Q, K, V without bias, scale 1, no positional encoding) and a readout MLP
//! on x_N + sa_N at the last position only.
//!
//! Only the last position is read, so only the query's attention row is computed. With
//! q = W_q h_N the scores are q·(W_k h_j) = (W_kᵀ q)·h_j and the output is W_v Σ_j a_j h_j; the
//! model computes exactly that (the same parameters and the same function as the full
//! attention, in O(B·N·E + B·E²) instead of O(B·N·E²)). As with `is_causal=True` in the
//! reference, the query attends to every position including itself.

use candle_core::{D, DType, Device, Tensor, Var};
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

use crate::error::CoreResult;

/// LayerNorm's ε (PyTorch's default).
const LN_EPS: f64 = 1e-5;

/// Largest elementwise tensor candle-core 0.11 computes on the calling thread (its
/// `PAR_ELEMWISE_MIN` is 64 Ki elements).
const SERIAL_ELEMENTS: usize = 64 * 1024 - 1;

/// Sizes of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IclModelShape {
    /// Token dimension E = D + L.
    pub token_dim: usize,
    /// Hidden width of the readout MLP (the paper's 512).
    pub width: usize,
    /// Labels L (logits out).
    pub labels: usize,
}

/// The attention-plus-MLP model (parameters are candle `Var`s, trained in place).
#[derive(Clone, Debug)]
pub struct IclModel {
    ln_w: Var,
    ln_b: Var,
    /// Query, key and value maps, E x E each (PyTorch's `out x in` layout).
    wq: Var,
    wk: Var,
    wv: Var,
    w1: Var,
    b1: Var,
    w2: Var,
    b2: Var,
    w3: Var,
    b3: Var,
}

/// PyTorch's default `nn.Linear` initialisation: weight and bias uniform in ±1/√fan_in.
fn uniform(rng: &mut ChaCha8Rng, shape: (usize, usize), fan_in: usize) -> CoreResult<Var> {
    let bound = 1.0 / (fan_in as f32).sqrt();
    let values: Vec<f32> = (0..shape.0 * shape.1)
        .map(|_| rng.random_range(-bound..bound))
        .collect();
    let t = Tensor::from_vec(values, shape, &Device::Cpu)?;
    Ok(Var::from_tensor(&t)?)
}

fn bias(rng: &mut ChaCha8Rng, len: usize, fan_in: usize) -> CoreResult<Var> {
    let v = uniform(rng, (1, len), fan_in)?;
    Ok(Var::from_tensor(&v.as_tensor().flatten_all()?)?)
}

impl IclModel {
    /// A freshly initialised model (PyTorch's default initialisation) from `init_seed`.
    pub fn new(shape: IclModelShape, init_seed: u64) -> CoreResult<Self> {
        let IclModelShape {
            token_dim: e,
            width: w,
            labels,
        } = shape;
        let mut rng = ChaCha8Rng::seed_from_u64(init_seed);
        Ok(Self {
            ln_w: Var::from_tensor(&Tensor::ones(e, DType::F32, &Device::Cpu)?)?,
            ln_b: Var::from_tensor(&Tensor::zeros(e, DType::F32, &Device::Cpu)?)?,
            wq: uniform(&mut rng, (e, e), e)?,
            wk: uniform(&mut rng, (e, e), e)?,
            wv: uniform(&mut rng, (e, e), e)?,
            w1: uniform(&mut rng, (w, e), e)?,
            b1: bias(&mut rng, w, e)?,
            w2: uniform(&mut rng, (w, w), w)?,
            b2: bias(&mut rng, w, w)?,
            w3: uniform(&mut rng, (labels, w), w)?,
            b3: bias(&mut rng, labels, w)?,
        })
    }

    /// Every trainable parameter.
    pub fn vars(&self) -> Vec<Var> {
        vec![
            self.ln_w.clone(),
            self.ln_b.clone(),
            self.wq.clone(),
            self.wk.clone(),
            self.wv.clone(),
            self.w1.clone(),
            self.b1.clone(),
            self.w2.clone(),
            self.b2.clone(),
            self.w3.clone(),
            self.b3.clone(),
        ]
    }

    /// Number of parameters.
    pub fn parameter_count(&self) -> usize {
        self.vars().iter().map(|v| v.elem_count()).sum()
    }

    /// Logits B x L of the query (last position) from tokens B x (N + 1) x E.
    ///
    /// The batch goes through in slices small enough that no elementwise tensor reaches candle's
    /// threshold for splitting across its barrier thread pool (64 Ki elements in candle-core
    /// 0.11): that pool is shared by all runs of a sweep and serialised them, while one thread is
    /// quicker for these sizes (measured in `docs/performance.md`).
    pub fn forward(&self, tokens: &Tensor) -> CoreResult<Tensor> {
        let (batch, positions, token_dim) = tokens.dims3()?;
        let widest = (positions * token_dim).max(self.w2.dim(0)?).max(1);
        let slice = (SERIAL_ELEMENTS / widest).max(1);
        if batch <= slice {
            return self.forward_slice(tokens);
        }
        let mut parts = Vec::with_capacity(batch.div_ceil(slice));
        for start in (0..batch).step_by(slice) {
            let len = slice.min(batch - start);
            parts.push(self.forward_slice(&tokens.narrow(0, start, len)?)?);
        }
        Ok(Tensor::cat(&parts, 0)?)
    }

    fn forward_slice(&self, tokens: &Tensor) -> CoreResult<Tensor> {
        let (_, positions, _) = tokens.dims3()?;
        // LayerNorm over the token dimension.
        let mean = tokens.mean_keepdim(D::Minus1)?;
        let centred = tokens.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let h = centred
            .broadcast_div(&(var + LN_EPS)?.sqrt()?)?
            .broadcast_mul(self.ln_w.as_tensor())?
            .broadcast_add(self.ln_b.as_tensor())?;
        let h_query = h.narrow(1, positions - 1, 1)?.squeeze(1)?;
        self.readout(&h, &h_query, true)
    }

    /// The query's attention output plus its own embedding through the MLP; `attention` false
    /// zeroes the attention output (the pure in-weights path).
    fn readout(&self, h: &Tensor, h_query: &Tensor, attention: bool) -> CoreResult<Tensor> {
        let mut z = h_query.clone();
        if attention {
            let q = h_query.matmul(&self.wq.as_tensor().t()?)?;
            // u = W_kᵀ q, as a row: q W_k.
            let u = q.matmul(self.wk.as_tensor())?;
            // Scale 1.0: no 1/√d (spec 12 §3, §6).
            let scores = h.matmul(&u.unsqueeze(2)?)?.squeeze(2)?;
            let weights = candle_nn::ops::softmax(&scores, D::Minus1)?;
            let mixed = weights.unsqueeze(1)?.matmul(h)?.squeeze(1)?;
            let sa = mixed.matmul(&self.wv.as_tensor().t()?)?;
            z = (z + sa)?;
        }
        let a1 = z
            .matmul(&self.w1.as_tensor().t()?)?
            .broadcast_add(self.b1.as_tensor())?
            .relu()?;
        let a2 = a1
            .matmul(&self.w2.as_tensor().t()?)?
            .broadcast_add(self.b2.as_tensor())?
            .relu()?;
        Ok(a2
            .matmul(&self.w3.as_tensor().t()?)?
            .broadcast_add(self.b3.as_tensor())?)
    }
}

/// Fraction of rows whose largest logit is the target's.
pub fn accuracy(logits: &Tensor, targets: &[u32]) -> CoreResult<f64> {
    let predicted: Vec<u32> = logits.argmax(D::Minus1)?.to_vec1()?;
    let right = predicted.iter().zip(targets).filter(|(p, t)| p == t).count();
    Ok(right as f64 / targets.len().max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The factorised query row equals full causal attention's last row computed the plain way.
    #[test]
    fn factorised_attention_equals_full_attention() {
        let shape = IclModelShape {
            token_dim: 6,
            width: 5,
            labels: 3,
        };
        let m = IclModel::new(shape, 7).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let values: Vec<f32> = (0..2 * 4 * 6).map(|_| rng.random_range(-1.0..1.0)).collect();
        let x = Tensor::from_vec(values, (2, 4, 6), &Device::Cpu).unwrap();
        let fast = m.forward(&x).unwrap().to_vec2::<f32>().unwrap();
        // Plain: LayerNorm, then Q K V for every position, scores of the last row.
        let xs: Vec<Vec<Vec<f32>>> = x.to_vec3().unwrap();
        let wq: Vec<Vec<f32>> = m.wq.as_tensor().to_vec2().unwrap();
        let wk: Vec<Vec<f32>> = m.wk.as_tensor().to_vec2().unwrap();
        let wv: Vec<Vec<f32>> = m.wv.as_tensor().to_vec2().unwrap();
        let mv = |w: &Vec<Vec<f32>>, v: &[f32]| -> Vec<f32> {
            w.iter()
                .map(|r| r.iter().zip(v).map(|(a, b)| a * b).sum())
                .collect()
        };
        for (b, seq) in xs.iter().enumerate() {
            let h: Vec<Vec<f32>> = seq
                .iter()
                .map(|t| {
                    let mu = t.iter().sum::<f32>() / 6.0;
                    let var = t.iter().map(|v| (v - mu).powi(2)).sum::<f32>() / 6.0;
                    t.iter().map(|v| (v - mu) / (var + 1e-5).sqrt()).collect()
                })
                .collect();
            let q = mv(&wq, &h[3]);
            let scores: Vec<f32> = h
                .iter()
                .map(|hj| mv(&wk, hj).iter().zip(&q).map(|(a, b)| a * b).sum())
                .collect();
            let mx = scores.iter().cloned().fold(f32::MIN, f32::max);
            let ex: Vec<f32> = scores.iter().map(|s| (s - mx).exp()).collect();
            let z: f32 = ex.iter().sum();
            let mut sa = vec![0.0f32; 6];
            for (j, hj) in h.iter().enumerate() {
                for (s, v) in sa.iter_mut().zip(mv(&wv, hj)) {
                    *s += ex[j] / z * v;
                }
            }
            let input: Vec<f32> = h[3].iter().zip(&sa).map(|(a, b)| a + b).collect();
            let t = Tensor::from_vec(input, (1, 6), &Device::Cpu).unwrap();
            let plain = m.readout(&t, &t, false).unwrap().to_vec2::<f32>().unwrap();
            for (a, b) in plain[0].iter().zip(&fast[b]) {
                assert!((a - b).abs() < 1e-4, "{a} vs {b}");
            }
        }
        assert_eq!(
            m.parameter_count(),
            2 * 6 + 3 * 36 + 5 * 6 + 5 + 25 + 5 + 3 * 5 + 3
        );
    }
}
