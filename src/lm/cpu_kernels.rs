//! Fused CPU kernels of the language-model forward pass: GELU (tanh approximation), SiLU, softmax
//! and log-softmax over the last dimension as vectorisable passes.
//!
//! candle's CPU GELU calls libm's `tanhf` (which calls `expm1f`) once per element and SiLU calls
//! `expf`: scalar code that took 45% of the demo GPT's scoring time (`perf`, docs/performance.md).
//! Both are written here with one exponential each, through a branch-free `exp` the compiler turns
//! into SIMD, over rayon chunks:
//!
//! * GELU-tanh (Hendrycks and Gimpel 2016, `gelu_new`): `0.5 v (1 + tanh(u))` with
//!   `u = sqrt(2 / pi) (v + 0.044715 v^3)`, computed as the identical `v / (1 + exp(-2u))`;
//! * SiLU: `v / (1 + exp(-v))`, candle's formula.
//!
//! `exp` is [`crate::fast_math::exp_f32`] (Cephes' `expf`, within 2 ulp, no library call).
//!
//! Softmax and log-softmax over the last dimension (attention weights; the next token's ln p over
//! the vocabulary) are one pass per row for the maximum and one for `exp(v - max)` and its sum;
//! log-softmax is `v - max - ln sum` (candle's generic log-softmax is six tensor operations over the
//! (B, T, vocabulary) logits, its fused softmax calls libm's `expf` per element).
//!
//! Their twins are candle's `gelu`, `silu`, `softmax_last_dim` and `log_softmax`, which the tests
//! hold them to (1e-5 relative); they apply only where no gradient is wanted (scoring and
//! generation, not training).

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::cpu_slices::f32s;
use crate::error::CoreResult;
use crate::fast_math::exp_f32 as exp;

/// Which activation.
#[derive(Clone, Copy, Debug)]
enum FastAct {
    GeluTanh,
    Silu,
}

/// Softmax (or, with `log`, log-softmax) over the last dimension.
#[derive(Clone, Copy, Debug)]
struct RowSoftmax {
    log: bool,
}

impl FastAct {
    #[inline(always)]
    fn f(self, v: f32) -> f32 {
        match self {
            Self::GeluTanh => {
                const C: f32 = 0.797_884_6; // sqrt(2 / pi)
                let u = C * v * (1.0 + 0.044_715 * v * v);
                v / (1.0 + exp(-2.0 * u))
            }
            Self::Silu => v / (1.0 + exp(-v)),
        }
    }
}

impl CustomOp1 for FastAct {
    fn name(&self) -> &'static str {
        match self {
            Self::GeluTanh => "fast-gelu-tanh",
            Self::Silu => "fast-silu",
        }
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let src = f32s(storage, layout, self.name())?;
        let mut out = vec![0f32; src.len()];
        let act = *self;
        out.par_chunks_mut(16_384)
            .zip(src.par_chunks(16_384))
            .for_each(|(o, i)| act_chunk(act, o, i));
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

impl CustomOp1 for RowSoftmax {
    fn name(&self) -> &'static str {
        if self.log {
            "fast-log-softmax"
        } else {
            "fast-softmax"
        }
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let src = f32s(storage, layout, self.name())?;
        let dim = layout.shape().dims().last().copied().unwrap_or(1).max(1);
        let mut out = vec![0f32; src.len()];
        let rows_per_chunk = (16_384 / dim).max(1);
        let log = self.log;
        out.par_chunks_mut(rows_per_chunk * dim)
            .zip(src.par_chunks(rows_per_chunk * dim))
            .for_each(|(o, i)| softmax_rows(o, i, dim, log));
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// One chunk of an activation: one loop per activation, so each is a straight SIMD loop
/// (compiled for AVX-512, AVX2 and the baseline, chosen at run time).
#[multiversion::multiversion(targets = "simd")]
fn act_chunk(act: FastAct, o: &mut [f32], i: &[f32]) {
    match act {
        FastAct::GeluTanh => o
            .iter_mut()
            .zip(i)
            .for_each(|(o, &v)| *o = FastAct::GeluTanh.f(v)),
        FastAct::Silu => o.iter_mut().zip(i).for_each(|(o, &v)| *o = FastAct::Silu.f(v)),
    }
}

/// (Log-)softmax of the rows of `i` (of `dim` values) into `o` (multiversioned as
/// [`act_chunk`]).
#[multiversion::multiversion(targets = "simd")]
fn softmax_rows(o: &mut [f32], i: &[f32], dim: usize, log: bool) {
    for (o, row) in o.chunks_exact_mut(dim).zip(i.chunks_exact(dim)) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        // Exactly 0 below e^-87 (masked positions are -inf): exp_f32 saturates at
        // e^-87, and those values divided by the sum are subnormal, which makes the
        // next matrix product crawl (2.6x slower scoring before this).
        o.iter_mut().zip(row).for_each(|(o, &v)| {
            let d = v - max;
            let e = exp(d);
            *o = if d < -87.0 { 0.0 } else { e };
        });
        let sum = sum_f64(o) as f32;
        if log {
            // (v - max) - ln sum, rounded as candle's log-softmax rounds it.
            let lse = sum.ln();
            o.iter_mut().zip(row).for_each(|(o, &v)| *o = (v - max) - lse);
        } else {
            let inv = 1.0 / sum;
            o.iter_mut().for_each(|o| *o *= inv);
        }
    }
}

/// The sum of `v` accumulated in f64 over eight lanes: a row whose largest term is 1 and the
/// rest small (a confident next-token distribution) loses no bits to a running f32 sum.
#[inline]
fn sum_f64(v: &[f32]) -> f64 {
    let mut acc = [0f64; 8];
    let chunks = v.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&x| f64::from(x)).sum();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += f64::from(x);
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// Softmax over the last dimension: the fast kernel where it applies, candle's elsewhere.
pub(crate) fn softmax_last_dim(x: &Tensor) -> CoreResult<Tensor> {
    if applies(x) {
        Ok(x.contiguous()?.apply_op1_no_bwd(&RowSoftmax { log: false })?)
    } else {
        Ok(candle_nn::ops::softmax_last_dim(x)?)
    }
}

/// Log-softmax over the last dimension: the fast kernel where it applies, candle's elsewhere.
pub(crate) fn log_softmax_last_dim(x: &Tensor) -> CoreResult<Tensor> {
    if applies(x) {
        Ok(x.contiguous()?.apply_op1_no_bwd(&RowSoftmax { log: true })?)
    } else {
        Ok(candle_nn::ops::log_softmax(x, candle_core::D::Minus1)?)
    }
}

/// Whether the fast kernels apply to `x`: f32 on the CPU, no gradient wanted.
fn applies(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32 && !x.track_op()
}

/// GELU (tanh approximation): the fast kernel where it applies, candle's `gelu` elsewhere.
pub(crate) fn gelu_tanh(x: &Tensor) -> CoreResult<Tensor> {
    if applies(x) {
        Ok(x.contiguous()?.apply_op1_no_bwd(&FastAct::GeluTanh)?)
    } else {
        Ok(x.gelu()?)
    }
}

/// SiLU: the fast kernel where it applies, candle's `silu` elsewhere.
pub(crate) fn silu(x: &Tensor) -> CoreResult<Tensor> {
    if applies(x) {
        Ok(x.contiguous()?.apply_op1_no_bwd(&FastAct::Silu)?)
    } else {
        Ok(candle_nn::ops::silu(x)?)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    fn inputs() -> Tensor {
        // -30 .. 30 densely near 0, plus the extremes.
        let mut v: Vec<f32> = (-3000..=3000).map(|i| i as f32 * 0.01).collect();
        v.extend([-100.0, -88.5, -50.0, 50.0, 88.5, 100.0, 0.0, -0.0, 1e-6, -1e-6]);
        Tensor::from_vec(v.clone(), v.len(), &Device::Cpu).unwrap()
    }

    fn close(fast: &Tensor, reference: &Tensor) {
        let a = fast.to_vec1::<f32>().unwrap();
        let b = reference.to_vec1::<f32>().unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1e-5 * y.abs() + 1e-6, "{x} vs {y}");
        }
    }

    #[test]
    fn fast_activations_match_candle() {
        let x = inputs();
        close(&gelu_tanh(&x).unwrap(), &x.gelu().unwrap());
        close(&silu(&x).unwrap(), &candle_nn::ops::silu(&x).unwrap());
    }

    #[test]
    fn fast_softmaxes_match_candle() {
        // Rows of logits with a wide range (a vocabulary-sized row and attention-sized ones, one
        // with -inf from a causal mask).
        let v: Vec<f32> = (0..3 * 2048)
            .map(|i| ((i * 7919 % 2003) as f32 - 1000.0) * 0.02)
            .collect();
        let x = Tensor::from_vec(v, (3, 2048), &Device::Cpu).unwrap();
        let mut m: Vec<f32> = (0..4 * 16).map(|i| (i % 5) as f32 * 0.7 - 1.0).collect();
        m[3] = f32::NEG_INFINITY;
        let masked = Tensor::from_vec(m, (2, 2, 16), &Device::Cpu).unwrap();
        // Masked positions are exactly 0 (no subnormals for the next product).
        let p = softmax_last_dim(&masked)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(p[3], 0.0);
        assert!(p.iter().all(|v| *v == 0.0 || v.is_normal()));
        for t in [&x, &masked] {
            let fast = softmax_last_dim(t).unwrap().flatten_all().unwrap();
            let want = candle_nn::ops::softmax_last_dim(t)
                .unwrap()
                .flatten_all()
                .unwrap();
            close(&fast, &want);
            let fast = log_softmax_last_dim(t).unwrap().flatten_all().unwrap();
            let want = candle_nn::ops::log_softmax(t, candle_core::D::Minus1)
                .unwrap()
                .flatten_all()
                .unwrap();
            let (a, b) = (fast.to_vec1::<f32>().unwrap(), want.to_vec1::<f32>().unwrap());
            for (x, y) in a.iter().zip(&b) {
                assert!(x == y || (x - y).abs() <= 1e-5 * y.abs().max(1.0), "{x} vs {y}");
            }
        }
    }

    #[test]
    fn tracked_tensors_keep_candle_ops_and_their_gradients() {
        let x = Var::from_tensor(&inputs()).unwrap();
        assert!(!applies(x.as_tensor()));
        let g = gelu_tanh(x.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(g.get(x.as_tensor()).is_some());
    }
}
