//! The study manifest (`study.json`).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = rote::study::StudyManifest::from_json(Path::new("study/study.json"), text);
    }
});
