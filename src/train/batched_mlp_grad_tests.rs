//! The hand-written backward pass against candle's autograd (the reference): the same loss and
//! every parameter's gradient to 1e-5 relative, on a zoo with hidden layers where some ReLUs are
//! off, for both initialisations.

use candle_core::{Device, Tensor};

use super::*;
use crate::train::batched_mlp::{MlpInit, stacked_cross_entropy};

fn rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn hand_written_gradients_match_autograd() {
    let (k, b, dims) = (3, 7, [12usize, 9, 6, 4]);
    for (init, scaling) in [
        (MlpInit::Uniform, (0.4f32, 0.3f32)),
        (MlpInit::GlorotNormal, (0.0, 1.0)),
    ] {
        let net = BatchedMlp::new(&[1, 2, 3], &dims, init, scaling, &Device::Cpu).unwrap();
        let x: Vec<f32> = (0..k * b * dims[0])
            .map(|i| ((i * 31 % 17) as f32) / 16.0)
            .collect();
        let xs = Tensor::from_vec(x, (k, b, dims[0]), &Device::Cpu).unwrap();
        let y: Vec<u32> = (0..k * b).map(|i| (i * 5 % 4) as u32).collect();
        let ys = Tensor::from_vec(y, (k, b), &Device::Cpu).unwrap();
        assert!(net.hand_backward_applies(&xs));
        let (loss, grads) = net.loss_and_grads(&xs, &ys).unwrap();
        let reference = stacked_cross_entropy(&net.forward(&xs).unwrap(), &ys).unwrap();
        let store = reference.backward().unwrap();
        let want = reference.to_scalar::<f32>().unwrap();
        assert!((loss - want).abs() <= 1e-5 * want.abs(), "loss {loss} vs {want}");
        let vars = net.vars();
        assert_eq!(grads.len(), vars.len());
        for (i, (g, var)) in grads.iter().zip(&vars).enumerate() {
            let r = store.get(var.as_tensor()).unwrap();
            assert_eq!(g.dims(), r.dims(), "parameter {i}");
            let d = rel_diff(g, r);
            assert!(d <= 1e-5, "{init:?} parameter {i}: relative difference {d}");
            // Not vacuous: every gradient has a non-zero entry.
            assert!(r.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() > 1e-6);
        }
        // Some hidden units are off (the ReLU mask matters).
        let h1 = net
            .normalise(&xs)
            .unwrap()
            .matmul(net.layer_vars().next().unwrap().0)
            .unwrap();
        let off = h1
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .filter(|v| **v < 0.0)
            .count();
        assert!(off > 0);
    }
}
