//! `rote zoo --subsets`: a zoo trained on given subsets (as another implementation drew them)
//! trains each model on exactly its row, makes every named row a training candidate, records the
//! matrix's hash, plants and recovers mislabels among those candidates, resumes, and refuses bad
//! matrices with one line naming the file.

#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use crate::common;

use std::path::Path;

use common::{json_of, rote};
use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};
use sha2::Digest as _;

/// Candidate rows: the first `CANDIDATES` of the 8x8 digits; the rest is never named.
const CANDIDATES: usize = 1200;
const K: usize = 12;
const M: usize = 600;

fn npy(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    rote::data::npy_bytes(descr, shape, data)
}

fn i64_matrix(rows: &[Vec<i64>]) -> Vec<u8> {
    let data: Vec<u8> = rows.iter().flatten().flat_map(|v| v.to_le_bytes()).collect();
    npy("<i8", &[rows.len(), rows[0].len()], &data)
}

fn subsets() -> Vec<Vec<i64>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    (0..K)
        .map(|_| {
            let mut all: Vec<i64> = (0..CANDIDATES as i64).collect();
            all.shuffle(&mut rng);
            all.truncate(M);
            all
        })
        .collect()
}

fn zoo(study: &str, file: &Path, extra: &[&str], home: &Path) -> std::process::Output {
    let mut args = vec![
        "zoo",
        "--data",
        "digits8x8",
        "--subsets",
        file.to_str().unwrap(),
        "--epochs",
        "40",
        "--batch-size",
        "32",
        "--json",
        "--out",
        study,
    ];
    args.extend_from_slice(extra);
    rote(&args, home)
}

#[test]
fn a_zoo_trains_on_exactly_the_given_subsets() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("subsets.npy");
    let rows = subsets();
    // The training candidates: every row some subset names (12 random halves of the first 1200
    // rows leave a row or so of them out, which then belongs to the test set).
    let named: std::collections::BTreeSet<usize> = rows.iter().flatten().map(|&i| i as usize).collect();
    assert!(named.len() > CANDIDATES - 10 && named.iter().all(|&i| i < CANDIDATES));
    let bytes = i64_matrix(&rows);
    std::fs::write(&file, &bytes).unwrap();
    let study = home.path().join("s");
    let s = study.to_str().unwrap();
    let v = json_of(&zoo(
        s,
        &file,
        &["--plant-mislabel", "0.03", "--plant-seed", "2"],
        home.path(),
    ));
    assert_eq!(v["models"], K as u64, "--models defaults to the matrix's rows");

    // zoo.json records the matrix's hash; the zoo keeps a byte-identical copy.
    let dir = study.join("zoos/zoo-mlp-digits8x8");
    let z = rote::train::zoo::Zoo::open(&dir).unwrap();
    let r = z.manifest.config.subsets.clone().unwrap();
    let sha: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!((r.sha256.as_str(), r.k, r.m), (sha.as_str(), K, M));
    assert_eq!(std::fs::read(dir.join("subsets.npy")).unwrap(), bytes);
    // Planting happens among the candidates only.
    assert!(!z.manifest.planted.is_empty());
    assert!(z.manifest.planted.iter().all(|p| named.contains(&(p.0 as usize))));

    // Model k trained on exactly row k.
    let models = z.load_models().unwrap();
    assert_eq!(models.len(), K);
    for m in &models {
        let mut want = vec![false; m.member.len()];
        for &i in &rows[m.index as usize] {
            want[i as usize] = true;
        }
        assert!(m.member == want, "model {} trained on other rows", m.index);
    }

    // Every named row is a training candidate with a mem estimate; the rest is the test set.
    let mem = json_of(&rote(&["memorization", s, "--json"], home.path()));
    let n = rote::data::load("digits8x8").unwrap().n;
    assert_eq!(mem["n_train"], named.len() as u64);
    assert_eq!(mem["n_test"], (n - named.len()) as u64);
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(study.join("results/zoo-mlp-digits8x8/memorization.json")).unwrap(),
    )
    .unwrap();
    let values: Vec<Option<f64>> = serde_json::from_value(report["mem"]["mem"].clone()).unwrap();
    for (i, v) in values.iter().enumerate() {
        assert_eq!(v.is_some(), named.contains(&i), "row {i}: {v:?}");
    }
    // The planted mislabels are the most memorized (chance: ~3%).
    let recall = mem["planted_recall"].as_f64().unwrap();
    assert!(recall >= 0.5, "planted recall {recall}");

    // --compare: against itself r = 1; against a noisy copy r < 1; a short vector is an error.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let as_f32 = |noise: f64, rng: &mut rand_chacha::ChaCha8Rng| -> Vec<u8> {
        let data: Vec<u8> = values
            .iter()
            .flat_map(|v| {
                let x = v.map_or(f32::NAN, |x| (x + noise * rng.random_range(-1.0..1.0)) as f32);
                x.to_le_bytes()
            })
            .collect();
        npy("<f4", &[values.len()], &data)
    };
    let same = home.path().join("same.npy");
    std::fs::write(&same, as_f32(0.0, &mut rng)).unwrap();
    let c = json_of(&rote(
        &["memorization", s, "--compare", same.to_str().unwrap(), "--json"],
        home.path(),
    ));
    assert!(
        (c["compare"]["pearson"].as_f64().unwrap() - 1.0).abs() < 1e-6,
        "{c}"
    );
    assert_eq!(c["compare"]["n"], named.len() as u64);
    let noisy = home.path().join("noisy.npy");
    std::fs::write(&noisy, as_f32(0.5, &mut rng)).unwrap();
    let c = json_of(&rote(
        &["memorization", s, "--compare", noisy.to_str().unwrap(), "--json"],
        home.path(),
    ));
    let r = c["compare"]["pearson"].as_f64().unwrap();
    assert!(r < 0.9 && r > 0.0, "noisy copy: {r}");

    // Resuming with the same matrix trains nothing; more models than rows is refused.
    let again = json_of(&zoo(
        s,
        &file,
        &["--plant-mislabel", "0.03", "--plant-seed", "2"],
        home.path(),
    ));
    assert_eq!(again["trained"], 0);
    let more = zoo(
        s,
        &file,
        &["--plant-mislabel", "0.03", "--plant-seed", "2", "--models", "13"],
        home.path(),
    );
    let err = String::from_utf8_lossy(&more.stderr);
    assert!(
        !more.status.success() && err.contains("holds 12 subsets"),
        "{err}"
    );
}

#[test]
fn bad_subset_files_are_one_line_naming_the_file() {
    let home = tempfile::tempdir().unwrap();
    let study = home.path().join("s");
    let i4 = |v: &[i32], shape: &[usize]| {
        let d: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        npy("<i4", shape, &d)
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "range.npy",
            i4(&[0, 1, 2, 99_999], &[2, 2]),
            "row 1 names index 99999, outside",
        ),
        (
            "negative.npy",
            i4(&[0, -3, 2, 4], &[2, 2]),
            "row 0 names index -3",
        ),
        (
            "repeated.npy",
            i4(&[0, 1, 7, 7], &[2, 2]),
            "row 1 names index 7 twice",
        ),
        (
            "float.npy",
            npy("<f8", &[1, 2], &[0u8; 16]),
            "not an integer type",
        ),
        ("ragged.npy", npy("|O", &[2], &[0u8; 16]), "ragged rows"),
        ("flat.npy", i4(&[0, 1, 2], &[3]), "not a 2-D matrix"),
        ("short.npy", i4(&[0, 1, 2], &[2, 2]), "truncated data"),
        ("pickle.npy", b"\x80\x02}q\x00.".to_vec(), "no NPY magic"),
    ];
    for (name, bytes, needle) in cases {
        let file = home.path().join(name);
        std::fs::write(&file, bytes).unwrap();
        let out = zoo(study.to_str().unwrap(), &file, &[], home.path());
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err.trim();
        assert!(!out.status.success(), "{name} accepted");
        assert_eq!(line.lines().count(), 1, "{name}: {line}");
        assert!(
            line.starts_with("error: ") && line.contains(name) && line.contains(needle),
            "{name}: {line}"
        );
        assert!(!line.contains("panicked"), "{line}");
    }
}
