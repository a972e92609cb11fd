//! im2col for 3x3, padding-1, stride-1 convolutions as a candle custom op with a col2im backward.
//! candle 0.11's CPU conv2d backward is a slow direct loop, and building im2col from tensor views
//! allocates a padded copy per view in the backward pass; this op is one pass each way.
//!
//! Layout: input B x C x H x W, output B x 9C x HW with row (dy*3 + dx)*C + c holding
//! input[c][y + dy - 1][x + dx - 1] (zero outside the image).

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

fn im2col<T: Copy + Default>(src: &[T], b: usize, c: usize, h: usize, w: usize) -> Vec<T> {
    let hw = h * w;
    let mut out = vec![T::default(); b * 9 * c * hw];
    for bi in 0..b {
        for k in 0..9 {
            let (dy, dx) = (k / 3, k % 3);
            for ci in 0..c {
                let src_plane = &src[(bi * c + ci) * hw..(bi * c + ci + 1) * hw];
                let row = ((bi * 9 + k) * c + ci) * hw;
                let dst = &mut out[row..row + hw];
                for y in 0..h {
                    let yy = y + dy;
                    if yy == 0 || yy > h {
                        continue;
                    }
                    let sy = yy - 1;
                    for x in 0..w {
                        let xx = x + dx;
                        if xx == 0 || xx > w {
                            continue;
                        }
                        dst[y * w + x] = src_plane[sy * w + xx - 1];
                    }
                }
            }
        }
    }
    out
}

fn col2im<T: Copy + Default + std::ops::AddAssign>(
    src: &[T],
    b: usize,
    c: usize,
    h: usize,
    w: usize,
) -> Vec<T> {
    let hw = h * w;
    let mut out = vec![T::default(); b * c * hw];
    for bi in 0..b {
        for k in 0..9 {
            let (dy, dx) = (k / 3, k % 3);
            for ci in 0..c {
                let row = ((bi * 9 + k) * c + ci) * hw;
                let col = &src[row..row + hw];
                let plane = &mut out[(bi * c + ci) * hw..(bi * c + ci + 1) * hw];
                for y in 0..h {
                    let yy = y + dy;
                    if yy == 0 || yy > h {
                        continue;
                    }
                    let sy = yy - 1;
                    for x in 0..w {
                        let xx = x + dx;
                        if xx == 0 || xx > w {
                            continue;
                        }
                        plane[sy * w + xx - 1] += col[y * w + x];
                    }
                }
            }
        }
    }
    out
}

fn contiguous<'a, T>(v: &'a [T], layout: &Layout) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => Err(candle_core::Error::Msg("im2col needs a contiguous tensor".into())),
    }
}

/// im2col (forward of the convolution's input side).
pub struct Im2Col;

/// col2im (the adjoint of [`Im2Col`]): `c`, `h`, `w` of the image.
pub struct Col2Im {
    c: usize,
    h: usize,
    w: usize,
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col3x3"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = l.shape().dims4()?;
        let shape = Shape::from((b, 9 * c, h * w));
        match s {
            CpuStorage::F32(v) => Ok((CpuStorage::F32(im2col(contiguous(v, l)?, b, c, h, w)), shape)),
            CpuStorage::F64(v) => Ok((CpuStorage::F64(im2col(contiguous(v, l)?, b, c, h, w)), shape)),
            _ => Err(candle_core::Error::Msg("im2col supports f32 and f64".into())),
        }
    }

    /// CUDA: `shaders/cuda/im2col3.cu` (forward only: the backward's col2im is CPU-only, so the
    /// UNet uses this op on CUDA only when sampling).
    #[cfg(feature = "cuda")]
    #[allow(
        unsafe_code,
        reason = "launching a CUDA kernel is unsafe by nature; its argument list matches the kernel's signature"
    )]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use candle_core::backend::BackendStorage as _;
        use candle_core::cuda_backend::WrapErr as _;
        use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg as _};
        const PTX: &str = include_str!("../../shaders/cuda/im2col3.ptx");
        let (b, c, h, w) = l.shape().dims4()?;
        let Some((start, _)) = l.contiguous_offsets() else {
            candle_core::bail!("im2col needs a contiguous tensor");
        };
        let dev = s.device();
        let x = s.as_cuda_slice::<f32>()?.slice(start..);
        let total = b * 9 * c * h * w;
        let out = dev.alloc_zeros::<f32>(total)?;
        let func = dev.get_or_load_custom_func("im2col3_f32", "rote_im2col3", PTX)?;
        let (ci, hi, wi, ti) = (c as i32, h as i32, w as i32, total as i64);
        let mut builder = func.builder();
        builder.arg(&x);
        builder.arg(&out);
        builder.arg(&ci);
        builder.arg(&hi);
        builder.arg(&wi);
        builder.arg(&ti);
        let cfg = LaunchConfig {
            grid_dim: (total.div_ceil(256) as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the argument list matches the kernel's signature.
        unsafe { builder.launch(cfg) }.w()?;
        Ok((
            candle_core::CudaStorage::wrap_cuda_slice(out, dev.clone()),
            Shape::from((b, 9 * c, h * w)),
        ))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (_, c, h, w) = arg.dims4()?;
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&Col2Im { c, h, w })?))
    }
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "col2im3x3"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, _, _) = l.shape().dims3()?;
        let (c, h, w) = (self.c, self.h, self.w);
        let shape = Shape::from((b, c, h, w));
        match s {
            CpuStorage::F32(v) => Ok((CpuStorage::F32(col2im(contiguous(v, l)?, b, c, h, w)), shape)),
            CpuStorage::F64(v) => Ok((CpuStorage::F64(col2im(contiguous(v, l)?, b, c, h, w)), shape)),
            _ => Err(candle_core::Error::Msg("col2im supports f32 and f64".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// im2col + matmul equals candle's conv2d, and the input gradient equals conv2d's.
    #[test]
    fn matches_conv2d_forward_and_backward() {
        let dev = Device::Cpu;
        let x: Vec<f64> = (0..2 * 3 * 5 * 4)
            .map(|i| ((i * 7919) % 23) as f64 / 23.0 - 0.5)
            .collect();
        let wv: Vec<f64> = (0..4 * 3 * 9)
            .map(|i| ((i * 104729) % 19) as f64 / 19.0 - 0.5)
            .collect();
        let xv = Var::from_vec(x, (2, 3, 5, 4), &dev).unwrap();
        let wt = Tensor::from_vec(wv, (4, 3, 3, 3), &dev).unwrap();
        let reference = xv.as_tensor().conv2d(&wt, 1, 1, 1, 1).unwrap();
        let cols = xv.as_tensor().apply_op1(Im2Col).unwrap();
        let wm = wt.permute((0, 2, 3, 1)).unwrap().reshape((4, 27)).unwrap();
        let ours = wm.broadcast_matmul(&cols).unwrap().reshape((2, 4, 5, 4)).unwrap();
        let diff = (&reference - &ours)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(diff < 1e-12, "{diff}");
        let g_ref = reference.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let g_ours = ours.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let a = g_ref.get(xv.as_tensor()).unwrap();
        let b = g_ours.get(xv.as_tensor()).unwrap();
        let diff = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(diff < 1e-9, "{diff}");
    }
}
