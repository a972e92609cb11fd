//! Tests of `cpu_kernels.rs` against candle's unfused ops (conv2d, broadcast adds), forward and
//! gradients.

use candle_core::{DType, Device, Tensor, Var};

use super::*;

fn max_rel(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.to_dtype(DType::F64).unwrap();
    let b = b.to_dtype(DType::F64).unwrap();
    let d = (&a - &b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    let s = b.abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
    d / s.max(1e-30)
}

fn vals(n: usize, seed: usize) -> Vec<f64> {
    (0..n)
        .map(|i| (((i + seed) * 7919 + seed * 31) % 23) as f64 / 23.0 - 0.5)
        .collect()
}

/// conv3x3 (+ bias + t) and conv1x1 equal candle's conv2d plus broadcast adds, with the same
/// gradients for the input, weight, bias and t; in f64 and f32.
#[test]
fn convolutions_match_conv2d_forward_and_backward() {
    let dev = Device::Cpu;
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
        // Groups of one image, of two (the last one short when b is odd) and the default.
        for (b, c, o, h, w, group) in [
            (2, 3, 4, 5, 4, Some(2)),
            (3, 8, 6, 8, 8, Some(2)),
            (1, 2, 3, 1, 1, None),
            (2, 4, 5, 2, 3, Some(1)),
            (5, 3, 4, 6, 5, Some(2)),
            (4, 2, 3, 4, 4, None),
        ] {
            let var = |n: usize, shape: &[usize], seed: usize| {
                let t = Tensor::from_vec(vals(n, seed), shape, &dev).unwrap();
                Var::from_tensor(&t.to_dtype(dtype).unwrap()).unwrap()
            };
            let x = var(b * c * h * w, &[b, c, h, w], 1);
            let wt = var(o * c * 9, &[o, c, 3, 3], 2);
            let w1 = var(o * c, &[o, c, 1, 1], 5);
            let bias = var(o, &[o], 3);
            let t = var(b * o, &[b, o], 4);
            let reference = x
                .conv2d(&wt, 1, 1, 1, 1)
                .unwrap()
                .broadcast_add(&bias.reshape((1, o, 1, 1)).unwrap())
                .unwrap()
                .broadcast_add(&t.reshape((b, o, 1, 1)).unwrap())
                .unwrap();
            let ours = conv(&x, &wt, &bias, Some(&t), group).unwrap();
            assert!(
                max_rel(&ours, &reference) <= tol,
                "{dtype:?} {b} {c} {o} {h} {w} {group:?}"
            );
            let ours_no_t = conv3x3(&x, &wt, &bias, None).unwrap();
            let ref_no_t = x
                .conv2d(&wt, 1, 1, 1, 1)
                .unwrap()
                .broadcast_add(&bias.reshape((1, o, 1, 1)).unwrap())
                .unwrap();
            assert!(max_rel(&ours_no_t, &ref_no_t) <= tol);
            let ref1 = x
                .conv2d(&w1, 0, 1, 1, 1)
                .unwrap()
                .broadcast_add(&bias.reshape((1, o, 1, 1)).unwrap())
                .unwrap();
            let ours1 = conv(&x, &w1, &bias, None, group).unwrap();
            assert!(max_rel(&ours1, &ref1) <= tol);
            // A loss that weighs every output differently, so that transposed gradients would show.
            let weights = Tensor::from_vec(vals(b * o * h * w, 9), (b, o, h, w), &dev)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let loss = |y: &Tensor| (y * &weights).unwrap().sqr().unwrap().sum_all().unwrap();
            let g_ref = loss(&(&reference + &ref1).unwrap()).backward().unwrap();
            let g_ours = loss(&(&ours + &ours1).unwrap()).backward().unwrap();
            for (name, v) in [("x", &x), ("w", &wt), ("w1", &w1), ("bias", &bias), ("t", &t)] {
                let a = g_ours.get(v.as_tensor()).unwrap();
                let r = g_ref.get(v.as_tensor()).unwrap();
                assert!(
                    max_rel(a, r) <= tol * 10.0,
                    "{dtype:?} {b} {c} {o} {h} {w} {group:?}: gradient of {name}: {}",
                    max_rel(a, r)
                );
            }
        }
    }
}

/// The channel-major columns hold the same values as `im2col.rs`'s batch-major ones.
#[test]
fn channel_major_columns_are_the_batch_major_ones_side_by_side() {
    let dev = Device::Cpu;
    // Small planes (the masked passes), a one-pixel plane, and planes of at least
    // FLAT_IM2COL_PIXELS (the flat copies), square and not.
    for (b, c, h, w) in [
        (3, 2, 4, 5),
        (2, 3, 1, 1),
        (2, 3, 2, 1),
        (3, 2, 17, 19),
        (1, 2, 16, 16),
    ] {
        let x = Tensor::from_vec(vals(b * c * h * w, 7), (b, c, h, w), &dev).unwrap();
        let cm = im2col_cm(&x.flatten_all().unwrap().to_vec1::<f64>().unwrap(), b, c, h, w);
        let cm = Tensor::from_vec(cm, (9 * c, b * h * w), &dev).unwrap();
        let bm = x.apply_op1(super::super::im2col::Im2Col).unwrap();
        // Batch-major rows k*C + c -> channel-major rows c*9 + k, columns b*HW + p.
        let want = bm
            .reshape((b, 9, c, h * w))
            .unwrap()
            .permute((2, 1, 0, 3))
            .unwrap()
            .reshape((9 * c, b * h * w))
            .unwrap();
        assert_eq!(max_rel(&cm, &want), 0.0, "{b} x {c} x {h} x {w}");
    }
}

/// With constant weights (a loaded model, differentiated in its input only) the backward skips
/// the weight gradient and gives the same input gradient as with trained weights.
#[test]
fn constant_weights_give_the_same_input_gradient() {
    let dev = Device::Cpu;
    let (b, c, o, h, w) = (3, 4, 5, 6, 6);
    let t = |n: usize, shape: &[usize], seed: usize| {
        Tensor::from_vec(vals(n, seed), shape, &dev)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
    };
    let x = Var::from_tensor(&t(b * c * h * w, &[b, c, h, w], 1)).unwrap();
    let (wt, bias) = (t(o * c * 9, &[o, c, 3, 3], 2), t(o, &[o], 3));
    let grad_x = |weight: &Tensor| {
        let y = conv(&x, weight, &bias, None, Some(2)).unwrap();
        let g = (y.sqr().unwrap().sum_all().unwrap()).backward().unwrap();
        (g.get(&x).unwrap().clone(), g.get(weight).is_some())
    };
    let (constant, has_dw) = grad_x(&wt);
    assert!(!has_dw, "no weight gradient for a constant");
    let trained = Var::from_tensor(&wt).unwrap();
    let (tracked, has_dw) = grad_x(trained.as_tensor());
    assert!(has_dw);
    assert!(max_rel(&constant, &tracked) < 1e-7);
}

/// Groups are as even as the cache allows: 32 images of which 9 fit make 4 groups of 8 (not
/// 9, 9, 9 and 5), of which 14 fit 4 groups of 8 (not 3: an even count keeps two cores busy),
/// and a group never holds more than fits, nor more than the batch.
#[test]
fn groups_spread_the_batch_evenly() {
    let per = |fit: usize| GROUP_VALUES / fit;
    assert_eq!(group_size(per(9), 32), 8);
    assert_eq!(group_size(per(14), 32), 8);
    assert_eq!(group_size(per(4), 32), 4);
    assert_eq!(group_size(per(1), 32), 1);
    assert_eq!(group_size(per(100), 32), 32);
    assert_eq!(group_size(per(9), 5), 5);
    assert_eq!(group_size(GROUP_VALUES * 2, 32), 1);
    assert_eq!(group_size(per(3), 32), 3);
    for b in 1..70 {
        for fit in 1..40 {
            let g = group_size(per(fit), b);
            assert!(g >= 1 && g <= fit.min(b), "b {b} fit {fit}: {g}");
            // At most one group more than the fewest that fit.
            assert!(
                b.div_ceil(g) <= b.div_ceil(fit.min(b)) + 1,
                "b {b} fit {fit}: {g}"
            );
        }
    }
}
