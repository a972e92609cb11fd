//! The backward pass of `fused_norm.rs`'s GroupNorm (+ SiLU) on the CPU, so that training runs
//! the normalisation as one op each way instead of candle's ~11 forward and ~20 backward ops.
//!
//! Per image and group of n values x_i (channel c(i)): mean m, rstd r = 1 / sqrt(var + eps),
//! xhat_i = (x_i - m) r, o_i = xhat_i w_c + b_c, y_i = SiLU(o_i) (or o_i). Given dL/dy:
//! g_i = dL/dy_i · SiLU'(o_i) with SiLU'(o) = s (1 + o (1 - s)), s = sigmoid(o);
//! dL/db_c = sum over c of g_i, dL/dw_c = sum over c of g_i xhat_i, and with h_i = g_i w_c,
//! dL/dx_i = r (h_i - mean(h) - xhat_i mean(h xhat)). Mean and variance summed in f64; the per-channel
//! sums in sixteen f32 lanes, added in f64; SiLU with `fast_math::exp_f32`. Reference: the gradients of
//! candle_nn's GroupNorm followed by `silu` (the test below).

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use std::sync::Mutex;

use super::fused_norm::{GroupNormSilu, GroupStats, cpu_forward, group_stats};

/// dL/dx, and per image the partial dL/dw and dL/db, packed into one flat output:
/// B·C·HW values of dL/dx, then B x 2 x C (w row, b row per image).
struct Grad {
    op: GroupNormSilu,
    w: Vec<f32>,
    b: Vec<f32>,
    stats: GroupStats,
}

/// [`GroupNormSilu`] for training on the CPU: its forward keeps each (image, group)'s mean and
/// rstd for the backward, which otherwise summed x twice more in f64 (those sums were 3.9% of a
/// 28x28 DDPM training step on one thread). The same numbers either way.
pub(crate) struct Tracked {
    op: GroupNormSilu,
    stats: Mutex<GroupStats>,
}

impl Tracked {
    pub(crate) fn new(op: GroupNormSilu) -> Self {
        Self {
            op,
            stats: Mutex::new(Vec::new()),
        }
    }

    /// The statistics the last forward kept.
    fn stats(&self) -> Result<std::sync::MutexGuard<'_, GroupStats>> {
        self.stats
            .lock()
            .map_err(|_| candle_core::Error::Msg("group_norm_silu: statistics lock poisoned".into()))
    }
}

impl CustomOp3 for Tracked {
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
        let (y, stats) = cpu_forward(self.op, (s1, l1), (s2, l2), (s3, l3))?;
        *self.stats()? = stats;
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let stats = self.stats()?.clone();
        let (dx, dw, db) = backward_with(x, weight, bias, grad, self.op, stats)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// `stats`: each (image, group)'s mean and rstd from the forward when it kept them
/// ([`Tracked`]), else they are summed again ([`group_stats`], the same numbers).
#[allow(clippy::too_many_arguments, reason = "the op's operands and sizes")]
fn grad_cpu(
    x: &[f32],
    dy: &[f32],
    w: &[f32],
    bias: &[f32],
    c: usize,
    hw: usize,
    op: GroupNormSilu,
    stats: &[(f32, f32)],
) -> Vec<f32> {
    let img = c * hw;
    let nb = x.len() / img.max(1);
    let cpg = c / op.groups;
    let n = cpg * hw;
    let mut out = crate::cpu_slices::zeros_par(x.len() + 2 * nb * c, 0f32);
    if img == 0 || n == 0 {
        return out;
    }
    let (dx, dwb) = out.split_at_mut(x.len());
    dx.par_chunks_exact_mut(img)
        .zip(dwb.par_chunks_exact_mut(2 * c))
        .enumerate()
        .for_each(|(bi, (dx, dwb))| {
            let (dw, db) = dwb.split_at_mut(c);
            let mut h = vec![0f32; n];
            for g in 0..op.groups {
                let xs = &x[bi * img + g * n..bi * img + (g + 1) * n];
                let gs = &dy[bi * img + g * n..bi * img + (g + 1) * n];
                let (mean32, r32) = match stats.get(bi * op.groups + g) {
                    Some(&st) => st,
                    None => group_stats(xs, op.eps),
                };
                let (mut sum_h, mut sum_hx) = (0f64, 0f64);
                for k in 0..cpg {
                    let ch = g * cpg + k;
                    let range = k * hw..(k + 1) * hw;
                    let [sb, sw, sh, shx] = channel_grad(
                        &xs[range.clone()],
                        &gs[range.clone()],
                        &mut h[range],
                        (mean32, r32, w[ch], bias[ch]),
                        op.silu,
                    );
                    dw[ch] = sw as f32;
                    db[ch] = sb as f32;
                    sum_h += sh;
                    sum_hx += shx;
                }
                let (mh, mhx) = ((sum_h / n as f64) as f32, (sum_hx / n as f64) as f32);
                dx_pass(&mut dx[g * n..(g + 1) * n], xs, &h, (mean32, r32, mh, mhx));
            }
        });
    out
}

/// dL/dx of one group: r (h - mean(h) - xhat mean(h xhat)).
#[multiversion::multiversion(targets = "simd")]
fn dx_pass(dx: &mut [f32], xs: &[f32], h: &[f32], (mean, r, mh, mhx): (f32, f32, f32, f32)) {
    for ((d, &xv), &hv) in dx.iter_mut().zip(xs).zip(h) {
        let xhat = (xv - mean) * r;
        *d = r * (hv - mh - xhat * mhx);
    }
}

/// f32 lanes of [`channel_grad`]'s sums: 16 fill an AVX-512 register (8 left the CPU's 512-bit
/// units half used).
const LANES: usize = 16;

/// One channel's part of the backward (module docs), [`LANES`] at a time in f32: writes
/// h_i = g_i w_c and returns the sums of g_i, g_i xhat_i, h_i and h_i xhat_i (lanes added in f64).
/// Compiled for AVX-512, AVX2 and the baseline, chosen at run time.
#[multiversion::multiversion(targets = "simd")]
fn channel_grad(
    xs: &[f32],
    gs: &[f32],
    h: &mut [f32],
    (mean, r, w, b): (f32, f32, f32, f32),
    silu: bool,
) -> [f64; 4] {
    let mut acc = [[0f32; LANES]; 4];
    let mut tail = [0f64; 4];
    let one = |xv: f32, gv: f32| {
        let xhat = (xv - mean) * r;
        let gi = if silu {
            let o = xhat * w + b;
            let s = 1.0 / (1.0 + crate::fast_math::exp_f32(-o));
            gv * s * (1.0 + o * (1.0 - s))
        } else {
            gv
        };
        (xhat, gi)
    };
    let n8 = xs.len() / LANES * LANES;
    for ((xc, gc), hc) in xs[..n8]
        .chunks_exact(LANES)
        .zip(gs[..n8].chunks_exact(LANES))
        .zip(h[..n8].chunks_exact_mut(LANES))
    {
        for l in 0..LANES {
            let (xhat, gi) = one(xc[l], gc[l]);
            let hv = gi * w;
            hc[l] = hv;
            acc[0][l] += gi;
            acc[1][l] += gi * xhat;
            acc[2][l] += hv;
            acc[3][l] += hv * xhat;
        }
    }
    for i in n8..xs.len() {
        let (xhat, gi) = one(xs[i], gs[i]);
        let hv = gi * w;
        h[i] = hv;
        for (t, v) in tail.iter_mut().zip([gi, gi * xhat, hv, hv * xhat]) {
            *t += f64::from(v);
        }
    }
    let mut out = tail;
    for (o, a) in out.iter_mut().zip(acc) {
        *o += a.iter().map(|&v| f64::from(v)).sum::<f64>();
    }
    out
}

impl CustomOp2 for Grad {
    fn name(&self) -> &'static str {
        "group-norm-silu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = l1.shape().dims4()?;
        if l2.shape() != l1.shape() || self.w.len() != c || self.b.len() != c || c % self.op.groups != 0 {
            candle_core::bail!(
                "group_norm_silu grad: shapes {:?} / {:?}, {c} channels",
                l1.shape(),
                l2.shape()
            );
        }
        let (Some((a1, z1)), Some((a2, z2))) = (l1.contiguous_offsets(), l2.contiguous_offsets()) else {
            candle_core::bail!("group_norm_silu grad: contiguous inputs only");
        };
        let (CpuStorage::F32(x), CpuStorage::F32(dy)) = (s1, s2) else {
            candle_core::bail!("group_norm_silu grad: f32 only");
        };
        let out = grad_cpu(
            &x[a1..z1],
            &dy[a2..z2],
            &self.w,
            &self.b,
            c,
            h * w,
            self.op,
            &self.stats,
        );
        Ok((CpuStorage::F32(out), Shape::from(b * c * h * w + 2 * b * c)))
    }
}

/// Gradients of [`GroupNormSilu`] with respect to x, weight and bias.
pub(crate) fn backward(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    grad: &Tensor,
    op: GroupNormSilu,
) -> Result<(Tensor, Tensor, Tensor)> {
    backward_with(x, weight, bias, grad, op, Vec::new())
}

/// [`backward`] given the forward's statistics (empty: summed again).
fn backward_with(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    grad: &Tensor,
    op: GroupNormSilu,
    stats: GroupStats,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (b, c, _, _) = x.dims4()?;
    let g = Grad {
        op,
        w: weight.flatten_all()?.to_vec1::<f32>()?,
        b: bias.flatten_all()?.to_vec1::<f32>()?,
        stats,
    };
    let n = x.elem_count();
    let packed = x.contiguous()?.apply_op2_no_bwd(&grad.contiguous()?, &g)?;
    let dx = packed.narrow(0, 0, n)?.reshape(x.shape())?;
    let dwb = packed.narrow(0, n, 2 * b * c)?.reshape((b, 2, c))?.sum(0)?;
    let dw = dwb.get(0)?.reshape(weight.shape())?;
    let db = dwb.get(1)?.reshape(bias.shape())?;
    Ok((dx, dw, db))
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Module as _, Tensor, Var};
    use candle_nn::{VarBuilder, VarMap};

    use super::super::fused_norm::group_norm_silu_tracked;
    use super::*;

    fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
        let d = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        d / b
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            .max(1e-30)
    }

    /// The op's gradients (x, weight, bias) equal those of candle_nn's GroupNorm + silu.
    #[test]
    fn gradients_match_candle_group_norm_and_silu() {
        let dev = Device::Cpu;
        for (c, groups, silu) in [(8, 8, true), (16, 4, true), (6, 2, false), (3, 1, true)] {
            let vm = VarMap::new();
            let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
            let gn = candle_nn::group_norm(groups, c, 1e-5, vb.clone()).unwrap();
            let w = vb.get(c, "weight").unwrap();
            let b = vb.get(c, "bias").unwrap();
            {
                let data = vm.data().lock().unwrap();
                data["weight"]
                    .set(&Tensor::rand(0.5f32, 1.5, c, &dev).unwrap())
                    .unwrap();
                data["bias"]
                    .set(&Tensor::rand(-0.5f32, 0.5, c, &dev).unwrap())
                    .unwrap();
            }
            let x = Var::from_tensor(
                &((Tensor::randn(0f32, 1., (3, c, 5, 7), &dev).unwrap() * 3.0).unwrap() + 1.0).unwrap(),
            )
            .unwrap();
            let weights = Tensor::randn(0f32, 1., (3, c, 5, 7), &dev).unwrap();
            let want = gn.forward(&x).unwrap();
            let want = if silu { want.silu().unwrap() } else { want };
            let op = GroupNormSilu {
                groups,
                eps: 1e-5,
                silu,
            };
            let got = group_norm_silu_tracked(&x, &w, &b, op).unwrap();
            assert!(max_rel(&got, &want) < 1e-5);
            let g_want = (&want * &weights).unwrap().sum_all().unwrap().backward().unwrap();
            let g_got = (&got * &weights).unwrap().sum_all().unwrap().backward().unwrap();
            for (name, t) in [("x", x.as_tensor()), ("weight", &w), ("bias", &b)] {
                let (a, r) = (g_got.get(t).unwrap(), g_want.get(t).unwrap());
                assert!(
                    max_rel(a, r) < 1e-5,
                    "c {c} groups {groups} silu {silu}: d{name} {}",
                    max_rel(a, r)
                );
            }
        }
    }
}
