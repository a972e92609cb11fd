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

/// `f` on the first `len` values of a new vector's unfilled memory, then the vector: `f` must
/// write every one of them. The fused CPU kernels build their outputs this way, chunk by chunk,
/// instead of zero-filling them first (`diffusion::cpu_kernels`, `cpu_gemm::matmul_vec`; the
/// fills were 2.4% of a 28x28 DDPM training step).
#[allow(
    unsafe_code,
    reason = "set_len after every value is written; the writers are safe MaybeUninit writes"
)]
pub(crate) fn filled<T, E>(
    len: usize,
    f: impl FnOnce(&mut [std::mem::MaybeUninit<T>]) -> std::result::Result<(), E>,
) -> std::result::Result<Vec<T>, E> {
    let mut v = Vec::with_capacity(len);
    f(&mut v.spare_capacity_mut()[..len])?;
    // SAFETY: the capacity is at least `len`, and `f` wrote each of the first `len` values (its
    // contract: every caller covers the slice with chunks and writes each chunk whole; their
    // tests compare every value with a reference).
    unsafe { v.set_len(len) };
    Ok(v)
}

/// [`filled`] for a writer that cannot fail (the im2col columns).
pub(crate) fn written<T>(len: usize, f: impl FnOnce(&mut [std::mem::MaybeUninit<T>])) -> Vec<T> {
    let v = filled(len, |out| {
        f(out);
        Ok::<(), std::convert::Infallible>(())
    });
    match v {
        Ok(v) => v,
        Err(never) => match never {},
    }
}
