//! NPY image arrays, label arrays, zoo subset matrices (`rote zoo --subsets`) and compared
//! vectors (`rote memorization --compare`) from bytes.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let p = Path::new("fuzz.npy");
    if let Ok((shape, pixels)) = rote::data::parse_npy_images(p, data) {
        let n = shape[0];
        assert_eq!(pixels.len(), shape.iter().product::<usize>());
        let _ = rote::data::parse_npy_labels(Path::new("fuzz-labels.npy"), data, n);
    }
    let _ = rote::data::parse_npy_labels(Path::new("fuzz-labels.npy"), data, 4);
    if let Ok(rows) = rote::train::zoo_subsets::parse_subsets(p, data, 1000) {
        assert!(rows.iter().flatten().all(|&i| i < 1000));
    }
    let _ = rote::data::parse_npy_vector(p, data);
});
