//! Byte builders for the catalogue's broken files: IDX (MNIST), gzip, NPY, PNG (one claiming a
//! huge size), a stored zip as `torch.save` writes one, a pickle, safetensors, and the card and
//! weights of the softmax-regression model of the 8x8 digits every broken model folder starts
//! from. Deterministic: the same bytes on every run.

use std::collections::HashMap;

use candle_core::{Device, Tensor};

pub(super) fn idx_bytes(kind: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, kind, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

pub(super) fn gz(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

pub(super) fn npy_bytes(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(header.len() as u16).to_le_bytes());
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(data);
    b
}

pub(super) fn png(w: u32, h: u32, v: u8) -> Vec<u8> {
    let img = image::GrayImage::from_pixel(w, h, image::Luma([v]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(bytes);
    c.sum()
}

/// A PNG whose header claims `w` x `h` pixels over the data of a 1x1 image (valid CRC).
pub(super) fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut b = png(1, 1, 0);
    b[16..20].copy_from_slice(&w.to_be_bytes());
    b[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&b[12..29]);
    b[29..33].copy_from_slice(&crc.to_be_bytes());
    b
}

/// A stored (uncompressed) zip archive holding `name`, as `torch.save` writes one.
pub(super) fn zip_one(name: &str, data: &[u8]) -> Vec<u8> {
    let crc = crc32(data);
    let n = name.len() as u16;
    let size = data.len() as u32;
    let mut b = Vec::new();
    b.extend_from_slice(b"PK\x03\x04");
    for v in [20u16, 0, 0, 0, 0] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&crc.to_le_bytes());
    b.extend_from_slice(&size.to_le_bytes());
    b.extend_from_slice(&size.to_le_bytes());
    b.extend_from_slice(&n.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(name.as_bytes());
    b.extend_from_slice(data);
    let central = b.len() as u32;
    b.extend_from_slice(b"PK\x01\x02");
    for v in [20u16, 20, 0, 0, 0, 0] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&crc.to_le_bytes());
    b.extend_from_slice(&size.to_le_bytes());
    b.extend_from_slice(&size.to_le_bytes());
    b.extend_from_slice(&n.to_le_bytes());
    for v in [0u16, 0, 0, 0] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(name.as_bytes());
    let central_len = b.len() as u32 - central;
    b.extend_from_slice(b"PK\x05\x06");
    for v in [0u16, 0, 1, 1] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&central_len.to_le_bytes());
    b.extend_from_slice(&central.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b
}

/// A protocol-2 pickle of `{'weight': 1}`, the first bytes of a pre-1.6 `torch.save` file.
pub(super) const PICKLE: &[u8] = b"\x80\x02}q\x00X\x06\x00\x00\x00weightq\x01K\x01s.";

/// The card of a softmax-regression model of the bundled 8x8 digits (what `rote invert` needs).
pub(super) fn softmax_card() -> rote::model::ModelCard {
    let ds = rote::data::load("digits8x8").unwrap();
    rote::model::ModelCard {
        id: "softmax-digits".into(),
        spec: rote::model::ModelSpec::default_for(rote::model::Family::Softmax, [1, 8, 8], 10),
        n_params: 650,
        hyper: rote::model::Hyper {
            optimizer: "adamw".into(),
            lr: 1e-3,
            momentum: 0.9,
            weight_decay: 0.0,
            batch_size: 64,
            subset_ratio: 1.0,
        },
        dataset: rote::model::DatasetRef {
            name: "digits8x8".into(),
            source: ds.source.clone(),
            hash: ds.hash.clone(),
            n: ds.n,
        },
        train_indices: (0..10).collect(),
        seed: 0,
        epochs: 1,
        metrics: rote::model::TrainMetrics {
            n_train: 10,
            n_test: 0,
            train_acc: 0.0,
            test_acc: 0.0,
            train_loss: 0.0,
            seconds: 0.0,
        },
        history: vec![],
        loss_curve: vec![],
        device: "cpu".into(),
        command: "hand-made for tests/bad_inputs".into(),
        rote_version: "0".into(),
        created_unix: 0,
    }
}

/// Safetensors bytes of the given tensors (f32, deterministic order).
pub(super) fn safetensors_of(tensors: &[(&str, Vec<f32>, Vec<usize>)]) -> Vec<u8> {
    let map: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, v, s)| {
            (
                k.to_string(),
                Tensor::from_vec(v.clone(), s.as_slice(), &Device::Cpu).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(map.iter().map(|(k, v)| (k.as_str(), v)), None).unwrap()
}

pub(super) fn weights(w: Vec<f32>, w_shape: Vec<usize>) -> Vec<u8> {
    safetensors_of(&[("out.weight", w, w_shape), ("out.bias", vec![0.0; 10], vec![10])])
}

pub(super) fn good_weights() -> Vec<u8> {
    weights((0..640).map(|k| (k % 7) as f32 * 0.01).collect(), vec![10, 64])
}

pub(super) fn card_json(card: &rote::model::ModelCard) -> Vec<u8> {
    serde_json::to_vec_pretty(card).unwrap()
}
