//! Memorization-aware training end to end: `rote mat` on the default recipe (coloured MNIST
//! digits, 10 % label noise, colour = label for 90 % of training and 50 % of test) must raise the
//! test worst-group accuracy by at least 10 points over ERM (the acceptance), and save
//! its report in the study.

#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use crate::common;

use common::{json_of, rote};

fn pct(v: &serde_json::Value) -> f64 {
    100.0 * v.as_f64().unwrap()
}

#[test]
fn mat_beats_erm_on_worst_group_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let study = dir.path().join("study");
    let started = std::time::Instant::now();
    let out = rote(&["mat", "--json", "--out", study.to_str().unwrap()], dir.path());
    let report = json_of(&out);
    eprintln!("rote mat took {:.1} s", started.elapsed().as_secs_f64());
    for method in ["erm", "mat"] {
        let m = &report[method];
        let groups: Vec<String> = m["test"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| format!("{:.1}", pct(&g["accuracy"])))
            .collect();
        eprintln!(
            "{method}: train avg {:.1}% wga {:.1}% | test avg {:.1}% wga {:.1}% | test groups {}",
            pct(&m["train"]["average"]),
            pct(&m["train"]["worst_group"]),
            pct(&m["test"]["average"]),
            pct(&m["test"]["worst_group"]),
            groups.join(" ")
        );
    }
    let erm = report["erm"]["test"]["worst_group"].as_f64().unwrap();
    let mat = report["mat"]["test"]["worst_group"].as_f64().unwrap();
    assert!(mat >= erm + 0.10, "MAT test worst-group {mat:.3} vs ERM {erm:.3}");
    assert!((report["worst_group_gain"].as_f64().unwrap() - (mat - erm)).abs() < 1e-12);
    // The held-out twins get the minority groups (1 and 2) wrong: that is what MAT's shift uses.
    let held_out = &report["xrm"]["held_out"]["groups"];
    for g in [1, 2] {
        assert!(held_out[g]["accuracy"].as_f64().unwrap() < 0.5, "{held_out}");
    }
    let saved = std::fs::read_to_string(study.join("results/defences/mat.json")).unwrap();
    let saved: serde_json::Value = serde_json::from_str(&saved).unwrap();
    assert_eq!(saved, report);
}
