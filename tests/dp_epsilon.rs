#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]
//! `rote dp-epsilon` end to end: the binary's ε and calibrated noise multiplier against Google's
//! dp_accounting (`tests/fixtures/dp_accounting.json`), and one clear error for a bad value.

use std::process::{Command, Output};

fn rote(args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_rote"))
        .args(args)
        .env("ROTE_HOME", home.path())
        .output()
        .unwrap()
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "rote failed: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn fixture(list: &str, name: &str) -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dp_accounting.json");
    let all: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    all[list]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()
        .clone()
}

fn arg(v: &serde_json::Value) -> String {
    v.to_string()
}

#[test]
fn epsilon_matches_dp_accounting() {
    for name in ["mnist-256-60ep", "full-batch-eps1"] {
        let s = fixture("settings", name);
        let v = json_of(&rote(&[
            "dp-epsilon",
            "--sample-rate",
            &arg(&s["sample_rate"]),
            "--noise-multiplier",
            &arg(&s["noise_multiplier"]),
            "--steps",
            &arg(&s["steps"]),
            "--delta",
            &arg(&s["delta"]),
            "--json",
        ]));
        let (got, want) = (v["epsilon"].as_f64().unwrap(), s["epsilon"].as_f64().unwrap());
        assert!((got - want).abs() <= 1e-3 * want, "{name}: ε {got} vs {want}");
        assert_eq!(v["order"], s["order"], "{name}");
        assert_eq!(v["steps"], s["steps"]);
        assert_eq!(v["conversion"], "Balle et al. 2020 Thm 21");
        assert_eq!(v["orders"], "dp-accounting");
        assert_eq!(v["fractional"], "magnitude");
    }
}

#[test]
fn calibrated_noise_reaches_the_target() {
    let c = fixture("calibrations", "eps1-q0.01-1000");
    let v = json_of(&rote(&[
        "dp-epsilon",
        "--sample-rate",
        &arg(&c["sample_rate"]),
        "--epsilon",
        &arg(&c["target_epsilon"]),
        "--steps",
        &arg(&c["steps"]),
        "--json",
    ]));
    let sigma = v["noise_multiplier"].as_f64().unwrap();
    let root = c["noise_multiplier"].as_f64().unwrap();
    assert!(sigma >= root - 1e-6 && sigma - root <= 0.01, "{sigma} vs {root}");
    assert!(v["epsilon"].as_f64().unwrap() <= 1.0);
}

#[test]
fn non_positive_epsilon_is_one_clear_error() {
    let out = rote(&[
        "dp-epsilon",
        "--sample-rate",
        "0.01",
        "--epsilon",
        "0",
        "--steps",
        "1000",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("target ε must be a finite number > 0"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
