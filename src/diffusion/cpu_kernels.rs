//! CPU convolutions of the UNet (3x3 with padding 1, and 1x1), forward and backward each as one
//! custom op, so that training keeps neither the im2col columns nor their gradient as tensors.
//!
//! The batch is cut into groups of a few images whose columns fit in a core's cache (about 1 MB,
//! [`group_size`]); groups run side by side on rayon, each with single-threaded GEMMs (the gemm
//! crate, candle's own CPU matmul), so there is no thread hand-off per operation.
//!
//! The column layouts and the copies between them are in `cpu_columns.rs`.
//!
//! Per group of n images (x: n x C x H x W, weight W: O x C·k·k, `bt`: B x O = bias + the
//! UNet's time embedding per image and channel):
//! - columns: 3x3: `cols` = im2col into channel-major columns, 9C x (n·HW), row c*9 + dy*3 + dx
//!   (the weight's own O x C x 3 x 3 order, so W is an O x 9C matrix without a copy), column
//!   i*HW + y*W + x holding x[i][c][y + dy - 1][x + dx - 1] (zero outside the image); 1x1: the
//!   images' channels side by side, C x (n·HW);
//! - forward: y_cm = W · cols (one GEMM, O x n·HW), then `y[i][o][p] = y_cm[o][i*HW + p] +
//!   bt[i][o]`;
//! - backward, given dL/dy: dy_cm = dL/dy channel-major, dL/dbt[i][o] = sum over p of
//!   dL/dy[i][o][p]. For 3x3 everything comes from the im2col of dL/dy (9O x n·HW, whose centre
//!   rows are dy_cm): dL/dx is itself a 3x3 convolution of dL/dy with the weight's channels
//!   swapped and its kernel turned by 180 degrees (one GEMM with 9O terms per value, back to
//!   batch-major: no col2im and no 9C x n·HW column gradient), and dL/dW[o][c][k] is row
//!   o*9 + 8 - k of those columns times x channel-major (x is not im2col'd again, nor kept from
//!   the forward). For 1x1, dL/dx = Wᵀ · dy_cm and dL/dW = dy_cm · xᵀ.
//!   The per-group dL/dW are summed in group order, so results do not depend on the thread count.
//!
//! Reference: candle's conv2d followed by broadcast adds of the bias and the time embedding,
//! forward and gradients (`cpu_kernels_tests.rs`, f64 and f32). Runs over f32 and f64 (the
//! UNet's finite-difference gradient test runs in f64).

use std::borrow::Cow;
use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use super::cpu_columns::{im2col_cm, to_batch_major_plus, to_channel_major};
use crate::cpu_gemm::{Mat, matmul, matmul_into, matmul_vec};
use crate::cpu_slices::{filled, slice};

/// Values of the columns per group: about 1 MB of f32.
const GROUP_VALUES: usize = 262_144;

/// Images per group for a convolution whose columns hold `per_image` values per image: at most
/// what fits [`GROUP_VALUES`], spread evenly over an even number of groups where the batch
/// allows (32 images of 9 that fit make 4 groups of 8, not 9, 9, 9 and 5; of 14 that fit, 4
/// groups of 8, not 3 groups that leave one of two cores idle a third of the time). The count
/// does not depend on the threads, so neither do the results.
fn group_size(per_image: usize, b: usize) -> usize {
    let b = b.max(1);
    let fit = (GROUP_VALUES / per_image.max(1)).clamp(1, b);
    let groups = b.div_ceil(fit);
    let groups = if groups > 1 && b > groups {
        groups.next_multiple_of(2).min(b)
    } else {
        groups
    };
    b.div_ceil(groups)
}

/// The 3x3 weight (O x C x 3 x 3) as the C x 9O matrix of the convolution that takes dL/dy to
/// dL/dx: channels swapped and the kernel turned by 180 degrees, row c, column o*9 + k holding
/// W[o][c][8 - k] (dL/dx = conv3x3(dL/dy, that weight), so the backward is one im2col and one
/// GEMM with 9O terms per output instead of a GEMM with O terms and a col2im).
fn flipped_weight<T: WithDType>(wt: &[T], o: usize, c: usize) -> Vec<T> {
    let mut out = vec![T::zero(); c * 9 * o];
    for (r, row) in out.chunks_exact_mut(9 * o).enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            let (oi, k) = (j / 9, j % 9);
            *v = wt[(oi * c + r) * 9 + 8 - k];
        }
    }
    out
}

/// The sum of `xs` in sixteen lanes (so that it vectorises; a single running sum waits on each
/// add): the bias gradients' sums over pixels.
#[multiversion::multiversion(targets = "simd")]
fn sum_lanes<T: WithDType>(xs: &[T]) -> T {
    let mut acc = [T::zero(); 16];
    let chunks = xs.chunks_exact(16);
    let rest = chunks.remainder();
    for ch in chunks {
        for (a, &v) in acc.iter_mut().zip(ch) {
            *a += v;
        }
    }
    let lanes = acc.iter().fold(T::zero(), |a, &v| a + v);
    rest.iter().fold(lanes, |a, &v| a + v)
}

/// Fills `dst` row by row (`row` values each) with `values[r]` (one value per row) and returns
/// it as written values: the start of a GEMM that accumulates onto a bias, or writes over zeros.
#[allow(
    unsafe_code,
    reason = "every value is written just before the slice is viewed as written"
)]
fn write_rows<'a, T: WithDType>(dst: &'a mut [MaybeUninit<T>], row: usize, values: &[T]) -> &'a mut [T] {
    for (r, chunk) in dst.chunks_mut(row.max(1)).enumerate() {
        let v = values.get(r).copied().unwrap_or(T::zero());
        chunk.iter_mut().for_each(|d| {
            d.write(v);
        });
    }
    // SAFETY: the chunks cover `dst` and every element was written above; MaybeUninit<T> has
    // T's layout, so the slice may be read as T.
    unsafe { dst.assume_init_mut() }
}

/// A convolution's sizes: `b` images of `c` x `h` x `w` into `o` channels, kernel `k` (1 or 3),
/// `group` images per group.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Conv {
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    k: usize,
    group: usize,
    /// Whether the backward computes dL/dW (not when the weights are constants, as a loaded
    /// diffusers model's are while sharpness differentiates through it).
    dw: bool,
}

impl Conv {
    fn kc(&self) -> usize {
        self.c * self.k * self.k
    }

    fn hw(&self) -> usize {
        self.h * self.w
    }

    /// The columns of `n` images (module docs).
    fn columns<'a, T: WithDType>(&self, x: &'a [T], n: usize) -> Cow<'a, [T]> {
        if self.k == 3 {
            Cow::Owned(im2col_cm(x, n, self.c, self.h, self.w))
        } else {
            to_channel_major(x, n, self.c, self.hw())
        }
    }

    fn forward<T: WithDType>(&self, x: &[T], wt: &[T], bt: &[T]) -> Result<Vec<T>> {
        let (o, hw, kc) = (self.o, self.hw(), self.kc());
        if o * hw * self.b == 0 {
            return Ok(vec![T::zero(); self.b * o * hw]);
        }
        let in_img = self.c * hw;
        filled(self.b * o * hw, |y| {
            y.par_chunks_mut(self.group * o * hw)
                .enumerate()
                .try_for_each(|(gi, yg)| -> Result<()> {
                    let (b0, n) = (gi * self.group, yg.len() / (o * hw));
                    let cols = self.columns(&x[b0 * in_img..(b0 + n) * in_img], n);
                    let nhw = n * hw;
                    if n == 1 {
                        // One image's O x HW is channel-major already: bt's row, then += W · cols.
                        let yg = write_rows(yg, hw, &bt[b0 * o..(b0 + 1) * o]);
                        return matmul(
                            yg,
                            Mat::row_major(o, hw),
                            true,
                            wt,
                            Mat::row_major(o, kc),
                            &cols,
                            Mat::row_major(kc, hw),
                        );
                    }
                    let ycm = matmul_vec(o, nhw, wt, Mat::row_major(o, kc), &cols, Mat::row_major(kc, nhw))?;
                    to_batch_major_plus(&ycm, yg, &bt[b0 * o..(b0 + n) * o], o, hw);
                    Ok(())
                })
        })
    }

    /// dL/dx, dL/dW and dL/dbt packed into one vector (in that order).
    fn backward<T: WithDType>(&self, x: &[T], wt: &[T], dy: &[T]) -> Result<Vec<T>> {
        let (b, c, o, hw, kc) = (self.b, self.c, self.o, self.hw(), self.kc());
        let len = b * c * hw + o * kc + b * o;
        if b * hw == 0 {
            return Ok(vec![T::zero(); len]);
        }
        let wflip = if self.k == 3 {
            flipped_weight(wt, o, c)
        } else {
            Vec::new()
        };
        filled(len, |out| {
            let (dx, rest) = out.split_at_mut(b * c * hw);
            let (dw, dbt) = rest.split_at_mut(o * kc);
            let partials = dx
                .par_chunks_mut(self.group * c * hw)
                .zip(dbt.par_chunks_mut(self.group * o))
                .enumerate()
                .map(|(gi, (dxg, dbtg))| self.backward_group(gi, x, wt, &wflip, dy, dxg, dbtg))
                .collect::<Result<Vec<_>>>()?;
            // Summed in group order for every element (0 + p0 + p1 + ...), one output channel
            // per task: its rows of every partial are contiguous (9C values for 3x3), summed in
            // place, then written in the weight's order. Without dL/dW the partials are empty
            // and dW is zero.
            dw.par_chunks_mut(kc.max(1)).enumerate().for_each(|(oi, dst)| {
                let mut acc = vec![T::zero(); dst.len()];
                for p in &partials {
                    let rows = p.get(oi * kc..(oi + 1) * kc).unwrap_or_default();
                    for (a, &v) in acc.iter_mut().zip(rows) {
                        *a += v;
                    }
                }
                if self.k == 3 {
                    // (dy_cols · xcmᵀ)[o*9 + 8 - k][c] is dL/dW[o][c][k] (backward_group).
                    for (ci, row) in dst.chunks_exact_mut(9).enumerate() {
                        for (k, v) in row.iter_mut().enumerate() {
                            v.write(acc[(8 - k) * c + ci]);
                        }
                    }
                } else {
                    dst.write_copy_of_slice(&acc);
                }
            });
            Ok(())
        })
    }

    /// [`Conv::backward`] for group `gi`: writes its dL/dx and dL/dbt and returns its dL/dW.
    ///
    /// 3x3: the columns of dL/dy (9O x n·HW) give dL/dx as one GEMM with the flipped weight
    /// ([`flipped_weight`]) and dL/dW as one GEMM with x channel-major (x is not im2col'd
    /// again); their centre rows (offset 0) are dL/dy channel-major, summed for dL/dbt.
    /// 1x1: dL/dy channel-major, dL/dx = Wᵀ · dL/dy and dL/dW = dL/dy · xᵀ.
    #[allow(
        clippy::too_many_arguments,
        reason = "one group's slices of the op's operands"
    )]
    fn backward_group<T: WithDType>(
        &self,
        gi: usize,
        x: &[T],
        wt: &[T],
        wflip: &[T],
        dy: &[T],
        dxg: &mut [MaybeUninit<T>],
        dbtg: &mut [MaybeUninit<T>],
    ) -> Result<Vec<T>> {
        let (c, o, hw, kc) = (self.c, self.o, self.hw(), self.kc());
        let (b0, n) = (gi * self.group, dbtg.len() / o.max(1));
        let nhw = n * hw;
        let dy_g = &dy[b0 * o * hw..(b0 + n) * o * hw];
        // dL/dy channel-major (o x nhw): the centre rows of dL/dy's columns for 3x3.
        let (dy_cols, dy_cm, dy_rows) = if self.k == 3 {
            (
                im2col_cm(dy_g, n, o, self.h, self.w),
                Cow::Borrowed(&[][..]),
                9 * nhw,
            )
        } else {
            (Vec::new(), to_channel_major(dy_g, n, o, hw), nhw)
        };
        let dycm: &[T] = if self.k == 3 { &dy_cols[4 * nhw..] } else { &dy_cm };
        let dycm_mat = Mat {
            rows: o,
            cols: nhw,
            rs: dy_rows,
            cs: 1,
        };
        for (i, dbt) in dbtg.iter_mut().enumerate() {
            let (img, oi) = (i / o, i % o);
            let row = &dycm[oi * dy_rows + img * hw..oi * dy_rows + (img + 1) * hw];
            dbt.write(sum_lanes(row));
        }
        // 3x3: dwg is (dy_cols · xcmᵀ), 9O x C; row o*9 + k' of dL/dy's columns holds dL/dy
        // shifted by offset k', which is x's shift for offset 8 - k' the other way round, so its
        // row o*9 + 8 - k, column c is dL/dW[o][c][k] ([`Conv::backward`] reorders the sum
        // once). 1x1: dwg is dL/dW. x goes channel-major (c x nhw): one copy, not a second
        // im2col (none for one image).
        let dwg = if !self.dw {
            Vec::new()
        } else if self.k == 3 {
            let xcm = to_channel_major(&x[b0 * c * hw..(b0 + n) * c * hw], n, c, hw);
            matmul_vec(
                9 * o,
                c,
                &dy_cols,
                Mat::row_major(9 * o, nhw),
                &xcm,
                Mat::row_major(c, nhw).t(),
            )?
        } else {
            let xcm = to_channel_major(&x[b0 * c * hw..(b0 + n) * c * hw], n, c, hw);
            matmul_vec(o, kc, dycm, dycm_mat, &xcm, Mat::row_major(kc, nhw).t())?
        };
        // dL/dx: W flipped (3x3) or Wᵀ (1x1) times dL/dy's columns; for one image straight
        // into its place (its C x HW is channel-major already).
        let (wl, wl_mat, dr, dr_mat) = if self.k == 3 {
            (
                wflip,
                Mat::row_major(c, 9 * o),
                &dy_cols[..],
                Mat::row_major(9 * o, nhw),
            )
        } else {
            (wt, Mat::row_major(o, c).t(), dycm, dycm_mat)
        };
        if n == 1 {
            matmul_into(dxg, c, hw, wl, wl_mat, dr, dr_mat)?;
        } else {
            let dxcm = matmul_vec(c, nhw, wl, wl_mat, dr, dr_mat)?;
            for i in 0..n {
                for ci in 0..c {
                    dxg[(i * c + ci) * hw..(i * c + ci + 1) * hw]
                        .write_copy_of_slice(&dxcm[ci * nhw + i * hw..ci * nhw + (i + 1) * hw]);
                }
            }
        }
        Ok(dwg)
    }
}

/// The convolution op on (x, weight, bt); its backward is [`ConvGrad`].
struct ConvOp(Conv);

/// The backward of [`ConvOp`] on (x, weight, dL/dy): dL/dx, dL/dW, dL/dbt packed.
struct ConvGrad(Conv);

fn check_dtype(s: &CpuStorage, what: &str) -> Result<()> {
    match s {
        CpuStorage::F32(_) | CpuStorage::F64(_) => Ok(()),
        _ => candle_core::bail!("{what} supports f32 and f64"),
    }
}

macro_rules! dispatch {
    ($s1:expr, $l1:expr, $s2:expr, $l2:expr, $s3:expr, $l3:expr, $what:expr, |$a:ident, $b:ident, $c:ident| $body:expr) => {
        match ($s1, $s2, $s3) {
            (CpuStorage::F32(a), CpuStorage::F32(b), CpuStorage::F32(c)) => {
                let ($a, $b, $c) = (
                    slice(a, $l1, $what)?,
                    slice(b, $l2, $what)?,
                    slice(c, $l3, $what)?,
                );
                CpuStorage::F32($body)
            }
            (CpuStorage::F64(a), CpuStorage::F64(b), CpuStorage::F64(c)) => {
                let ($a, $b, $c) = (
                    slice(a, $l1, $what)?,
                    slice(b, $l2, $what)?,
                    slice(c, $l3, $what)?,
                );
                CpuStorage::F64($body)
            }
            _ => {
                check_dtype($s1, $what)?;
                candle_core::bail!("{}: all operands must have the same dtype", $what)
            }
        }
    };
}

impl CustomOp3 for ConvOp {
    fn name(&self) -> &'static str {
        "conv-gemm"
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
        let s = self.0;
        if l1.shape().dims() != [s.b, s.c, s.h, s.w]
            || l2.shape().elem_count() != s.o * s.kc()
            || l3.shape().dims() != [s.b, s.o]
        {
            candle_core::bail!(
                "conv: x {:?}, weight {:?}, bias + t {:?} for {s:?}",
                l1.shape(),
                l2.shape(),
                l3.shape()
            );
        }
        let what = "conv";
        let out = dispatch!(s1, l1, s2, l2, s3, l3, what, |x, wt, bt| s.forward(x, wt, bt)?);
        Ok((out, Shape::from((s.b, s.o, s.h, s.w))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _bt: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let s = Conv {
            dw: weight.track_op(),
            ..self.0
        };
        let (nx, nw) = (s.b * s.c * s.hw(), s.o * s.kc());
        let packed =
            x.contiguous()?
                .apply_op3_no_bwd(&weight.contiguous()?, &grad.contiguous()?, &ConvGrad(s))?;
        let dx = packed.narrow(0, 0, nx)?.reshape(x.shape())?;
        let dw = packed.narrow(0, nx, nw)?.reshape(weight.shape())?;
        let dbt = packed.narrow(0, nx + nw, s.b * s.o)?.reshape((s.b, s.o))?;
        Ok((Some(dx), s.dw.then_some(dw), Some(dbt)))
    }
}

impl CustomOp3 for ConvGrad {
    fn name(&self) -> &'static str {
        "conv-gemm-backward"
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
        let s = self.0;
        if l3.shape().dims() != [s.b, s.o, s.h, s.w] {
            candle_core::bail!("conv backward: gradient {:?} for {s:?}", l3.shape());
        }
        let what = "conv backward";
        let out = dispatch!(s1, l1, s2, l2, s3, l3, what, |x, wt, dy| s.backward(x, wt, dy)?);
        let n = s.b * s.c * s.hw() + s.o * s.kc() + s.b * s.o;
        Ok((out, Shape::from(n)))
    }
}

/// `k` x `k` convolution (k 1, or 3 with padding 1) of `x` (B x C x H x W) with `weight`
/// (O x C x k x k) plus `bias` (O) and `t` (B x O) when given; `group` overrides the images per
/// group (tests).
fn conv(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    t: Option<&Tensor>,
    group: Option<usize>,
) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (o, wc, k, k2) = weight.dims4()?;
    if wc != c || k != k2 || (k != 1 && k != 3) {
        candle_core::bail!(
            "conv: weight {:?} for input {:?} (1x1 or 3x3 kernels)",
            weight.shape(),
            x.shape()
        );
    }
    let bt = match t {
        Some(t) => t.broadcast_add(&bias.unsqueeze(0)?)?,
        None => bias.unsqueeze(0)?.broadcast_as((b, o))?,
    };
    let per_image = c * k * k * h * w;
    let s = Conv {
        b,
        c,
        h,
        w,
        o,
        k,
        group: group.unwrap_or_else(|| group_size(per_image, b)).max(1),
        dw: true,
    };
    x.contiguous()?
        .apply_op3(&weight.contiguous()?, &bt.contiguous()?, ConvOp(s))
}

/// 3x3 padding-1 convolution on the CPU: `weight` O x C x 3 x 3, `bias` O, plus `t` (B x O) per
/// image and channel when given (module docs).
pub(crate) fn conv3x3(x: &Tensor, weight: &Tensor, bias: &Tensor, t: Option<&Tensor>) -> Result<Tensor> {
    conv(x, weight, bias, t, None)
}

/// 1x1 convolution on the CPU (`weight` O x C x 1 x 1, `bias` O).
pub(crate) fn conv1x1(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    conv(x, weight, bias, None, None)
}

#[cfg(test)]
#[path = "cpu_kernels_tests.rs"]
mod tests;
