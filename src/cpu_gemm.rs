//! One single-threaded GEMM on slices (the gemm crate, candle's own CPU matmul), bounds checked,
//! for the fused CPU kernels that run many small products side by side on rayon instead of
//! splitting each product across threads (`diffusion::cpu_kernels`, `train::batched_mlp_grad`).

use candle_core::{Result, WithDType};

/// A matrix in a slice: element (i, j) at `i * rs + j * cs`.
#[derive(Clone, Copy)]
pub(crate) struct Mat {
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl Mat {
    /// A contiguous row-major `rows` x `cols` matrix.
    pub(crate) fn row_major(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose (the same elements, read the other way).
    pub(crate) fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    fn fits(&self, len: usize) -> bool {
        self.rows == 0 || self.cols == 0 || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < len
    }
}

/// `dst = lhs · rhs` (or `dst += lhs · rhs` with `accumulate`) on one thread, bounds checked.
#[allow(
    unsafe_code,
    reason = "the gemm crate takes raw pointers and strides; every bound is checked before the call"
)]
pub(crate) fn matmul<T: WithDType>(
    dst: &mut [T],
    d: Mat,
    accumulate: bool,
    lhs: &[T],
    l: Mat,
    rhs: &[T],
    r: Mat,
) -> Result<()> {
    if l.rows != d.rows || r.cols != d.cols || l.cols != r.rows {
        candle_core::bail!(
            "conv gemm: {}x{} times {}x{} into {}x{}",
            l.rows,
            l.cols,
            r.rows,
            r.cols,
            d.rows,
            d.cols
        );
    }
    if !d.fits(dst.len()) || !l.fits(lhs.len()) || !r.fits(rhs.len()) {
        candle_core::bail!("gemm: a matrix runs past its buffer");
    }
    if d.rows == 0 || d.cols == 0 {
        return Ok(());
    }
    if l.cols == 0 {
        if !accumulate {
            dst.iter_mut().for_each(|v| *v = T::zero());
        }
        return Ok(());
    }
    let s = |v: usize| v as isize;
    // SAFETY: every element the GEMM touches is inside its slice (checked by `fits` above), dst is
    // borrowed mutably and does not alias lhs or rhs, and T is f32 or f64 (checked by the ops).
    unsafe {
        gemm::gemm(
            d.rows,
            d.cols,
            l.cols,
            dst.as_mut_ptr(),
            s(d.cs),
            s(d.rs),
            accumulate,
            lhs.as_ptr(),
            s(l.cs),
            s(l.rs),
            rhs.as_ptr(),
            s(r.cs),
            s(r.rs),
            T::one(),
            T::one(),
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    Ok(())
}
