//! `rote fairness` on a predictions CSV with planted group rates: the statistical parity
//! difference equals the one recomputed from the file, signs follow the group order, and a bad
//! file is one error naming it.
#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

mod common;

use std::fmt::Write as _;

#[test]
fn fairness_recovers_planted_gaps_from_a_predictions_csv() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("index,split,group,y_true,y_pred\n");
    let mut i = 0;
    // Female: TPR 0.6, FPR 0.1 over 50 + 200; Male: TPR 0.8, FPR 0.2 over 150 + 300; train rows
    // with another rate must be left out of the test split's figures.
    for (g, pos, neg, tpr, fpr) in [("Female", 50, 200, 30, 20), ("Male", 150, 300, 120, 60)] {
        for k in 0..pos {
            let p = if k < tpr { ">50K" } else { "<=50K" };
            writeln!(csv, "{i},test,{g},>50K,{p}").unwrap();
            i += 1;
        }
        for k in 0..neg {
            let p = if k < fpr { ">50K" } else { "<=50K" };
            writeln!(csv, "{i},test,{g},<=50K,{p}").unwrap();
            i += 1;
        }
        for _ in 0..40 {
            writeln!(csv, "{i},train,{g},<=50K,>50K").unwrap();
            i += 1;
        }
    }
    let path = dir.path().join("pred.csv");
    std::fs::write(&path, &csv).unwrap();
    let out = common::rote(
        &[
            "fairness",
            "--predictions",
            path.to_str().unwrap(),
            "--groups",
            "Male,Female",
            "--json",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = common::json_of(&out);
    // Recomputed: P(>50K | Male) = 180/450 = 0.4, P(>50K | Female) = 50/250 = 0.2.
    let spd = v["statistical_parity_difference"].as_f64().unwrap();
    assert!((spd - 0.2).abs() < 1e-12, "{v}");
    let eod = v["equal_opportunity_difference"].as_f64().unwrap();
    assert!((eod - (0.8 - 0.6)).abs() < 1e-12, "{v}");
    let eodds = v["equalized_odds_difference"].as_f64().unwrap();
    assert!((eodds - 0.2).abs() < 1e-12, "{v}");
    assert_eq!(v["classes"][1], ">50K");
    assert_eq!(v["groups"][0]["group"], "Male");
    // A file without the columns is one error naming it.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "a,b\n1,2\n").unwrap();
    let out = common::rote(&["fairness", "--predictions", bad.to_str().unwrap()], dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("bad.csv") && err.contains("no column"),
        "{err}"
    );
}
