//! `rote lm-probe` on the shipped demo GPT (`assets/demo/lm/gpt-demo/`), whose card plants 40
//! passages (10 each 1, 4, 16 and 64 times) and holds 20 out. Ground truth: the tokens greedy
//! extraction recovers from the passages planted 16 and 64 times are memorized; never-seen
//! Austen text at the same positions, matched for the model's confidence, is not. The probes must
//! separate them from the activations where the logit-only baseline cannot.
#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use crate::common;

#[test]
fn probes_find_memorized_tokens_that_the_logits_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let model = common::demo_gpt_copy(dir.path());
    let m = model.to_str().unwrap();
    let out = common::rote(&["lm-probe", m, "--alphas", "0,1", "--json"], dir.path());
    let v = common::json_of(&out);
    let acc: Vec<f64> = v["probe_accuracy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_f64().unwrap())
        .collect();
    let layers = v["layers"].as_array().unwrap();
    // 4 blocks: residual 0..=4 and mlp 0..=3.
    assert_eq!(layers.len(), 9, "{layers:?}");
    assert_eq!(acc.len(), 9);
    let chance = v["chance"].as_f64().unwrap();
    assert!(
        (chance - 0.5).abs() < 1e-9,
        "confidence matching balances the classes: {chance}"
    );
    let best = acc.iter().copied().fold(0.0, f64::max);
    assert!(best >= 0.9 && best >= chance + 0.2, "best probe accuracy {best}");
    let baseline = v["logit_baseline"]["accuracy"].as_f64().unwrap();
    assert!(
        baseline < chance + 0.15,
        "the logit-only baseline reads confidence: {baseline}"
    );
    assert!(best > baseline + 0.2);
    let counts = &v["counts"];
    assert!(counts["matched_per_class"].as_u64().unwrap() >= 100, "{counts}");
    // Every ×16 and ×64 passage is extracted; the intervention reports extraction at each α.
    let points = v["intervention"]["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    assert!(points[0]["extraction"].as_f64().unwrap() >= 0.9, "{points:?}");
    assert!(points[1]["heldout_ppl"].as_f64().unwrap().is_finite());
    // The heatmap's memorized passage scores above the never-seen one at the best residual layer.
    let heat = v["heatmap"].as_array().unwrap();
    assert_eq!(heat.len(), 2);
    let best_residual = (0..5).max_by(|&a, &b| acc[a].total_cmp(&acc[b])).unwrap();
    let mean_at = |h: &serde_json::Value| {
        let probs = h["probs"][best_residual].as_array().unwrap();
        let labels = h["labels"].as_array().unwrap();
        let vals: Vec<f64> = probs
            .iter()
            .zip(labels)
            .filter(|(_, l)| !l.is_null())
            .map(|(p, _)| p.as_f64().unwrap())
            .collect();
        vals.iter().sum::<f64>() / vals.len().max(1) as f64
    };
    assert!(heat[0]["member"].as_bool().unwrap() && !heat[1]["member"].as_bool().unwrap());
    assert!(
        mean_at(&heat[0]) > mean_at(&heat[1]) + 0.3,
        "{} vs {}",
        mean_at(&heat[0]),
        mean_at(&heat[1])
    );
    assert!(v["finding"].as_str().unwrap().contains("accuracy"));
    // Cached in the study: the second call reads it back.
    let again = common::json_of(&common::rote(
        &["lm-probe", m, "--alphas", "0,1", "--json"],
        dir.path(),
    ));
    assert_eq!(again["cached"], true);
    assert_eq!(again["probe_accuracy"], v["probe_accuracy"]);
    // Clamping the units that separate the classes best suppresses extraction; as many random
    // units do not.
    let units = common::json_of(&common::rote(
        &[
            "lm-probe",
            m,
            "--alphas",
            "0,1",
            "--neurons",
            "16",
            "--fresh",
            "--json",
        ],
        dir.path(),
    ));
    let p = &units["intervention"]["points"];
    let (before, after) = (
        p[0]["extraction"].as_f64().unwrap(),
        p[1]["extraction"].as_f64().unwrap(),
    );
    let control = units["intervention"]["random_direction"]["extraction"]
        .as_f64()
        .unwrap();
    assert!(
        before >= 0.9 && after < 0.7 && control >= 0.9,
        "{before} {after} {control}"
    );
    // A section of the study's report.
    let out = dir.path().join("report");
    let study = dir.path().join("study");
    common::json_of(&common::rote(
        &[
            "report",
            study.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
        dir.path(),
    ));
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("Activation probes: where memorized tokens live"));
    assert!(html.contains("logit-only"));
}
