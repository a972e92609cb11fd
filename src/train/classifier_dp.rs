//! DP-SGD for a [`Classifier`] of any family (CNN, softmax regression, MLP), one model at a time
//! (`defence::dp_sgd` has the algorithm; zoos of these families train their models this way).
//!
//! The per-sample clipped gradient sum comes batched, from one forward and one backward pass of
//! the summed loss: backpropagating a row does not involve the other rows, so the gradient at a
//! layer's output, row i, is row i's own `d_i`. A zero probe added to every layer's output is a
//! leaf whose gradient is that `d` (candle drops the gradients of intermediate tensors). With
//! `a_i` the layer's input, row i's parameter gradients are
//!
//! ```text
//! linear:  W: d_i a_i^T   (||.||^2 = ||d_i||^2 ||a_i||^2, never materialised)   b: d_i
//! conv:    W: D_i P_i     (D_i: out x positions, P_i: positions x in·k·k, the input's patches)
//!          b: sum over positions of D_i
//! ```
//!
//! (a conv's `||D_i P_i||^2` from the Gram matrices `⟨D_i^T D_i, P_i P_i^T⟩` when it has few
//! output positions, else from the products), then `c_i = min(1, C / (||g_i|| + 1e-6))` with the
//! norm over all parameters jointly (flat clipping, as Opacus), and per parameter
//! `sum_i c_i g_i`, one matmul each (linear: `(c·D)^T A`; conv: `[c_1 D_1 ...] [P_1; ...]`).

use candle_core::{D, DType, Tensor, TensorId, Var};
use rand::SeedableRng as _;

use super::TrainConfig;
use super::run::{self, TrainOutcome};
use crate::data::Dataset;
use crate::defence::dp_sgd::{DpRecord, add_noise_and_scale, poisson_batch};
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
use crate::model::{Classifier, Layer};

/// The clipped per-sample gradients of one batch, summed.
#[derive(Debug)]
pub struct ClippedGrads {
    /// `sum_i c_i g_i` per parameter, in the order of the `vars` asked for, before noise and
    /// scaling.
    pub grads: Vec<Tensor>,
    /// Sum of the batch rows' cross-entropy losses.
    pub loss_sum: f64,
    /// Rows in the batch.
    pub rows: usize,
    /// Rows whose gradient norm exceeded the clipping norm.
    pub clipped: usize,
}

/// A layer seen in the tapped forward pass.
struct Traced {
    weight: Tensor,
    bias: Option<Tensor>,
    /// None: linear; Some((kernel, stride, padding)): a square convolution.
    conv: Option<(usize, usize, usize)>,
    /// The layer's input, detached.
    input: Tensor,
    /// Zeros added to the layer's output: their gradient is the output's.
    probe: Var,
}

/// One layer's per-sample gradients, in the form its norm and clipped sum need.
enum PerSample {
    /// Inputs A (B, in) and output gradients D (B, out).
    Linear { a: Tensor, d: Tensor },
    /// Patches P (B, positions, in·k·k), output gradients D (B, out, positions) and bias
    /// gradients (B, out).
    Conv { p: Tensor, d: Tensor, db: Tensor },
}

/// Zero gradients for `vars` (an empty batch).
pub fn zero_grads(vars: &[Var]) -> CoreResult<Vec<Tensor>> {
    Ok(vars
        .iter()
        .map(|v| v.as_tensor().zeros_like())
        .collect::<candle_core::Result<_>>()?)
}

/// The k x k patches of `x` (B, C, H, W) that a convolution with `stride` and `padding` sees:
/// (B, positions, C·k·k), column `c·k² + kh·k + kw` as the weight (out, C, k, k) flattens.
fn patches(x: &Tensor, k: usize, stride: usize, padding: usize) -> CoreResult<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (hp, wp) = (h + 2 * padding, w + 2 * padding);
    if hp < k || wp < k || stride == 0 {
        return Err(CoreError::Invalid(format!(
            "a {k}x{k} convolution with stride {stride} on {h}x{w} inputs"
        )));
    }
    let (ho, wo) = ((hp - k) / stride + 1, (wp - k) / stride + 1);
    let x = x
        .pad_with_zeros(2, padding, padding)?
        .pad_with_zeros(3, padding, padding)?;
    // Indices start, start + stride, ..., n of them, along `dim`.
    let every = |t: &Tensor, dim: usize, start: usize, n: usize| -> candle_core::Result<Tensor> {
        let t = t.narrow(dim, start, stride * (n - 1) + 1)?;
        if stride == 1 {
            return Ok(t);
        }
        let t = t.pad_with_zeros(dim, 0, stride - 1)?;
        let mut shape = t.dims().to_vec();
        shape[dim] = n;
        shape.insert(dim + 1, stride);
        t.reshape(shape)?.narrow(dim + 1, 0, 1)?.squeeze(dim + 1)
    };
    let mut cols = Vec::with_capacity(k * k);
    for kh in 0..k {
        let rows = every(&x, 2, kh, ho)?;
        for kw in 0..k {
            cols.push(every(&rows, 3, kw, wo)?);
        }
    }
    Ok(Tensor::stack(&cols, 2)?
        .reshape((b, c * k * k, ho * wo))?
        .transpose(1, 2)?
        .contiguous()?)
}

/// Row i's squared norm of `t` (B, ...) over all but the first dimension.
fn row_sq(t: &Tensor) -> candle_core::Result<Tensor> {
    t.sqr()?.flatten_from(1)?.sum(1)
}

impl Traced {
    /// The per-sample gradients of this layer, given its output gradients `d`, and every row's
    /// squared gradient norm over its parameters (B).
    fn per_sample(&self, d: &Tensor) -> CoreResult<(PerSample, Tensor)> {
        let b = d.dim(0)?;
        let bias_sq = |db: &Tensor| -> candle_core::Result<Option<Tensor>> {
            self.bias.as_ref().map(|_| row_sq(db)).transpose()
        };
        Ok(match self.conv {
            None => {
                let a = self.input.flatten_from(1)?;
                let dn = row_sq(d)?;
                let mut sq = (row_sq(&a)? * &dn)?;
                if let Some(bs) = bias_sq(d)? {
                    sq = (sq + bs)?;
                }
                (PerSample::Linear { a, d: d.clone() }, sq)
            }
            Some((k, stride, padding)) => {
                let p = patches(&self.input, k, stride, padding)?;
                let (_, out, ho, wo) = d.dims4()?;
                if p.dim(1)? != ho * wo {
                    return Err(CoreError::Invalid(format!(
                        "per-sample gradients: {} patches for a {ho}x{wo} output",
                        p.dim(1)?
                    )));
                }
                let positions = ho * wo;
                let dm = d.reshape((b, out, positions))?;
                let db = dm.sum(2)?;
                // ||D_i P_i||^2 from the per-sample products (B·out·positions·in·k·k), or from
                // the Gram matrices over positions, ⟨D_i^T D_i, P_i P_i^T⟩ (B·positions²·(out +
                // in·k·k)) when there are few positions (ghost clipping).
                let mut sq = if positions * positions <= out * p.dim(2)? {
                    let dd = dm.transpose(1, 2)?.matmul(&dm)?;
                    let pp = p.matmul(&p.transpose(1, 2)?)?;
                    (dd * pp)?.flatten_from(1)?.sum(1)?
                } else {
                    row_sq(&dm.matmul(&p)?)?
                };
                if let Some(bs) = bias_sq(&db)? {
                    sq = (sq + bs)?;
                }
                (PerSample::Conv { p, d: dm, db }, sq)
            }
        })
    }
}

/// `sum_i c_i g_i` of one layer's weight and bias for the clip factors `c` (B).
fn clipped_layer_sum(ps: &PerSample, c: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
    match ps {
        PerSample::Linear { a, d } => {
            let dc = d.broadcast_mul(&c.unsqueeze(1)?)?;
            Ok((dc.t()?.matmul(a)?, dc.sum(0)?))
        }
        PerSample::Conv { p, d, db } => {
            // sum_i c_i D_i P_i = [c_1 D_1 ... c_B D_B] [P_1; ...; P_B]: one matmul.
            let (b, out, positions) = d.dims3()?;
            let dc = d
                .broadcast_mul(&c.reshape((b, 1, 1))?)?
                .transpose(0, 1)?
                .reshape((out, b * positions))?;
            let gw = dc.matmul(&p.reshape((b * positions, p.dim(2)?))?)?;
            Ok((gw, db.broadcast_mul(&c.unsqueeze(1)?)?.sum(0)?))
        }
    }
}

/// The per-sample gradients of `model`'s summed cross-entropy on images `x` (B, C, H, W) with
/// labels `y` (B, u32), each clipped to norm `clip` over all parameters jointly, summed; one
/// tensor per parameter of `vars` (every parameter of `model`), in that order.
pub fn clipped_grad_sum(
    model: &Classifier,
    vars: &[Var],
    x: &Tensor,
    y: &Tensor,
    clip: f64,
) -> CoreResult<ClippedGrads> {
    let b = x.dim(0)?;
    if b == 0 {
        return Ok(ClippedGrads {
            grads: zero_grads(vars)?,
            loss_sum: 0.0,
            rows: 0,
            clipped: 0,
        });
    }
    let mut traced: Vec<Traced> = Vec::new();
    let logits = model.forward_tapped(x, &mut |layer, input, out| {
        let probe = Var::zeros(out.shape(), out.dtype(), out.device())?;
        let (weight, bias, conv) = match layer {
            Layer::Linear(l) => (l.weight(), l.bias(), None),
            Layer::Conv(c) => {
                let cfg = c.config();
                let (_, _, kh, kw) = c.weight().dims4()?;
                if cfg.dilation != 1 || cfg.groups != 1 || kh != kw {
                    candle_core::bail!(
                        "per-sample gradients of a dilated, grouped or non-square convolution"
                    );
                }
                (c.weight(), c.bias(), Some((kh, cfg.stride, cfg.padding)))
            }
        };
        traced.push(Traced {
            weight: weight.clone(),
            bias: bias.cloned(),
            conv,
            input: input.detach(),
            probe: probe.clone(),
        });
        out + probe.as_tensor()
    })?;
    let log_p = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let loss = log_p.gather(&y.unsqueeze(1)?, 1)?.sum_all()?.neg()?;
    let store = loss.backward()?;
    let mut layers = Vec::with_capacity(traced.len());
    let mut sq = Tensor::zeros(b, DType::F64, x.device())?;
    for t in &traced {
        let d = store.get(t.probe.as_tensor()).ok_or_else(|| {
            CoreError::Invalid("per-sample gradients: a layer's output has no gradient".into())
        })?;
        let (ps, s) = t.per_sample(d)?;
        sq = (sq + s.to_dtype(DType::F64)?)?;
        layers.push(ps);
    }
    let factors: Vec<f64> = sq
        .to_vec1::<f64>()?
        .iter()
        .map(|&s| (clip / (s.sqrt() + 1e-6)).min(1.0))
        .collect();
    let clipped = factors.iter().filter(|&&c| c < 1.0).count();
    let c = Tensor::from_vec(factors, b, x.device())?.to_dtype(x.dtype())?;
    let mut sums: std::collections::HashMap<TensorId, Tensor> = std::collections::HashMap::new();
    for (t, ps) in traced.iter().zip(&layers) {
        let (gw, gb) = clipped_layer_sum(ps, &c)?;
        sums.insert(t.weight.id(), gw.reshape(t.weight.shape())?);
        if let Some(bias) = &t.bias {
            sums.insert(bias.id(), gb);
        }
    }
    let grads = vars
        .iter()
        .map(|v| {
            sums.remove(&v.as_tensor().id()).ok_or_else(|| {
                CoreError::Invalid(format!(
                    "per-sample gradients: a parameter of shape {:?} is in no layer of the model",
                    v.dims()
                ))
            })
        })
        .collect::<CoreResult<Vec<Tensor>>>()?;
    Ok(ClippedGrads {
        grads,
        loss_sum: f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?),
        rows: b,
        clipped,
    })
}

/// Adds N(0, std²) to every value of every gradient and multiplies by `scale`, in order.
fn noisy(
    grads: Vec<Tensor>,
    std: f64,
    scale: f64,
    rng: &mut rand_chacha::ChaCha8Rng,
) -> CoreResult<Vec<Tensor>> {
    grads
        .into_iter()
        .map(|g| {
            let mut v = g.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
            add_noise_and_scale(&mut v, std, scale, rng);
            Ok(Tensor::from_vec(v, g.shape(), g.device())?.to_dtype(g.dtype())?)
        })
        .collect()
}

fn not_sgd() -> CoreError {
    CoreError::Invalid("DP-SGD zoos train with --optimizer sgd (momentum is allowed)".into())
}

/// [`run::train_on_subset`] with DP-SGD as `dp` says: `dp.steps` steps, each on a Poisson batch
/// of `subset` (rate `dp.sample_rate`), with the clipped per-sample gradient sum plus Gaussian
/// noise (std σ C) divided by the expected batch size q m; SGD (momentum allowed) only. Batches
/// and noise come from streams seeded by `cfg.seed` alone; an epoch is ⌈m / batch size⌉ steps.
pub(super) fn train_on_subset_dp(
    cfg: &TrainConfig,
    ds: &Dataset,
    subset: Vec<usize>,
    dp: &DpRecord,
    ctx: &JobCtx<'_>,
) -> CoreResult<TrainOutcome> {
    if cfg.optimizer != super::OptimizerKind::Sgd {
        return Err(not_sgd());
    }
    let mut s = run::setup(cfg, ds, &subset, ctx)?;
    let m = subset.len();
    let mut batch_rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xd95d_0001);
    let mut noise_rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xd95d_0002);
    let std = dp.noise_multiplier * dp.clip;
    // Divide by the expected batch size q m, never by |B| (spec 13 §C.1 step 5).
    let scale = 1.0 / (dp.sample_rate * m as f64);
    let steps_per_epoch = m.div_ceil(cfg.batch_size.max(1)).max(1) as u64;
    let epochs = dp.steps.div_ceil(steps_per_epoch);
    let report_every = (steps_per_epoch / 50).max(1);
    let (mut loss_sum, mut rows, mut clipped) = (0f64, 0usize, 0usize);
    for step in 1..=dp.steps {
        ctx.checkpoint()?;
        let epoch = step.div_ceil(steps_per_epoch);
        let batch = poisson_batch(&subset, dp.sample_rate, &mut batch_rng);
        let sum = if batch.is_empty() {
            ClippedGrads {
                grads: zero_grads(&s.vars)?,
                loss_sum: 0.0,
                rows: 0,
                clipped: 0,
            }
        } else {
            let idx = run::index_tensor(&batch, &s.dev)?;
            let (xb, yb) = (s.x.index_select(&idx, 0)?, s.y.index_select(&idx, 0)?);
            clipped_grad_sum(&s.model, &s.vars, &xb, &yb, dp.clip)?
        };
        let grads = noisy(sum.grads, std, scale, &mut noise_rng)?;
        s.opt.as_sgd().ok_or_else(not_sgd)?.step_grads(&grads)?;
        loss_sum += sum.loss_sum;
        rows += sum.rows;
        clipped += sum.clipped;
        if step.is_multiple_of(report_every) || step == dp.steps {
            let v = sum.loss_sum / sum.rows.max(1) as f64;
            if !v.is_finite() {
                return Err(CoreError::Invalid(format!(
                    "DP-SGD training diverged at step {step} (loss is {v}); lower the learning rate"
                )));
            }
            s.loss_curve.push([step as f64, v]);
            ctx.metric("train loss", step as f64, v);
            ctx.progress(&format!("epoch {epoch}/{epochs}"), step, dp.steps);
        }
        if step.is_multiple_of(steps_per_epoch) || step == dp.steps {
            ctx.metric(
                "clipped fraction",
                epoch as f64,
                clipped as f64 / rows.max(1) as f64,
            );
            s.end_epoch(epoch as usize, loss_sum / rows.max(1) as f64, &subset, ctx)?;
            (loss_sum, rows, clipped) = (0.0, 0, 0);
        }
    }
    s.finish(cfg, ds, subset, dp.steps, ctx)
}

#[cfg(test)]
#[path = "classifier_dp_tests.rs"]
mod tests;
