//! One single-threaded GEMM on slices (the gemm crate, candle's own CPU matmul), bounds checked,
//! for the fused CPU kernels that run many small products side by side on rayon instead of
//! splitting each product across threads (`diffusion::cpu_kernels`, `train::batched_mlp_grad`).

use std::mem::MaybeUninit;

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
#[allow(unsafe_code, reason = "gemm_raw after check")]
pub(crate) fn matmul<T: WithDType>(
    dst: &mut [T],
    d: Mat,
    accumulate: bool,
    lhs: &[T],
    l: Mat,
    rhs: &[T],
    r: Mat,
) -> Result<()> {
    check(dst.len(), d, lhs, l, rhs, r)?;
    if l.cols == 0 {
        if !accumulate {
            dst.iter_mut().for_each(|v| *v = T::zero());
        }
        return Ok(());
    }
    // SAFETY: `check` put every element the GEMM touches inside its slice; dst is borrowed
    // mutably, so it aliases neither operand.
    unsafe { gemm_raw(dst.as_mut_ptr(), d, accumulate, lhs, l, rhs, r) };
    Ok(())
}

/// `lhs · rhs` into unfilled memory `dst` (a contiguous row-major `rows` x `cols` matrix, the
/// whole slice), returned filled: the GEMM writes every value without reading any, so outputs
/// need no zero-fill first (those fills were 2% of a 28x28 DDPM training step).
#[allow(
    unsafe_code,
    reason = "the slice is viewed as filled after the GEMM (or the zero loop) wrote all of it"
)]
pub(crate) fn matmul_into<'a, T: WithDType>(
    dst: &'a mut [MaybeUninit<T>],
    rows: usize,
    cols: usize,
    lhs: &[T],
    l: Mat,
    rhs: &[T],
    r: Mat,
) -> Result<&'a mut [T]> {
    let d = Mat::row_major(rows, cols);
    if dst.len() != rows * cols {
        candle_core::bail!("gemm: {rows}x{cols} output in {} values", dst.len());
    }
    check(dst.len(), d, lhs, l, rhs, r)?;
    if l.cols == 0 || rows * cols == 0 {
        dst.iter_mut().for_each(|v| {
            v.write(T::zero());
        });
    } else {
        // SAFETY: as in `matmul`; without `accumulate` the GEMM only writes dst (dst := lhs·rhs,
        // the gemm crate's `read_dst = false`), and it writes each of its rows x cols values,
        // which are the whole slice.
        unsafe { gemm_raw(dst.as_mut_ptr().cast::<T>(), d, false, lhs, l, rhs, r) };
    }
    // SAFETY: every value was written above; MaybeUninit<T> has T's layout.
    Ok(unsafe { dst.assume_init_mut() })
}

/// [`matmul_into`] a new vector.
pub(crate) fn matmul_vec<T: WithDType>(
    rows: usize,
    cols: usize,
    lhs: &[T],
    l: Mat,
    rhs: &[T],
    r: Mat,
) -> Result<Vec<T>> {
    crate::cpu_slices::filled(rows * cols, |dst| {
        matmul_into(dst, rows, cols, lhs, l, rhs, r).map(|_| ())
    })
}

/// The shapes agree and every matrix lies inside its buffer.
fn check<T>(dst_len: usize, d: Mat, lhs: &[T], l: Mat, rhs: &[T], r: Mat) -> Result<()> {
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
    if !d.fits(dst_len) || !l.fits(lhs.len()) || !r.fits(rhs.len()) {
        candle_core::bail!("gemm: a matrix runs past its buffer");
    }
    Ok(())
}

/// The gemm crate's product into `dst` (`accumulate`: dst += lhs · rhs, else dst = lhs · rhs,
/// written without being read).
///
/// # Safety
/// [`check`] passed for these operands with `dst`'s length, `dst` is valid for writes of every
/// element `d` addresses (and reads too with `accumulate`), it aliases neither operand, and
/// `l.cols > 0`.
#[allow(
    unsafe_code,
    reason = "the gemm crate takes raw pointers and strides; the callers check every bound"
)]
unsafe fn gemm_raw<T: WithDType>(
    dst: *mut T,
    d: Mat,
    accumulate: bool,
    lhs: &[T],
    l: Mat,
    rhs: &[T],
    r: Mat,
) {
    if d.rows == 0 || d.cols == 0 {
        return;
    }
    let s = |v: usize| v as isize;
    // SAFETY: the caller's contract; T is f32 or f64 (checked by the ops).
    unsafe {
        gemm::gemm(
            d.rows,
            d.cols,
            l.cols,
            dst,
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
}
