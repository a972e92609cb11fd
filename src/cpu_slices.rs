//! The contiguous part of a candle CPU storage as a slice, for the fused CPU kernels' custom ops
//! (`invert::affine`, `train::sgd_cpu`, `train::batched_mlp_grad`, `lm::cpu_kernels`): one error
//! naming the op when the operand is strided or of another dtype.

use candle_core::{CpuStorage, Layout, Result};

/// `s[start..end]` of a contiguous layout.
pub(crate) fn slice<'a, T>(s: &'a [T], l: &Layout, op: &str) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s[a..b]),
        None => candle_core::bail!("{op}: operands must be contiguous"),
    }
}

/// [`slice`], mutable.
pub(crate) fn slice_mut<'a, T>(s: &'a mut [T], l: &Layout, op: &str) -> Result<&'a mut [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&mut s[a..b]),
        None => candle_core::bail!("{op}: operands must be contiguous"),
    }
}

/// The f32 values of a contiguous storage.
pub(crate) fn f32s<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    match s {
        CpuStorage::F32(v) => slice(v, l, op),
        _ => candle_core::bail!("{op}: f32 operands expected"),
    }
}

/// [`f32s`], mutable.
pub(crate) fn f32s_mut<'a>(s: &'a mut CpuStorage, l: &Layout, op: &str) -> Result<&'a mut [f32]> {
    match s {
        CpuStorage::F32(v) => slice_mut(v, l, op),
        _ => candle_core::bail!("{op}: f32 operands expected"),
    }
}

/// `len` copies of `zero`, written by rayon's threads side by side: the outputs of the fused CPU
/// kernels are allocated on the thread that runs the op, and zero-filling a few MB there while
/// the other cores wait cost 4% of a two-core DDPM training step (`docs/performance.md`). Small
/// buffers are filled in place.
pub(crate) fn zeros_par<T: Copy + Send + Sync>(len: usize, zero: T) -> Vec<T> {
    use rayon::prelude::*;
    if len < 65_536 {
        return vec![zero; len];
    }
    let mut v = Vec::with_capacity(len);
    v.par_extend(rayon::iter::repeat_n(zero, len).with_min_len(16_384));
    v
}
