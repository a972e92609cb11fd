//! The stacked MLPs' loss and parameter gradients by a hand-written backward pass (CPU fast path
//! of zoo training; the reference is candle's autograd through `BatchedMlp::forward` and
//! `stacked_cross_entropy`, held to it in the tests below).
//!
//! Per model k (rounding the only difference from autograd):
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
//! multiplication, and log-softmax's six operations; and candle splits each product and pass
//! across its thread pool, waiting at a barrier after each, which on two cores cost more than the
//! second core gave (docs/performance.md). Here each model's whole step runs on one thread with
//! single-threaded GEMMs (`cpu_gemm`), the models side by side on rayon; the bias add and ReLU
//! are one in-place pass, ReLU's backward is one, and softmax cross-entropy one loop. Models still
//! never interact, so a model's numbers do not depend on K or the thread count.

use candle_core::{CpuStorage, DType, Storage, Tensor};
use rayon::prelude::*;

use super::batched_mlp::BatchedMlp;
use crate::cpu_gemm::{Mat, matmul};
use crate::cpu_slices::slice;
use crate::error::{CoreError, CoreResult};

/// The summed cross-entropy of the rows of logits `z` (rows x c), and in place `scale` times
/// each row's gradient of its own loss, softmax(z) - onehot(y).
pub(super) fn cross_entropy_grad(z: &mut [f32], labels: &[u32], c: usize, scale: f32) -> CoreResult<f32> {
    let mut sum = 0f32;
    cross_entropy_rows(z, labels, c, |_, loss| {
        sum += loss;
        scale
    })?;
    Ok(sum)
}

/// Row i's cross-entropy on logits `z` (rows x c) is passed to `weight(i, loss)`, and row i of
/// `z` becomes the returned weight times softmax(z_i) - onehot(y_i).
pub(super) fn cross_entropy_rows(
    z: &mut [f32],
    labels: &[u32],
    c: usize,
    mut weight: impl FnMut(usize, f32) -> f32,
) -> CoreResult<()> {
    for (i, (row, &label)) in z.chunks_exact_mut(c).zip(labels).enumerate() {
        let label = label as usize;
        if label >= c {
            return Err(CoreError::Invalid(format!("label {label} outside {c} classes")));
        }
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let denom: f32 = row.iter().map(|v| (v - max).exp()).sum();
        let log_denom = denom.ln();
        let scale = weight(i, -(row[label] - max - log_denom));
        for g in row.iter_mut() {
            *g = (*g - max - log_denom).exp() * scale;
        }
        row[label] -= scale;
    }
    Ok(())
}

/// One layer's (dW, db) of one model.
pub(super) type LayerGrad = (Vec<f32>, Vec<f32>);

/// One model's forward pass over `b` rows of inputs `x` (b x dims[0]): the standardised input,
/// every hidden activation after ReLU, and last the logits (b x classes).
pub(super) fn forward_rows(
    x: &[f32],
    b: usize,
    layers: &[(&[f32], &[f32])],
    dims: &[usize],
    (mean, inv_std): (f32, f32),
) -> CoreResult<Vec<Vec<f32>>> {
    let last = layers.len().saturating_sub(1);
    // The same roundings as broadcast_sub then broadcast_mul.
    let mut h: Vec<Vec<f32>> = vec![x.iter().map(|&v| (v - mean) * inv_std).collect()];
    for (l, &(w, bias)) in layers.iter().enumerate() {
        let (din, dout) = (dims[l], dims[l + 1]);
        let mut a = vec![0f32; b * dout];
        let prev = h
            .last()
            .ok_or_else(|| CoreError::Invalid("an MLP without layers".into()))?;
        matmul(
            &mut a,
            Mat::row_major(b, dout),
            false,
            prev,
            Mat::row_major(b, din),
            w,
            Mat::row_major(din, dout),
        )?;
        for row in a.chunks_exact_mut(dout) {
            for (v, &bv) in row.iter_mut().zip(bias) {
                let s = *v + bv;
                *v = if l < last { s.max(0.0) } else { s };
            }
        }
        h.push(a);
    }
    Ok(h)
}

/// Every layer's output gradient (first layer first) and, when asked for, the input's.
pub(super) type Backprop = (Vec<Vec<f32>>, Option<Vec<f32>>);

/// The gradient at every layer's output (before ReLU), first layer first, of the loss whose
/// gradient at the logits is `dz` (b x classes), through one model's `layers` with activations
/// `h` (from [`forward_rows`], logits removed); with `to_input`, also the gradient at the
/// standardised input h_0 (b x dims[0]).
pub(super) fn backprop(
    h: &[Vec<f32>],
    dz: Vec<f32>,
    b: usize,
    layers: &[(&[f32], &[f32])],
    dims: &[usize],
    to_input: bool,
) -> CoreResult<Backprop> {
    let mut deltas: Vec<Vec<f32>> = Vec::with_capacity(layers.len());
    let mut da = dz;
    for l in (0..layers.len()).rev() {
        if l == 0 && !to_input {
            deltas.push(std::mem::take(&mut da));
            break;
        }
        let (din, dout) = (dims[l], dims[l + 1]);
        let mut d = vec![0f32; b * din];
        matmul(
            &mut d,
            Mat::row_major(b, din),
            false,
            &da,
            Mat::row_major(b, dout),
            layers[l].0,
            Mat::row_major(din, dout).t(),
        )?;
        if l > 0 {
            for (g, &hv) in d.iter_mut().zip(&h[l]) {
                // A select, not a branch, so the loop vectorises.
                *g = if hv > 0.0 { *g } else { 0.0 };
            }
        }
        deltas.push(std::mem::replace(&mut da, d));
    }
    deltas.reverse();
    Ok((deltas, to_input.then_some(da)))
}

/// (dW_l, db_l) = (h_l^T D_l, column sums of D_l) for every layer, from the layer inputs `h` and
/// output gradients `deltas` of `b` rows.
pub(super) fn weight_grads(
    h: &[Vec<f32>],
    deltas: &[Vec<f32>],
    b: usize,
    dims: &[usize],
) -> CoreResult<Vec<LayerGrad>> {
    let mut grads = Vec::with_capacity(deltas.len());
    for (l, d) in deltas.iter().enumerate() {
        let (din, dout) = (dims[l], dims[l + 1]);
        let mut dw = vec![0f32; din * dout];
        matmul(
            &mut dw,
            Mat::row_major(din, dout),
            false,
            &h[l],
            Mat::row_major(b, din).t(),
            d,
            Mat::row_major(b, dout),
        )?;
        let mut db = vec![0f32; dout];
        for row in d.chunks_exact(dout) {
            for (s, &v) in db.iter_mut().zip(row) {
                *s += v;
            }
        }
        grads.push((dw, db));
    }
    Ok(grads)
}

/// One model's gradient of Σ_i w_i ℓ_i over its rows `x` (b x dims[0]) with labels, where
/// w_i = `weight(i, ℓ_i)`; returns Σ_i ℓ_i and (dW, db) per layer.
pub(super) fn weighted_step(
    x: &[f32],
    labels: &[u32],
    weight: impl FnMut(usize, f32) -> f32,
    layers: &[(&[f32], &[f32])],
    dims: &[usize],
    scaling: (f32, f32),
) -> CoreResult<(Vec<f32>, Vec<LayerGrad>)> {
    let b = labels.len();
    let mut h = forward_rows(x, b, layers, dims, scaling)?;
    let mut dz = h
        .pop()
        .ok_or_else(|| CoreError::Invalid("an MLP without layers".into()))?;
    let mut losses = vec![0f32; b];
    let mut weight = weight;
    cross_entropy_rows(&mut dz, labels, dims[layers.len()], |i, loss| {
        losses[i] = loss;
        weight(i, loss)
    })?;
    let (deltas, _) = backprop(&h, dz, b, layers, dims, false)?;
    Ok((losses, weight_grads(&h, &deltas, b, dims)?))
}

/// One model's step: its inputs `x` (b x dims[0]), labels, and (weight in x out, bias out) per
/// layer; returns its mean loss and (dW, db) per layer.
fn model_step(
    x: &[f32],
    labels: &[u32],
    layers: &[(&[f32], &[f32])],
    dims: &[usize],
    scaling: (f32, f32),
) -> CoreResult<(f32, Vec<LayerGrad>)> {
    let b = labels.len();
    let (losses, grads) = weighted_step(x, labels, |_, _| 1.0 / b as f32, layers, dims, scaling)?;
    Ok((losses.iter().sum::<f32>() / b as f32, grads))
}

/// The f32 values of a contiguous CPU tensor, read under its storage's lock.
pub(super) fn read_f32(t: &Tensor, what: &str) -> CoreResult<Vec<f32>> {
    t.flatten_all()?
        .to_vec1::<f32>()
        .map_err(|e| CoreError::Invalid(format!("{what}: {e}")))
}

/// Every model's (dW, db) per layer stacked into tensors in the order of [`BatchedMlp::vars`]:
/// (K, in, out) weights and (K, 1, out) biases.
pub(super) fn stack_grads<'a>(
    dims: &[usize],
    per_model: impl ExactSizeIterator<Item = &'a [LayerGrad]> + Clone,
    dev: &candle_core::Device,
) -> CoreResult<Vec<Tensor>> {
    let k = per_model.len();
    let mut grads = Vec::with_capacity(2 * dims.len());
    for (l, d) in dims.windows(2).enumerate() {
        let (mut dw, mut db) = (Vec::with_capacity(k * d[0] * d[1]), Vec::with_capacity(k * d[1]));
        for g in per_model.clone() {
            dw.extend_from_slice(&g[l].0);
            db.extend_from_slice(&g[l].1);
        }
        grads.push(Tensor::from_vec(dw, (k, d[0], d[1]), dev)?);
        grads.push(Tensor::from_vec(db, (k, 1, d[1]), dev)?);
    }
    Ok(grads)
}

impl BatchedMlp {
    /// Whether [`BatchedMlp::loss_and_grads`] applies to inputs `xs`: f32 on the CPU.
    pub fn hand_backward_applies(&self, xs: &Tensor) -> bool {
        xs.device().is_cpu()
            && xs.dtype() == DType::F32
            && self.layer_vars().all(|(w, _)| w.dtype() == DType::F32)
    }

    /// Runs `step(m, layers, dims, scaling)` for every model m of the `k` stacked ones, side by
    /// side on rayon, with model m's (weight in x out, bias out) per layer borrowed from the
    /// parameters' storage; returns the widths (input `d0` first) and each model's result.
    pub(super) fn per_model<R: Send>(
        &self,
        k: usize,
        d0: usize,
        step: impl Fn(usize, &[(&[f32], &[f32])], &[usize], (f32, f32)) -> CoreResult<R> + Sync,
    ) -> CoreResult<(Vec<usize>, Vec<R>)> {
        let layers: Vec<(&Tensor, &Tensor)> = self.layer_vars().collect();
        let mut dims = vec![d0];
        for (w, _) in &layers {
            let (wk, din, dout) = w.dims3()?;
            if wk != k || din != *dims.last().unwrap_or(&0) {
                return Err(CoreError::Invalid(format!(
                    "zoo step: weight {:?} after width {din} for {k} models",
                    w.shape()
                )));
            }
            dims.push(dout);
        }
        let scaling = self.scaling()?;
        // Borrow every parameter's storage (read locks) for the step.
        let guards: Vec<_> = layers
            .iter()
            .flat_map(|(w, bias)| [w.storage_and_layout(), bias.storage_and_layout()])
            .collect();
        let params = guards
            .iter()
            .map(|(s, l)| match &**s {
                Storage::Cpu(CpuStorage::F32(v)) => Ok(slice(v, l, "zoo step")?),
                _ => Err(CoreError::Invalid("zoo step: f32 CPU parameters expected".into())),
            })
            .collect::<CoreResult<Vec<&[f32]>>>()?;
        let results = (0..k)
            .into_par_iter()
            .map(|m| {
                let per_model: Vec<(&[f32], &[f32])> = params
                    .chunks_exact(2)
                    .zip(dims.windows(2))
                    .map(|(p, d)| {
                        (
                            &p[0][m * d[0] * d[1]..(m + 1) * d[0] * d[1]],
                            &p[1][m * d[1]..(m + 1) * d[1]],
                        )
                    })
                    .collect();
                step(m, &per_model, &dims, scaling)
            })
            .collect::<CoreResult<Vec<_>>>()?;
        drop(params);
        drop(guards);
        Ok((dims, results))
    }

    /// The loss `stacked_cross_entropy(forward(xs), labels)` and the gradient of every parameter,
    /// in the order of [`BatchedMlp::vars`], for inputs `xs` (K, B, in) in [0, 1].
    pub fn loss_and_grads(&self, xs: &Tensor, labels: &Tensor) -> CoreResult<(f32, Vec<Tensor>)> {
        let (k, b, d0) = xs.dims3()?;
        let x = read_f32(xs, "zoo inputs")?;
        let y = labels.flatten_all()?.to_vec1::<u32>()?;
        if y.len() != k * b {
            return Err(CoreError::Invalid(format!(
                "zoo step: {} labels for {k} x {b} inputs",
                y.len()
            )));
        }
        let (dims, results) = self.per_model(k, d0, |m, per_model, dims, scaling| {
            model_step(
                &x[m * b * d0..(m + 1) * b * d0],
                &y[m * b..(m + 1) * b],
                per_model,
                dims,
                scaling,
            )
        })?;
        let loss = results.iter().map(|(l, _)| *l).sum::<f32>();
        let grads = stack_grads(&dims, results.iter().map(|(_, g)| g.as_slice()), xs.device())?;
        Ok((loss, grads))
    }
}

#[cfg(test)]
#[path = "batched_mlp_grad_tests.rs"]
mod tests;
