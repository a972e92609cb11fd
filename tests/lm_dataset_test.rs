//! `rote lm-dataset-test` on the shipped demo GPT (`assets/demo/lm/gpt-demo/`): its card plants
//! 40 passages (10 each 1, 4, 16 and 64 times) and holds 20 out. The test must find the planted
//! set memorized, must not find one held-out half memorized against the other, and its control
//! must be calibrated.
#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use crate::common;

use std::path::Path;

/// The card's passages with `keep(insertions)`, written as blank-line-separated paragraphs.
fn passages(model: &Path, out: &Path, keep: impl Fn(u64) -> bool) -> String {
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("card.json")).unwrap()).unwrap();
    let texts: Vec<&str> = card["passages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| keep(p["insertions"].as_u64().unwrap()))
        .map(|p| p["text"].as_str().unwrap())
        .collect();
    std::fs::write(out, texts.join("\n\n")).unwrap();
    out.to_str().unwrap().to_string()
}

#[test]
fn planted_passages_are_detected_and_held_out_halves_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let model = common::demo_gpt_copy(dir.path());
    let m = model.to_str().unwrap();
    let v = common::json_of(&common::rote(&["lm-dataset-test", m, "--json"], dir.path()));
    eprintln!("{}", v["finding"]);
    let f = |x: &serde_json::Value| x.as_f64().unwrap();
    assert!(f(&v["members_p"]) < 0.01, "{v}");
    assert!(f(&v["control_p"]) > 0.05, "{v}");
    assert_eq!(v["members"]["n_suspect"], 40);
    assert_eq!(v["members"]["n_reference"], 20);
    // Calibrated: about α of the null splits reject.
    assert!(f(&v["control_reject_rate"]) <= 0.15, "{v}");
    let n = v["n"].as_u64().unwrap();
    assert!((2..=20).contains(&n), "{v}");
    // The exhibits are planted passages the model continues verbatim.
    let ex = v["exhibits"].as_array().unwrap();
    assert!(!ex.is_empty(), "{v}");
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("card.json")).unwrap()).unwrap();
    for e in ex {
        let i: usize = e["source"]
            .as_str()
            .unwrap()
            .trim_start_matches("card passage ")
            .parse()
            .unwrap();
        assert!(card["passages"][i]["insertions"].as_u64().unwrap() >= 4, "{e}");
        assert!(f(&e["score"]) < 1.0 || e["generated"] == e["truth"], "{e}");
    }
    assert_eq!(f(&ex[0]["score"]), 1.0, "{v}");

    // Cached in the study, and a section of its report.
    let out = dir.path().join("report");
    let study = dir.path().join("study");
    let r = common::json_of(&common::rote(
        &[
            "report",
            study.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
        dir.path(),
    ));
    assert!(
        r["sections"].to_string().contains("Language model: gpt-demo"),
        "{r}"
    );
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("Dataset-level membership (MemHunter-style)"));
    assert!(html.contains("the model memorized the suspect set"));

    // Files: one held-out half against the other is not memorized.
    let a = passages(&model, &dir.path().join("a.txt"), |i| i == 0);
    let held: Vec<&str> = card["passages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["insertions"] == 0)
        .map(|p| p["text"].as_str().unwrap())
        .collect();
    let (h1, h2) = held.split_at(held.len() / 2);
    std::fs::write(dir.path().join("h1.txt"), h1.join("\n\n")).unwrap();
    std::fs::write(dir.path().join("h2.txt"), h2.join("\n\n")).unwrap();
    let (h1, h2) = (dir.path().join("h1.txt"), dir.path().join("h2.txt"));
    let args = [
        "lm-dataset-test",
        m,
        "--suspect",
        h1.to_str().unwrap(),
        "--reference",
    ];
    let mut null = args.to_vec();
    null.extend([h2.to_str().unwrap(), "--json"]);
    let v = common::json_of(&common::rote(&null, dir.path()));
    assert!(f(&v["p_value"]) > 0.05, "{v}");

    // Passages planted once: by loss they are still detected against the held-out ones.
    let once = passages(&model, &dir.path().join("once.txt"), |i| i == 1);
    let v = common::json_of(&common::rote(
        &[
            "lm-dataset-test",
            m,
            "--suspect",
            &once,
            "--reference",
            &a,
            "--score",
            "loss",
            "--json",
        ],
        dir.path(),
    ));
    assert!(f(&v["p_value"]) < 0.01, "{v}");

    // The same file twice is one clear error.
    let out = common::rote(
        &["lm-dataset-test", m, "--suspect", &a, "--reference", &a],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("share documents"));
}
