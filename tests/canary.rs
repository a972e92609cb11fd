//! The Secret Sharer end to end on a small scale: a character LSTM on 30,000 characters of Austen
//! with three 5-digit PINs planted 0, 2 and 32 times. The planted ground truth must show:
//! exposure rises with insertions (the x32 PIN near log2|R|, the control near the baseline), the
//! exposure of the x32 PIN grows over the epochs, Dijkstra's search recovers it as the model's
//! first candidate while the control is nowhere near, and the skew-normal estimate agrees with the
//! exact rank within a bit where the references can check it.
#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use rote::canary::card::{CanaryLm, LmRecipe};
use rote::canary::extract::{SearchOptions, canaries_found, search_secret};
use rote::canary::report::{Estimate, ExposureOptions, measure_exposure};
use rote::canary::secrets::CanaryFormat;
use rote::canary::train::{LmConfig, train_lm_into_study};
use rote::job::{CancelToken, JobCtx, NullSink};

fn config() -> LmConfig {
    LmConfig {
        data: "austen".into(),
        chars: 30_000,
        val_chars: 3_000,
        formats: vec![CanaryFormat::parse("my pin number is :5:0,2,32").unwrap()],
        embed: 32,
        hidden: 96,
        recipe: LmRecipe {
            epochs: 12,
            batch_size: 32,
            seq_len: 64,
            lr: 2e-3,
            seed: 0,
        },
        device: "cpu".into(),
        id: "tiny-lm".into(),
    }
}

#[test]
fn planted_pins_are_exposed_by_insertions_and_the_most_inserted_is_extracted() {
    let study = tempfile::tempdir().unwrap();
    let cancel = CancelToken::new();
    let ctx = JobCtx::new(&cancel, &NullSink);
    let cfg = config();
    let (dir, trained) = train_lm_into_study(&cfg, study.path(), "test", false, &ctx).unwrap();
    assert!(trained);
    // Cached the second time.
    let (_, again) = train_lm_into_study(&cfg, study.path(), "test", false, &ctx).unwrap();
    assert!(!again);
    let lm = CanaryLm::load(&dir, &candle_core::Device::Cpu).unwrap();
    let by_count = |n: u32| lm.card.canaries.iter().position(|c| c.insertions == n).unwrap();
    let (c0, c2, c32) = (by_count(0), by_count(2), by_count(32));

    let rep = measure_exposure(
        &lm,
        &ExposureOptions {
            estimate: Estimate::Both,
            references: 2_000,
            ..ExposureOptions::default()
        },
        &ctx,
    )
    .unwrap();
    let exact = |k: usize| rep.canaries[k].exact.unwrap();
    let ceiling = 100_000f64.log2();
    eprintln!(
        "exposures x0 {:.2} x2 {:.2} x32 {:.2} (ceiling {ceiling:.2})",
        exact(c0),
        exact(c2),
        exact(c32)
    );
    assert!(exact(c32) > 0.8 * ceiling, "x32 exposure {}", exact(c32));
    assert!(exact(c32) > exact(c2) + 6.0);
    assert!(
        exact(c0) < 5.0,
        "the control must stay near the baseline: {}",
        exact(c0)
    );
    // Skew-normal vs exact where the references resolve the rank (below log2 #refs).
    let log2_refs = rep.formats[0].log2_references;
    let mut compared = 0;
    for c in &rep.canaries {
        let (e, s) = (c.exact.unwrap(), c.skew_normal.unwrap());
        if e < log2_refs - 1.0 {
            assert!((e - s).abs() < 1.0, "{}: exact {e} vs skew-normal {s}", c.secret);
            compared += 1;
        }
    }
    assert!(compared >= 2);

    // The per-epoch record: the x32 PIN gets more exposed with training.
    let first = lm.card.epochs.first().unwrap().exposure[c32];
    let last = lm.card.epochs.last().unwrap().exposure[c32];
    assert_eq!(lm.card.epochs.len(), 12);
    assert!(last > first + 3.0, "x32 exposure went {first} -> {last}");

    // Extraction: the most inserted PIN is the model's first candidate; the control is not listed.
    let opts = SearchOptions {
        candidates: 20,
        ..SearchOptions::default()
    };
    let r = search_secret(&lm, "my pin number is ", 5, &opts, &mut |_| {}, &ctx).unwrap();
    assert!(!r.out_of_budget);
    let found = canaries_found(&lm.card.canaries, 0, &r);
    let f32 = found.iter().find(|f| f.insertions == 32).unwrap();
    assert_eq!(f32.position, Some(1), "{:?}", r.candidates);
    assert_eq!(rep.canaries[c32].exact_rank, Some(1));
    assert!(
        found
            .iter()
            .find(|f| f.insertions == 0)
            .unwrap()
            .position
            .is_none()
    );
}

#[test]
fn broken_model_folders_are_named_in_one_line_errors() {
    let study = tempfile::tempdir().unwrap();
    let dir = study.path().join("lm").join("bad");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("card.json"), b"{ not json").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rote"))
        .args(["exposure", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("card.json") && err.contains("not a language-model card"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // A bad canary format is refused before any training.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rote"))
        .args([
            "train-lm",
            "--format",
            "pin :0:1",
            "--out",
            study.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("digits"));
}

/// `rote exposure` and `rote extract-secret` on a Hugging Face folder without rote's card (the
/// tiny GPT-2 fixture, whose tokenizer splits digits): canaries from `--format` and `--secret`,
/// the LSTM's report schema, and one-line errors naming what is missing.
#[test]
fn any_lm_folder_through_the_binary() {
    let gpt2 = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lm/gpt2");
    let study = tempfile::tempdir().unwrap();
    let rote = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_rote"))
            .args(args)
            .output()
            .unwrap()
    };
    let model = gpt2.to_str().unwrap();
    let out = rote(&[
        "--json",
        "exposure",
        model,
        "--format",
        "my pin is :3",
        "--secret",
        "123",
        "--secret",
        "907",
        "--references",
        "200",
        "--study",
        study.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let saved = study.path().join("results/exposure/gpt2-both.json");
    let rep = rote::canary::report::load_report(&saved).unwrap();
    assert_eq!(rep.model, "gpt2");
    assert_eq!(rep.canaries.len(), 2);
    for c in &rep.canaries {
        let rank = c.exact_rank.unwrap();
        assert!((1..=1000).contains(&rank));
        assert!(c.skew_normal.is_some() && c.px_bits > 0.0, "{c:?}");
    }
    let out = rote(&[
        "--json",
        "extract-secret",
        model,
        "--prefix",
        "my pin is ",
        "--digits",
        "3",
        "--candidates",
        "3",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["search"]["candidates"].as_array().unwrap().len(), 3);
    // The rank-1 candidate of the search is the exact space's rank 1: its cost is the lowest.
    let best = v[0]["search"]["candidates"][0]["bits"].as_f64().unwrap();
    assert!(rep.canaries.iter().all(|c| c.px_bits >= best - 1e-6));
    for (args, want) in [
        (vec!["exposure", model], "--format"),
        (vec!["extract-secret", model], "--prefix"),
        (
            vec!["exposure", model, "--format", "pin :3", "--secret", "12"],
            "no --format has a slot of 2",
        ),
    ] {
        let out = rote(&args);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want) && err.trim().lines().count() == 1, "{err}");
    }
}
