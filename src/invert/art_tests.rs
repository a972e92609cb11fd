//! The ART-compatible loop against hand-computed runs on a 2-class logistic model of 2x2 images.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use super::*;
use crate::invert::{Init, Method, Objective, miface::mi_face};
use crate::job::{CancelToken, NullSink};
use crate::model::{Classifier, Family, ModelSpec};

/// logits = [sum(x) + b0, -sum(x) + b1]: the log-p gradient of class 0 is 2 (1 - p0) per pixel.
fn logistic(b0: f32, b1: f32) -> Classifier {
    let spec = ModelSpec::default_for(Family::Softmax, [1, 2, 2], 2);
    let varmap = VarMap::new();
    let model = Classifier::new(&spec, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    let data = varmap.data().lock().unwrap();
    let w = Tensor::new(&[[1f32, 1., 1., 1.], [-1., -1., -1., -1.]], &Device::Cpu).unwrap();
    data["out.weight"].set(&w).unwrap();
    data["out.bias"]
        .set(&Tensor::new(&[b0, b1], &Device::Cpu).unwrap())
        .unwrap();
    drop(data);
    model
}

fn cfg(alpha: usize, beta: usize) -> InvertConfig {
    InvertConfig {
        method: Method::Art,
        objective: Objective::LogProb,
        init: Init::Zeros,
        alpha,
        beta,
        gamma: 0.99,
        lambda: 0.1,
        ..InvertConfig::default()
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn run(model: &Classifier, classes: &[usize], c: &InvertConfig) -> Vec<Inversion> {
    let cancel = CancelToken::new();
    let ctx = JobCtx::new(&cancel, &NullSink);
    if c.method == Method::Art {
        art_miface(model, &Device::Cpu, [1, 2, 2], classes, c, &ctx).unwrap()
    } else {
        mi_face(model, &Device::Cpu, [1, 2, 2], classes, c, &ctx).unwrap()
    }
}

#[test]
fn art_pauses_a_black_start_after_one_step_where_the_paper_keeps_going() {
    // p0(x=0) = sigmoid(-8) = 3.4e-4: cost 0.99966 > threshold 0.99.
    let model = logistic(0.0, 8.0);
    let art = run(&model, &[0], &cfg(1000, 100));
    let p0 = sigmoid(-8.0);
    let x1 = 0.2 * (1.0 - p0); // one step of 0.1 * 2 (1 - p0)
    assert_eq!(
        art[0].steps, 1,
        "ART stops after one step: cost > threshold is its *continue* test reversed"
    );
    assert_eq!(art[0].stop, StopReason::ArtInactive);
    assert_eq!(art[0].returned_iter, 1, "ART returns the last iterate");
    for &v in &art[0].image {
        assert!((f64::from(v) - x1).abs() < 1e-5, "{v} vs {x1}");
    }
    // The paper stops once cost <= gamma, i.e. p0 >= 0.01: sum(x) >= 4 - ln(99)/2, x >= 0.4256,
    // which takes three steps (x ~ 0.2, 0.4, 0.6).
    let paper = run(
        &model,
        &[0],
        &InvertConfig {
            method: Method::MiFace,
            ..cfg(1000, 100)
        },
    );
    assert_eq!(paper[0].steps, 3);
    assert_eq!(paper[0].stop, StopReason::Threshold);
    assert!(
        paper[0].image.iter().all(|&v| (0.55..0.65).contains(&v)),
        "{:?}",
        paper[0].image
    );
    assert!(f64::from(paper[0].probs[3]) >= 0.01 && f64::from(paper[0].probs[2]) < 0.01);
}

#[test]
fn art_runs_to_max_iter_while_the_paper_stops_at_once_and_returns_the_last_iterate() {
    // p0(x=0) = 0.5: cost 0.5 <= 0.99, so ART keeps the sample active until max_iter.
    let model = logistic(0.0, 0.0);
    let art = run(&model, &[0], &cfg(7, 100));
    assert_eq!(art[0].steps, 7);
    assert_eq!(art[0].stop, StopReason::MaxIters);
    assert_eq!(art[0].costs.len(), 8);
    assert_eq!(art[0].returned_iter, 7);
    let paper = run(
        &model,
        &[0],
        &InvertConfig {
            method: Method::MiFace,
            ..cfg(7, 100)
        },
    );
    assert_eq!(paper[0].steps, 1);
    assert_eq!(paper[0].stop, StopReason::Threshold);
}

#[test]
fn a_paused_art_sample_resumes_once_its_constant_cost_fills_the_window() {
    let model = logistic(0.0, 8.0);
    // Class 0 pauses after its first step; class 1 (p ~ 1) stays active throughout.
    let out = run(&model, &[0, 1], &cfg(5, 3));
    let a = &out[0];
    // Updates at i = 0 (initially active) and i = 4 (active again after i = 3 filled the window).
    assert_eq!(a.steps, 2);
    assert_eq!(a.costs.len(), 6);
    assert!(a.costs[1..=4].iter().all(|&c| c == a.costs[1]), "{:?}", a.costs);
    assert!(a.costs[5] < a.costs[4]);
    assert_eq!(out[1].steps, 5);
    assert_eq!(out[1].stop, StopReason::MaxIters);
}
