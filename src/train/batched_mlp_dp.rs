//! DP-SGD's per-sample clipped gradient sum for the stacked MLPs (`defence::dp_sgd` has the
//! algorithm; the reference is a loop of one autograd backward pass per row, held to it in the
//! tests below).
//!
//! Row i's gradient at layer l is `h_{l,i} ⊗ d_{l,i}` (weight) and `d_{l,i}` (bias), where h is
//! the layer's input and d the gradient of row i's own loss at the layer's output. Backpropagating
//! a row is independent of the other rows, so one batched backward pass with unscaled
//! `softmax - onehot` rows gives every d_{l,i}; then
//!
//! ```text
//! ||g_i||^2 = sum_l ||d_{l,i}||^2 (||h_{l,i}||^2 + 1)
//! c_i       = min(1, C / (||g_i|| + 1e-6))
//! sum_i c_i g_i  at layer l:  dW_l = H_l^T diag(c) D_l,  db_l = sum_i c_i d_{l,i}
//! ```
//!
//! — the same products as a plain step plus one pass over D_l per layer, never a per-row
//! gradient in memory.

use super::batched_mlp::BatchedMlp;
use super::batched_mlp_grad::{LayerGrad, backprop, cross_entropy_grad, forward_rows, weight_grads};
use crate::error::{CoreError, CoreResult};

/// One model's clipped per-sample gradients, summed over its Poisson batch.
#[derive(Debug)]
pub struct ClippedSum {
    /// (dW, db) per layer: `sum_i c_i g_i`, before noise and scaling.
    pub grads: Vec<LayerGrad>,
    /// Sum of the batch rows' losses.
    pub loss_sum: f32,
    /// Rows in the batch.
    pub rows: usize,
    /// Rows whose gradient norm exceeded the clipping norm.
    pub clipped: usize,
}

/// Row i's gradient norm and the clipped sum for one model: inputs `x` (b x dims[0]).
fn clipped_sum(
    x: &[f32],
    labels: &[u32],
    layers: &[(&[f32], &[f32])],
    dims: &[usize],
    scaling: (f32, f32),
    clip: f32,
) -> CoreResult<ClippedSum> {
    let b = labels.len();
    let n_layers = layers.len();
    if b == 0 {
        let grads = dims
            .windows(2)
            .map(|d| (vec![0f32; d[0] * d[1]], vec![0f32; d[1]]))
            .collect();
        return Ok(ClippedSum {
            grads,
            loss_sum: 0.0,
            rows: 0,
            clipped: 0,
        });
    }
    let mut h = forward_rows(x, b, layers, dims, scaling)?;
    let mut da = h
        .pop()
        .ok_or_else(|| CoreError::Invalid("an MLP without layers".into()))?;
    let loss_sum = cross_entropy_grad(&mut da, labels, dims[n_layers], 1.0)?;
    let (mut deltas, _) = backprop(&h, da, b, layers, dims, false)?;
    let mut sq = vec![0f64; b];
    for (l, d) in deltas.iter().enumerate() {
        let (din, dout) = (dims[l], dims[l + 1]);
        for (i, s) in sq.iter_mut().enumerate() {
            let dn: f64 = d[i * dout..(i + 1) * dout]
                .iter()
                .map(|&v| f64::from(v * v))
                .sum();
            let hn: f64 = h[l][i * din..(i + 1) * din]
                .iter()
                .map(|&v| f64::from(v * v))
                .sum();
            *s += dn * (hn + 1.0);
        }
    }
    let factors: Vec<f32> = sq
        .iter()
        .map(|&s| (f64::from(clip) / (s.sqrt() + 1e-6)).min(1.0) as f32)
        .collect();
    let clipped = factors.iter().filter(|&&c| c < 1.0).count();
    for d in &mut deltas {
        let dout = d.len() / b;
        for (row, &c) in d.chunks_exact_mut(dout).zip(&factors) {
            row.iter_mut().for_each(|v| *v *= c);
        }
    }
    let grads = weight_grads(&h, &deltas, b, dims)?;
    Ok(ClippedSum {
        grads,
        loss_sum,
        rows: b,
        clipped,
    })
}

impl BatchedMlp {
    /// Every model's clipped per-sample gradient sum over its own batch: model m's rows
    /// `batches[m]` of the data set `x` (n x d0, in [0, 1]) with `labels`. CPU, f32.
    pub fn dp_clipped_sums(
        &self,
        x: &[f32],
        d0: usize,
        labels: &[u32],
        batches: &[Vec<usize>],
        clip: f32,
    ) -> CoreResult<(Vec<usize>, Vec<ClippedSum>)> {
        let n = labels.len();
        if x.len() != n * d0 {
            return Err(CoreError::Invalid(format!(
                "DP step: {} values for {n} rows of {d0}",
                x.len()
            )));
        }
        self.per_model(batches.len(), d0, |m, layers, dims, scaling| {
            let rows = &batches[m];
            let mut xb = Vec::with_capacity(rows.len() * d0);
            let mut yb = Vec::with_capacity(rows.len());
            for &r in rows {
                let (Some(px), Some(&y)) = (x.get(r * d0..(r + 1) * d0), labels.get(r)) else {
                    return Err(CoreError::Invalid(format!("DP step: row {r} of {n}")));
                };
                xb.extend_from_slice(px);
                yb.push(y);
            }
            clipped_sum(&xb, &yb, layers, dims, scaling, clip)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests unwrap freely")]
    use candle_core::{Device, Tensor};

    use super::*;
    use crate::train::batched_mlp::{MlpInit, stacked_cross_entropy};

    /// The batched clipped sum equals the per-sample loop it stands in for: for each row alone,
    /// autograd's gradient of its loss, clipped to norm C over all parameters, summed.
    #[test]
    fn clipped_sum_equals_a_per_sample_autograd_loop() {
        let (k, dims) = (2, [10usize, 7, 5, 3]);
        let net = BatchedMlp::new(&[4, 9], &dims, MlpInit::Uniform, (0.3, 0.4), &Device::Cpu).unwrap();
        let n = 12;
        let x: Vec<f32> = (0..n * dims[0]).map(|i| ((i * 29 % 19) as f32) / 18.0).collect();
        let labels: Vec<u32> = (0..n).map(|i| (i * 7 % 3) as u32).collect();
        let batches = vec![vec![0, 3, 4, 7, 11], vec![1, 2, 5, 6, 8, 9, 10]];
        // A clip between the rows' norms, so some rows are clipped and some are not.
        let clip = 0.8;
        let (_, sums) = net.dp_clipped_sums(&x, dims[0], &labels, &batches, clip).unwrap();
        let vars = net.vars();
        let mut any_clipped = 0;
        let mut any_unclipped = 0;
        for (m, batch) in batches.iter().enumerate() {
            let mut want: Vec<Vec<f32>> = vars
                .iter()
                .map(|v| vec![0f32; v.as_tensor().elem_count() / k])
                .collect();
            for &r in batch {
                // Row r fed to every model (one row each); only model m's gradient is kept.
                let row = Tensor::from_vec(
                    x[r * dims[0]..(r + 1) * dims[0]].to_vec(),
                    (1, 1, dims[0]),
                    &Device::Cpu,
                )
                .unwrap()
                .broadcast_as((k, 1, dims[0]))
                .unwrap()
                .contiguous()
                .unwrap();
                let y = Tensor::from_vec(vec![labels[r]; k], (k, 1), &Device::Cpu).unwrap();
                let loss = stacked_cross_entropy(&net.forward(&row).unwrap(), &y).unwrap();
                let store = loss.backward().unwrap();
                let g: Vec<Vec<f32>> = vars
                    .iter()
                    .map(|v| {
                        store
                            .get(v.as_tensor())
                            .unwrap()
                            .get(m)
                            .unwrap()
                            .flatten_all()
                            .unwrap()
                            .to_vec1::<f32>()
                            .unwrap()
                    })
                    .collect();
                let norm = g.iter().flatten().map(|&v| f64::from(v * v)).sum::<f64>().sqrt();
                let c = (f64::from(clip) / (norm + 1e-6)).min(1.0) as f32;
                if c < 1.0 {
                    any_clipped += 1;
                } else {
                    any_unclipped += 1;
                }
                for (w, gv) in want.iter_mut().zip(&g) {
                    for (a, &b) in w.iter_mut().zip(gv) {
                        *a += c * b;
                    }
                }
            }
            let got: Vec<&Vec<f32>> = sums[m].grads.iter().flat_map(|(w, b)| [w, b]).collect();
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                let scale = w.iter().fold(0f32, |a, v| a.max(v.abs())).max(1e-12);
                let diff = g.iter().zip(w).fold(0f32, |a, (p, q)| a.max((p - q).abs()));
                assert!(diff <= 1e-5 * scale, "model {m} param {i}: {diff} of {scale}");
            }
            assert_eq!(sums[m].rows, batch.len());
        }
        assert_eq!(any_clipped, sums.iter().map(|s| s.clipped).sum::<usize>());
        assert!(
            any_clipped > 0 && any_unclipped > 0,
            "{any_clipped} {any_unclipped}"
        );
    }
}
