//! The Exposure view in the app: the demo LM's canaries (exposure rising with insertions) and the
//! extraction search from its button, and a transformer (the tiny GPT-2 fixture with rote's card)
//! listed, measured and searched.

use std::time::Duration;

use egui_kittest::kittest::Queryable as _;
use rote::ui::View;

use super::{harness, harness_plain, step_until};

#[test]
fn exposure_view_shows_the_demo_canaries_and_extracts_the_most_inserted_live() {
    let dir = tempfile::tempdir().unwrap();
    let study = dir.path().join("demo");
    let mut h = harness(&study, View::Exposure);
    step_until(&mut h, "the demo LM", Duration::from_secs(60), |app| {
        app.exposure_view.loaded.is_some()
    });
    h.run_steps(3);
    let loaded = h.state().exposure_view.loaded.clone().unwrap();
    let rep = loaded
        .report
        .as_ref()
        .expect("the demo ships its exposure report");
    // The shipped report shows the planted ground truth: the x32 PIN at rank 1, the control near
    // the baseline, exposure rising from x1 to x32.
    let pin = |n: u32| {
        rep.canaries
            .iter()
            .find(|c| c.format == 0 && c.insertions == n)
            .unwrap()
    };
    assert_eq!(pin(32).exact_rank, Some(1));
    assert!(pin(0).exact.unwrap() < 4.0);
    assert!(pin(32).exact.unwrap() > pin(16).exact.unwrap());
    assert!(pin(16).exact.unwrap() > pin(8).exact.unwrap());
    assert!(pin(8).exact.unwrap() > pin(1).exact.unwrap());
    h.get_by_label("Exposure vs insertions");
    h.get_by_label(&pin(32).secret);
    h.check_accessibility();
    // Extract: the search types out the x32 PIN as its first candidate.
    h.get_by_label("Extract").click();
    h.run_steps(2);
    step_until(&mut h, "the search", Duration::from_secs(60), |app| {
        app.exposure_view.last_search.is_some()
    });
    h.run_steps(3);
    let s = h.state().exposure_view.last_search.clone().unwrap();
    assert_eq!(s.candidates[0].secret, pin(32).secret);
    assert!(!s.out_of_budget);
    assert_eq!(
        h.state().exposure_view.live.lock().candidates.len(),
        s.candidates.len()
    );
    h.get_by_label("canary, inserted x32");
}

/// The Exposure view on a transformer: the tiny GPT-2 fixture under `STUDY/lm/` with rote's card
/// (one 3-digit format, two canaries) is listed, opened, measured and searched.
#[test]
fn exposure_view_measures_and_searches_a_transformer() {
    let dir = tempfile::tempdir().unwrap();
    let study = dir.path().join("demo");
    rote::demo::write_demo(&study).unwrap();
    let gpt = study.join("lm").join("gpt-a-tiny");
    std::fs::create_dir_all(&gpt).unwrap();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lm/gpt2");
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(fixture.join(f), gpt.join(f)).unwrap();
    }
    let card = serde_json::json!({
        "kind": "gpt", "id": "gpt-a-tiny",
        "corpus": {"source": "austen", "hash": "h", "offset": 0, "chars": 1000, "val_chars": 100},
        "formats": [{"prefix": "my pin is ", "digits": 3, "insertions": [8, 0], "secrets": ["907", "123"]}],
        "canaries": [{"format": 0, "secret": "907", "insertions": 8}, {"format": 0, "secret": "123", "insertions": 0}],
        "passages": [],
        "recipe": {"n_layer": 2, "n_embd": 32, "n_head": 4, "n_ctx": 64, "vocab_size": 400,
                   "epochs": 1, "batch_size": 2, "lr": 1e-3, "seed": 0},
        "epochs": [{"epoch": 1, "train_loss": 5.0, "val_loss": 5.5}],
        "seconds": 1.0, "n_params": 1, "command": "rote train-lm --arch gpt", "rote_version": "test"
    });
    std::fs::write(gpt.join("card.json"), card.to_string()).unwrap();
    let mut h = harness_plain(&study, View::Exposure);
    step_until(&mut h, "the model list", Duration::from_secs(60), |app| {
        app.exposure_view.loaded.is_some()
    });
    let loaded = h.state().exposure_view.loaded.clone().unwrap();
    assert_eq!(
        loaded.dir, gpt,
        "the transformer sorts first (before the demo GPT and LSTM)"
    );
    assert!(loaded.card.kind.contains("gpt2"), "{}", loaded.card.kind);
    assert_eq!(loaded.card.canaries.len(), 2);
    h.run_steps(3);
    h.get_by_label("Measure exposure").click();
    h.run_steps(2);
    step_until(&mut h, "the measurement", Duration::from_secs(120), |app| {
        app.exposure_view
            .loaded
            .as_ref()
            .is_some_and(|l| l.report.is_some())
    });
    let rep = h
        .state()
        .exposure_view
        .loaded
        .clone()
        .unwrap()
        .report
        .clone()
        .unwrap();
    assert_eq!(rep.model, "gpt-a-tiny");
    assert!(
        rep.canaries
            .iter()
            .all(|c| c.exact_rank.is_some_and(|r| (1..=1000).contains(&r)))
    );
    assert!(study.join("results/exposure/gpt-a-tiny-both.json").is_file());
    h.run_steps(3);
    h.get_by_label("Extract").click();
    h.run_steps(2);
    step_until(&mut h, "the search", Duration::from_secs(60), |app| {
        app.exposure_view.last_search.is_some()
    });
    let s = h.state().exposure_view.last_search.clone().unwrap();
    assert_eq!(s.candidates.len(), 10);
    // Dijkstra's first candidate is the space's cheapest: no canary costs less.
    assert!(
        rep.canaries
            .iter()
            .all(|c| c.px_bits >= s.candidates[0].bits - 1e-4)
    );
}
