//! The GUI half of the catalogue: broken data sets, a broken study.json and broken model folders
//! through the app's open-data-set, open-study and import-model paths.
#![cfg(feature = "gui")]

use super::formats::{card_json, good_weights, softmax_card};
use super::{files_dir, generate};

/// The app on an empty study takes broken data sets and model folders one after the other: each
/// is an error naming the file (in the error log and on screen), nothing crashes, and a good data
/// set and a good model open afterwards.
#[test]
fn the_app_shows_each_bad_input_and_keeps_working() {
    use std::time::{Duration, Instant};

    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable as _;
    use rote::ui::{App, AppOptions, Command, View};

    fn step_until(h: &mut Harness<'_, App>, what: &str, pred: impl Fn(&App) -> bool) {
        let t0 = Instant::now();
        while !pred(h.state()) {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "timed out waiting for: {what}"
            );
            h.step();
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    generate();
    let dir = tempfile::tempdir().unwrap();
    let study = dir.path().join("study");
    rote::study::Study::open_or_create(&study).unwrap();
    let options = AppOptions {
        study: Some(study),
        view: View::Data,
        ..AppOptions::default()
    };
    let mut h = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .wgpu()
        .build_eframe(|cc| App::new(cc, options));
    rote::ui::screenshot::settle(&mut h, Duration::from_secs(60));
    let f = files_dir();
    let data = |rel: &str| Command::LoadDataset(f.join(rel).display().to_string());
    let model = |rel: &str| Command::ImportModel(f.join(rel));
    let inputs = [
        (
            data("idx/truncated-images-idx3-ubyte"),
            "truncated-images-idx3-ubyte",
            "truncated",
        ),
        (
            data("idx/huge-images-idx3-ubyte"),
            "huge-images-idx3-ubyte",
            "too large",
        ),
        (
            data("idx/count-images-idx3-ubyte"),
            "count-labels-idx1-ubyte",
            "9 labels",
        ),
        (
            data("npy/huge.npy"),
            "huge.npy",
            "needs 4611686018427387904 bytes",
        ),
        (
            data("npy/five-channels.npy"),
            "five-channels.npy",
            "not an image array",
        ),
        (data("cifar/label.bin"), "label.bin", "out of range"),
        (data("folder/corrupt-png"), "bad.png", "cannot decode image"),
        (data("folder/huge-png"), "huge.png", "cannot decode image"),
        (data("data/tensors.pt"), "tensors.pt", "PyTorch pickle"),
        (
            Command::OpenStudy(f.join("study/invalid-json")),
            "study.json",
            "bad study manifest",
        ),
        (model("model/nan-weights"), "weights.safetensors", "NaN"),
        (model("model/wrong-shape"), "weights.safetensors", "has shape"),
        (model("model/card-unknown-family"), "card.json", "transformer"),
        (model("model/pickle-zip"), "weights.safetensors", "PyTorch pickle"),
        (
            model("model/absurd-sizes"),
            "absurd-sizes/card.json",
            "spec.widths[0] is 10000000000",
        ),
        (
            model("model/classes-mismatch"),
            "classes-mismatch/weights.safetensors",
            "the card says spec.n_classes 12",
        ),
        (model("model/resnet.pth"), "resnet.pth", "PyTorch pickle"),
    ];
    for (cmd, name, problem) in inputs {
        let before = h.state().toasts.error_log.len();
        h.state_mut().push_command(cmd);
        step_until(&mut h, name, |app| app.toasts.error_log.len() > before);
        let err = h.state().toasts.error_log.last().unwrap().clone();
        assert!(
            err.contains(name) && err.contains(problem) && !err.contains("crashed"),
            "{name}: {err}"
        );
        assert_eq!(h.state().toasts.error_log.len(), before + 1, "one error each");
    }
    // The last error is on screen.
    h.run_steps(2);
    h.get_by_label_contains("resnet.pth");
    // Still working: a good data set and a good model open.
    h.state_mut()
        .push_command(Command::LoadDataset("digits8x8".into()));
    step_until(&mut h, "digits loaded", |app| {
        app.current_dataset().is_some_and(|d| d.n == 1797)
    });
    let good = dir.path().join("softmax-digits");
    std::fs::create_dir_all(&good).unwrap();
    std::fs::write(good.join("card.json"), card_json(&softmax_card())).unwrap();
    std::fs::write(good.join("weights.safetensors"), good_weights()).unwrap();
    h.state_mut().push_command(Command::ImportModel(good));
    step_until(&mut h, "the good model imported", |app| app.models.len() == 1);
    h.run_steps(2);
}
