//! The stacked MLPs' loss and parameter gradients by a hand-written backward pass (CPU fast path
//! of zoo training; the reference is candle's autograd through `BatchedMlp::forward` and
//! `stacked_cross_entropy`, held to it in the tests below).
//!
//! Per model k (all K at once, every product a batched matmul, rounding the only difference):
//!
//! ```text
//! h_0 = (x - mean) / std;  h_l = relu(h_{l-1} W_l + b_l);  z = h_{L-1} W_L + b_L
//! loss = sum_k mean_b -ln softmax(z_kb)[y_kb]
//! dz = (softmax(z) - onehot(y)) / B
//! dW_l = h_{l-1}^T da_l;  db_l = sum_b da_l;  da_{l-1} = (da_l W_l^T) * [h_{l-1} > 0]
//! ```
//!
//! Autograd builds the same products plus, for every gradient, a zero-filled buffer it adds into,
//! the broadcast bias add and its reduction as separate passes, ReLU's mask as a comparison and a
//! multiplication, and log-softmax's six operations: about a fifth of a zoo step on the CPU. Here
//! the bias add and ReLU are one in-place pass, ReLU's backward is one in-place pass, and
//! softmax cross-entropy is computed on the (K, B, classes) logits in one loop.

use candle_core::{CpuStorage, DType, InplaceOp2, Layout, Tensor};

use super::batched_mlp::BatchedMlp;
use crate::cpu_slices::{f32s, f32s_mut};
use crate::error::{CoreError, CoreResult};

/// a <- a + bias (broadcast over the batch), then ReLU when `relu`; in place on a (K, B, out)
/// with bias (K, 1, out). The same roundings as `broadcast_add` then `relu`.
struct BiasRelu {
    relu: bool,
}

/// d <- d where h > 0, else 0; in place on d, h of the same shape (ReLU's backward).
struct ReluMask;

impl InplaceOp2 for BiasRelu {
    fn name(&self) -> &'static str {
        "zoo-bias-relu"
    }

    fn cpu_fwd(
        &self,
        a: &mut CpuStorage,
        la: &Layout,
        b: &CpuStorage,
        lb: &Layout,
    ) -> candle_core::Result<()> {
        let name = self.name();
        let (k, _, out) = la.shape().dims3()?;
        if lb.shape().dims() != [k, 1, out] {
            candle_core::bail!(
                "{name}: bias shape {:?} for activations {:?}",
                lb.shape(),
                la.shape()
            );
        }
        let (a, b) = (f32s_mut(a, la, name)?, f32s(b, lb, name)?);
        let per_model = a.len() / k.max(1);
        for (am, bm) in a.chunks_exact_mut(per_model).zip(b.chunks_exact(out)) {
            for row in am.chunks_exact_mut(out) {
                for (v, &bv) in row.iter_mut().zip(bm) {
                    let s = *v + bv;
                    *v = if self.relu { s.max(0.0) } else { s };
                }
            }
        }
        Ok(())
    }
}

impl InplaceOp2 for ReluMask {
    fn name(&self) -> &'static str {
        "zoo-relu-backward"
    }

    fn cpu_fwd(
        &self,
        d: &mut CpuStorage,
        ld: &Layout,
        h: &CpuStorage,
        lh: &Layout,
    ) -> candle_core::Result<()> {
        let name = self.name();
        if ld.shape() != lh.shape() {
            candle_core::bail!("{name}: shapes differ");
        }
        for (g, &hv) in f32s_mut(d, ld, name)?.iter_mut().zip(f32s(h, lh, name)?) {
            // A select, not a branch, so the loop vectorises.
            *g = if hv > 0.0 { *g } else { 0.0 };
        }
        Ok(())
    }
}

/// Sum over models of each model's mean cross-entropy and its gradient with respect to the
/// logits, for `logits` (K, B, C) and `labels` (K, B) u32.
fn cross_entropy_and_grad(logits: &Tensor, labels: &Tensor) -> CoreResult<(f32, Tensor)> {
    let (k, b, c) = logits.dims3()?;
    let z = logits.flatten_all()?.to_vec1::<f32>()?;
    let y = labels.flatten_all()?.to_vec1::<u32>()?;
    let mut dz = vec![0f32; z.len()];
    let mut total = 0f32;
    for m in 0..k {
        let mut sum = 0f32;
        for i in 0..b {
            let row = &z[(m * b + i) * c..(m * b + i + 1) * c];
            let label = y[m * b + i] as usize;
            if label >= c {
                return Err(CoreError::Invalid(format!("label {label} outside {c} classes")));
            }
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let denom: f32 = row.iter().map(|v| (v - max).exp()).sum();
            let log_denom = denom.ln();
            sum += -(row[label] - max - log_denom);
            let grad = &mut dz[(m * b + i) * c..(m * b + i + 1) * c];
            for (g, v) in grad.iter_mut().zip(row) {
                *g = (v - max - log_denom).exp() / b as f32;
            }
            grad[label] -= 1.0 / b as f32;
        }
        total += sum / b as f32;
    }
    Ok((total, Tensor::from_vec(dz, (k, b, c), logits.device())?))
}

impl BatchedMlp {
    /// Whether [`BatchedMlp::loss_and_grads`] applies to inputs `xs`: f32 on the CPU.
    pub fn hand_backward_applies(&self, xs: &Tensor) -> bool {
        xs.device().is_cpu()
            && xs.dtype() == DType::F32
            && self.layer_vars().all(|(w, _)| w.dtype() == DType::F32)
    }

    /// The loss `stacked_cross_entropy(forward(xs), labels)` and the gradient of every parameter,
    /// in the order of [`BatchedMlp::vars`], for inputs `xs` (K, B, in) in [0, 1].
    pub fn loss_and_grads(&self, xs: &Tensor, labels: &Tensor) -> CoreResult<(f32, Vec<Tensor>)> {
        let layers: Vec<(&Tensor, &Tensor)> = self.layer_vars().collect();
        let last = layers.len().saturating_sub(1);
        let mut h = vec![self.normalise(xs)?];
        for (l, (w, b)) in layers.iter().enumerate() {
            let prev = h
                .last()
                .ok_or_else(|| CoreError::Invalid("an MLP without layers".into()))?;
            let a = prev.matmul(w)?;
            a.inplace_op2(b, &BiasRelu { relu: l < last })?;
            h.push(a);
        }
        let logits = h
            .pop()
            .ok_or_else(|| CoreError::Invalid("an MLP without layers".into()))?;
        let (loss, mut da) = cross_entropy_and_grad(&logits, labels)?;
        let mut grads = vec![None; 2 * layers.len()];
        for (l, (w, _)) in layers.iter().enumerate().rev() {
            let input = &h[l];
            grads[2 * l] = Some(input.transpose(1, 2)?.matmul(&da)?);
            grads[2 * l + 1] = Some(da.sum_keepdim(1)?);
            if l > 0 {
                let d = da.matmul(&w.transpose(1, 2)?)?;
                d.inplace_op2(input, &ReluMask)?;
                da = d;
            }
        }
        let grads = grads
            .into_iter()
            .map(|g| g.ok_or_else(|| CoreError::Invalid("a gradient was not computed".into())))
            .collect::<CoreResult<Vec<Tensor>>>()?;
        Ok((loss, grads))
    }
}

#[cfg(test)]
#[path = "batched_mlp_grad_tests.rs"]
mod tests;
