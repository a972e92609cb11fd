//! Inputs found by fuzzing (`fuzz/fuzz_targets/onnx.rs`), kept as regression tests.

use super::*;

/// Fuzzing: a MatMul node with one input made candle-onnx index past the end of the node's
/// inputs (caught as "candle-onnx panicked"); now the node is named.
#[test]
fn node_missing_an_input_is_named() {
    let tensor = onnx::TensorProto {
        dims: vec![16, 3],
        data_type: ONNX_FLOAT,
        name: "W".into(),
        raw_data: vec![0; 16 * 3 * 4],
        ..Default::default()
    };
    let input = onnx::ValueInfoProto {
        name: "x".into(),
        ..Default::default()
    };
    let graph = onnx::GraphProto {
        node: vec![onnx::NodeProto {
            name: "mm".into(),
            input: vec!["x".into()],
            output: vec!["y".into()],
            op_type: "MatMul".into(),
            ..Default::default()
        }],
        initializer: vec![tensor],
        input: vec![input],
        output: vec![onnx::ValueInfoProto {
            name: "y".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let model = ModelProto {
        ir_version: 7,
        graph: Some(graph),
        ..Default::default()
    };
    let opts = OnnxOptions {
        fallback_shape: Some([1, 4, 4]),
        ..Default::default()
    };
    let err = OnnxClassifier::from_bytes(Path::new("net.onnx"), &model.encode_to_vec(), &opts)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("net.onnx") && err.contains("node 'mm' (MatMul) has 1 inputs"),
        "{err}"
    );
}
