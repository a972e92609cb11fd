//! IDX images + labels (gzip'd or plain) from bytes: the first byte splits the input into an
//! images file and a labels file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let cut = (usize::from(cut) * rest.len() / 255).min(rest.len());
    let (images, labels) = rest.split_at(cut);
    let _ = rote::data::parse_idx(Path::new("fuzz-images-idx3-ubyte"), rest);
    let _ = rote::data::parse_idx_dataset(
        Path::new("fuzz-images-idx3-ubyte"),
        images,
        Path::new("fuzz-labels-idx1-ubyte"),
        labels,
    );
});
