//! GroupNorm followed by SiLU as one operation for the UNet's sampling pass on CUDA: candle's
//! GroupNorm is about 11 kernels with 6 passes over the activations, this is one kernel
//! (`shaders/cuda/group_norm_silu.cu`, committed as PTX). Forward only on CUDA: training there
//! keeps candle's differentiable ops; on the CPU training uses this op too, with its backward in
//! `group_norm_grad.rs`. The CPU twin gives the same numbers (to rounding), backs the tests and is
//! the CPU sampling path (one pass, split across threads, instead of candle's ~11 ops).

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

/// GroupNorm with `groups` groups and `eps`, then SiLU when `silu`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GroupNormSilu {
    pub groups: usize,
    pub eps: f32,
    pub silu: bool,
}

/// Checks the shapes and returns (batch, channels, height x width).
fn dims(l1: &Layout, l2: &Layout, l3: &Layout, groups: usize) -> Result<(usize, usize, usize)> {
    let (b, c, h, w) = l1.shape().dims4()?;
    if groups == 0 || c % groups != 0 || l2.shape().elem_count() != c || l3.shape().elem_count() != c {
        candle_core::bail!("group_norm_silu: {c} channels, {groups} groups, weight/bias of the wrong size");
    }
    if !(l1.is_contiguous() && l2.is_contiguous() && l3.is_contiguous()) {
        candle_core::bail!("group_norm_silu: contiguous inputs only");
    }
    Ok((b, c, h * w))
}

/// One (image, group) of the normalisation: y = (x - mean) rstd w_c + b_c, then SiLU when
/// `silu`, channel by channel (`hw` values each). Compiled for AVX-512, AVX2 and the baseline,
/// chosen at run time.
#[multiversion::multiversion(targets = "simd")]
fn normalise_group(
    ys: &mut [f32],
    xs: &[f32],
    (w, b): (&[f32], &[f32]),
    (mean, rstd): (f32, f32),
    hw: usize,
    silu: bool,
) {
    for (k, (xc, yc)) in xs.chunks_exact(hw).zip(ys.chunks_exact_mut(hw)).enumerate() {
        let (wc, bc) = (w[k], b[k]);
        for (yv, &xv) in yc.iter_mut().zip(xc) {
            *yv = (xv - mean) * rstd * wc + bc;
        }
        if silu {
            for yv in yc.iter_mut() {
                *yv /= 1.0 + crate::fast_math::exp_f32(-*yv);
            }
        }
    }
}

/// The sum of `f` over `xs` with eight partial sums, so that the loop vectorizes.
#[inline]
pub(crate) fn sum8(xs: &[f32], f: impl Fn(f32) -> f64) -> f64 {
    let mut acc = [0f64; 8];
    let mut chunks = xs.chunks_exact(8);
    for ch in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(ch) {
            *a += f(v);
        }
    }
    acc.iter().sum::<f64>() + chunks.remainder().iter().map(|&v| f(v)).sum::<f64>()
}

/// Each (image, group)'s mean and rstd, image by image.
pub(crate) type GroupStats = Vec<(f32, f32)>;

/// The mean and rstd (as f32) of one (image, group) of `n` values, summed in f64. Compiled for
/// AVX-512, AVX2 and the baseline (eight f64 lanes where the CPU has them).
#[multiversion::multiversion(targets = "simd")]
pub(crate) fn group_stats(xs: &[f32], eps: f32) -> (f32, f32) {
    let n = xs.len().max(1) as f64;
    let mean = sum8(xs, f64::from) / n;
    let var = sum8(xs, |v| (f64::from(v) - mean).powi(2)) / n;
    (mean as f32, (1.0 / (var + f64::from(eps)).sqrt()) as f32)
}

/// The CPU twin on contiguous slices, one (image, group) at a time split across threads: mean
/// and variance summed in f64 ([`group_stats`]), the normalisation in f32, SiLU with
/// `fast_math::exp_f32` (a vectorizable exp within 2 ulp of `f32::exp`). Returns y and each
/// (image, group)'s statistics, in that order (what the backward needs again:
/// `group_norm_grad::Tracked`).
pub(crate) fn group_norm_silu_cpu_stats(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    c: usize,
    hw: usize,
    op: GroupNormSilu,
) -> (Vec<f32>, GroupStats) {
    use rayon::prelude::*;
    let cpg = c / op.groups;
    let n = cpg * hw;
    let mut y = crate::cpu_slices::zeros_par(x.len(), 0f32);
    if n == 0 {
        return (y, Vec::new());
    }
    let mut stats = vec![(0f32, 0f32); x.len() / n];
    y.par_chunks_exact_mut(n)
        .zip(x.par_chunks_exact(n))
        .zip(stats.par_iter_mut())
        .enumerate()
        .for_each(|(gi, ((ys, xs), st))| {
            let g = gi % op.groups;
            *st = group_stats(xs, op.eps);
            let (wg, bg) = (&w[g * cpg..(g + 1) * cpg], &b[g * cpg..(g + 1) * cpg]);
            normalise_group(ys, xs, (wg, bg), *st, hw, op.silu);
        });
    (y, stats)
}

/// The op on CPU storages (x, weight, bias): y and each (image, group)'s statistics
/// ([`group_norm_silu_cpu_stats`]).
pub(crate) fn cpu_forward(
    op: GroupNormSilu,
    (s1, l1): (&CpuStorage, &Layout),
    (s2, l2): (&CpuStorage, &Layout),
    (s3, l3): (&CpuStorage, &Layout),
) -> Result<(Vec<f32>, GroupStats)> {
    let (_, c, hw) = dims(l1, l2, l3, op.groups)?;
    let (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(b)) = (s1, s2, s3) else {
        candle_core::bail!("group_norm_silu: f32 only");
    };
    let x = &x[l1.start_offset()..l1.start_offset() + l1.shape().elem_count()];
    let w = &w[l2.start_offset()..l2.start_offset() + c];
    let b = &b[l3.start_offset()..l3.start_offset() + c];
    Ok(group_norm_silu_cpu_stats(x, w, b, c, hw, op))
}

impl CustomOp3 for GroupNormSilu {
    fn name(&self) -> &'static str {
        "group-norm-silu"
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
        let (y, _) = cpu_forward(*self, (s1, l1), (s2, l2), (s3, l3))?;
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    /// CPU only (`group_norm_grad.rs`): the UNet trains with this op on the CPU, with candle's
    /// differentiable ops on CUDA.
    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = super::group_norm_grad::backward(x, weight, bias, grad, *self)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }

    #[cfg(feature = "cuda")]
    #[allow(
        unsafe_code,
        reason = "launching a CUDA kernel is unsafe by nature; its argument list matches the kernel's signature"
    )]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use candle_core::backend::BackendStorage as _;
        use candle_core::cuda_backend::WrapErr as _;
        use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg as _};
        const PTX: &str = include_str!("../../shaders/cuda/group_norm_silu.ptx");
        let (bsz, c, hw) = dims(l1, l2, l3, self.groups)?;
        let dev = s1.device();
        let x = s1.as_cuda_slice::<f32>()?.slice(l1.start_offset()..);
        let w = s2.as_cuda_slice::<f32>()?.slice(l2.start_offset()..);
        let b = s3.as_cuda_slice::<f32>()?.slice(l3.start_offset()..);
        let func = dev.get_or_load_custom_func("group_norm_silu_f32", "rote_group_norm_silu", PTX)?;
        let out = dev.alloc_zeros::<f32>(l1.shape().elem_count())?;
        let (ci, hwi, gi, silu) = (c as i32, hw as i32, self.groups as i32, i32::from(self.silu));
        let eps = self.eps;
        let mut builder = func.builder();
        builder.arg(&x);
        builder.arg(&w);
        builder.arg(&b);
        builder.arg(&out);
        builder.arg(&ci);
        builder.arg(&hwi);
        builder.arg(&gi);
        builder.arg(&eps);
        builder.arg(&silu);
        let cfg = LaunchConfig {
            grid_dim: ((bsz * self.groups) as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the argument list matches the kernel's signature.
        unsafe { builder.launch(cfg) }.w()?;
        Ok((
            candle_core::CudaStorage::wrap_cuda_slice(out, dev.clone()),
            l1.shape().clone(),
        ))
    }
}

/// GroupNorm (+ SiLU) of `x` with `weight` and `bias` as one operation (no gradient).
pub(crate) fn group_norm_silu(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    op: GroupNormSilu,
) -> Result<Tensor> {
    x.contiguous()?.apply_op3_no_bwd(weight, bias, &op)
}

/// [`group_norm_silu`] with a gradient (CPU, f32: `group_norm_grad.rs`), for training.
pub(crate) fn group_norm_silu_tracked(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    op: GroupNormSilu,
) -> Result<Tensor> {
    x.contiguous()?
        .apply_op3(weight, bias, super::group_norm_grad::Tracked::new(op))
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Module as _};
    use candle_nn::{VarBuilder, VarMap};

    use super::*;

    /// The fused op gives candle_nn's GroupNorm followed by SiLU.
    #[test]
    fn matches_candle_group_norm_and_silu() {
        let dev = Device::Cpu;
        for (c, groups) in [(8, 8), (16, 4), (3, 1)] {
            let vm = VarMap::new();
            let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
            let gn = candle_nn::group_norm(groups, c, 1e-5, vb.clone()).unwrap();
            {
                let data = vm.data().lock().unwrap();
                data["weight"]
                    .set(&Tensor::rand(0.5f32, 1.5, c, &dev).unwrap())
                    .unwrap();
                data["bias"]
                    .set(&Tensor::rand(-0.5f32, 0.5, c, &dev).unwrap())
                    .unwrap();
            }
            let w = vb.get(c, "weight").unwrap();
            let b = vb.get(c, "bias").unwrap();
            let x = (Tensor::randn(0f32, 1., (3, c, 5, 7), &dev).unwrap() * 3.0).unwrap();
            let x = (x + 2.0).unwrap();
            for silu in [false, true] {
                let want = gn.forward(&x).unwrap();
                let want = if silu { want.silu().unwrap() } else { want };
                let op = GroupNormSilu {
                    groups,
                    eps: 1e-5,
                    silu,
                };
                let got = group_norm_silu(&x, &w, &b, op).unwrap();
                let diff = (got - want)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert!(diff < 1e-5, "c {c} groups {groups} silu {silu}: {diff}");
            }
        }
    }
}

/// `x + bias[c] (+ t[b][c])` over contiguous B x C x H x W f32 activations, in one kernel on CUDA
/// (`shaders/cuda/add_channel.cu`): a convolution's bias and the UNet's time embedding together.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AddChannel {
    /// Whether the third input (B x C) is added too.
    pub with_t: bool,
}

/// The CPU twin.
pub(crate) fn add_channel_cpu(x: &[f32], bias: &[f32], t: Option<&[f32]>, c: usize, hw: usize) -> Vec<f32> {
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let bc = i / hw;
            v + bias[bc % c] + t.map_or(0.0, |t| t[bc])
        })
        .collect()
}

fn add_dims(l1: &Layout, l2: &Layout, l3: &Layout, with_t: bool) -> Result<(usize, usize, usize)> {
    let (b, c, h, w) = l1.shape().dims4()?;
    if l2.shape().elem_count() != c || (with_t && l3.shape().elem_count() != b * c) {
        candle_core::bail!("add_channel: bias must have {c} values and t {b} x {c}");
    }
    if !(l1.is_contiguous() && l2.is_contiguous() && l3.is_contiguous()) {
        candle_core::bail!("add_channel: contiguous inputs only");
    }
    Ok((b, c, h * w))
}

impl CustomOp3 for AddChannel {
    fn name(&self) -> &'static str {
        "add-channel"
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
        let (b, c, hw) = add_dims(l1, l2, l3, self.with_t)?;
        let (CpuStorage::F32(x), CpuStorage::F32(bias), CpuStorage::F32(t)) = (s1, s2, s3) else {
            candle_core::bail!("add_channel: f32 only");
        };
        let x = &x[l1.start_offset()..l1.start_offset() + b * c * hw];
        let bias = &bias[l2.start_offset()..l2.start_offset() + c];
        let t = self
            .with_t
            .then(|| &t[l3.start_offset()..l3.start_offset() + b * c]);
        Ok((
            CpuStorage::F32(add_channel_cpu(x, bias, t, c, hw)),
            l1.shape().clone(),
        ))
    }

    #[cfg(feature = "cuda")]
    #[allow(
        unsafe_code,
        reason = "launching a CUDA kernel is unsafe by nature; its argument list matches the kernel's signature"
    )]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use candle_core::backend::BackendStorage as _;
        use candle_core::cuda_backend::WrapErr as _;
        use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg as _};
        const PTX: &str = include_str!("../../shaders/cuda/add_channel.ptx");
        let (b, c, hw) = add_dims(l1, l2, l3, self.with_t)?;
        let dev = s1.device();
        let x = s1.as_cuda_slice::<f32>()?.slice(l1.start_offset()..);
        let bias = s2.as_cuda_slice::<f32>()?.slice(l2.start_offset()..);
        let t = s3.as_cuda_slice::<f32>()?.slice(l3.start_offset()..);
        let total = b * c * hw;
        let out = dev.alloc_zeros::<f32>(total)?;
        let func = dev.get_or_load_custom_func("add_channel_f32", "rote_add_channel", PTX)?;
        let (ci, hwi, ti, with_t) = (c as i32, hw as i32, total as i64, i32::from(self.with_t));
        let mut builder = func.builder();
        builder.arg(&x);
        builder.arg(&bias);
        builder.arg(&t);
        builder.arg(&out);
        builder.arg(&ci);
        builder.arg(&hwi);
        builder.arg(&ti);
        builder.arg(&with_t);
        let cfg = LaunchConfig {
            grid_dim: (total.div_ceil(256) as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the argument list matches the kernel's signature.
        unsafe { builder.launch(cfg) }.w()?;
        Ok((
            candle_core::CudaStorage::wrap_cuda_slice(out, dev.clone()),
            l1.shape().clone(),
        ))
    }
}

/// `x + bias` per channel, plus `t` (B x C) per image and channel when given; no gradient.
pub(crate) fn add_channel(x: &Tensor, bias: &Tensor, t: Option<&Tensor>) -> Result<Tensor> {
    let op = AddChannel { with_t: t.is_some() };
    x.contiguous()?
        .apply_op3_no_bwd(&bias.contiguous()?, &t.unwrap_or(bias).contiguous()?, &op)
}

#[cfg(test)]
mod add_tests {
    use candle_core::{Device, Tensor};

    use super::add_channel;

    #[test]
    fn matches_broadcast_adds() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1., (3, 5, 4, 6), &dev).unwrap();
        let bias = Tensor::randn(0f32, 1., 5, &dev).unwrap();
        let t = Tensor::randn(0f32, 1., (3, 5), &dev).unwrap();
        let want = x
            .broadcast_add(&bias.reshape((1, 5, 1, 1)).unwrap())
            .unwrap()
            .broadcast_add(&t.reshape((3, 5, 1, 1)).unwrap())
            .unwrap();
        let got = add_channel(&x, &bias, Some(&t)).unwrap();
        let d = (got - &want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-6, "{d}");
        let want_b = x.broadcast_add(&bias.reshape((1, 5, 1, 1)).unwrap()).unwrap();
        let got_b = add_channel(&x, &bias, None).unwrap();
        let d = (got_b - want_b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-6, "{d}");
    }
}
