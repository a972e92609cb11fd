//! Parity with IBM ART 1.20.1: `art_miface` on the tiny logistic models of
//! `benches/peers/fidelity/art_miface.json`, which `benches/peers/fidelity/art_miface.py` wrote by
//! running ART's own `MIFace.infer` on a scikit-learn `LogisticRegression` with the same weights.
//! Every returned image and every per-step cost must agree (see `docs/fidelity.md`).

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use super::*;
use crate::invert::{Init, Method, Objective};
use crate::job::{CancelToken, NullSink};
use crate::model::{Classifier, Family, ModelSpec};

const FIXTURE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/benches/peers/fidelity/art_miface.json"
));

/// Largest difference allowed between ART (float64 gradients, float32 images) and rote (f32).
const TOL: f64 = 1e-5;

#[derive(serde::Deserialize)]
struct Fixture {
    versions: serde_json::Value,
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    input: [usize; 3],
    n_classes: usize,
    weight: Vec<Vec<f32>>,
    bias: Vec<f32>,
    input_mean: Vec<f32>,
    input_std: Vec<f32>,
    init: String,
    objective: String,
    max_iter: usize,
    window_length: usize,
    threshold: f64,
    learning_rate: f64,
    labels: Vec<usize>,
    art_images: Vec<Vec<f64>>,
    art_costs: Vec<Vec<f64>>,
    paused_steps: Vec<usize>,
}

fn classifier(c: &Case) -> Classifier {
    let mut spec = ModelSpec::default_for(Family::Softmax, c.input, c.n_classes);
    spec.input_mean = c.input_mean.clone();
    spec.input_std = c.input_std.clone();
    let varmap = VarMap::new();
    let model = Classifier::new(&spec, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    let data = varmap.data().lock().unwrap();
    let w: Vec<f32> = c.weight.iter().flatten().copied().collect();
    let w = Tensor::from_vec(w, (c.n_classes, c.input.iter().product::<usize>()), &Device::Cpu).unwrap();
    data["out.weight"].set(&w).unwrap();
    data["out.bias"]
        .set(&Tensor::new(c.bias.as_slice(), &Device::Cpu).unwrap())
        .unwrap();
    drop(data);
    model
}

fn config(c: &Case) -> InvertConfig {
    InvertConfig {
        method: Method::Art,
        objective: match c.objective.as_str() {
            "log-prob" => Objective::LogProb,
            "prob" => Objective::Prob,
            other => panic!("{}: objective {other}", c.name),
        },
        init: match c.init.as_str() {
            "grey" => Init::Grey,
            "zeros" => Init::Zeros,
            other => panic!("{}: init {other}", c.name),
        },
        alpha: c.max_iter,
        beta: c.window_length,
        gamma: c.threshold,
        lambda: c.learning_rate,
        ..InvertConfig::default()
    }
}

#[test]
fn art_mode_reproduces_art_1_20_1_miface_images_and_costs() {
    let fixture: Fixture = serde_json::from_str(FIXTURE).unwrap();
    assert_eq!(fixture.versions["art"], "1.20.1");
    assert_eq!(fixture.cases.len(), 4);
    let mut worst = 0f64;
    let mut paused = 0;
    for c in &fixture.cases {
        let model = classifier(c);
        let cancel = CancelToken::new();
        let ctx = JobCtx::new(&cancel, &NullSink);
        let out = art_miface(&model, &Device::Cpu, c.input, &c.labels, &config(c), &ctx).unwrap();
        assert_eq!(out.len(), c.labels.len());
        for (k, inv) in out.iter().enumerate() {
            // costs[0] is x0's (rote's curve only); ART's cost i is rote's cost i + 1.
            assert_eq!(inv.costs.len(), c.art_costs.len() + 1, "{} class {k}", c.name);
            for (i, row) in c.art_costs.iter().enumerate() {
                let d = (f64::from(inv.costs[i + 1]) - row[k]).abs();
                assert!(
                    d <= TOL,
                    "{} class {k} step {}: rote {} ART {}",
                    c.name,
                    i + 1,
                    inv.costs[i + 1],
                    row[k]
                );
                worst = worst.max(d);
            }
            for (j, (&r, &a)) in inv.image.iter().zip(&c.art_images[k]).enumerate() {
                let d = (f64::from(r) - a).abs();
                assert!(d <= TOL, "{} class {k} pixel {j}: rote {r} ART {a}", c.name);
                worst = worst.max(d);
            }
            // Every paused step of ART is a step rote did not take either.
            assert_eq!(inv.steps + c.paused_steps[k], c.max_iter, "{} class {k}", c.name);
            paused += c.paused_steps[k];
        }
    }
    assert!(paused > 0, "the fixture exercises ART's pause/resume rule");
    eprintln!("rote art mode vs ART 1.20.1: largest difference {worst:.2e} over images and costs");
}
