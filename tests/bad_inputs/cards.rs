//! The catalogue's broken model folders of every kind (classifier, zoo record, DDPM, LM, SSL
//! encoder): absurd sizes in the card, a card that does not match its weights, truncated weights
//! and truncated zoo records. The weights are tiny models built here from the fuzz seeds' cards
//! (seeded, so byte for byte the same on every run); and the GUI test: a study holding every
//! broken folder beside intact ones opens, shows each error on its model, and keeps the intact
//! models usable.

use std::path::Path;

use candle_core::{DType, Device};
use serde_json::{Value, json};

use super::committed::put;
use super::files_dir;
use super::formats::{card_json, good_weights, softmax_card};

const DDPM_SEED: &str = include_str!("../../fuzz/seeds/card_json/diffusion");
const LM_SEED: &str = include_str!("../../fuzz/seeds/card_json/lm");
const SSL_SEED: &str = include_str!("../../fuzz/seeds/card_json/ssl");

fn pretty(v: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(v).unwrap()
}

/// A seed card with `arch_key` replaced by `arch`.
fn card_with(seed: &str, id: &str, arch_key: &str, arch: Value) -> Value {
    let mut v: Value = serde_json::from_str(seed).unwrap();
    v["id"] = json!(id);
    v[arch_key] = arch;
    v
}

fn ddpm_card(unet: Value) -> Value {
    card_with(DDPM_SEED, "ddpm-tiny", "unet", unet)
}

fn lm_card(embed: u64, hidden: u64) -> Value {
    card_with(
        LM_SEED,
        "lm-tiny",
        "arch",
        json!({"vocab": 74, "embed": embed, "hidden": hidden}),
    )
}

fn ssl_card(widths: Value) -> Value {
    card_with(
        SSL_SEED,
        "ssl-tiny",
        "arch",
        json!({"channels": 1, "height": 8, "width": 8, "widths": widths, "proj_hidden": 8, "proj_dim": 4}),
    )
}

/// The card and weights bytes of a tiny model of each kind, freshly initialised.
pub struct Tiny {
    pub ddpm: (Vec<u8>, Vec<u8>),
    pub lm: (Vec<u8>, Vec<u8>),
    pub ssl: (Vec<u8>, Vec<u8>),
}

fn saved(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    (
        std::fs::read(dir.join("card.json")).unwrap(),
        std::fs::read(dir.join("weights.safetensors")).unwrap(),
    )
}

pub fn tiny_models() -> Tiny {
    let tmp = tempfile::tempdir().unwrap();
    let p = Path::new("card.json");
    let dev = Device::Cpu;
    let unet = json!({"channels": 1, "height": 8, "width": 8, "base": 4, "mults": [1, 2]});
    let card = rote::diffusion::DiffusionCard::from_json(p, &ddpm_card(unet).to_string()).unwrap();
    let d = tmp.path().join("ddpm");
    rote::diffusion::Ddpm::fresh(card, &dev)
        .unwrap()
        .save(&d, DType::F16)
        .unwrap();
    let card = rote::canary::card::LmCard::from_json(p, &lm_card(4, 8).to_string()).unwrap();
    let l = tmp.path().join("lm");
    rote::canary::card::CanaryLm::fresh(card, &dev)
        .unwrap()
        .save(&l)
        .unwrap();
    let card = rote::ssl::SslCard::from_json(p, &ssl_card(json!([4, 8])).to_string()).unwrap();
    let s = tmp.path().join("ssl");
    rote::ssl::SslEncoder::fresh(card, &dev)
        .unwrap()
        .save(&s, DType::F16)
        .unwrap();
    Tiny {
        ddpm: saved(&d),
        lm: saved(&l),
        ssl: saved(&s),
    }
}

fn half(b: &[u8]) -> Vec<u8> {
    b[..b.len() / 2].to_vec()
}

fn folder(rel: &str, card: &[u8], weights: &[u8]) {
    put(&format!("{rel}/card.json"), card);
    put(&format!("{rel}/weights.safetensors"), weights);
}

/// A zoo record (`ROTEZOO1`, index, n, member bits, correct bits, loss, margin).
fn zoo_record(index: u32, n: usize) -> Vec<u8> {
    rote::train::zoo::ZooModel {
        index,
        member: (0..n).map(|i| (i + index as usize).is_multiple_of(2)).collect(),
        correct: vec![true; n],
        loss: vec![0.5; n],
        margin: vec![1.0; n],
        robust_accuracy: None,
    }
    .to_bytes()
}

/// A study with one zoo of the 8x8 digits holding two records, broken by `edit`.
fn zoo_study(name: &str, hidden: Value, records: [Vec<u8>; 2]) {
    let ds = rote::data::load("digits8x8").unwrap();
    let manifest = json!({
        "config": {"id": "z", "hidden": hidden},
        "dataset": {"name": "digits8x8", "source": ds.source, "hash": ds.hash, "n": ds.n},
        "planted": [],
        "rote_version": "0"
    });
    let study = json!({"format": 1, "name": name, "description": "", "created_by": "tests/bad_inputs", "datasets": ["digits8x8"]});
    put(&format!("{name}/study.json"), &pretty(&study));
    put(&format!("{name}/zoos/z/zoo.json"), &pretty(&manifest));
    for (k, r) in records.iter().enumerate() {
        put(&format!("{name}/zoos/z/models/m{k:05}.bin"), r);
    }
}

/// Writes the catalogue's broken model folders and zoo studies that are missing.
pub fn generate() {
    let marker = files_dir().join("ssl-study/ssl/truncated-weights/weights.safetensors");
    let tiny = if marker.exists() && files_dir().join("zoo-mismatch/zoos/z/models/m00001.bin").exists() {
        None
    } else {
        Some(tiny_models())
    };
    // Classifiers.
    let mut absurd = serde_json::to_value(softmax_card()).unwrap();
    absurd["spec"]["family"] = json!("mlp");
    absurd["spec"]["widths"] = json!([10_000_000_000u64]);
    folder("model/absurd-sizes", &pretty(&absurd), &good_weights());
    let mut classes = softmax_card();
    classes.spec.n_classes = 12;
    folder("model/classes-mismatch", &card_json(&classes), &good_weights());
    // Zoo records (8x8 digits: 1797 samples).
    let n = 1797;
    zoo_study(
        "zoo-truncated",
        json!([16]),
        [zoo_record(0, n), half(&zoo_record(1, n))],
    );
    zoo_study(
        "zoo-mismatch",
        json!([16]),
        [zoo_record(0, n), zoo_record(1, 100)],
    );
    zoo_study(
        "zoo-absurd",
        json!([10_000_000_000u64]),
        [zoo_record(0, n), zoo_record(1, n)],
    );
    let Some(t) = tiny else { return };
    // DDPM (weights at base 4).
    let (card, w) = &t.ddpm;
    folder("ddpm-study/diffusion/good", card, w);
    let absurd = ddpm_card(
        json!({"channels": 1, "height": 1 << 20, "width": 1 << 20, "base": 1_000_000_000, "mults": [1, 2]}),
    );
    folder("ddpm-study/diffusion/absurd-sizes", &pretty(&absurd), w);
    let base8 = ddpm_card(json!({"channels": 1, "height": 8, "width": 8, "base": 8, "mults": [1, 2]}));
    folder("ddpm-study/diffusion/base-mismatch", &pretty(&base8), w);
    folder("ddpm-study/diffusion/truncated-weights", card, &half(w));
    // Character LM (embed 4, hidden 8).
    let (card, w) = &t.lm;
    folder("lm-study/lm/good", card, w);
    let absurd = lm_card(10_000_000_000, 10_000_000_000);
    folder("lm-study/lm/absurd-sizes", &pretty(&absurd), w);
    folder("lm-study/lm/hidden-mismatch", &pretty(&lm_card(4, 16)), w);
    folder("lm-study/lm/truncated-weights", card, &half(w));
    // SSL encoder (widths [4, 8]).
    let (card, w) = &t.ssl;
    folder("ssl-study/ssl/good", card, w);
    let absurd = ssl_card(json!([1_000_000_000, 8]));
    folder("ssl-study/ssl/absurd-sizes", &pretty(&absurd), w);
    folder(
        "ssl-study/ssl/width-mismatch",
        &pretty(&ssl_card(json!([8, 8]))),
        w,
    );
    folder("ssl-study/ssl/truncated-weights", card, &half(w));
}

/// A study holding every broken model folder of the catalogue beside an intact model of each
/// kind opens in the app: each broken folder is one error naming its file, the intact classifier,
/// DDPM and LM are listed and open, and the app keeps working.
#[cfg(feature = "gui")]
#[test]
fn a_study_with_broken_models_opens_and_the_intact_ones_stay_usable() {
    use std::time::{Duration, Instant};

    use egui_kittest::Harness;
    use rote::ui::{App, AppOptions, Command, View};

    fn step_until(h: &mut Harness<'_, App>, what: &str, pred: impl Fn(&App) -> bool) {
        let t0 = Instant::now();
        while !pred(h.state()) {
            assert!(
                t0.elapsed() < Duration::from_secs(90),
                "timed out waiting for: {what}"
            );
            h.step();
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.path().is_dir() {
                copy_dir(&e.path(), &to.join(e.file_name()));
            } else {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }

    super::generate();
    let dir = tempfile::tempdir().unwrap();
    let study = dir.path().join("study");
    rote::study::Study::open_or_create(&study).unwrap();
    let f = files_dir();
    let good = study.join("models/good");
    std::fs::create_dir_all(&good).unwrap();
    std::fs::write(good.join("card.json"), card_json(&softmax_card())).unwrap();
    std::fs::write(good.join("weights.safetensors"), good_weights()).unwrap();
    let broken_classifiers = ["absurd-sizes", "classes-mismatch", "truncated-weights"];
    for name in broken_classifiers {
        copy_dir(&f.join("model").join(name), &study.join("models").join(name));
    }
    let kinds = [
        (
            "ddpm-study/diffusion",
            "diffusion",
            ["absurd-sizes", "base-mismatch", "truncated-weights"],
        ),
        (
            "lm-study/lm",
            "lm",
            ["absurd-sizes", "hidden-mismatch", "truncated-weights"],
        ),
        (
            "ssl-study/ssl",
            "ssl",
            ["absurd-sizes", "width-mismatch", "truncated-weights"],
        ),
    ];
    for (src, dest, names) in kinds {
        for name in names.iter().chain(&["good"]) {
            copy_dir(&f.join(src).join(name), &study.join(dest).join(name));
        }
    }
    copy_dir(&f.join("zoo-truncated/zoos/z"), &study.join("zoos/z"));

    let options = AppOptions {
        study: Some(dir.path().join("empty")),
        view: View::Data,
        ..AppOptions::default()
    };
    let mut h = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .wgpu()
        .build_eframe(|cc| App::new(cc, options));
    rote::ui::screenshot::settle(&mut h, Duration::from_secs(60));
    let before = h.state().toasts.error_log.len();
    h.state_mut().push_command(Command::OpenStudy(study.clone()));
    step_until(&mut h, "the study and its diffusion models", |app| {
        app.study.as_ref().is_some_and(|s| s.root == study) && app.diffusion.is_some()
    });
    h.run_steps(5);
    let app = h.state();
    let ids: Vec<&str> = app.models.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["good"], "only the intact classifier is listed");
    let errors = &app.toasts.error_log[before..];
    for name in broken_classifiers {
        let hits = errors
            .iter()
            .filter(|e| e.contains(&format!("models/{name}/")))
            .count();
        assert_eq!(hits, 1, "one error for models/{name}: {errors:#?}");
    }
    let diffusion = app.diffusion.as_ref().unwrap();
    let ids: Vec<&str> = diffusion.cards.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["ddpm-tiny"], "only the intact DDPM is listed");
    for name in kinds[0].2 {
        assert!(
            diffusion
                .errors
                .iter()
                .any(|e| e.contains(&format!("diffusion/{name}/"))),
            "{name}: {:?}",
            diffusion.errors
        );
    }
    assert!(
        errors.iter().all(|e| e.len() < 300 && !e.contains("panicked")),
        "{errors:#?}"
    );
    // The intact LM opens; a broken one is one error naming its file.
    let lms = study.join("lm");
    h.state_mut()
        .push_command(Command::OpenExposure(lms.join("good")));
    step_until(&mut h, "the intact LM", |app| {
        app.exposure_view
            .loaded
            .as_ref()
            .is_some_and(|l| l.dir == lms.join("good"))
    });
    let n = h.state().toasts.error_log.len();
    h.state_mut()
        .push_command(Command::OpenExposure(lms.join("hidden-mismatch")));
    step_until(&mut h, "the broken LM's error", |app| {
        app.toasts.error_log.len() > n
    });
    let err = h.state().toasts.error_log.last().unwrap().clone();
    assert!(
        err.contains("hidden-mismatch/weights.safetensors") && err.contains("arch.hidden 8"),
        "{err}"
    );
    // Still working: the intact classifier's data set loads and a model imports.
    h.state_mut()
        .push_command(Command::LoadDataset("digits8x8".into()));
    step_until(&mut h, "digits loaded", |app| {
        app.current_dataset().is_some_and(|d| d.n == 1797)
    });
    h.state_mut().push_command(Command::ImportModel(good.clone()));
    step_until(&mut h, "the good model imported again", |app| {
        app.models.len() == 2
    });
    h.run_steps(2);
}
