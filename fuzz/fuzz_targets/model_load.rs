//! The load path of every model kind, not only parsing: a card and a weights file (or, for a
//! zoo, `zoo.json` and one model record) from one input, validated and built as the loaders do:
//! sizes in range, the architecture against the safetensors header (with the one-line summary and
//! its explanation), then the model built and the weights read and checked.
//!
//! Input: byte 0 picks the kind (classifier, DDPM, character LM, SSL encoder, zoo record; modulo
//! 5), bytes 1-2 are the card's length (u16, little-endian), then the card's text, then the
//! weights (or record) bytes.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rote::model::header::load_arch_from_bytes;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let Some((len, rest)) = rest.split_first_chunk::<2>() else {
        return;
    };
    let n = usize::from(u16::from_le_bytes(*len)).min(rest.len());
    let (card, weights) = rest.split_at(n);
    let Ok(text) = std::str::from_utf8(card) else {
        return;
    };
    let c = Path::new("m/card.json");
    let w = Path::new("m/weights.safetensors");
    match kind % 5 {
        0 => {
            if let Ok(card) = rote::model::ModelCard::from_json(c, text) {
                let _ = load_arch_from_bytes(&card.spec, c, w, weights);
            }
        }
        1 => {
            if let Ok(card) = rote::diffusion::DiffusionCard::from_json(c, text) {
                let _ = load_arch_from_bytes(&card.unet, c, w, weights);
            }
        }
        2 => {
            if let Ok(card) = rote::canary::card::LmCard::from_json(c, text) {
                let _ = load_arch_from_bytes(&card.arch, c, w, weights);
            }
        }
        3 => {
            if let Ok(card) = rote::ssl::SslCard::from_json(c, text) {
                let _ = load_arch_from_bytes(&card.arch, c, w, weights);
            }
        }
        _ => {
            let z = Path::new("zoos/z/zoo.json");
            if let Ok(m) = rote::train::zoo::ZooManifest::from_json(z, text) {
                let _ = rote::train::zoo::ZooModel::from_bytes(Path::new("m00000.bin"), weights, m.dataset.n);
            }
        }
    }
});
