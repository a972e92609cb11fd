//! One CIFAR-10 binary batch from bytes.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((labels, pixels)) = rote::data::parse_cifar_batch(Path::new("data_batch_1.bin"), data) {
        assert_eq!(pixels.len(), labels.len() * 3072);
    }
});
