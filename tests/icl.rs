//! In-context learning kinetics (Nguyen & Reddy, arXiv:2412.00104; spec 12) through the CLI: on
//! few training items the model memorizes them (right on training items whose query is absent
//! from context) and cannot read labels from context (new items at chance); on many items it
//! learns in context (new items right). A small sweep, two diversities, one seed.
#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use crate::common;

#[test]
fn few_items_are_memorized_and_many_items_are_learned_in_context() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::rote(
        &[
            "icl",
            "--diversities",
            "32,4096",
            "--context",
            "8",
            "--width",
            "64",
            "--steps",
            "1500",
            "--eval-sequences",
            "500",
            "--seed",
            "0",
            "--json",
        ],
        dir.path(),
    );
    let v = common::json_of(&out);
    let f = |key: &str| -> Vec<f64> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let (generalization, memorization) = (f("generalization"), f("memorization"));
    let chance = v["chance"].as_f64().unwrap();
    assert_eq!(v["labels"], 4);
    assert!((chance - 0.25).abs() < 1e-12);
    assert_eq!(v["diversities"], serde_json::json!([32, 4096]));
    assert_eq!(v["per_seed"].as_array().unwrap().len(), 2);
    // Few items: new items at chance, training items memorized.
    assert!(
        generalization[0] <= chance + 0.15,
        "generalization at K = 32: {generalization:?}"
    );
    assert!(memorization[0] >= 0.8, "memorization at K = 32: {memorization:?}");
    // Many items: labels read from context, on items never seen in training.
    assert!(
        generalization[1] >= 0.8,
        "generalization at K = 4096: {generalization:?}"
    );
    assert!(
        memorization[1] < memorization[0],
        "memorization falls with K: {memorization:?}"
    );
    // The departure from the paper's two labels is stated in the output.
    let departures = v["departures_from_paper"].to_string();
    assert!(departures.contains("4 labels"), "{departures}");
}
