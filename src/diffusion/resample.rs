//! The UNet's 2x resampling on the CPU as single-pass ops (candle's versions go through strided
//! copies and reductions element by element):
//!
//! - [`Up2x`]: nearest-neighbour upsampling, B x C x H x W to B x C x 2H x 2W,
//!   `out[2y + i][2x + j] = in[y][x]`. Reference: candle's broadcast and reshape
//!   (`unet.rs`'s `nearest_up`). Backward: the sum of each 2x2 block.
//! - [`Down2x`]: 2x2 average pooling, B x C x 2H x 2W to B x C x H x W,
//!   `out[y][x] = ((in[2y][2x] + in[2y][2x+1]) / 2 + (in[2y+1][2x] + in[2y+1][2x+1]) / 2) / 2`,
//!   the order of candle's `mean(5)` then `mean(3)` (`unet.rs`'s `avg_down`, the reference).
//!   Backward: [`Up2x`] of the gradient over 4.
//! - [`Sum2x2`]: the sum of each 2x2 block, `(in[2y][2x] + in[2y][2x+1]) + (in[2y+1][2x] +
//!   in[2y+1][2x+1])`: [`Up2x`]'s backward (reference: candle's `sum(5)` then `sum(3)`, equal to
//!   1e-12 in f64), one pass where candle's strided reductions took 2.6% of a 28x28 DDPM
//!   training step on one thread while the other waited.
//!
//! f32 and f64, split across planes with rayon.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

fn plane_len(l: &Layout) -> Result<(usize, usize, usize, usize)> {
    let (b, c, h, w) = l.shape().dims4()?;
    if l.contiguous_offsets().is_none() {
        candle_core::bail!("2x resampling needs a contiguous tensor");
    }
    Ok((b, c, h, w))
}

fn up2x<T: WithDType>(src: &[T], planes: usize, h: usize, w: usize) -> Vec<T> {
    let mut out = crate::cpu_slices::zeros_par(planes * 4 * h * w, T::zero());
    if h * w == 0 {
        return out;
    }
    out.par_chunks_exact_mut(4 * h * w)
        .zip(src.par_chunks_exact(h * w))
        .for_each(|(dst, p)| {
            for (y, row) in p.chunks_exact(w).enumerate() {
                let (top, bottom) = dst[4 * y * w..4 * (y + 1) * w].split_at_mut(2 * w);
                for (pair, &v) in top.chunks_exact_mut(2).zip(row) {
                    pair[0] = v;
                    pair[1] = v;
                }
                bottom.copy_from_slice(top);
            }
        });
    out
}

/// 2x2 blocks averaged (`mean`, [`Down2x`]) or summed ([`Sum2x2`]).
fn down2x<T: WithDType>(src: &[T], planes: usize, h: usize, w: usize, mean: bool) -> Vec<T> {
    let (ho, wo) = (h / 2, w / 2);
    let mut out = crate::cpu_slices::zeros_par(planes * ho * wo, T::zero());
    if ho * wo == 0 {
        return out;
    }
    let half = T::from_f64(0.5);
    // The two rows' pair sums: averaged in candle's order (`mean(5)` then `mean(3)`), or added.
    let combine = |p0: T, p1: T| {
        if mean {
            (p0 * half + p1 * half) * half
        } else {
            p0 + p1
        }
    };
    out.par_chunks_exact_mut(ho * wo)
        .zip(src.par_chunks_exact(h * w))
        .for_each(|(dst, p)| {
            for (y, row) in dst.chunks_exact_mut(wo).enumerate() {
                let (r0, r1) = (&p[2 * y * w..2 * y * w + w], &p[(2 * y + 1) * w..(2 * y + 2) * w]);
                for (x, d) in row.iter_mut().enumerate() {
                    *d = combine(r0[2 * x] + r0[2 * x + 1], r1[2 * x] + r1[2 * x + 1]);
                }
            }
        });
    out
}

/// Nearest-neighbour 2x upsampling (module docs).
pub(crate) struct Up2x;

/// 2x2 average pooling (module docs).
pub(crate) struct Down2x;

/// The sum of each 2x2 block (module docs); no backward of its own (it is [`Up2x`]'s).
struct Sum2x2;

impl CustomOp1 for Up2x {
    fn name(&self) -> &'static str {
        "nearest-up-2x"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = plane_len(l)?;
        let shape = Shape::from((b, c, 2 * h, 2 * w));
        let (lo, hi) = (l.start_offset(), l.start_offset() + b * c * h * w);
        match s {
            CpuStorage::F32(v) => Ok((CpuStorage::F32(up2x(&v[lo..hi], b * c, h, w)), shape)),
            CpuStorage::F64(v) => Ok((CpuStorage::F64(up2x(&v[lo..hi], b * c, h, w)), shape)),
            _ => candle_core::bail!("nearest-up supports f32 and f64"),
        }
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        if grad.device().is_cpu() && matches!(grad.dtype(), DType::F32 | DType::F64) {
            return Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&Sum2x2)?));
        }
        let (b, c, h, w) = arg.dims4()?;
        Ok(Some(grad.reshape((b, c, h, 2, w, 2))?.sum(5)?.sum(3)?))
    }
}

/// [`Down2x`] (`mean`) or [`Sum2x2`] on a CPU storage.
fn down_storage(s: &CpuStorage, l: &Layout, mean: bool) -> Result<(CpuStorage, Shape)> {
    let (b, c, h, w) = plane_len(l)?;
    if h % 2 != 0 || w % 2 != 0 {
        candle_core::bail!("2x2 pooling needs even sides, got {h}x{w}");
    }
    let shape = Shape::from((b, c, h / 2, w / 2));
    let (lo, hi) = (l.start_offset(), l.start_offset() + b * c * h * w);
    match s {
        CpuStorage::F32(v) => Ok((CpuStorage::F32(down2x(&v[lo..hi], b * c, h, w, mean)), shape)),
        CpuStorage::F64(v) => Ok((CpuStorage::F64(down2x(&v[lo..hi], b * c, h, w, mean)), shape)),
        _ => candle_core::bail!("2x2 pooling supports f32 and f64"),
    }
}

impl CustomOp1 for Sum2x2 {
    fn name(&self) -> &'static str {
        "sum-2x2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        down_storage(s, l, false)
    }
}

impl CustomOp1 for Down2x {
    fn name(&self) -> &'static str {
        "avg-down-2x"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        down_storage(s, l, true)
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some((grad.contiguous()?.apply_op1(Up2x)? * 0.25)?))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor, Var};

    use super::*;

    fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    /// Both ops equal candle's reshape/broadcast/mean versions, forward and gradient.
    #[test]
    fn match_candle_reshape_and_mean_forward_and_backward() {
        let dev = Device::Cpu;
        let (b, c, h, w) = (2, 3, 4, 6);
        let vals: Vec<f64> = (0..b * c * h * w)
            .map(|i| ((i * 7919) % 31) as f64 / 31.0 - 0.5)
            .collect();
        let x = Var::from_vec(vals, (b, c, h, w), &dev).unwrap();
        let weights = Tensor::rand(0f64, 1.0, (b, c, 2 * h, 2 * w), &dev).unwrap();
        let up_ref = x
            .reshape((b, c, h, 1, w, 1))
            .unwrap()
            .broadcast_as((b, c, h, 2, w, 2))
            .unwrap()
            .reshape((b, c, 2 * h, 2 * w))
            .unwrap();
        let up = x.apply_op1(Up2x).unwrap();
        assert_eq!(max_abs(&up, &up_ref), 0.0);
        let g_ref = (&up_ref * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g = (&up * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(max_abs(g.get(&x).unwrap(), g_ref.get(&x).unwrap()) < 1e-12);

        let wd = Tensor::rand(0f64, 1.0, (b, c, h / 2, w / 2), &dev).unwrap();
        let down_ref = x
            .reshape((b, c, h / 2, 2, w / 2, 2))
            .unwrap()
            .mean(5)
            .unwrap()
            .mean(3)
            .unwrap();
        let down = x.apply_op1(Down2x).unwrap();
        assert!(max_abs(&down, &down_ref) < 1e-15);
        let g_ref = (&down_ref * &wd).unwrap().sum_all().unwrap().backward().unwrap();
        let g = (&down * &wd).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(max_abs(g.get(&x).unwrap(), g_ref.get(&x).unwrap()) < 1e-12);

        // f32 too.
        let x32 = x.to_dtype(DType::F32).unwrap();
        let d32 = x32.apply_op1(Down2x).unwrap().to_dtype(DType::F64).unwrap();
        assert!(max_abs(&d32, &down_ref) < 1e-6);
    }
}
