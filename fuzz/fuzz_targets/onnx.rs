//! ONNX image classifiers (feature `onnx`): protobuf decoding and everything
//! `OnnxClassifier::load` checks, from bytes.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rote::invert::onnx::{OnnxClassifier, OnnxOptions};

/// rote catches candle-onnx's panics (`catch_unwind`, reported as an error on the file), but
/// libfuzzer-sys's panic hook aborts before any unwinding. A silent hook lets caught panics be
/// caught; a panic that escapes rote still reaches libfuzzer-sys's own `catch_unwind`, which
/// aborts: a crash as before.
static QUIET_PANICS: std::sync::Once = std::sync::Once::new();

fuzz_target!(|data: &[u8]| {
    QUIET_PANICS.call_once(|| std::panic::set_hook(Box::new(|_| {})));
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
