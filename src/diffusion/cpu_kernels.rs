//! CPU kernels for the UNet's convolutions, laid out so that every convolution is one large matrix
//! product. candle's CPU matmul runs a weight (O x K) broadcast against a batch of columns
//! (B x K x HW) as B separate small GEMMs, each waking the thread pool; with the columns of the
//! whole batch side by side (K x B·HW) the same product is one GEMM of O x K times K x B·HW.
//!
//! - [`Im2ColCm`]: 3x3, padding-1, stride-1 im2col into channel-major columns: input
//!   B x C x H x W, output 9C x (B·H·W), row c*9 + dy*3 + dx (the order of the weight's own
//!   O x C x 3 x 3 layout, so that it is an O x 9C matrix without a copy), column b*HW + y*W + x
//!   holding input[b][c][y + dy - 1][x + dx - 1] (zero outside the image). The values of
//!   `im2col.rs`'s [`super::im2col::Im2Col`] (its reference), rows reordered and the batch moved
//!   into the columns. Backward: [`Col2ImCm`], its adjoint (the same sums, in the same order,
//!   as `im2col.rs`'s col2im).
//! - [`BatchMajor`]: a convolution's channel-major output O x (B·HW) back to B x O x HW, plus
//!   the bias per channel and, when given, the UNet's time embedding t (B x O) per image and
//!   channel: `out[b][o][p] = y[o][b*HW + p] + bias[o] (+ t[b][o])`. Reference: candle's
//!   reshape, transpose and broadcast adds; differentiable.
//!
//! Both run over f32 and f64 (the UNet's gradient test runs in f64), split across images or rows
//! with rayon.

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

fn contiguous<'a, T>(v: &'a [T], layout: &Layout, what: &str) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("{what} needs a contiguous tensor"),
    }
}

/// For a kernel offset `d` in 0..3 along a side of length `n`: the output positions that read
/// inside the image, `lo..hi`, reading input position `p + d - 1`.
fn valid(d: usize, n: usize) -> (usize, usize) {
    (usize::from(d == 0), if d == 2 { n.saturating_sub(1) } else { n })
}

/// im2col into channel-major columns (layout in the module docs).
fn im2col_cm<T: WithDType>(src: &[T], b: usize, c: usize, h: usize, w: usize) -> Vec<T> {
    let hw = h * w;
    let row_len = b * hw;
    let mut out = vec![T::zero(); 9 * c * row_len];
    if row_len == 0 {
        return out;
    }
    out.par_chunks_exact_mut(row_len)
        .enumerate()
        .for_each(|(r, row)| {
            let (ci, k) = (r / 9, r % 9);
            let (dy, dx) = (k / 3, k % 3);
            // Output pixel i reads input pixel i + off of the same plane: one flat copy per plane,
            // then the pixels that wrapped around a row's end (first or last column) back to zero.
            let off = (dy * w + dx) as isize - (w + 1) as isize;
            let lo = (if dy == 0 { w } else { 0 }).max((-off).max(0) as usize);
            let hi =
                (if dy == 2 { hw.saturating_sub(w) } else { hw }).min((hw as isize - off).max(0) as usize);
            for bi in 0..b {
                let plane = &src[(bi * c + ci) * hw..(bi * c + ci + 1) * hw];
                let dst = &mut row[bi * hw..(bi + 1) * hw];
                if lo < hi {
                    let s = (lo as isize + off) as usize;
                    dst[lo..hi].copy_from_slice(&plane[s..s + (hi - lo)]);
                }
                match dx {
                    0 => dst.iter_mut().step_by(w).for_each(|v| *v = T::zero()),
                    2 => dst.iter_mut().skip(w - 1).step_by(w).for_each(|v| *v = T::zero()),
                    _ => {}
                }
            }
        });
    out
}

/// The adjoint of [`im2col_cm`]: channel-major columns 9C x (B·HW) summed back into B x C x H x W.
fn col2im_cm<T: WithDType>(src: &[T], b: usize, c: usize, h: usize, w: usize) -> Vec<T> {
    let hw = h * w;
    let row_len = b * hw;
    let mut out = vec![T::zero(); b * c * hw];
    if hw == 0 {
        return out;
    }
    out.par_chunks_exact_mut(hw).enumerate().for_each(|(p, plane)| {
        let (bi, ci) = (p / c, p % c);
        for k in 0..9 {
            let (dy, dx) = (k / 3, k % 3);
            let (y0, y1) = valid(dy, h);
            let (x0, x1) = valid(dx, w);
            let row = (ci * 9 + k) * row_len;
            let col = &src[row + bi * hw..row + (bi + 1) * hw];
            for y in y0..y1 {
                // valid() keeps y + dy and x + dx at least 1: no index goes below zero.
                let s = (y + dy - 1) * w;
                for x in x0..x1 {
                    plane[s + x + dx - 1] += col[y * w + x];
                }
            }
        }
    });
    out
}

/// im2col into channel-major columns (module docs), with [`Col2ImCm`] as its backward.
pub(crate) struct Im2ColCm;

/// The adjoint of [`Im2ColCm`] for images of `b` x `c` x `h` x `w`.
pub(crate) struct Col2ImCm {
    b: usize,
    c: usize,
    h: usize,
    w: usize,
}

impl CustomOp1 for Im2ColCm {
    fn name(&self) -> &'static str {
        "im2col3x3-channel-major"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = l.shape().dims4()?;
        let shape = Shape::from((9 * c, b * h * w));
        let what = "im2col";
        match s {
            CpuStorage::F32(v) => Ok((
                CpuStorage::F32(im2col_cm(contiguous(v, l, what)?, b, c, h, w)),
                shape,
            )),
            CpuStorage::F64(v) => Ok((
                CpuStorage::F64(im2col_cm(contiguous(v, l, what)?, b, c, h, w)),
                shape,
            )),
            _ => candle_core::bail!("im2col supports f32 and f64"),
        }
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (b, c, h, w) = arg.dims4()?;
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&Col2ImCm {
            b,
            c,
            h,
            w,
        })?))
    }
}

impl CustomOp1 for Col2ImCm {
    fn name(&self) -> &'static str {
        "col2im3x3-channel-major"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let Self { b, c, h, w } = *self;
        if l.shape().dims() != [9 * c, b * h * w] {
            candle_core::bail!("col2im: expected {} x {}, got {:?}", 9 * c, b * h * w, l.shape());
        }
        let shape = Shape::from((b, c, h, w));
        let what = "col2im";
        match s {
            CpuStorage::F32(v) => Ok((
                CpuStorage::F32(col2im_cm(contiguous(v, l, what)?, b, c, h, w)),
                shape,
            )),
            CpuStorage::F64(v) => Ok((
                CpuStorage::F64(col2im_cm(contiguous(v, l, what)?, b, c, h, w)),
                shape,
            )),
            _ => candle_core::bail!("col2im supports f32 and f64"),
        }
    }
}

/// Channel-major O x (B·HW) to B x O x H x W plus bias and time embedding (module docs).
#[derive(Clone, Copy, Debug)]
pub(crate) struct BatchMajor {
    b: usize,
    h: usize,
    w: usize,
    /// Whether the third input (B x O) is added too.
    with_t: bool,
}

fn batch_major<T: WithDType>(y: &[T], bias: &[T], t: Option<&[T]>, b: usize, o: usize, hw: usize) -> Vec<T> {
    let mut out = vec![T::zero(); b * o * hw];
    if o * hw == 0 {
        return out;
    }
    let row_len = b * hw;
    out.par_chunks_exact_mut(o * hw)
        .enumerate()
        .for_each(|(bi, img)| {
            for (oi, dst) in img.chunks_exact_mut(hw).enumerate() {
                let add = bias[oi] + t.map_or(T::zero(), |t| t[bi * o + oi]);
                let src = &y[oi * row_len + bi * hw..oi * row_len + (bi + 1) * hw];
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d = s + add;
                }
            }
        });
    out
}

impl CustomOp3 for BatchMajor {
    fn name(&self) -> &'static str {
        "batch-major-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let Self { b, h, w, with_t } = *self;
        let (o, n) = l1.shape().dims2()?;
        if n != b * h * w || l2.shape().elem_count() != o || (with_t && l3.shape().elem_count() != b * o) {
            candle_core::bail!("batch_major: y {o} x {n} for {b} images of {h}x{w}, bias {o}, t {b} x {o}");
        }
        let shape = Shape::from((b, o, h, w));
        let what = "batch_major";
        macro_rules! run {
            ($y:expr, $bias:expr, $t:expr, $variant:ident) => {{
                let (y, bias) = (contiguous($y, l1, what)?, contiguous($bias, l2, what)?);
                let t = if with_t {
                    Some(contiguous($t, l3, what)?)
                } else {
                    None
                };
                Ok((
                    CpuStorage::$variant(batch_major(y, bias, t, b, o, h * w)),
                    shape,
                ))
            }};
        }
        match (s1, s2, s3) {
            (CpuStorage::F32(y), CpuStorage::F32(bias), CpuStorage::F32(t)) => run!(y, bias, t, F32),
            (CpuStorage::F64(y), CpuStorage::F64(bias), CpuStorage::F64(t)) => run!(y, bias, t, F64),
            _ => candle_core::bail!("batch_major supports f32 and f64, all inputs the same"),
        }
    }

    fn bwd(
        &self,
        arg1: &Tensor,
        _arg2: &Tensor,
        _arg3: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (o, n) = arg1.dims2()?;
        let g = grad.reshape((self.b, o, self.h * self.w))?;
        let gy = g.transpose(0, 1)?.contiguous()?.reshape((o, n))?;
        let gbias = g.sum(2)?.sum(0)?;
        let gt = if self.with_t { Some(g.sum(2)?) } else { None };
        Ok((Some(gy), Some(gbias), gt))
    }
}

/// `y` (O x B·HW, channel-major) as B x O x H x W plus `bias` (O) and `t` (B x O) when given.
pub(crate) fn batch_major_plus(
    y: &Tensor,
    (b, h, w): (usize, usize, usize),
    bias: &Tensor,
    t: Option<&Tensor>,
) -> Result<Tensor> {
    let op = BatchMajor {
        b,
        h,
        w,
        with_t: t.is_some(),
    };
    y.contiguous()?
        .apply_op3(&bias.contiguous()?, &t.unwrap_or(bias).contiguous()?, op)
}

/// 3x3 padding-1 convolution on the CPU: `weight` O x C x 3 x 3, `bias` O, plus `t` (B x O) per
/// image and channel when given. One im2col, one GEMM, one pass back to B x O x H x W.
pub(crate) fn conv3x3(x: &Tensor, weight: &Tensor, bias: &Tensor, t: Option<&Tensor>) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let o = weight.dim(0)?;
    let cols = x.contiguous()?.apply_op1(Im2ColCm)?;
    // Column row c*9 + dy*3 + dx matches the weight's own layout: no permutation, no copy.
    let wm = weight.reshape((o, 9 * c))?;
    batch_major_plus(&wm.matmul(&cols)?, (b, h, w), bias, t)
}

/// 1x1 convolution on the CPU (`weight` O x C x 1 x 1, `bias` O): the images' channels side by
/// side (C x B·HW, a block copy), one GEMM, one pass back.
pub(crate) fn conv1x1(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let o = weight.dim(0)?;
    let xc = x
        .reshape((b, c, h * w))?
        .transpose(0, 1)?
        .contiguous()?
        .reshape((c, b * h * w))?;
    batch_major_plus(&weight.reshape((o, c))?.matmul(&xc)?, (b, h, w), bias, None)
}

#[cfg(test)]
#[path = "cpu_kernels_tests.rs"]
mod tests;
