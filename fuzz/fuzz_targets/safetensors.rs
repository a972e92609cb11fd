//! Weights files as `model::checkpoint` reads them: pickle detection, the safetensors header and
//! data, then the name, shape and finiteness checks against a small architecture.
#![no_main]

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::{Init, VarMap};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let varmap = VarMap::new();
    let dev = Device::Cpu;
    for (name, shape) in [("fc.weight", vec![2, 3]), ("fc.bias", vec![2])] {
        if varmap
            .get(shape.as_slice(), name, Init::Const(0.0), DType::F32, &dev)
            .is_err()
        {
            return;
        }
    }
    let _ = rote::model::fill_varmap_from_bytes(
        &varmap,
        Path::new("models/m/weights.safetensors"),
        data,
        "MLP",
        &dev,
    );
});
