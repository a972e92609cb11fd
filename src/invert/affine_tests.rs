//! The one-pass softmax-regression step against candle's autograd (the reference): the same p,
//! loss and input gradient to 1e-5 relative, and the same inversions from both loops.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use super::*;
use crate::invert::miface::{Loss, descend_host, label_tensor, loss_and_grad};
use crate::invert::{Init, InvertTarget, Method, Process};
use crate::job::{CancelToken, NullSink};
use crate::model::{Classifier, Family, ModelSpec};

const INPUT: [usize; 3] = [3, 5, 4];

fn softmax_model(normalised: bool, seed: u64) -> Classifier {
    let mut spec = ModelSpec::default_for(Family::Softmax, INPUT, 4);
    if normalised {
        spec.input_mean = vec![0.3, 0.5, 0.45];
        spec.input_std = vec![0.2, 0.25, 0.3];
    }
    let varmap = VarMap::new();
    let model = Classifier::new(&spec, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    crate::model::seeded_init(&varmap, seed).unwrap();
    // Larger weights than the init's so p spans more than a narrow band around 1/K.
    for var in varmap.all_vars() {
        let t = (var.as_tensor() * 8.0).unwrap();
        var.set(&t).unwrap();
    }
    model
}

fn images(b: usize, seed: u64) -> Tensor {
    let v = start_images(Init::Uniform, b, INPUT, seed);
    Tensor::from_vec(v, (b, INPUT[0], INPUT[1], INPUT[2]), &Device::Cpu).unwrap()
}

fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn loss_and_gradient_match_autograd_for_every_objective() {
    for normalised in [true, false] {
        let model = softmax_model(normalised, 3);
        let head = model
            .affine_head(INPUT)
            .unwrap()
            .expect("a softmax regression is affine");
        assert_eq!((head.classes(), head.inputs()), (4, 60));
        let classes = [0usize, 3, 1, 2, 3, 0];
        let x = images(classes.len(), 11);
        for objective in [Objective::Prob, Objective::LogProb, Objective::Logit] {
            let loss = Loss { objective, tv: None };
            let labels = label_tensor(&classes, &Device::Cpu).unwrap();
            let (p0, l0, g0) = loss_and_grad(&model, &x, &labels, loss).unwrap();
            let (p1, l1, g1) = head.loss_and_grad(&x, &classes, objective).unwrap();
            assert_eq!(g1.dims(), x.dims());
            let g0 = g0.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let g1 = g1.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(rel_diff(&p1, &p0) <= 1e-5, "{objective:?} p {p1:?} vs {p0:?}");
            assert!(rel_diff(&l1, &l0) <= 1e-5, "{objective:?} loss {l1:?} vs {l0:?}");
            assert!(
                rel_diff(&g1, &g0) <= 1e-5,
                "{objective:?} gradient off by {}",
                rel_diff(&g1, &g0)
            );
            // Not a degenerate case: the probabilities differ between images.
            let spread = p0.iter().fold(0f32, |m, v| m.max(*v)) - p0.iter().fold(1f32, |m, v| m.min(*v));
            assert!(spread > 0.05, "p spread {spread}");
        }
    }
}

#[test]
fn a_model_with_hidden_layers_is_not_affine() {
    let spec = ModelSpec::default_for(Family::Mlp, INPUT, 4);
    let varmap = VarMap::new();
    let mlp = Classifier::new(&spec, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    assert!(mlp.affine_head(INPUT).unwrap().is_none());
}

#[test]
fn the_one_pass_loop_returns_what_the_autograd_loops_return() {
    let model = softmax_model(true, 5);
    let cancel = CancelToken::new();
    let ctx = JobCtx::new(&cancel, &NullSink);
    let classes = [0usize, 1, 2, 3];
    // No rule: descend_affine against descend_device.
    let cfg = InvertConfig {
        method: Method::MiFace,
        objective: Objective::LogProb,
        init: Init::Uniform,
        alpha: 40,
        beta: 0,
        gamma: -1.0,
        lambda: 0.05,
        ..InvertConfig::default()
    };
    let loss = Loss {
        objective: cfg.objective,
        tv: None,
    };
    let reference = crate::invert::descend_device::descend_device(
        &model,
        &Device::Cpu,
        INPUT,
        &classes,
        &cfg,
        loss,
        "t",
        &ctx,
    )
    .unwrap();
    let fast = super::super::miface::mi_face(&model, &Device::Cpu, INPUT, &classes, &cfg, &ctx).unwrap();
    compare(&reference, &fast);
    // The descent made progress, so the comparison is not of two start images.
    assert!(
        reference
            .iter()
            .all(|r| r.costs[r.costs.len() - 1] < r.costs[0] - 0.05)
    );
    // Rules and PROCESS: the host loop with and without the head.
    let cfg = InvertConfig {
        beta: 5,
        gamma: 0.3,
        process: Process::Blur { sigma: 0.5 },
        ..cfg
    };
    let head = model.affine_head(INPUT).unwrap();
    let args = (&model as &dyn InvertTarget, &Device::Cpu);
    let slow = descend_host(args.0, None, args.1, INPUT, &classes, &cfg, loss, "t", &ctx).unwrap();
    let fast = descend_host(
        args.0,
        head.as_ref(),
        args.1,
        INPUT,
        &classes,
        &cfg,
        loss,
        "t",
        &ctx,
    )
    .unwrap();
    compare(&slow, &fast);
}

fn compare(reference: &[Inversion], fast: &[Inversion]) {
    assert_eq!(reference.len(), fast.len());
    for (r, f) in reference.iter().zip(fast) {
        assert_eq!((r.class, r.steps, r.stop), (f.class, f.steps, f.stop));
        assert!(
            rel_diff(&f.costs, &r.costs) <= 1e-4,
            "costs {:?} vs {:?}",
            f.costs,
            r.costs
        );
        assert!(rel_diff(&f.probs, &r.probs) <= 1e-4);
        assert!(rel_diff(&f.image, &r.image) <= 1e-4);
    }
}
