//! `rote lm-extract` and `rote lm-mia` through the binary on the tiny random-weight GPT-2 of
//! `tests/fixtures/lm/` (structure, JSON schema, caching, report section and error messages;
//! the findings themselves are asserted on planted ground truth in `src/lm/study_tests.rs`).
//! The end-to-end check on the trained demo GPT (`assets/demo/lm/gpt-demo/`) is to be added when
//! that model lands.
#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lm")
        .join(name)
}

fn rote(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rote"))
        .args(args)
        .output()
        .unwrap()
}

fn ok_json(args: &[&str]) -> Value {
    let out = rote(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ok_text(args: &[&str]) -> String {
    let out = rote(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The binary fails with one `error:` line naming `file` and saying `problem`.
fn one_line_error(args: &[&str], file: &str, problem: &str) {
    let out = rote(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(file), "names {file}: {err}");
    assert!(err.contains(problem), "says '{problem}': {err}");
    assert!(!err.contains("panicked"), "{err}");
}

const SENTENCES: [&str; 10] = [
    "Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy disposition.",
    "She was the youngest of the two daughters of a most affectionate, indulgent father.",
    "Her mother had died too long ago for her to have more than an indistinct remembrance.",
    "Sixteen years had Miss Taylor been in Mr. Woodhouse's family, less as a governess than a friend.",
    "The real evils, indeed, of Emma's situation were the power of having rather too much her own way.",
    "Sorrow came, a gentle sorrow, but not at all in the shape of any disagreeable consciousness.",
    "Miss Taylor married. It was Miss Taylor's loss which first brought grief.",
    "The event had every promise of happiness for her friend. Mr. Weston was a man of unexceptionable character.",
    "How was she to bear the change? It was true that her friend was going only half a mile from them.",
    "She dearly loved her father, but he was no companion for her. He could not meet her in conversation.",
];

/// A study holding the GPT-2 fixture as `STUDY/lm/g` with a card planting two passages each 1,
/// 4, 16 and 64 times and holding two out.
fn study_with_card() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("study");
    rote::study::Study::open_or_create(&root).unwrap();
    let dir = root.join("lm").join("g");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(fixture("gpt2").join(f), dir.join(f)).unwrap();
    }
    let passages: Vec<Value> = SENTENCES
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let insertions = [64, 64, 16, 16, 4, 4, 1, 1, 0, 0][i];
            json!({"text": t, "insertions": insertions, "offset": 100 * i})
        })
        .collect();
    let card = json!({
        "kind": "gpt", "id": "g", "corpus": {"source": "austen", "hash": "h", "offset": 0,
        "chars": 10, "val_chars": 5}, "formats": [], "canaries": [], "passages": passages,
        "recipe": {"n_layer": 2, "n_embd": 32, "n_head": 4, "n_ctx": 64, "vocab_size": 400,
                   "epochs": 1, "batch_size": 2, "lr": 1e-3, "seed": 0},
        "epochs": [], "seconds": 0.0, "n_params": 1, "command": "", "rote_version": ""
    });
    std::fs::write(dir.join("card.json"), card.to_string()).unwrap();
    (tmp, root, dir)
}

#[test]
fn lm_extract_reports_groups_of_a_card_and_caches_them() {
    let (_tmp, root, dir) = study_with_card();
    let d = dir.to_str().unwrap();
    let v = ok_json(&[
        "lm-extract",
        d,
        "--prefix-tokens",
        "8",
        "--suffix-tokens",
        "8",
        "--json",
    ]);
    assert_eq!(v["model"], "g");
    assert_eq!(v["model_type"], "gpt2");
    assert_eq!(v["source"]["kind"], "card");
    assert_eq!(v["n_documents"], 10);
    assert!(
        v.get("documents").is_none(),
        "per-document rows stay in the cached report"
    );
    let groups = v["groups"].as_array().unwrap();
    let ins: Vec<u64> = groups.iter().map(|g| g["insertions"].as_u64().unwrap()).collect();
    assert_eq!(ins, [0, 1, 4, 16, 64]);
    for g in groups {
        assert_eq!(g["n"], 2);
        for key in ["exact_frac", "token_match"] {
            let x = g[key].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&x), "{key} {x}");
        }
        assert!(g["np_rates"].as_array().unwrap().len() == 28);
    }
    assert_eq!(v["overall"]["n"], 10);
    assert!(
        v["finding"]
            .as_str()
            .unwrap()
            .starts_with("passages seen ≥16 times: ")
    );
    assert!(v["sweep"].as_array().unwrap().is_empty());
    let report = PathBuf::from(v["report"].as_str().unwrap());
    assert_eq!(report, root.join("results/lm/g/extract-card-k8-m8.json"));
    let cached: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let doc = &cached["documents"][0];
    assert_eq!(doc["prefix"].as_array().unwrap().len(), 8);
    for key in [
        "truth",
        "generated",
        "matches",
        "truth_tokens",
        "generated_tokens",
    ] {
        assert_eq!(doc[key].as_array().unwrap().len(), 8, "{key}");
    }

    let text = ok_text(&[
        "lm-extract",
        d,
        "--prefix-tokens",
        "8",
        "--suffix-tokens",
        "8",
        "--sweep",
    ]);
    assert!(text.contains("passages seen ≥16 times: "), "{text}");
    assert!(text.contains("; held out: "), "{text}");
    assert!(text.contains("passages seen 64 times: "), "{text}");
    assert!(text.contains("held out (never trained on): "), "{text}");
    assert!(text.contains("report: "), "{text}");
    // The sweep: prefixes 8..32 with m = 8 and suffixes 16, 32 with k = 8 fit the 64 positions.
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let pts: Vec<(u64, u64)> = v["sweep"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["k"].as_u64().unwrap(), p["m"].as_u64().unwrap()))
        .collect();
    assert!(pts.contains(&(16, 8)) && pts.contains(&(8, 32)), "{pts:?}");
    assert!(!pts.iter().any(|(k, m)| k + m > 64), "{pts:?}");
}

#[test]
fn lm_mia_reports_every_attack_and_the_report_shows_them() {
    let (tmp, root, dir) = study_with_card();
    let d = dir.to_str().unwrap();
    let v = ok_json(&["lm-mia", d, "--json"]);
    assert_eq!(
        (v["n_members"].as_u64(), v["n_nonmembers"].as_u64()),
        (Some(8), Some(2))
    );
    let names: Vec<&str> = v["attacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["attack"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["loss", "zlib", "min_k", "min_k_pp"]);
    for a in v["attacks"].as_array().unwrap() {
        let auc = a["auc"].as_f64().unwrap();
        let ci: Vec<f64> = a["auc_ci"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert!(ci.len() == 2 && ci[0] <= auc && auc <= ci[1], "{a}");
        assert!(a["tpr_at_0.1pct_fpr"].as_f64().is_some() && a["tpr_at_1pct_fpr"].as_f64().is_some());
    }
    let groups: Vec<u64> = v["by_insertions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["insertions"].as_u64().unwrap())
        .collect();
    assert_eq!(groups, [1, 4, 16, 64]);
    assert_eq!(
        PathBuf::from(v["report"].as_str().unwrap()),
        root.join("results/lm/g/mia-card.json")
    );

    let neox = fixture("neox");
    let text = ok_text(&["lm-mia", d, "--reference", neox.to_str().unwrap()]);
    assert!(text.contains("reference AUC "), "{text}");
    assert!(text.contains("(95% CI "), "{text}");
    assert!(text.contains("8 members vs 2 non-members"), "{text}");
    assert!(root.join("results/lm/g/mia-card-ref-neox.json").is_file());

    ok_json(&[
        "lm-extract",
        d,
        "--prefix-tokens",
        "8",
        "--suffix-tokens",
        "8",
        "--json",
    ]);
    let out = tmp.path().join("report");
    let r = ok_json(&[
        "report",
        root.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    let sections: Vec<&str> = r["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(sections.contains(&"Language model: g"), "{sections:?}");
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    for want in [
        "Extraction, 8-token prefix to 8-token continuation",
        "Documents side by side",
        "Membership inference",
        "auc_ci_lo",
        "false-positive rate",
    ] {
        assert!(html.contains(want), "page lacks {want}");
    }
    for f in [
        "lm-g-extract-card-k8-m8.csv",
        "lm-g-mia-card.csv",
        "lm-g-mia-card-ref-neox.csv",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
}

#[test]
fn user_texts_without_a_card() {
    let tmp = tempfile::tempdir().unwrap();
    let texts = tmp.path().join("docs.jsonl");
    let lines: Vec<String> = SENTENCES.iter().map(|s| json!({"text": s}).to_string()).collect();
    std::fs::write(&texts, lines.join("\n")).unwrap();
    let g = fixture("gpt2");
    let v = ok_json(&[
        "lm-extract",
        g.to_str().unwrap(),
        "--texts",
        texts.to_str().unwrap(),
        "--prefix-tokens",
        "8",
        "--suffix-tokens",
        "8",
        "--json",
    ]);
    assert_eq!(v["source"]["kind"], "texts");
    assert!(v["groups"].as_array().unwrap().is_empty());
    assert_eq!(v["overall"]["n"], 10);
    assert!(v["report"].is_null(), "a model outside a study caches nothing");
    // --study caches it there.
    let study = tmp.path().join("s");
    rote::study::Study::open_or_create(&study).unwrap();
    let members = tmp.path().join("members.txt");
    std::fs::write(&members, SENTENCES[..5].join("\n\n")).unwrap();
    let nonmembers = tmp.path().join("held");
    std::fs::create_dir(&nonmembers).unwrap();
    std::fs::write(nonmembers.join("b.txt"), SENTENCES[5..].join("\n\n")).unwrap();
    let v = ok_json(&[
        "lm-mia",
        g.to_str().unwrap(),
        "--members",
        members.to_str().unwrap(),
        "--nonmembers",
        nonmembers.to_str().unwrap(),
        "--study",
        study.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(
        (v["n_members"].as_u64(), v["n_nonmembers"].as_u64()),
        (Some(5), Some(5))
    );
    assert_eq!(
        PathBuf::from(v["report"].as_str().unwrap()),
        study.join("results/lm/gpt2/mia-members-vs-held.json")
    );
}

#[test]
fn missing_card_and_bad_texts_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let g = fixture("gpt2");
    let gs = g.to_str().unwrap();
    one_line_error(&["lm-extract", gs], "card.json", "pass --texts FILE");
    one_line_error(
        &["lm-mia", gs],
        "card.json",
        "pass --members FILE --nonmembers FILE",
    );
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"text\": \"fine\"}\n{\"body\": \"no text\"}\n").unwrap();
    let b = bad.to_str().unwrap();
    one_line_error(
        &["lm-extract", gs, "--texts", b],
        "bad.jsonl:2",
        "has no \"text\" field",
    );
    let latin = tmp.path().join("latin.txt");
    std::fs::write(&latin, b"caf\xe9\n").unwrap();
    let l = latin.to_str().unwrap();
    one_line_error(
        &["lm-mia", gs, "--members", l, "--nonmembers", b],
        "latin.txt:1",
        "not UTF-8",
    );
    let csv = tmp.path().join("x.csv");
    std::fs::write(&csv, "a\n").unwrap();
    one_line_error(
        &["lm-extract", gs, "--texts", csv.to_str().unwrap()],
        "x.csv",
        "unsupported text file",
    );
    // Too short for k + m, and more than the context.
    let short = tmp.path().join("short.txt");
    std::fs::write(&short, "Emma.\n").unwrap();
    one_line_error(
        &["lm-extract", gs, "--texts", short.to_str().unwrap()],
        "short.txt:1",
        "no document has prefix 32 + suffix 32",
    );
    one_line_error(
        &[
            "lm-extract",
            gs,
            "--texts",
            short.to_str().unwrap(),
            "--prefix-tokens",
            "64",
        ],
        "more than the model's context of 64",
        "--prefix-tokens",
    );
    // --members needs --nonmembers (clap).
    let out = rote(&["lm-mia", gs, "--members", l]);
    assert!(!out.status.success());
}
