//! `config.json` spellings across transformers versions, and refusals.
#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use std::path::Path;

use serde_json::json;

use super::hf::HfConfig;

fn read(v: serde_json::Value) -> Result<HfConfig, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), v.to_string()).unwrap();
    HfConfig::read(dir.path()).map_err(|e| e.to_string())
}

fn neox(extra: serde_json::Value) -> serde_json::Value {
    let mut v = json!({"model_type": "gpt_neox", "vocab_size": 50, "hidden_size": 64,
        "num_hidden_layers": 1, "num_attention_heads": 4, "intermediate_size": 128});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

#[test]
fn neox_rotary_from_either_spelling() {
    // transformers 4 (Pythia's hub configs): top-level rotary_pct and rotary_emb_base.
    let HfConfig::NeoX(c) = read(neox(json!({"rotary_pct": 0.25, "rotary_emb_base": 10000}))).unwrap() else {
        panic!("not neox")
    };
    assert_eq!(c.rotary_ndims, 4);
    // transformers 5: rope_parameters.
    let v = neox(
        json!({"rope_parameters": {"partial_rotary_factor": 0.5, "rope_theta": 10000.0, "rope_type": "default"}}),
    );
    let HfConfig::NeoX(c) = read(v).unwrap() else {
        panic!("not neox")
    };
    assert_eq!(c.rotary_ndims, 8);
}

#[test]
fn refusals_name_config_json() {
    let llama = |extra: serde_json::Value| {
        let mut v = json!({"model_type": "llama", "vocab_size": 50, "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 1, "num_attention_heads": 4});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };
    assert!(read(llama(json!({}))).is_ok());
    for (extra, says) in [
        (
            json!({"num_key_value_heads": 3}),
            "not a multiple of num_key_value_heads 3",
        ),
        (
            json!({"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}),
            "RoPE type 'llama3'",
        ),
        (json!({"hidden_act": "mish"}), "'mish' is not an activation"),
        (json!({"hidden_size": -3}), "not a whole number"),
        (json!({"rms_norm_eps": "tiny"}), "not a positive number"),
        (json!({"num_hidden_layers": 0}), "outside 1..=1024"),
    ] {
        let err = read(llama(extra.clone())).unwrap_err();
        assert!(
            err.contains("config.json") && err.contains(says),
            "{extra}: {err}"
        );
    }
    let err = read(
        json!({"model_type": "qwen2", "vocab_size": 50, "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 1, "num_attention_heads": 4, "use_sliding_window": true}),
    )
    .unwrap_err();
    assert!(err.contains("sliding-window"), "{err}");
    let err = read(json!({"n_embd": 32})).unwrap_err();
    assert!(err.contains("has no \"model_type\""), "{err}");
    assert!(Path::new(&err.split(':').next().unwrap().to_string()).ends_with("config.json"));
}
