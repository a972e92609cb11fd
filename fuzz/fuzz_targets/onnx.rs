//! ONNX image classifiers (feature `onnx`): protobuf decoding and everything
//! `OnnxClassifier::load` checks, from bytes.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rote::invert::onnx::{OnnxClassifier, OnnxOptions};

fuzz_target!(|data: &[u8]| {
    let p = Path::new("model.onnx");
    let _ = rote::invert::onnx::parse_model(p, data);
    let opts = OnnxOptions {
        input_shape: None,
        fallback_shape: Some([1, 4, 4]),
        mean: Vec::new(),
        std: Vec::new(),
    };
    let _ = OnnxClassifier::from_bytes(p, data, &opts);
});
