//! End-to-end tests of the command line: each runs the real binary and checks its JSON.

#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use crate::common;

use common::{json_of, planted_duplicates, rote};

#[test]
fn datasets_lists_every_bundled_set_with_shapes() {
    let home = tempfile::tempdir().unwrap();
    let v = json_of(&rote(&["datasets", "--json"], home.path()));
    let sets = v["datasets"].as_array().unwrap();
    let get = |name: &str| {
        sets.iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert_eq!(get("mnist10k")["n"], 10000);
    assert_eq!(get("mnist10k")["n_test"], 2000);
    assert_eq!(get("fashion-mnist")["n"], 20000);
    assert_eq!(get("fashion-mnist")["n_test"], 10000);
    assert_eq!(get("orl-faces")["shape"], serde_json::json!([1, 112, 92]));
    assert_eq!(get("orl-faces")["n_test"], 120, "3 held-out images per person");
    assert_eq!(get("emoji32")["shape"], serde_json::json!([3, 32, 32]));
    assert_eq!(get("emoji32")["classes"], 9);
    assert_eq!(get("cifar10-20")["n"], 20);
    assert_eq!(get("austen")["kind"], "text");
    assert_eq!(get("adult")["kind"], "table");
}

#[test]
fn mnist_mlp_reaches_093_in_three_epochs_and_records_membership() {
    let home = tempfile::tempdir().unwrap();
    let study = home.path().join("study");
    let out = rote(
        &[
            "train",
            "--family",
            "mlp",
            "--data",
            "mnist10k",
            "--epochs",
            "3",
            "--json",
            "--out",
            study.to_str().unwrap(),
        ],
        home.path(),
    );
    let v = json_of(&out);
    let acc = v["test_acc"].as_f64().unwrap();
    assert!(acc >= 0.93, "test accuracy {acc}");
    assert_eq!(v["n_train"], 8000);
    let id = v["model_id"].as_str().unwrap();
    let card: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(study.join("models").join(id).join("card.json")).unwrap(),
    )
    .unwrap();
    let idx: Vec<u64> = card["train_indices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    assert_eq!(idx.len(), 8000);
    assert!(
        idx.windows(2).all(|w| w[0] < w[1]),
        "indices are sorted and unique"
    );
    assert!(
        card["command"]
            .as_str()
            .unwrap()
            .starts_with("rote train --family mlp --data mnist10k")
    );

    let listed = json_of(&rote(&["models", study.to_str().unwrap(), "--json"], home.path()));
    assert_eq!(listed["models"][0]["id"], id);
    assert_eq!(listed["models"][0]["kind"], "classifier");
    assert_eq!(listed["models"][0]["metric"], "test_acc");
    assert!((listed["models"][0]["value"].as_f64().unwrap() - acc).abs() < 1e-12);
}

#[test]
fn same_seed_gives_identical_weights_and_other_seed_differs() {
    let home = tempfile::tempdir().unwrap();
    let mut weights = Vec::new();
    for (k, seed) in ["3", "3", "4"].iter().enumerate() {
        let study = home.path().join(format!("s{k}"));
        let v = json_of(&rote(
            &[
                "train",
                "--family",
                "cnn",
                "--data",
                "digits8x8",
                "--epochs",
                "1",
                "--seed",
                seed,
                "--subset-ratio",
                "0.5",
                "--json",
                "--out",
                study.to_str().unwrap(),
            ],
            home.path(),
        ));
        let id = v["model_id"].as_str().unwrap().to_string();
        let dir = study.join("models").join(&id);
        let card: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("card.json")).unwrap()).unwrap();
        weights.push((
            std::fs::read(dir.join("weights.safetensors")).unwrap(),
            card["train_indices"].clone(),
        ));
    }
    assert!(
        weights[0] == weights[1],
        "same seed must give byte-identical weights and the same subset"
    );
    assert_ne!(weights[0].0, weights[2].0);
    assert_ne!(weights[0].1, weights[2].1, "another seed draws another subset");
}

#[test]
fn members_have_lower_loss_than_held_out_samples() {
    // Planted ground truth for the membership manifest: train on a recorded half of the training
    // split long enough to fit it, then the recorded members must have clearly lower loss than
    // the training-split samples the card says the model never saw.
    let home = tempfile::tempdir().unwrap();
    let study = home.path().join("study");
    let v = json_of(&rote(
        &[
            "train",
            "--family",
            "mlp",
            "--data",
            "digits8x8",
            "--epochs",
            "30",
            "--subset-ratio",
            "0.5",
            "--json",
            "--out",
            study.to_str().unwrap(),
        ],
        home.path(),
    ));
    let dir = study.join("models").join(v["model_id"].as_str().unwrap());
    let card = rote::model::ModelCard::load(&dir.join("card.json")).unwrap();
    let scores: rote::model::SampleScores =
        serde_json::from_str(&std::fs::read_to_string(dir.join("scores.json")).unwrap()).unwrap();
    let ds = rote::data::load("digits8x8").unwrap();
    let member = card.member_mask();
    let (mut inl, mut outl) = (Vec::new(), Vec::new());
    for i in ds.train_indices() {
        if member[i] {
            inl.push(scores.loss[i]);
        } else {
            outl.push(scores.loss[i]);
        }
    }
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    assert!(!inl.is_empty() && !outl.is_empty());
    assert!(
        mean(&inl) * 3.0 < mean(&outl),
        "member loss {} vs non-member {}",
        mean(&inl),
        mean(&outl)
    );
    assert!(
        ds.test_indices().iter().all(|&i| !member[i]),
        "no test sample is a member"
    );
}

#[test]
fn nn_finds_planted_duplicates_first() {
    let home = tempfile::tempdir().unwrap();
    let p = planted_duplicates(home.path());
    for extra in [&[][..], &["--cpu"][..]] {
        let mut args = vec![
            "nn",
            "--data",
            p.to_str().unwrap(),
            "--index",
            "7",
            "--k",
            "3",
            "--json",
        ];
        args.extend_from_slice(extra);
        let v = json_of(&rote(&args, home.path()));
        let nb = v["neighbours"].as_array().unwrap();
        assert_eq!(nb[0]["index"], 41, "the exact copy comes first");
        assert_eq!(nb[0]["sq_l2"], 0);
        assert_eq!(nb[1]["index"], 23, "the one-pixel variant comes second");
        assert_eq!(nb[1]["sq_l2"], 9);
        assert!(nb.iter().all(|n| n["index"] != 7), "the query itself is excluded");
    }
}

#[test]
fn demo_writes_a_study_with_the_shipped_model_in_seconds() {
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("demo");
    let v = json_of(&rote(
        &["demo", "--out", out.to_str().unwrap(), "--json"],
        home.path(),
    ));
    assert_eq!(v["models"][0], "mlp-mnist10k-demo");
    let ds = rote::data::load("mnist10k").unwrap();
    let loaded = rote::model::load_model(
        &out.join("models/mlp-mnist10k-demo"),
        Some(&ds),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    assert!(loaded.card.metrics.test_acc >= 0.93);
    assert_eq!(loaded.card.train_indices.len(), 8000);
    // The precomputed demo zoo and its results come along, and match the recorded recipe.
    let zoo = rote::train::zoo::Zoo::open(&out.join("zoos/zoo-mnist-demo")).unwrap();
    assert_eq!(zoo.manifest.config, rote::demo::demo_zoo_config());
    assert_eq!(zoo.model_indices().len(), rote::demo::DEMO_ZOO_MODELS as usize);
    let m = json_of(&rote(
        &["memorization", out.to_str().unwrap(), "--json"],
        home.path(),
    ));
    // 64 models, 20 epochs: 0.61 measured (chance: 0.02); see the issue note for the gap to 0.8.
    assert!(m["planted_recall"].as_f64().unwrap() >= 0.55, "{m}");
    assert!(out.join("results/zoo-mnist-demo/mia-lira-online.json").is_file());
    // The face classifier and its inversion grid (TV prior) come along: the evaluation classifier
    // identifies at least 80% of the 40 people, and a blank image is no person's face.
    let tv = rote::invert::load_report(&out.join("results/inversion/softmax-orl-demo/tv.json")).unwrap();
    assert_eq!(tv.classes.len(), 40);
    assert!(
        tv.eval_top1 >= 0.8 && tv.blank_top1 <= 0.05,
        "{} {}",
        tv.eval_top1,
        tv.blank_top1
    );
    // The SSL encoder pair and its LayerMem report: memorization grows from the first layer to the
    // last, and the planted outliers are memorized at least twice as much as the other candidates.
    let text = std::fs::read_to_string(out.join("results/layermem/ssl-demo-f-ssl-demo-g.json")).unwrap();
    let lm: rote::ssl::LayerMemReport = serde_json::from_str(&text).unwrap();
    let (first, last) = (lm.layermem_mean[0], *lm.layermem_mean.last().unwrap());
    assert!(last > first, "LayerMem first {first} last {last}");
    assert!(lm.outliers.ratio.unwrap() >= 2.0, "{:?}", lm.outliers);
    assert!(out.join("ssl/ssl-demo-f/weights.safetensors").is_file());
    // `rote models` lists every kind of model the demo holds, each with its headline metric.
    let listed = json_of(&rote(&["models", out.to_str().unwrap(), "--json"], home.path()));
    let rows = listed["models"].as_array().unwrap();
    let of = |kind: &str| rows.iter().filter(|r| r["kind"] == kind).collect::<Vec<_>>();
    for kind in ["classifier", "zoo", "ddpm", "lm", "ssl-encoder"] {
        assert!(!of(kind).is_empty(), "no {kind} in {listed}");
    }
    let zoo_row = of("zoo")[0];
    assert_eq!(zoo_row["id"], "zoo-mnist-demo");
    assert_eq!(zoo_row["value"], rote::demo::DEMO_ZOO_MODELS as f64);
    let lm_row = of("lm").into_iter().find(|r| r["id"] == "lm-demo").unwrap();
    assert_eq!(lm_row["metric"], "max_exposure_bits");
    assert!(lm_row["value"].as_f64().unwrap() > 10.0, "{lm_row}");
    // The demo GPT (a Hugging Face folder with rote's card) is listed with its validation loss.
    let gpt_row = of("lm").into_iter().find(|r| r["id"] == "gpt-demo").unwrap();
    assert_eq!(
        (&gpt_row["metric"], &gpt_row["family"]),
        (&"val_loss".into(), &"gpt2".into())
    );
    assert!(gpt_row["value"].as_f64().unwrap() < 6.0, "{gpt_row}");
    assert!(of("ssl-encoder").len() == 2 && listed["problems"].as_array().unwrap().is_empty());
    let text = rote(&["models", out.to_str().unwrap()], home.path());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.starts_with("kind") && text.contains("zoo-mnist-demo"),
        "{text}"
    );
    // A DDPM whose card no longer matches its weights is a problem of its own; the rest is listed.
    let card = out.join("diffusion/ddpm-digits-dup32/card.json");
    let mut c: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&card).unwrap()).unwrap();
    c["unet"]["base"] = 64.into();
    std::fs::write(&card, c.to_string()).unwrap();
    let listed = json_of(&rote(&["models", out.to_str().unwrap(), "--json"], home.path()));
    let problems = listed["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{listed}");
    assert!(problems[0].as_str().unwrap().contains("unet.base 64"), "{listed}");
    assert_eq!(listed["models"].as_array().unwrap().len(), rows.len() - 1);
}

fn assert_one_line_error(out: &std::process::Output, needles: &[&str]) {
    assert!(!out.status.success(), "expected failure");
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.trim();
    assert_eq!(line.lines().count(), 1, "one line: {line}");
    assert!(line.starts_with("error: "), "{line}");
    for n in needles {
        assert!(line.contains(n), "'{n}' not in: {line}");
    }
    assert!(!line.contains("panicked"), "{line}");
}

#[test]
fn broken_inputs_give_one_line_errors_naming_the_file() {
    let home = tempfile::tempdir().unwrap();
    let d = home.path();
    // Truncated IDX.
    let p = d.join("trunc-images-idx3-ubyte");
    common::write_idx(&p, &[100, 28, 28], &[0; 50], false);
    common::write_idx(&d.join("trunc-labels-idx1-ubyte"), &[100], &[0; 100], false);
    let out = rote(&["nn", "--data", p.to_str().unwrap(), "--index", "0"], d);
    assert_one_line_error(&out, &["trunc-images-idx3-ubyte", "truncated"]);
    // Corrupt PNG in an image folder.
    let f = d.join("folder");
    std::fs::create_dir_all(f.join("a")).unwrap();
    std::fs::create_dir_all(f.join("b")).unwrap();
    image::GrayImage::new(4, 4).save(f.join("a/ok.png")).unwrap();
    std::fs::write(f.join("b/bad.png"), b"\x89PNG\r\n\x1a\n\0\0garbage").unwrap();
    let out = rote(&["nn", "--data", f.to_str().unwrap(), "--index", "0"], d);
    assert_one_line_error(&out, &["bad.png", "decode"]);
    // Unknown data set name.
    let out = rote(&["nn", "--data", "no-such-set", "--index", "0"], d);
    assert_one_line_error(&out, &["no-such-set", "mnist10k"]);
}

#[test]
fn corrupted_weights_and_pickles_are_refused_with_reasons() {
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("demo");
    json_of(&rote(
        &["demo", "--out", out.to_str().unwrap(), "--json"],
        home.path(),
    ));
    let dir = out.join("models/mlp-mnist10k-demo");
    let ds = rote::data::load("mnist10k").unwrap();
    let w = dir.join("weights.safetensors");
    let good = std::fs::read(&w).unwrap();

    std::fs::write(&w, &good[..good.len() / 2]).unwrap();
    let err = rote::model::load_model(&dir, Some(&ds), &candle_core::Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("weights.safetensors") && err.contains("safetensors"),
        "{err}"
    );

    std::fs::write(&w, b"\x80\x02}q\x00(X\x06\x00\x00\x00weightq").unwrap();
    let err = rote::model::load_model(&dir, Some(&ds), &candle_core::Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("pickle") && err.contains("safetensors"), "{err}");

    // Right file, wrong data set: the card's hash check explains it.
    std::fs::write(&w, &good).unwrap();
    let fashion = rote::data::load("fashion-mnist").unwrap();
    let err = rote::model::load_model(&dir, Some(&fashion), &candle_core::Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("mnist10k") && err.contains("hash"), "{err}");

    // Shape mismatch: the CNN architecture against MLP weights.
    let mut card = rote::model::ModelCard::load(&dir.join("card.json")).unwrap();
    card.spec.family = rote::model::Family::Cnn;
    card.spec.widths = vec![32, 64, 64, 128];
    let err = rote::model::load_weights(&card, &w, &candle_core::Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("tensors do not match the card's cnn") && err.contains("'conv1.bias' missing"),
        "{err}"
    );
}

#[test]
fn highest_loss_samples_are_the_planted_mislabels() {
    // Planted ground truth for the per-sample score columns the Data view sorts by: flip the
    // labels of 20 training digits, train, and the loss column must rank them at the top.
    let home = tempfile::tempdir().unwrap();
    let ds = rote::data::load("digits8x8").unwrap();
    let mut labels: Vec<u8> = ds.labels.iter().map(|&l| l as u8).collect();
    let flipped: Vec<usize> = ds.train_indices().into_iter().step_by(60).take(20).collect();
    for &i in &flipped {
        labels[i] = (labels[i] + 5) % 10;
    }
    let p = home.path().join("flipped-images-idx3-ubyte");
    common::write_idx(&p, &[ds.n as u32, 8, 8], &ds.pixels, false);
    common::write_idx(
        &home.path().join("flipped-labels-idx1-ubyte"),
        &[ds.n as u32],
        &labels,
        false,
    );
    let study = home.path().join("study");
    let v = json_of(&rote(
        &[
            "train",
            "--family",
            "mlp",
            "--data",
            p.to_str().unwrap(),
            "--epochs",
            "4",
            "--json",
            "--out",
            study.to_str().unwrap(),
        ],
        home.path(),
    ));
    let dir = study.join("models").join(v["model_id"].as_str().unwrap());
    let scores: rote::model::SampleScores =
        serde_json::from_str(&std::fs::read_to_string(dir.join("scores.json")).unwrap()).unwrap();
    let mut order: Vec<usize> = (0..ds.n).collect();
    order.sort_by(|&a, &b| scores.loss[b].total_cmp(&scores.loss[a]));
    let top: Vec<usize> = order[..40].to_vec();
    let found = flipped.iter().filter(|i| top.contains(i)).count();
    assert!(
        found >= 15,
        "only {found} of 20 planted mislabels among the 40 highest-loss samples"
    );
}
