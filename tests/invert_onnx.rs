//! Model inversion of ONNX classifiers (feature `onnx`), on graphs the tests build themselves:
//! a softmax regression trained by rote on orl-faces and exported to ONNX gives the same costs as
//! the native model and its inversions are identified by the evaluation classifier; a seeded
//! Conv-Relu-MaxPool-Gemm-Softmax graph is inverted to high target probability; and graphs with
//! operators that have no gradient are refused with an error naming them and the file.

#![cfg(feature = "onnx")]
#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use crate::common;

use std::path::Path;

use candle_core::Device;
use candle_onnx::onnx::{
    self, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
    attribute_proto::AttributeType,
    tensor_shape_proto::{Dimension, dimension::Value as Dim},
};
use common::{json_of, rote};
use rote::invert::eval::save_eval;
use rote::invert::onnx::{OnnxClassifier, OnnxOptions, OutputKind, write_model};
use rote::invert::{EvalConfig, InvertConfig, InvertTarget, Method, Objective, invert_classes};
use rote::job::{CancelToken, JobCtx, NullSink};
use rote::model::Family;
use rote::train::{TrainConfig, train};

fn tensor(name: &str, dims: &[usize], data: Vec<f32>) -> TensorProto {
    assert_eq!(dims.iter().product::<usize>(), data.len());
    TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: 1,
        float_data: data,
        ..Default::default()
    }
}

fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], outputs: &[&str], attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: format!("{op}_{}", outputs[0]),
        input: inputs.iter().map(|s| (*s).to_string()).collect(),
        output: outputs.iter().map(|s| (*s).to_string()).collect(),
        attribute,
        ..Default::default()
    }
}

/// A float tensor value with `dims` (None: dynamic).
fn value(name: &str, dims: &[Option<usize>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(n) => Dim::DimValue(*n as i64),
                None => Dim::DimParam("N".into()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(onnx::type_proto::Value::TensorType(onnx::type_proto::Tensor {
                elem_type: 1,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn model(
    nodes: Vec<NodeProto>,
    init: Vec<TensorProto>,
    input: ValueInfoProto,
    output: &str,
    meta: &[(&str, String)],
) -> ModelProto {
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        metadata_props: meta
            .iter()
            .map(|(k, v)| StringStringEntryProto {
                key: (*k).into(),
                value: v.clone(),
            })
            .collect(),
        graph: Some(GraphProto {
            name: "g".into(),
            node: nodes,
            initializer: init,
            input: vec![input],
            output: vec![value(output, &[None, None])],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Deterministic pseudo-random floats in [-scale, scale].
fn seeded(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// Conv(1->4, 3x3, pad 1) - Relu - MaxPool 2x2 - Flatten - Gemm(-> 3) - Softmax (no axis), on
/// (1, 1, h, w) images with a static batch of 1.
fn cnn(h: usize, w: usize, pool: i64, extra: Option<NodeProto>) -> ModelProto {
    let (ph, pw) = (h / pool as usize, w / pool as usize);
    let mut nodes = vec![
        node(
            "Conv",
            &["x", "cw", "cb"],
            &["c1"],
            vec![
                attr_ints("kernel_shape", &[3, 3]),
                attr_ints("pads", &[1, 1, 1, 1]),
            ],
        ),
        node("Relu", &["c1"], &["r1"], vec![]),
        node(
            "MaxPool",
            &["r1"],
            &["p1"],
            vec![
                attr_ints("kernel_shape", &[pool, pool]),
                attr_ints("strides", &[pool, pool]),
            ],
        ),
    ];
    let mut last = "p1";
    if let Some(n) = extra {
        nodes.push(n);
        last = "e1";
    }
    nodes.extend([
        node("Flatten", &[last], &["f1"], vec![attr_int("axis", 1)]),
        node(
            "Gemm",
            &["f1", "fw", "fb"],
            &["logits"],
            vec![attr_int("transB", 1)],
        ),
        node("Softmax", &["logits"], &["prob"], vec![]),
    ]);
    let flat = 4 * ph * pw;
    model(
        nodes,
        vec![
            tensor("cw", &[4, 1, 3, 3], seeded(36, 1, 1.0)),
            tensor("cb", &[4], seeded(4, 2, 0.1)),
            tensor("fw", &[3, flat], seeded(3 * flat, 3, 0.5)),
            tensor("fb", &[3], vec![0.0; 3]),
        ],
        value("x", &[Some(1), Some(1), Some(h), Some(w)]),
        "prob",
        &[],
    )
}

fn floats(v: &[f32]) -> String {
    v.iter().map(|x| format!("{x}")).collect::<Vec<_>>().join(",")
}

#[test]
fn softmax_regression_exported_to_onnx_matches_the_native_model_and_is_identified() {
    let cancel = CancelToken::new();
    let ctx = JobCtx::new(&cancel, &NullSink);
    let ds = rote::data::load("orl-faces").unwrap();
    let shape = [ds.c, ds.h, ds.w];
    let d = ds.image_len();
    let cfg = TrainConfig {
        family: Family::Softmax,
        data: "orl-faces".into(),
        epochs: 20,
        batch_size: 32,
        ..TrainConfig::default()
    };
    let target = train(&cfg, &ds, &ctx).unwrap();
    let spec = &target.card.spec;
    // Export: image (N, 1, 112, 92) -> Flatten -> Gemm(W, b, transB) -> Softmax(axis 1), with the
    // input normalisation in the file's metadata.
    let vars = target.varmap.data().lock().unwrap();
    let get = |k: &str| {
        vars[k]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let (weight, bias) = (get("out.weight"), get("out.bias"));
    drop(vars);
    let onnx_model = model(
        vec![
            node("Flatten", &["image"], &["flat"], vec![]),
            node(
                "Gemm",
                &["flat", "W", "b"],
                &["logits"],
                vec![attr_int("transB", 1)],
            ),
            node("Softmax", &["logits"], &["prob"], vec![attr_int("axis", 1)]),
        ],
        vec![tensor("W", &[40, d], weight), tensor("b", &[40], bias)],
        value("image", &[None, Some(ds.c), Some(ds.h), Some(ds.w)]),
        "prob",
        &[
            ("input_mean", floats(&spec.input_mean)),
            ("input_std", floats(&spec.input_std)),
        ],
    );
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("faces.onnx");
    write_model(&file, &onnx_model).unwrap();
    let clf = OnnxClassifier::load(&file, &OnnxOptions::default()).unwrap();
    assert_eq!((clf.shape(), clf.n_classes()), (shape, 40));
    assert_eq!(clf.output_kind(), OutputKind::Softmax);
    assert_eq!(clf.normalisation().0, spec.input_mean.as_slice());
    // Same logits and the same descent as the native classifier.
    let x = candle_core::Tensor::from_vec(ds.batch_f32(&[0, 11, 25]), (3, ds.c, ds.h, ds.w), &Device::Cpu)
        .unwrap();
    let diff = (clf.logits(&x).unwrap() - target.model.logits(&x).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff < 1e-3, "logits differ by {diff}");
    let icfg = InvertConfig {
        alpha: 12,
        gamma: -1.0,
        objective: Objective::LogProb,
        ..InvertConfig::default()
    };
    let classes = [0, 7, 19, 33];
    let native = invert_classes(&target.model, &Device::Cpu, shape, &classes, &icfg, &ctx).unwrap();
    let via_onnx = invert_classes(&clf, &Device::Cpu, shape, &classes, &icfg, &ctx).unwrap();
    for (a, b) in native.iter().zip(&via_onnx) {
        assert_eq!(a.costs.len(), b.costs.len());
        for (i, (ca, cb)) in a.costs.iter().zip(&b.costs).enumerate() {
            assert!(
                (ca - cb).abs() < 1e-4,
                "class {} step {i}: native {ca} vs onnx {cb}",
                a.class
            );
        }
    }
    // The CLI on the ONNX file with --data: the evaluation classifier identifies the inversions.
    let t = std::time::Instant::now();
    let ecfg = EvalConfig {
        widths: vec![64],
        copies: 4,
        epochs: 8,
        ..EvalConfig::default()
    };
    let (_, varmap, card) = rote::invert::train_eval_classifier(&ds, &ecfg, &Device::Cpu, &ctx).unwrap();
    let edir = home.path().join("eval");
    save_eval(&edir, &varmap, &card).unwrap();
    eprintln!(
        "evaluation classifier trained in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let out = home.path().join("out");
    let r = json_of(&rote(
        &[
            "invert",
            "--onnx",
            file.to_str().unwrap(),
            "--data",
            "orl-faces",
            "--eval-model",
            edir.to_str().unwrap(),
            "--method",
            "tv",
            "--iters",
            "300",
            "--tv-weight",
            "0.5",
            "--class",
            "0,1,2,3,4,5,6,7,8,9",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
        home.path(),
    ));
    let top1 = r["eval_top1"].as_f64().unwrap();
    eprintln!("onnx softmax regression, tv: evaluation top-1 {top1} over 10 people");
    assert!(top1 >= 0.6, "inversions identified: {top1}");
    let mut p_start = 0.0;
    for c in r["classes"].as_array().unwrap() {
        let (p0, p) = (
            c["target_p_start"].as_f64().unwrap(),
            c["target_p"].as_f64().unwrap(),
        );
        assert!(p > 0.9 && p > p0, "{}: p {p0} -> {p}", c["class"]);
        assert!(out.join(c["png"].as_str().unwrap()).exists());
        p_start += p0 / 10.0;
    }
    assert!(p_start < 0.3, "mean p of the grey start image {p_start}");
    assert!(out.join("tv.json").exists());
}

#[test]
fn a_cnn_graph_is_inverted_to_high_target_probability_by_every_method() {
    let cancel = CancelToken::new();
    let ctx = JobCtx::new(&cancel, &NullSink);
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("cnn.onnx");
    let mut m = cnn(12, 10, 2, None);
    write_model(&file, &m).unwrap();
    // Bias the classes so that the grey start image gets p = 1/3 each.
    let clf = OnnxClassifier::load(&file, &OnnxOptions::default()).unwrap();
    let grey = candle_core::Tensor::full(0.5f32, (1, 1, 12, 10), &Device::Cpu).unwrap();
    let z = clf
        .logits(&grey)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let init = &mut m.graph.as_mut().unwrap().initializer;
    init.iter_mut().find(|t| t.name == "fb").unwrap().float_data = z.iter().map(|v| -v).collect();
    write_model(&file, &m).unwrap();
    let clf = OnnxClassifier::load(&file, &OnnxOptions::default()).unwrap();
    assert_eq!((clf.shape(), clf.n_classes()), ([1, 12, 10], 3));
    assert_eq!(clf.output_kind(), OutputKind::Softmax);
    let classes = [0, 1, 2];
    for method in [Method::MiFace, Method::Tv, Method::Art] {
        let cfg = InvertConfig {
            alpha: 80,
            gamma: if method == Method::Art { 1.0 } else { -1.0 },
            lambda: 0.2,
            objective: Objective::LogProb,
            tv_weight: 0.01,
            init: rote::invert::Init::Grey,
            // The descent through the graph, without mi-face's default blur, which on a 12x10
            // image keeps p below 0.9 within 80 steps.
            process: rote::invert::Process::None,
            ..InvertConfig::for_method(method)
        };
        let inv = invert_classes(&clf, &Device::Cpu, [1, 12, 10], &classes, &cfg, &ctx).unwrap();
        for i in &inv {
            let (p0, p) = (i.probs[0], i.probs[i.returned_iter]);
            eprintln!("{method:?} class {}: p {p0:.3} -> {p:.3}", i.class);
            assert!(
                (p0 - 1.0 / 3.0).abs() < 1e-3 && p > 0.9,
                "{method:?} class {}: p {p0} -> {p}",
                i.class
            );
        }
    }
    // The CLI without --data: images, cost curves and target probabilities, next to the file.
    let r = json_of(&rote(
        &[
            "invert",
            "--onnx",
            file.to_str().unwrap(),
            "--all",
            "--method",
            "mi-face",
            "--objective",
            "log-prob",
            "--gamma",
            "0.05",
            "--iters",
            "100",
            "--lambda",
            "0.2",
            "--process",
            "none",
            "--json",
        ],
        home.path(),
    ));
    let dir = home.path().join("cnn-inversion");
    assert_eq!(Path::new(r["path"].as_str().unwrap()), dir.join("mi-face.json"));
    assert!(r["eval_top1"].is_null());
    assert_eq!(r["classes"].as_array().unwrap().len(), 3);
    for c in r["classes"].as_array().unwrap() {
        assert!(c["target_p"].as_f64().unwrap() >= 0.95, "{c}");
        assert!(c["cost_curve"].as_array().unwrap().len() >= 2);
        assert!(dir.join(c["png"].as_str().unwrap()).exists());
    }
}

#[test]
fn operators_without_a_gradient_are_refused_naming_them_and_the_file() {
    let home = tempfile::tempdir().unwrap();
    // GlobalAveragePool and LayerNormalization after the pool.
    let mut m = cnn(
        12,
        10,
        2,
        Some(node("GlobalAveragePool", &["p1"], &["g1"], vec![])),
    );
    if let Some(g) = m.graph.as_mut() {
        g.node
            .insert(4, node("LayerNormalization", &["g1", "cb"], &["e1"], vec![]));
    }
    let file = home.path().join("gap.onnx");
    write_model(&file, &m).unwrap();
    let err = OnnxClassifier::load(&file, &OnnxOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("gap.onnx")
            && err.contains("unsupported ONNX operators: GlobalAveragePool, LayerNormalization"),
        "{err}"
    );
    // A max-pool whose input (12 x 10) is not a multiple of its kernel (4): candle's gradient is
    // wrong there.
    let file2 = home.path().join("pool.onnx");
    write_model(&file2, &cnn(12, 10, 4, None)).unwrap();
    let err = OnnxClassifier::load(&file2, &OnnxOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("pool.onnx") && err.contains("MaxPool"), "{err}");
    // Not an ONNX file, and a wrong --input-shape.
    let junk = home.path().join("junk.onnx");
    std::fs::write(&junk, b"\xff\xff not protobuf").unwrap();
    let err = OnnxClassifier::load(&junk, &OnnxOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("junk.onnx") && err.contains("not an ONNX model"),
        "{err}"
    );
    let ok = home.path().join("ok.onnx");
    write_model(&ok, &cnn(12, 10, 2, None)).unwrap();
    let opts = OnnxOptions {
        input_shape: Some([1, 10, 12]),
        ..OnnxOptions::default()
    };
    let err = OnnxClassifier::load(&ok, &opts).err().unwrap().to_string();
    assert!(err.contains("ok.onnx") && err.contains("does not match"), "{err}");
    // The CLI prints the same one-line error.
    let out = rote(
        &["invert", "--onnx", file.to_str().unwrap(), "--all"],
        home.path(),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("gap.onnx: unsupported ONNX operators: GlobalAveragePool"),
        "{stderr}"
    );
}
