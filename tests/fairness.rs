//! `rote fairness` on a predictions CSV with planted group rates: the statistical parity
//! difference equals the one recomputed from the file, signs follow the group order, and a bad
//! file is one error naming it.
#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use crate::common;

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

/// An Adult classifier reproduces the census's sex gap: `rote fairness MODEL` measures it, and the
/// statistical parity difference equals the one recomputed from the exported predictions.
#[test]
fn fairness_of_an_adult_classifier_matches_its_exported_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let study = dir.path().join("study");
    let s = study.to_str().unwrap();
    let out = common::rote(
        &[
            "train", "--family", "mlp", "--data", "adult", "--epochs", "2", "--out", s, "--json",
        ],
        dir.path(),
    );
    let trained = common::json_of(&out);
    assert!(trained["test_acc"].as_f64().unwrap() > 0.8, "{trained}");
    let model = trained["path"].as_str().unwrap().to_string();
    let pred = dir.path().join("pred.csv");
    let out = common::rote(
        &[
            "fairness",
            &model,
            "--predictions",
            pred.to_str().unwrap(),
            "--json",
        ],
        dir.path(),
    );
    let v = common::json_of(&out);
    let text = std::fs::read_to_string(&pred).unwrap();
    let (mut pos, mut n) = ([0usize; 2], [0usize; 2]);
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f[1] != "test" {
            continue;
        }
        let g = usize::from(f[2] == "Female");
        n[g] += 1;
        pos[g] += usize::from(f[4] == ">50K");
    }
    let recomputed = pos[0] as f64 / n[0] as f64 - pos[1] as f64 / n[1] as f64;
    let spd = v["statistical_parity_difference"].as_f64().unwrap();
    assert!((spd - recomputed).abs() < 1e-12, "{spd} vs {recomputed}");
    assert_eq!(v["groups"][0]["group"], "Male");
    // Men are predicted to earn >50K far more often (the census gap the model learns).
    assert!(spd > 0.05, "{v}");
    // A column the table lacks: one clear error naming it.
    let out = common::rote(&["fairness", "--protected", "nope", &model], dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("no column 'nope'"), "{err}");
}

/// FZ mem per protected group of a zoo trained on Adult (spec 14 §7): every training row with an
/// estimate is counted in exactly one group, and each group's mean is the mean of the report's
/// mem over the rows of that group in the table.
#[test]
fn memorization_of_an_adult_zoo_is_reported_per_protected_group() {
    let dir = tempfile::tempdir().unwrap();
    let study = dir.path().join("study");
    let s = study.to_str().unwrap();
    let out = common::rote(
        &[
            "zoo", "--family", "mlp", "--data", "adult", "--models", "8", "--epochs", "2", "--out", s,
            "--json",
        ],
        dir.path(),
    );
    common::json_of(&out);
    let out = common::rote(&["memorization", s, "--json"], dir.path());
    let v = common::json_of(&out);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(v["report"].as_str().unwrap()).unwrap()).unwrap();
    let mem: Vec<Option<f64>> = report["mem"]["mem"]
        .as_array()
        .unwrap()
        .iter()
        .map(serde_json::Value::as_f64)
        .collect();
    let table = rote::data::tabular::load_adult().unwrap();
    assert_eq!(mem.len(), table.n_rows());
    let with_mem = mem.iter().flatten().count();
    assert!(with_mem > 20_000, "{with_mem}");
    for column in ["sex", "race"] {
        let groups = v["mem_by_group"][column].as_array().unwrap();
        let col = table.column(column).unwrap();
        let rote::data::ColumnValues::Categorical { codes, categories } = &col.values else {
            panic!("{column} is categorical");
        };
        let n: u64 = groups.iter().map(|g| g["n"].as_u64().unwrap()).sum();
        assert_eq!(n as usize, with_mem, "{column}");
        for g in groups {
            let name = g["group"].as_str().unwrap();
            let k = categories.iter().position(|c| c == name).unwrap() as u32;
            let vals: Vec<f64> = (0..mem.len())
                .filter(|&i| codes[i] == Some(k))
                .filter_map(|i| mem[i])
                .collect();
            let mean = vals.iter().sum::<f64>() / vals.len() as f64;
            let got = g["mean_mem"].as_f64().unwrap();
            assert!((got - mean).abs() < 1e-6, "{column} {name}: {got} vs {mean}");
        }
        // Largest group first: Male, White.
        assert_eq!(groups[0]["group"], if column == "sex" { "Male" } else { "White" });
    }
}
