//! Model inversion end to end on orl-faces (40 people): inversions of a trained softmax regression
//! are identified by an independently trained classifier; inversions of an untrained model and a
//! blank image are not.

#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use crate::common;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use common::{json_of, rote};
use rote::invert::eval::save_eval;
use rote::invert::{EvalConfig, InvertConfig, Method, Objective, Process, identify, invert_classes};
use rote::job::{CancelToken, JobCtx, NullSink};
use rote::model::{Classifier, Family};
use rote::train::{TrainConfig, train};

fn top1_rate(eval: &Classifier, images: &[f32], shape: [usize; 3], labels: &[usize]) -> f64 {
    let ids = identify(eval, &Device::Cpu, images, shape, labels).unwrap();
    ids.iter().filter(|r| r.top1).count() as f64 / ids.len() as f64
}

#[test]
fn inversions_of_a_softmax_face_model_are_identified_and_controls_are_not() {
    let cancel = CancelToken::new();
    let ctx = JobCtx::new(&cancel, &NullSink);
    let ds = rote::data::load("orl-faces").unwrap();
    let shape = [ds.c, ds.h, ds.w];
    let cfg = TrainConfig {
        family: Family::Softmax,
        data: "orl-faces".into(),
        epochs: 20,
        batch_size: 32,
        ..TrainConfig::default()
    };
    let target = train(&cfg, &ds, &ctx).unwrap();
    assert!(target.card.metrics.test_acc > 0.85, "{:?}", target.card.metrics);
    // Independent evaluator: an MLP with its own seed, trained only on the held-out images.
    let ecfg = EvalConfig::default();
    let (eval, _, ecard) = rote::invert::train_eval_classifier(&ds, &ecfg, &Device::Cpu, &ctx).unwrap();
    assert!(
        ecard.train_acc > 0.95,
        "evaluator fits its held-out images: {}",
        ecard.train_acc
    );
    let classes: Vec<usize> = (0..40).collect();
    let invert = |model: &Classifier, icfg: &InvertConfig| {
        let inv = invert_classes(model, &Device::Cpu, shape, &classes, icfg, &ctx).unwrap();
        inv.into_iter().flat_map(|i| i.image).collect::<Vec<f32>>()
    };
    // TV prior (300 steps).
    let tv = InvertConfig {
        alpha: 300,
        tv_weight: 0.5,
        ..InvertConfig::for_method(Method::Tv)
    };
    let tv_images = invert(&target.model, &tv);
    let tv_rate = top1_rate(&eval, &tv_images, shape, &classes);
    // MI-FACE descending -log p with a blur PROCESS every 10 steps (300 steps, no gamma stop).
    let mi = InvertConfig {
        alpha: 300,
        gamma: -1.0,
        objective: Objective::LogProb,
        process: Process::Blur { sigma: 0.5 },
        process_every: 10,
        ..InvertConfig::default()
    };
    let mi_rate = top1_rate(&eval, &invert(&target.model, &mi), shape, &classes);
    eprintln!("top-1 over 40 people: tv {tv_rate:.3}, mi-face(log p, blur) {mi_rate:.3}");
    assert!(tv_rate >= 0.8, "TV inversions identified: {tv_rate}");
    assert!(mi_rate >= 0.7, "MI-FACE inversions identified: {mi_rate}");
    // Control 1: the same attack on an untrained (randomly initialised) softmax model.
    let mut spec = target.card.spec.clone();
    spec.widths.clear();
    let varmap = VarMap::new();
    let untrained =
        Classifier::new(&spec, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    rote::model::seeded_init(&varmap, 99).unwrap();
    let control = top1_rate(&eval, &invert(&untrained, &tv), shape, &classes);
    // Control 2: a blank grey image "inverted" for every person.
    let blank = top1_rate(&eval, &vec![0.5; 40 * ds.image_len()], shape, &classes);
    eprintln!("controls: untrained model {control:.3}, blank image {blank:.3}");
    assert!(
        control <= 0.2,
        "untrained model's inversions identified: {control}"
    );
    assert!(blank <= 0.05, "a blank image matches one person at most: {blank}");
}

#[test]
fn cli_inverts_a_trained_model_and_writes_its_report() {
    let home = tempfile::tempdir().unwrap();
    let study = home.path().join("s");
    let s = study.to_str().unwrap();
    let v = json_of(&rote(
        &[
            "train",
            "--family",
            "softmax",
            "--data",
            "orl-faces",
            "--epochs",
            "10",
            "--batch-size",
            "32",
            "--out",
            s,
            "--json",
        ],
        home.path(),
    ));
    let model = v["path"].as_str().unwrap().to_string();
    // A small evaluation classifier written where --eval-model can read it.
    let ds = rote::data::load("orl-faces").unwrap();
    let cancel = CancelToken::new();
    let ctx = JobCtx::new(&cancel, &NullSink);
    let ecfg = EvalConfig {
        widths: vec![32],
        copies: 2,
        epochs: 3,
        ..EvalConfig::default()
    };
    let (_, varmap, card) = rote::invert::train_eval_classifier(&ds, &ecfg, &Device::Cpu, &ctx).unwrap();
    let edir = home.path().join("eval");
    save_eval(&edir, &varmap, &card).unwrap();
    let e = edir.to_str().unwrap();
    let args = [
        "invert",
        "--model",
        &model,
        "--class",
        "0,3",
        "--iters",
        "20",
        "--eval-model",
        e,
        "--json",
    ];
    let r = json_of(&rote(&args, home.path()));
    assert_eq!(r["classes"].as_array().unwrap().len(), 2);
    assert_eq!(r["classes"][1]["class"], 3);
    assert!(r["eval_top1"].as_f64().unwrap() >= 0.0 && r["classes"][0]["eval_rank"].as_u64().unwrap() >= 1);
    let path = std::path::PathBuf::from(r["path"].as_str().unwrap());
    assert!(
        path.ends_with("results/inversion/softmax-orl-faces-s0/mi-face.json"),
        "{path:?}"
    );
    // Images are stored as base64 bytes and read back whole.
    let written = rote::invert::load_report(&path).unwrap();
    assert_eq!(written.classes[0].image.len(), 112 * 92);
    // Errors name the file and the problem.
    let bad = rote(&["invert", "--model", s, "--all", "--json"], home.path());
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("card.json") && err.contains("no model card"),
        "{err}"
    );
    let bad = rote(
        &["invert", "--model", &model, "--class", "40", "--eval-model", e],
        home.path(),
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("class 40 does not exist"));
}
