//! Shared test helpers: the rote binary, temporary folders, and planted data sets.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the rote binary with `args`, with a private ROTE_HOME.
pub fn rote(args: &[&str], home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rote"))
        .args(args)
        .env("ROTE_HOME", home)
        .output()
        .expect("run rote")
}

/// Parses stdout as one JSON object, with stderr in the panic message on failure.
pub fn json_of(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "rote failed: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Writes an IDX file (optionally gzip'd).
pub fn write_idx(path: &Path, dims: &[u32], data: &[u8], gz: bool) {
    rote::data::write_idx(path, dims, data, gz).unwrap();
}

/// A planted data set: 60 random 8x8 grey images in 3 classes where image 41 is an exact copy of
/// image 7 and image 23 is image 7 with one pixel changed by 3. Returns the images path.
pub fn planted_duplicates(dir: &Path) -> PathBuf {
    let n = 60usize;
    let mut state = 12345u64;
    let mut px: Vec<u8> = (0..n * 64)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 56) as u8
        })
        .collect();
    let img7: Vec<u8> = px[7 * 64..8 * 64].to_vec();
    px[41 * 64..42 * 64].copy_from_slice(&img7);
    px[23 * 64..24 * 64].copy_from_slice(&img7);
    px[23 * 64 + 10] = img7[10].wrapping_add(3);
    let labels: Vec<u8> = (0..n).map(|i| (i % 3) as u8).collect();
    let p = dir.join("planted-images-idx3-ubyte");
    write_idx(&p, &[n as u32, 8, 8], &px, false);
    write_idx(
        &dir.join("planted-labels-idx1-ubyte"),
        &[n as u32],
        &labels,
        false,
    );
    p
}

/// A fresh study in the temp folder (`name` + the process id) with zoo `base` trained on the 8x8
/// digits: `models` MLPs, 40 epochs, r = 0.5, seed 1, 5 % planted mislabels, with its reports.
pub fn digits_base_zoo(name: &str, models: u32) -> (PathBuf, rote::study::Study) {
    let dir = std::env::temp_dir().join(format!("rote-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut study = rote::study::Study::open_or_create(&dir).unwrap();
    study.add_dataset("digits8x8").unwrap();
    let digits = rote::data::load("digits8x8").unwrap();
    let cancel = Default::default();
    let ctx = rote::job::JobCtx::new(&cancel, &rote::job::NullSink);
    let base = rote::train::zoo::ZooConfig {
        id: "base".into(),
        train: rote::train::TrainConfig {
            data: "digits8x8".into(),
            epochs: 40,
            subset_ratio: 0.5,
            seed: 1,
            ..rote::train::zoo::ZooConfig::default().train
        },
        plant_mislabel: 0.05,
        ..rote::train::zoo::ZooConfig::default()
    };
    rote::measure::zoo_report::train_zoo_with_reports(&base, &digits, &study, models, models as usize, &ctx)
        .unwrap();
    (dir, study)
}

/// The shipped demo GPT (`assets/demo/lm/gpt-demo/`) copied into a fresh study at
/// `dir/study/lm/gpt-demo`; returns the model folder.
pub fn demo_gpt_copy(dir: &Path) -> PathBuf {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/demo/lm/gpt-demo");
    rote::study::Study::open_or_create(&dir.join("study")).unwrap();
    let dst = dir.join("study/lm/gpt-demo");
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["card.json", "config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    dst
}
