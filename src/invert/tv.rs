//! MI-FACE with a total-variation prior (Mahendran and Vedaldi, *Understanding Deep Image
//! Representations by Inverting Them*, CVPR 2015): gradient descent on
//!
//! ```text
//! L(x) = -log p_label(x) + tv_weight * TV_beta(x),
//! TV_beta(x) = sum_{i,j} ((x_{i,j+1} - x_{i,j})^2 + (x_{i+1,j} - x_{i,j})^2)^(beta/2)
//! ```
//!
//! clipped to [0, 1] after every step, with MI-FACE's loop (alpha, beta; gamma applies to L and is
//! off by default) and the argmin-L iterate returned. The prior removes the high-frequency
//! "adversarial" patterns that plain gradient steps produce.

use candle_core::{Device, Tensor};

use super::miface::{Loss, descend};
use super::{Inversion, InvertConfig, InvertTarget, Objective};
use crate::error::CoreResult;
use crate::job::JobCtx;

/// TV_beta of every image of `x` (B, C, H, W), summed over channels: a (B,) tensor. For beta != 2
/// a tiny epsilon keeps the gradient finite where the image is flat.
pub fn tv_per_image(x: &Tensor, beta: f64) -> candle_core::Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if h < 2 || w < 2 {
        return Tensor::zeros(x.dim(0)?, x.dtype(), x.device());
    }
    let base = x.narrow(2, 0, h - 1)?.narrow(3, 0, w - 1)?;
    let right = x.narrow(2, 0, h - 1)?.narrow(3, 1, w - 1)?;
    let down = x.narrow(2, 1, h - 1)?.narrow(3, 0, w - 1)?;
    let s = ((right - &base)?.sqr()? + (down - &base)?.sqr()?)?;
    let s = if (beta - 2.0).abs() < 1e-12 {
        s
    } else {
        (s + 1e-8)?.powf(beta / 2.0)?
    };
    s.flatten_from(1)?.sum(1)
}

/// Inverts each class of `classes` with the TV prior (`cfg.tv_weight`, `cfg.tv_beta`).
pub fn invert_tv(
    model: &dyn InvertTarget,
    dev: &Device,
    input: [usize; 3],
    classes: &[usize],
    cfg: &InvertConfig,
    ctx: &JobCtx<'_>,
) -> CoreResult<Vec<Inversion>> {
    let loss = Loss {
        objective: Objective::LogProb,
        tv: Some((cfg.tv_weight, cfg.tv_beta)),
    };
    descend(model, dev, input, classes, cfg, loss, "tv", ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tv_matches_the_cpu_formula_and_is_zero_on_flat_images() {
        let v: Vec<f32> = vec![0.0, 1.0, 0.5, 0.25, 0.75, 0.0];
        // 2x3 image: TV2 = sum over the 1x2 top-left cells of dx^2 + dy^2.
        let x = Tensor::from_vec(v.clone(), (1, 1, 2, 3), &Device::Cpu).unwrap();
        let tv = tv_per_image(&x, 2.0).unwrap().to_vec1::<f32>().unwrap()[0];
        let expect = super::super::metrics::total_variation(&v, [1, 2, 3], 2.0);
        // (1-0)^2 + (0.25-0)^2 + (0.5-1)^2 + (0.75-1)^2 = 1 + 0.0625 + 0.25 + 0.0625
        assert!((tv - 1.375).abs() < 1e-6, "{tv}");
        assert!((f64::from(tv) - expect).abs() < 1e-6);
        let flat = Tensor::full(0.3f32, (2, 1, 4, 4), &Device::Cpu).unwrap();
        let z = tv_per_image(&flat, 1.0).unwrap().to_vec1::<f32>().unwrap();
        assert!(z.iter().all(|&t| t < 1e-3), "{z:?}");
        let tv1 = super::super::metrics::total_variation(&v, [1, 2, 3], 1.0);
        assert!((tv1 - (1.0f64.hypot(0.25) + 0.5f64.hypot(0.25))).abs() < 1e-9);
    }
}
