//! Hugging Face causal LMs against transformers: the tiny models of `tests/fixtures/lm/` (written
//! once by `tests/fixtures/make_lm_fixtures.py`: GPT-2, GPT-NeoX with partial rotary and parallel
//! or sequential residual, Llama with grouped key/value heads, Qwen2 with q/k/v biases and a tied
//! head) must give the HF tokenizer's token ids, transformers' per-token log-probabilities within
//! 1e-4 nats, and transformers' greedy continuation (with the KV cache, and equal to the argmax
//! of one full-sequence pass). `rote lm-score --json` runs through the binary, and broken folders
//! are one-line errors naming the file.
#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{D, Device, IndexOp as _, Tensor};
use rote::lm::HfLm;
use serde_json::Value;

const MODELS: [&str; 5] = ["gpt2", "neox", "neox-sequential", "llama", "qwen2"];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lm")
        .join(name)
}

fn expected(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name).join("expected.json")).unwrap()).unwrap()
}

fn ids_of(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| u32::try_from(x.as_u64().unwrap()).unwrap())
        .collect()
}

#[test]
fn tokens_logprobs_and_greedy_match_transformers() {
    for name in MODELS {
        let lm = HfLm::load(&fixture(name), &Device::Cpu).unwrap();
        let exp = expected(name);
        assert_eq!(
            lm.model.model_type(),
            exp["model_type"].as_str().unwrap(),
            "{name}"
        );
        let mut max_delta = 0f64;
        for t in exp["texts"].as_array().unwrap() {
            let ids = lm.tokenizer.encode(t["text"].as_str().unwrap()).unwrap();
            assert_eq!(ids, ids_of(&t["ids"]), "{name}: token ids of {}", t["text"]);
            let lp = lm.model.token_logprobs(&ids).unwrap();
            let want: Vec<f64> = t["logprobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            assert_eq!(lp.len(), want.len(), "{name}");
            for (k, (&got, &w)) in lp.iter().zip(&want).enumerate() {
                let d = (f64::from(got) - w).abs();
                max_delta = max_delta.max(d);
                assert!(
                    d <= 1e-4,
                    "{name}: token {k} of {}: ln p {got} vs transformers {w}",
                    t["text"]
                );
            }
        }
        eprintln!("{name}: max |delta ln p| = {max_delta:.2e}");

        let prompt = lm.tokenizer.encode(exp["prompt"].as_str().unwrap()).unwrap();
        assert_eq!(prompt, ids_of(&exp["prompt_ids"]), "{name}: prompt ids");
        let want = ids_of(&exp["greedy"]);
        let got = lm.model.generate_greedy(&prompt, want.len()).unwrap();
        assert_eq!(got, want, "{name}: greedy continuation with the KV cache");

        // One pass over prompt + continuation: its argmax at every generated position.
        let all: Vec<u32> = prompt.iter().chain(&got).copied().collect();
        let input = Tensor::new(all.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let logits = lm.model.logits(&input).unwrap();
        assert_eq!(logits.dims(), &[1, all.len(), lm.model.vocab_size()]);
        let argmax: Vec<u32> = logits.i(0).unwrap().argmax(D::Minus1).unwrap().to_vec1().unwrap();
        assert_eq!(
            &argmax[prompt.len() - 1..all.len() - 1],
            got.as_slice(),
            "{name}: full-sequence argmax"
        );
    }
}

#[test]
fn batch_rows_and_cached_steps_agree_with_one_pass() {
    let lm = HfLm::load(&fixture("llama"), &Device::Cpu).unwrap();
    let ids: Vec<u32> = (0..12).map(|k| 3 + 29 * k % 390).collect();
    let rev: Vec<u32> = ids.iter().rev().copied().collect();
    let one = |v: &[u32]| {
        lm.model
            .logits(&Tensor::new(v, &Device::Cpu).unwrap().unsqueeze(0).unwrap())
            .unwrap()
    };
    let both: Vec<u32> = ids.iter().chain(&rev).copied().collect();
    let batch = lm
        .model
        .logits(&Tensor::from_vec(both, (2, 12), &Device::Cpu).unwrap())
        .unwrap();
    let diff = |a: &Tensor, b: &Tensor| -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    };
    assert!(diff(&batch.i(0..1).unwrap(), &one(&ids)) < 1e-5);
    assert!(diff(&batch.i(1..2).unwrap(), &one(&rev)) < 1e-5);
    // 5 tokens, then 1, then 6 through the cache.
    let mut cache = lm.model.new_cache();
    let mut parts = Vec::new();
    for (a, b) in [(0, 5), (5, 6), (6, 12)] {
        let x = Tensor::new(&ids[a..b], &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        parts.push(lm.model.forward(&x, &mut cache).unwrap());
    }
    assert_eq!(cache.len(), 12);
    assert!(diff(&Tensor::cat(&parts, 1).unwrap(), &one(&ids)) < 1e-4);
}

fn rote(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rote"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn lm_score_json_through_the_binary() {
    let exp = expected("neox");
    let t = &exp["texts"][0];
    let dir = fixture("neox");
    let out = rote(&[
        "lm-score",
        dir.to_str().unwrap(),
        "--text",
        t["text"].as_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["model_type"], "gpt_neox");
    assert_eq!(ids_of(&v["tokens"]), ids_of(&t["ids"]));
    let lp = v["logprobs"].as_array().unwrap();
    assert!(lp[0].is_null());
    for (got, want) in lp[1..].iter().zip(t["logprobs"].as_array().unwrap()) {
        assert!((got.as_f64().unwrap() - want.as_f64().unwrap()).abs() <= 1e-4);
    }
    let text = rote(&["lm-score", dir.to_str().unwrap(), "--text", "Emma"]);
    assert!(text.status.success());
    assert!(String::from_utf8_lossy(&text.stdout).contains("ln p"));
}

#[test]
fn lm_generate_greedy_is_transformers_and_sampling_is_seeded() {
    let exp = expected("llama");
    let dir = fixture("llama");
    let want = ids_of(&exp["greedy"]);
    let n = want.len().to_string();
    let prompt = exp["prompt"].as_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "lm-generate",
            dir.to_str().unwrap(),
            "--prompt",
            prompt,
            "--tokens",
            &n,
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = rote(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let greedy = run(&[]);
    assert_eq!(greedy["mode"], "greedy");
    assert_eq!(
        ids_of(&greedy["continuations"][0]["tokens"]),
        want,
        "transformers' greedy continuation"
    );
    assert!(greedy["continuations"][0]["ln_p"].as_f64().unwrap() < 0.0);
    let a = run(&["--sample", "--n", "4", "--seed", "7"]);
    let b = run(&["--sample", "--n", "4", "--seed", "7"]);
    assert_eq!(
        a["continuations"], b["continuations"],
        "one seed, one set of draws"
    );
    assert_eq!(a["continuations"].as_array().unwrap().len(), 4);
    let top1 = run(&["--sample", "--n", "2", "--top-k", "1"]);
    for c in top1["continuations"].as_array().unwrap() {
        assert_eq!(ids_of(&c["tokens"]), want, "top-1 sampling is greedy");
    }
    let bad = rote(&[
        "lm-generate",
        dir.to_str().unwrap(),
        "--prompt",
        prompt,
        "--sample",
        "--temperature",
        "0",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("temperature"));
}

/// A copy of the GPT-2 fixture in a temporary folder, changed by `edit`.
fn broken(edit: impl FnOnce(&Path)) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(fixture("gpt2").join(f), tmp.path().join(f)).unwrap();
    }
    edit(tmp.path());
    tmp
}

fn set_config(dir: &Path, key: &str, value: Value) {
    let p = dir.join("config.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    v[key] = value;
    std::fs::write(&p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// The binary must fail with one `error:` line that names `file` and contains `problem`.
fn assert_one_line_error(dir: &Path, file: &str, problem: &str) {
    let out = rote(&["lm-score", dir.to_str().unwrap(), "--text", "Emma"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{file}: should fail");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(file), "names {file}: {err}");
    assert!(err.contains(problem), "says '{problem}': {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn broken_folders_are_one_line_errors() {
    let pickle = broken(|d| {
        std::fs::remove_file(d.join("model.safetensors")).unwrap();
        let mut zip = b"PK\x03\x04".to_vec();
        zip.extend([0u8; 60]);
        std::fs::write(d.join("pytorch_model.bin"), zip).unwrap();
    });
    assert_one_line_error(pickle.path(), "pytorch_model.bin", "safe_serialization=True");
    let bin = broken(|d| {
        std::fs::remove_file(d.join("model.safetensors")).unwrap();
        std::fs::write(d.join("model.pt"), b"not a pickle at all").unwrap();
    });
    assert_one_line_error(bin.path(), "model.pt", "rote reads only safetensors");
    let no_tok = broken(|d| std::fs::remove_file(d.join("tokenizer.json")).unwrap());
    let name = no_tok.path().to_str().unwrap().to_string();
    assert_one_line_error(no_tok.path(), &name, "has no tokenizer.json");
    let unknown = broken(|d| set_config(d, "model_type", "mamba".into()));
    assert_one_line_error(
        unknown.path(),
        "config.json",
        "model_type 'mamba' is not supported",
    );
    let shape = broken(|d| set_config(d, "vocab_size", 512.into()));
    assert_one_line_error(shape.path(), "model.safetensors", "transformer.wte.weight");
    let absurd = broken(|d| set_config(d, "n_embd", 1_000_000_000u64.into()));
    assert_one_line_error(absurd.path(), "config.json", "\"n_embd\" is 1000000000, outside");
    let huge = broken(|d| {
        set_config(d, "n_embd", 65_536.into());
        set_config(d, "n_layer", 1024.into());
        set_config(d, "vocab_size", 4_000_000.into());
    });
    assert_one_line_error(huge.path(), "config.json", "more than 2^36 parameters");
    let truncated = broken(|d| {
        let p = d.join("model.safetensors");
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    });
    assert_one_line_error(truncated.path(), "model.safetensors", "data offsets");
    let nan = broken(|d| {
        let p = d.join("model.safetensors");
        let mut t = candle_core::safetensors::load(&p, &Device::Cpu).unwrap();
        let w = t["transformer.ln_f.weight"].clone();
        let w = (w * f64::NAN).unwrap();
        t.insert("transformer.ln_f.weight".into(), w);
        candle_core::safetensors::save(&t, &p).unwrap();
    });
    assert_one_line_error(nan.path(), "model.safetensors", "NaN or infinite");
    let no_config = broken(|d| std::fs::remove_file(d.join("config.json")).unwrap());
    assert_one_line_error(
        no_config.path(),
        "no config.json",
        "not a Hugging Face model folder",
    );
}

/// The GPT-2 fixture's tensors as two shards with a `model.safetensors.index.json`, and as f16.
#[test]
fn sharded_and_f16_weights_load() {
    let src = fixture("gpt2");
    let tensors = candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let text = "It is a truth universally acknowledged";
    let reference = {
        let lm = HfLm::load(&src, &Device::Cpu).unwrap();
        lm.model
            .token_logprobs(&lm.tokenizer.encode(text).unwrap())
            .unwrap()
    };
    let copy_meta = |d: &Path| {
        for f in ["config.json", "tokenizer.json"] {
            std::fs::copy(src.join(f), d.join(f)).unwrap();
        }
    };

    let sharded = tempfile::tempdir().unwrap();
    copy_meta(sharded.path());
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let mut map = serde_json::Map::new();
    for (k, shard) in [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ]
    .iter()
    .enumerate()
    {
        let part: std::collections::HashMap<String, Tensor> = names
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == k)
            .map(|(_, n)| ((*n).clone(), tensors[*n].clone()))
            .collect();
        for n in part.keys() {
            map.insert(n.clone(), Value::from(*shard));
        }
        candle_core::safetensors::save(&part, sharded.path().join(shard)).unwrap();
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(
        sharded.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    let lm = HfLm::load(sharded.path(), &Device::Cpu).unwrap();
    let got = lm
        .model
        .token_logprobs(&lm.tokenizer.encode(text).unwrap())
        .unwrap();
    assert_eq!(got, reference, "shards give the same model");

    let half = tempfile::tempdir().unwrap();
    copy_meta(half.path());
    let f16: std::collections::HashMap<String, Tensor> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.to_dtype(candle_core::DType::F16).unwrap()))
        .collect();
    candle_core::safetensors::save(&f16, half.path().join("model.safetensors")).unwrap();
    let lm = HfLm::load(half.path(), &Device::Cpu).unwrap();
    let got = lm
        .model
        .token_logprobs(&lm.tokenizer.encode(text).unwrap())
        .unwrap();
    for (g, r) in got.iter().zip(&reference) {
        assert!((g - r).abs() < 0.05, "f16 weights: {g} vs {r}");
    }

    // A shard the index names but that is missing.
    std::fs::remove_file(sharded.path().join("model-00002-of-00002.safetensors")).unwrap();
    assert_one_line_error(sharded.path(), "model.safetensors.index.json", "which is missing");
}

/// Hub spellings: GPT-2 names without `transformer.` (as `openai-community/gpt2` ships them) and
/// a transformers-4 GPT-NeoX config (top-level `rotary_pct`, `rotary_emb_base`) give the same
/// log-probabilities as the `save_pretrained` files of transformers 5.
#[test]
fn hub_spellings_give_the_same_model() {
    let text = "Emma Woodhouse, handsome, clever, and rich";
    let score = |dir: &Path| {
        let lm = HfLm::load(dir, &Device::Cpu).unwrap();
        lm.model
            .token_logprobs(&lm.tokenizer.encode(text).unwrap())
            .unwrap()
    };
    let copy = |name: &str| {
        let tmp = tempfile::tempdir().unwrap();
        for f in ["config.json", "model.safetensors", "tokenizer.json"] {
            std::fs::copy(fixture(name).join(f), tmp.path().join(f)).unwrap();
        }
        tmp
    };

    let gpt2 = copy("gpt2");
    let p = gpt2.path().join("model.safetensors");
    let t = candle_core::safetensors::load(&p, &Device::Cpu).unwrap();
    let bare: std::collections::HashMap<String, Tensor> = t
        .into_iter()
        .map(|(n, x)| (n.trim_start_matches("transformer.").to_string(), x))
        .collect();
    assert!(bare.contains_key("wte.weight"));
    candle_core::safetensors::save(&bare, &p).unwrap();
    assert_eq!(score(gpt2.path()), score(&fixture("gpt2")));

    let neox = copy("neox");
    let p = neox.path().join("config.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    let rope = v.as_object_mut().unwrap().remove("rope_parameters").unwrap();
    v["rotary_pct"] = rope["partial_rotary_factor"].clone();
    v["rotary_emb_base"] = rope["rope_theta"].clone();
    std::fs::write(&p, v.to_string()).unwrap();
    assert_eq!(score(neox.path()), score(&fixture("neox")));
}

/// A loaded model and its tokenizer move to a job thread (the GUI's Text view will score there).
#[test]
fn hf_lm_moves_to_a_job_thread() {
    let lm = HfLm::load(&fixture("qwen2"), &Device::Cpu).unwrap();
    let here = lm
        .model
        .token_logprobs(&lm.tokenizer.encode("Emma").unwrap())
        .unwrap();
    let there = std::thread::Builder::new()
        .name("lm-test".into())
        .spawn(move || {
            lm.model
                .token_logprobs(&lm.tokenizer.encode("Emma").unwrap())
                .unwrap()
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(here, there);
}

/// Batched scoring and greedy generation of equal-length sequences equal the one-by-one results.
#[test]
fn batches_equal_single_sequences() {
    let lm = HfLm::load(&fixture("neox"), &Device::Cpu).unwrap();
    let a: Vec<u32> = (0..9).map(|k| 5 + 37 * k % 390).collect();
    let b: Vec<u32> = (0..9).map(|k| 11 + 53 * k % 390).collect();
    let greedy = lm.model.generate_greedy_batch(&[&a, &b], 8).unwrap();
    assert_eq!(greedy[0], lm.model.generate_greedy(&a, 8).unwrap());
    assert_eq!(greedy[1], lm.model.generate_greedy(&b, 8).unwrap());
    let lp = lm.model.token_logprobs_batch(&[&a, &b]).unwrap();
    for (row, seq) in lp.iter().zip([&a, &b]) {
        let one = lm.model.token_logprobs(seq).unwrap();
        assert!(row.iter().zip(&one).all(|(x, y)| (x - y).abs() < 1e-5));
    }
    assert!(lm.model.generate_greedy_batch(&[&a, &b[..4]], 2).is_err());
    assert!(
        lm.model
            .token_logprobs(&[1, 400])
            .unwrap_err()
            .to_string()
            .contains("vocabulary of 400")
    );
    assert!(
        lm.model
            .generate_greedy(&a, 60)
            .unwrap_err()
            .to_string()
            .contains("64 positions")
    );
}
