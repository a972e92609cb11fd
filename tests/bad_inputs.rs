//! The bad-input catalogue (`tests/bad_inputs/`): every broken file in `catalogue.tsv` is given
//! to the real binary, which must exit non-zero with exactly one line on stderr, `error: ...`,
//! naming the file and the problem, and never panic. The files are generated here, byte for byte
//! the same on every run, when missing from `tests/bad_inputs/files/` (they are committed so a
//! user can try them by hand); cases named `runtime:...` are built in a temporary folder at every
//! run (a non-UTF-8 folder name, which not every checkout can hold; a model trained here).
//! With the `gui` feature the same files go through the app's open-dataset and import-model
//! paths, which must show the error and keep working.
#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

mod cards;
use crate::common;
mod gui;
mod runtime;

use runtime::runtime_input;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bad_inputs");

/// One row of `catalogue.tsv`.
#[derive(Clone, Debug)]
struct Case {
    /// Path under `files/`, or `runtime:<name>`.
    file: String,
    /// What the error must contain to name the file.
    names: String,
    /// Command-line arguments, with `{file}` and `{tmp}` placeholders.
    args: String,
    /// The problem phrase the error must contain.
    expect: String,
}

fn catalogue() -> Vec<Case> {
    let text = std::fs::read_to_string(Path::new(ROOT).join("catalogue.tsv")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert_eq!(cols.len(), 4, "catalogue.tsv: 4 tab-separated columns in: {l}");
            Case {
                file: cols[0].into(),
                names: cols[1].into(),
                args: cols[2].into(),
                expect: cols[3].into(),
            }
        })
        .collect()
}

fn files_dir() -> PathBuf {
    Path::new(ROOT).join("files")
}

/// Writes `bytes` to `files/<rel>` unless the file is already there.
fn put(rel: &str, bytes: &[u8]) {
    let p = files_dir().join(rel);
    if p.exists() {
        return;
    }
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, bytes).unwrap();
}

fn idx_bytes(kind: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, kind, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn npy_bytes(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
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

fn png(w: u32, h: u32, v: u8) -> Vec<u8> {
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
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut b = png(1, 1, 0);
    b[16..20].copy_from_slice(&w.to_be_bytes());
    b[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&b[12..29]);
    b[29..33].copy_from_slice(&crc.to_be_bytes());
    b
}

/// A stored (uncompressed) zip archive holding `name`, as `torch.save` writes one.
fn zip_one(name: &str, data: &[u8]) -> Vec<u8> {
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
const PICKLE: &[u8] = b"\x80\x02}q\x00X\x06\x00\x00\x00weightq\x01K\x01s.";

/// The card of a softmax-regression model of the bundled 8x8 digits (what `rote invert` needs).
fn softmax_card() -> rote::model::ModelCard {
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
fn safetensors_of(tensors: &[(&str, Vec<f32>, Vec<usize>)]) -> Vec<u8> {
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

fn weights(w: Vec<f32>, w_shape: Vec<usize>) -> Vec<u8> {
    safetensors_of(&[("out.weight", w, w_shape), ("out.bias", vec![0.0; 10], vec![10])])
}

fn good_weights() -> Vec<u8> {
    weights((0..640).map(|k| (k % 7) as f32 * 0.01).collect(), vec![10, 64])
}

fn card_json(card: &rote::model::ModelCard) -> Vec<u8> {
    serde_json::to_vec_pretty(card).unwrap()
}

/// Writes every committed file of the catalogue that is missing.
fn generate() {
    // IDX (MNIST format).
    let px: Vec<u8> = (0..10 * 16).map(|k| (k * 7 % 256) as u8).collect();
    let labels: Vec<u8> = (0..10).map(|k| k % 2).collect();
    put(
        "idx/truncated-images-idx3-ubyte",
        &idx_bytes(8, &[10, 4, 4], &px[..50]),
    );
    put("idx/truncated-labels-idx1-ubyte", &idx_bytes(8, &[10], &labels));
    put("idx/badmagic-images-idx3-ubyte", b"GIF89a\x04\x00\x04\x00garbage");
    put("idx/badmagic-labels-idx1-ubyte", &idx_bytes(8, &[10], &labels));
    put(
        "idx/huge-images-idx3-ubyte",
        &idx_bytes(8, &[1 << 31, 1 << 31, 1], &px[..16]),
    );
    put("idx/huge-labels-idx1-ubyte", &idx_bytes(8, &[10], &labels));
    put(
        "idx/overclaim-images-idx3-ubyte",
        &idx_bytes(8, &[60000, 256, 256], &px[..16]),
    );
    put(
        "idx/overclaim-labels-idx1-ubyte",
        &idx_bytes(8, &[60000], &labels),
    );
    put("idx/count-images-idx3-ubyte", &idx_bytes(8, &[10, 4, 4], &px));
    put("idx/count-labels-idx1-ubyte", &idx_bytes(8, &[9], &labels[..9]));
    put("idx/nolabels-images-idx3-ubyte", &idx_bytes(8, &[10, 4, 4], &px));
    put(
        "idx/float-images-idx3-ubyte",
        &idx_bytes(0x0d, &[10, 4, 4], &[0; 640]),
    );
    put("idx/float-labels-idx1-ubyte", &idx_bytes(8, &[10], &labels));
    put("idx/ndims-images-idx3-ubyte", &idx_bytes(8, &[1; 7], &[0]));
    put("idx/ndims-labels-idx1-ubyte", &idx_bytes(8, &[1], &[0]));
    put(
        "idx/channels-images-idx4-ubyte",
        &idx_bytes(8, &[10, 2, 2, 4], &px),
    );
    put("idx/channels-labels-idx1-ubyte", &idx_bytes(8, &[10], &labels));
    put("idx/empty-images-idx3-ubyte", &idx_bytes(8, &[0, 4, 4], &[]));
    put("idx/empty-labels-idx1-ubyte", &idx_bytes(8, &[0], &[]));
    put(
        "idx/gzip-images-idx3-ubyte.gz",
        b"\x1f\x8b\x08\x00garbage, not deflate",
    );
    put("idx/gzip-labels-idx1-ubyte", &idx_bytes(8, &[10], &labels));
    put(
        "idx/cut-gzip-images-idx3-ubyte.gz",
        &gz(&idx_bytes(8, &[10, 4, 4], &px))[..40],
    );
    put("idx/cut-gzip-labels-idx1-ubyte", &idx_bytes(8, &[10], &labels));

    // NPY.
    put(
        "npy/bad-header.npy",
        b"\x93NUMPY\x01\x00\x20\x00{'descr': garbage }          \n",
    );
    put("npy/complex.npy", &npy_bytes("<c8", "(2, 4, 4)", &[0; 256]));
    put(
        "npy/huge.npy",
        &npy_bytes("|u1", "(2147483648, 2147483648)", &px[..16]),
    );
    put("npy/truncated.npy", &npy_bytes("|u1", "(10, 4, 4)", &px[..20]));
    put("npy/flat.npy", &npy_bytes("|u1", "(10, 16)", &px));
    put("npy/five-channels.npy", &npy_bytes("|u1", "(2, 4, 4, 5)", &px));
    put("npy/count.npy", &npy_bytes("|u1", "(2, 4, 4)", &px[..32]));
    put("npy/count-labels.npy", &npy_bytes("<i8", "(3,)", &[0; 24]));
    put("npy/not-npy.npy", b"just some text, not an array\n");

    // CIFAR-10 binary batches.
    let mut rec = vec![3u8];
    rec.extend(std::iter::repeat_n(128u8, 3072));
    let mut partial = rec.clone();
    partial.extend_from_slice(&[1, 2, 3, 4, 5]);
    put("cifar/partial.bin", &partial);
    let mut label = rec.clone();
    label[0] = 12;
    put("cifar/label.bin", &label);
    put("cifar/empty.bin", b"");

    // Image folders.
    put("folder/corrupt-png/a/ok.png", &png(4, 4, 10));
    put("folder/corrupt-png/b/bad.png", b"\x89PNG\r\n\x1a\n\0\0garbage");
    put("folder/zero-byte/a/ok.png", &png(4, 4, 10));
    put("folder/zero-byte/b/empty.png", b"");
    put("folder/not-a-png/a/ok.png", &png(4, 4, 10));
    put(
        "folder/not-a-png/b/photo.jpg",
        b"<html>this was saved from a browser</html>\n",
    );
    put("folder/huge-png/a/ok.png", &png(4, 4, 10));
    put("folder/huge-png/b/huge.png", &png_claiming(100_000, 100_000));
    put("folder/no-classes/README.txt", b"No class subfolders here.\n");
    put("folder/no-images/a/notes.txt", b"Not an image.\n");
    put("folder/no-images/b/notes.txt", b"Not an image.\n");
    for k in 0..3u8 {
        put(&format!("folder/one-class/only/{k}.png"), &png(4, 4, 10 + 40 * k));
    }

    // Text corpora.
    put("text/empty.txt", b"");
    put("text/short.txt", b"Too short to train on.\n");
    put("text/latin1.txt", b"caf\xe9 au lait, cr\xe8me br\xfbl\xe9e\n");

    // Model folders: a softmax regression of the 8x8 digits, broken in one way each.
    let card = softmax_card();
    let good = good_weights();
    let models: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        (
            "truncated-weights",
            card_json(&card),
            good[..good.len() / 2].to_vec(),
        ),
        ("header-too-large", card_json(&card), {
            let mut b = (1u64 << 40).to_le_bytes().to_vec();
            b.extend_from_slice(b"{}");
            b
        }),
        ("header-not-json", card_json(&card), {
            let mut b = 16u64.to_le_bytes().to_vec();
            b.extend_from_slice(b"not json at all!");
            b
        }),
        ("nan-weights", card_json(&card), {
            let mut w: Vec<f32> = (0..640).map(|k| (k % 7) as f32 * 0.01).collect();
            w[17] = f32::NAN;
            weights(w, vec![10, 64])
        }),
        ("inf-weights", card_json(&card), {
            let mut w: Vec<f32> = (0..640).map(|k| (k % 7) as f32 * 0.01).collect();
            w[3] = f32::INFINITY;
            weights(w, vec![10, 64])
        }),
        (
            "wrong-shape",
            card_json(&card),
            weights(vec![0.0; 630], vec![10, 63]),
        ),
        (
            "missing-tensor",
            card_json(&card),
            safetensors_of(&[("out.weight", vec![0.0; 640], vec![10, 64])]),
        ),
        (
            "pickle-zip",
            card_json(&card),
            zip_one("archive/data.pkl", PICKLE),
        ),
        ("pickle-raw", card_json(&card), PICKLE.to_vec()),
        ("card-invalid-json", b"{ \"id\": \"x\", ".to_vec(), good.clone()),
        (
            "card-wrong-types",
            {
                let mut v = serde_json::to_value(&card).unwrap();
                v["spec"]["n_classes"] = serde_json::json!("ten");
                serde_json::to_vec_pretty(&v).unwrap()
            },
            good.clone(),
        ),
        (
            "card-unknown-family",
            {
                let mut v = serde_json::to_value(&card).unwrap();
                v["spec"]["family"] = serde_json::json!("transformer");
                serde_json::to_vec_pretty(&v).unwrap()
            },
            good.clone(),
        ),
        (
            "card-index-outside",
            {
                let mut c = card.clone();
                c.train_indices.push(5000);
                card_json(&c)
            },
            good.clone(),
        ),
    ];
    for (name, card_bytes, weight_bytes) in models {
        put(&format!("model/{name}/card.json"), &card_bytes);
        put(&format!("model/{name}/weights.safetensors"), &weight_bytes);
    }
    put("model/no-card/weights.safetensors", &good);
    put("model/pytorch-only/card.json", &card_json(&card));
    put(
        "model/pytorch-only/pytorch_model.pt",
        &zip_one("archive/data.pkl", PICKLE),
    );
    put("model/resnet.pth", &zip_one("resnet/data.pkl", PICKLE));

    // Data sets that are pickles.
    put("data/tensors.pt", &zip_one("tensors/data.pkl", PICKLE));
    put("data/images.pkl", PICKLE);

    // Studies and other cards.
    put("study/invalid-json/study.json", b"{ \"format\": 1, \"name\": ");
    put("study/wrong-types/study.json", b"{ \"format\": \"one\", \"name\": \"s\", \"description\": \"\", \"created_by\": \"\", \"datasets\": [] }\n");
    put("study/no-manifest/README.txt", b"A folder without study.json.\n");
    put(
        "lm-study/lm/bad-card/card.json",
        b"{ \"id\": \"lm\", \"vocab\": 12 }\n",
    );
    put("lm-study/lm/bad-card/weights.safetensors", b"");
    put("lm-study/lm/char-lstm.pt", &zip_one("char-lstm/data.pkl", PICKLE));
    put("ddpm-study/diffusion/unet.pth", PICKLE);
    put("ssl-study/ssl/encoder.pth", &zip_one("encoder/data.pkl", PICKLE));
    put("ddpm-study/diffusion/bad-card/card.json", b"[1, 2, 3]\n");
    put("ddpm-study/diffusion/bad-card/weights.safetensors", b"");

    // diffusers UNet2DModel folders (`rote sample`): a pickle only, an unsupported block, a
    // scheduler rote does not implement, another model's weights.
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/diffusers");
    let read = |m: &str, f: &str| std::fs::read(fx.join(m).join(f)).unwrap();
    put("diffusers/pickle-only/config.json", &read("dummy", "config.json"));
    put(
        "diffusers/pickle-only/diffusion_pytorch_model.bin",
        &zip_one("archive/data.pkl", PICKLE),
    );
    let cfg = String::from_utf8(read("dummy", "config.json")).unwrap();
    put(
        "diffusers/cross-attention/config.json",
        cfg.replacen("\"AttnDownBlock2D\"", "\"CrossAttnDownBlock2D\"", 1)
            .as_bytes(),
    );
    put(
        "diffusers/cross-attention/diffusion_pytorch_model.safetensors",
        &read("dummy", "diffusion_pytorch_model.safetensors"),
    );
    for f in ["config.json", "diffusion_pytorch_model.safetensors"] {
        put(&format!("diffusers/cosine-betas/{f}"), &read("cifar", f));
    }
    let sched = String::from_utf8(read("cifar", "scheduler_config.json")).unwrap();
    put(
        "diffusers/cosine-betas/scheduler_config.json",
        sched.replace("\"linear\"", "\"squaredcos_cap_v2\"").as_bytes(),
    );
    put(
        "diffusers/other-weights/config.json",
        &read("dummy", "config.json"),
    );
    put(
        "diffusers/other-weights/diffusion_pytorch_model.safetensors",
        &read("cifar", "diffusion_pytorch_model.safetensors"),
    );

    // A diffusers model given training images of another size; a study's imported diffusers
    // model (card format "diffusers") whose config.json is gone.
    for f in [
        "config.json",
        "scheduler_config.json",
        "diffusion_pytorch_model.safetensors",
    ] {
        put(&format!("diffusers/colour-8x8/{f}"), &read("dummy", f));
    }
    let card = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/diffusion/ddpm-digits-dup32/card.json"),
    )
    .unwrap();
    put(
        "ddpm-study/diffusion/imported-no-config/card.json",
        card.replacen('{', "{\n  \"format\": \"diffusers\",", 1)
            .as_bytes(),
    );

    // Broken model folders of every kind and zoo records.
    cards::generate();
}

fn args_for(case: &Case, file: &Path, tmp: &Path) -> Vec<String> {
    case.args
        .split_whitespace()
        .map(|a| {
            a.replace("{file}", file.to_str().unwrap())
                .replace("{tmp}", tmp.to_str().unwrap())
        })
        .collect()
}

fn input_path(case: &Case, tmp: &Path) -> PathBuf {
    match case.file.strip_prefix("runtime:") {
        Some(name) => runtime_input(name, tmp),
        None => files_dir().join(&case.file),
    }
}

/// What is wrong with one run, if anything.
fn check(case: &Case, out: &std::process::Output) -> Option<String> {
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.trim();
    let problem = if out.status.success() {
        "exit status 0".to_string()
    } else if line.contains("panicked") || line.contains("RUST_BACKTRACE") {
        "panicked".into()
    } else if line.lines().count() != 1 {
        format!("{} lines on stderr", line.lines().count())
    } else if line.chars().count() >= 300 {
        format!("{} characters on the error line", line.chars().count())
    } else if !line.starts_with("error: ") {
        "the line does not start with 'error: '".into()
    } else if !line.contains(&case.names) {
        format!("'{}' (the file) not named", case.names)
    } else if !line.contains(&case.expect) {
        format!("'{}' (the problem) not said", case.expect)
    } else {
        return None;
    };
    Some(format!(
        "{} [{}]: {problem}\n  stderr: {}",
        case.file,
        case.args,
        line.replace('\n', "\n          ")
    ))
}

#[test]
fn every_catalogued_input_is_a_one_line_error_naming_the_file() {
    generate();
    let cases = catalogue();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let home = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (k, case) in cases.iter().enumerate() {
        let tmp = home.path().join(format!("case{k}"));
        std::fs::create_dir_all(&tmp).unwrap();
        let file = input_path(case, &tmp);
        let args = args_for(case, &file, &tmp);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = common::rote(&args, home.path());
        if let Some(f) = check(case, &out) {
            failures.push(f);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad inputs misbehaved:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn the_readme_lists_every_case() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    for case in catalogue() {
        assert!(
            readme.contains(&format!("`{}`", case.file)),
            "README.md does not list {}",
            case.file
        );
    }
}

/// The files stay small enough to commit (under 2 MB together).
#[test]
fn the_committed_files_are_small() {
    generate();
    fn size(p: &Path) -> u64 {
        if p.is_dir() {
            std::fs::read_dir(p)
                .unwrap()
                .map(|e| size(&e.unwrap().path()))
                .sum()
        } else {
            p.metadata().unwrap().len()
        }
    }
    let total = size(&files_dir());
    assert!(total < 2 << 20, "{total} bytes");
}
