//! Tabular diffusion and its memorization ratio (Fang et al.), checked with planted ground truth:
//! exact copies, near copies and fresh rows give the ratio the rule promises, and a TabDDPM trained
//! on Adult rows with planted duplicates replicates the planted rows far more than the others.
#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use crate::common;

use rote::data::tabular::load_adult;
use rote::job::{CancelToken, JobCtx, NullSink};
use rote::tabular::augment::Augment;
use rote::tabular::ddpm::TabDdpmArch;
use rote::tabular::memorization::{DistanceRule, THRESHOLD, memorization_ratio, nearest_two};
use rote::tabular::table::MixedTable;
use rote::tabular::train::{TabTrainConfig, load_card, train_tabular};

fn adult_rows(n: usize) -> MixedTable {
    let data = load_adult().unwrap();
    let rows: Vec<usize> = data.train_indices().into_iter().take(n).collect();
    MixedTable::from_data(&data, &rows)
}

#[test]
fn copies_count_as_memorized_and_fresh_rows_do_not() {
    let all = adult_rows(1200);
    let train = all.subset(&(0..1000).collect::<Vec<_>>());
    // 50 exact copies of training rows, 150 unseen real rows.
    let mut idx: Vec<usize> = (0..50).map(|i| i * 7).collect();
    let fresh: Vec<usize> = (1000..1150).collect();
    idx.extend(&fresh);
    let syn = all.subset(&idx);
    for rule in [DistanceRule::Code, DistanceRule::Global] {
        let pairs = nearest_two(&train, &syn, rule);
        for (k, p) in pairs.iter().take(50).enumerate() {
            assert!(p.memorized(THRESHOLD), "{rule:?}: copy {k} not memorized: {p:?}");
        }
        let fresh_flagged = pairs[50..].iter().filter(|p| p.memorized(THRESHOLD)).count();
        let m = memorization_ratio(&train, &syn, rule);
        assert!(m.ratio >= 0.25, "{rule:?}: {m:?}");
        // Unseen real rows: the global rule flags few of them; the reference's per-query scaling
        // flags more (its known bias), but not all.
        match rule {
            DistanceRule::Global => assert!(fresh_flagged < 40, "global flagged {fresh_flagged}/150"),
            DistanceRule::Code => assert!(fresh_flagged < 150, "code flagged every fresh row"),
        }
    }
}

#[test]
fn synthetic_rows_round_trip_through_csv() {
    let t = adult_rows(40);
    let dir = tempfile_dir("rt");
    let path = dir.join("rows.csv");
    t.write_csv(&path).unwrap();
    let back = MixedTable::read_csv(&path, &t.schema).unwrap();
    assert_eq!(back, t);
    std::fs::write(&path, "age,workclass\n1,2\n").unwrap();
    let err = MixedTable::read_csv(&path, &t.schema).unwrap_err().to_string();
    assert!(err.contains("rows.csv") && err.contains("header"), "{err}");
}

fn tempfile_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rote-tabular-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn tabddpm_replicates_planted_duplicates() {
    let study = tempfile_dir("plant");
    let cfg = TabTrainConfig {
        rows: 400,
        epochs: 150,
        checkpoints: 2,
        batch_size: 128,
        arch: TabDdpmArch {
            dim_t: 64,
            layers: vec![128, 128],
            timesteps: 50,
        },
        samples: 800,
        plant_duplicates: 10,
        dup_factor: 30,
        augment: Augment::None,
        id: "plant".into(),
        ..TabTrainConfig::default()
    };
    let cancel = CancelToken::new();
    let card = train_tabular(&cfg, &study, &JobCtx::new(&cancel, &NullSink)).unwrap();
    let dir = study.join("tabular").join("plant");
    let card2 = load_card(&dir).unwrap();
    assert_eq!(card2.members, card.members);
    assert_eq!(card.by_epoch.len(), 2);
    assert!(dir.join("samples.csv").exists() && dir.join("weights.safetensors").exists());
    // The saved weights load back into the recorded architecture.
    let weights = dir.join("weights.safetensors");
    let device = candle_core::Device::Cpu;
    rote::tabular::ddpm::TabDdpm::load(card.config.arch.clone(), card.codec.clone(), &weights, &device)
        .unwrap();

    // Per distinct training row: how many synthetic rows are memorized copies of it.
    let data = load_adult().unwrap();
    let real = MixedTable::from_data(&data, &card.members);
    let syn = MixedTable::read_csv(&dir.join("samples.csv"), &card.codec.schema).unwrap();
    let pairs = nearest_two(&real, &syn, DistanceRule::Global);
    let planted: Vec<usize> = card
        .planted
        .iter()
        .map(|p| card.members.binary_search(p).unwrap())
        .collect();
    let mut hits = vec![0usize; real.n_rows()];
    for p in pairs.iter().filter(|p| p.memorized(THRESHOLD)) {
        hits[p.first] += 1;
    }
    let planted_hits: usize = planted.iter().map(|&i| hits[i]).sum();
    let other_hits: usize = hits.iter().sum::<usize>() - planted_hits;
    let planted_rate = planted_hits as f64 / planted.len() as f64;
    let other_rate = other_hits as f64 / (real.n_rows() - planted.len()) as f64;
    let copied = planted.iter().filter(|&&i| hits[i] > 0).count();
    assert!(
        planted_rate > 5.0 * other_rate.max(0.01),
        "planted rows copied {planted_rate:.2} times each, others {other_rate:.3}"
    );
    assert!(copied >= 5, "only {copied} of 10 planted rows were copied");
    // The synthetic rows are still a plausible table, not just the planted rows.
    assert!(card.quality.marginal_fidelity > 0.5, "{:?}", card.quality);
    assert!(card.tstr_accuracy > 0.6, "TSTR {}", card.tstr_accuracy);
    std::fs::remove_dir_all(&study).ok();
}

#[test]
fn cli_trains_and_reports_the_memorized_rows_beside_their_twins() {
    let dir = tempfile_dir("cli");
    let study = dir.join("study");
    let s = study.to_str().unwrap();
    let args = [
        "train-tabular",
        "--rows",
        "300",
        "--epochs",
        "120",
        "--checkpoints",
        "2",
        "--timesteps",
        "50",
        "--layers",
        "128,128",
        "--batch-size",
        "128",
        "--samples",
        "600",
        "--plant-duplicates",
        "8",
        "--dup-factor",
        "30",
        "--id",
        "cli",
        "--out",
        s,
        "--json",
    ];
    let v = common::json_of(&common::rote(&args, &dir));
    assert_eq!(v["by_epoch"].as_array().unwrap().len(), 2, "{v}");
    for key in ["memorization_ratio", "tstr_accuracy", "trtr_accuracy"] {
        assert!(v[key].as_f64().is_some(), "{key}: {v}");
    }
    assert!(v["quality"]["marginal_fidelity"].as_f64().unwrap() > 0.0);
    let model = study.join("tabular").join("cli");
    let m = model.to_str().unwrap();
    let out = common::rote(&["tab-memorization", m, "--rule", "global", "--json"], &dir);
    let v = common::json_of(&out);
    let memorized = v["memorized"].as_array().unwrap();
    assert!(!memorized.is_empty(), "{v}");
    assert_eq!(memorized[0]["synthetic"].as_array().unwrap().len(), 15);
    assert_eq!(memorized[0]["training"].as_array().unwrap().len(), 15);
    assert!(
        memorized.iter().any(|r| r["planted"] == true),
        "no planted twin: {v}"
    );
    // The report's Tabular section lists the memorized rows beside their planted twins.
    let report = dir.join("report");
    let out = common::rote(&["report", s, "--out", report.to_str().unwrap()], &dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(html.contains("Tabular: cli"), "no Tabular section");
    let rows = std::fs::read_to_string(report.join("tabular-cli-memorized.csv")).unwrap();
    assert!(rows.contains("(planted)"), "{rows}");
    // Rows from another generator with a wrong header: one error naming the file.
    let bad = dir.join("other.csv");
    std::fs::write(&bad, "a,b\n1,2\n").unwrap();
    let out = common::rote(&["tab-memorization", m, "--samples", bad.to_str().unwrap()], &dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("other.csv") && err.contains("header"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
