//! The real app driven headlessly with egui_kittest on the wgpu renderer (lavapipe in CI): the
//! harness every `ui_app` test uses, and the app as a whole: the demo study's Data view
//! (neighbours, sorting by a model's scores), training with progress and a live loss curve and
//! cancelling it (nothing left behind), a broken data set as an error while the app keeps working,
//! and presentation mode stepped through the demo story from the keyboard. The views of each kind
//! of model are in `ui_app/`: `zoo.rs` (classifier zoos, defences), `diffusion.rs` (extraction,
//! inpainting, diffusion membership), `inversion.rs`, `layers.rs` and `exposure.rs`.
#![cfg(feature = "gui")]
#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

mod diffusion;
mod exposure;
mod inversion;
mod layers;
mod zoo;

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use rote::ui::{App, AppOptions, Command, SortKey, SplitFilter, View};

fn harness(study: &std::path::Path, view: View) -> Harness<'static, App> {
    rote::demo::write_demo(study).unwrap();
    harness_plain(study, view)
}

/// The app on a study as it is (no demo models or zoo added).
fn harness_plain(study: &std::path::Path, view: View) -> Harness<'static, App> {
    let options = AppOptions {
        study: Some(study.to_path_buf()),
        view,
        select: Some(3),
        ..AppOptions::default()
    };
    let mut h = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .wgpu()
        .build_eframe(|cc| App::new(cc, options));
    rote::ui::screenshot::settle(&mut h, Duration::from_secs(60));
    h
}

fn step_until(h: &mut Harness<'_, App>, what: &str, timeout: Duration, pred: impl Fn(&App) -> bool) {
    let t0 = Instant::now();
    while !pred(h.state()) {
        assert!(t0.elapsed() < timeout, "timed out waiting for: {what}");
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn opens_demo_study_with_data_and_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(&dir.path().join("demo"), View::Data);
    let app = h.state();
    assert_eq!(app.models.len(), 2, "the MNIST MLP and the face classifier");
    assert_eq!(app.current_dataset().unwrap().n, 10000);
    let nb = app
        .data_view
        .neighbours
        .as_ref()
        .expect("neighbours of the selected image");
    assert_eq!(nb.index, 3);
    assert_eq!(nb.found.len(), 8);
    let label = app.current_dataset().unwrap().labels[3];
    let same = nb
        .found
        .iter()
        .filter(|n| app.current_dataset().unwrap().labels[n.index] == label)
        .count();
    assert!(
        same >= 6,
        "most pixel neighbours of a digit share its label ({same}/8)"
    );
    // The score columns of the demo model are offered for sorting.
    assert!(
        h.state()
            .scores
            .values()
            .flatten()
            .any(|(name, _)| name.starts_with("loss · mlp-mnist10k-demo"))
    );
    // Sorting by the demo model's loss puts its highest-loss digit first.
    let app = h.state_mut();
    let ds = app.current_dataset().unwrap().clone();
    let cols = app.scores.get(&ds.hash).unwrap().clone();
    let (name, loss) = cols.iter().find(|(n, _)| n.starts_with("loss")).unwrap().clone();
    app.data_view.sort = SortKey::Score(name);
    app.data_view.descending = true;
    app.data_view.class_filter = None;
    let order = app.data_view.order(&ds, &cols);
    assert_eq!(order.len(), 10000);
    let argmax = (0..loss.len())
        .max_by(|&a, &b| loss[a].total_cmp(&loss[b]))
        .unwrap();
    assert_eq!(order[0], argmax);
    assert!(order.windows(2).all(|w| loss[w[0]] >= loss[w[1]]));
    app.data_view.split_filter = SplitFilter::Test;
    assert_eq!(app.data_view.order(&ds, &cols).len(), 2000);
    h.run_steps(2);
    h.get_by_label("Models").click();
    h.run_steps(2);
    assert_eq!(h.state().view, View::Models);
    h.get_by_label_contains("Test accuracy");
}

#[test]
fn train_shows_progress_and_curve_then_cancel_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let study = dir.path().join("demo");
    let mut h = harness(&study, View::Models);
    h.get_by_label("Train…").click();
    h.run_steps(2);
    h.get_by_label("Start training").click();
    step_until(
        &mut h,
        "training progress and a loss curve",
        Duration::from_secs(120),
        |app| {
            app.jobs.running().iter().any(|j| {
                j.label.starts_with("Training")
                    && j.handle.progress().done > 0
                    && j.series.get("train loss").is_some_and(|s| s.len() >= 2)
            })
        },
    );
    h.run_steps(2);
    assert!(
        h.get_all_by_label_contains("epoch 1/3").count() >= 1,
        "progress text with the stage"
    );
    // Two Cancel buttons exist (status bar and dialog); either cancels the job.
    h.get_all_by_label("Cancel")
        .next()
        .expect("a Cancel button")
        .click();
    step_until(&mut h, "the job to end", Duration::from_secs(60), |app| {
        app.jobs
            .running()
            .iter()
            .all(|j| !j.label.starts_with("Training"))
    });
    h.run_steps(2);
    let summary = &h
        .state()
        .last_training
        .as_ref()
        .expect("a training summary")
        .summary;
    assert!(summary.starts_with("Cancelled"), "{summary}");
    let mut entries: Vec<String> = std::fs::read_dir(study.join("models"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        vec!["mlp-mnist10k-demo", "softmax-orl-demo"],
        "the demo's models and no partial model folder"
    );
}

#[test]
fn bad_dataset_shows_an_error_and_the_app_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(&dir.path().join("demo"), View::Data);
    let bad = dir.path().join("broken-images-idx3-ubyte.gz");
    std::fs::write(&bad, b"\x1f\x8b\x08\x00garbage").unwrap();
    h.state_mut()
        .push_command(Command::LoadDataset(bad.display().to_string()));
    step_until(&mut h, "an error toast", Duration::from_secs(30), |app| {
        !app.toasts.error_log.is_empty()
    });
    let err = h.state().toasts.error_log[0].clone();
    assert!(err.contains("broken-images-idx3-ubyte.gz"), "{err}");
    h.run_steps(2);
    h.get_by_label_contains("broken-images-idx3-ubyte.gz");
    // Still working: switch data set.
    h.state_mut()
        .push_command(Command::LoadDataset("digits8x8".into()));
    step_until(&mut h, "digits loaded", Duration::from_secs(30), |app| {
        app.current_dataset().is_some_and(|d| d.n == 1797)
    });
}

#[test]
fn presentation_mode_steps_through_the_demo_story_from_the_keyboard() {
    use egui::Key;
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(&dir.path().join("demo"), View::Settings);
    let zoom = h.ctx.zoom_factor();
    h.key_press(Key::F11);
    h.run_steps(2);
    assert!(h.state().presentation.active);
    assert_eq!(h.state().view, View::Data, "the story starts at the data");
    assert!(h.ctx.zoom_factor() >= zoom, "type never smaller while presenting");
    let title = h.get_by_label_contains("1. The training data").rect();
    let screen = h.ctx.content_rect();
    assert!(
        title.height() >= 0.045 * screen.height(),
        "the heading is large: {title:?} on {screen:?}"
    );
    // Data, memorized samples and influence have no animation: one key each.
    for (k, view) in [
        (1, View::Memorization),
        (2, View::Influence),
        (3, View::Extraction),
    ] {
        h.key_press(Key::ArrowRight);
        h.run_steps(2);
        assert_eq!(h.state().presentation.step, k);
        assert_eq!(h.state().view, view);
    }
    step_until(&mut h, "the denoising animation", Duration::from_secs(180), |a| {
        a.presentation.anim().is_some()
    });
    h.run_steps(2);
    h.get_by_label_contains("pure noise: step 0 of 50");
    // Down steps one frame; Space plays; a second Space jumps to the end and shows the verdict.
    h.key_press(Key::ArrowDown);
    h.run_steps(2);
    assert_eq!(h.state().presentation.frame, 1);
    h.get_by_label_contains("denoising step 1 of 50");
    h.key_press(Key::Space);
    h.run_steps(1);
    assert!(h.state().presentation.playing);
    let before = h.state().presentation.frame;
    std::thread::sleep(Duration::from_millis(400));
    h.run_steps(2);
    assert!(
        h.state().presentation.frame > before,
        "playback advances by itself"
    );
    h.key_press(Key::Space);
    h.run_steps(2);
    assert_eq!(h.state().presentation.frame, 50);
    h.get_by_label_contains("planted 32 times");
    // At the end of the animation the same key moves on; Left comes back.
    h.key_press(Key::PageDown);
    h.run_steps(2);
    assert_eq!(h.state().view, View::Inpainting);
    h.key_press(Key::PageUp);
    h.run_steps(2);
    assert_eq!(h.state().view, View::Extraction);
    // The inversion slide animates the iterations.
    for _ in 0..2 {
        h.key_press(Key::ArrowRight);
        h.run_steps(2);
        if h.state().presentation.frame != 0 || h.state().presentation.playing {
            h.key_press(Key::End);
            h.run_steps(2);
            h.key_press(Key::ArrowRight);
            h.run_steps(2);
        }
    }
    assert_eq!(h.state().view, View::Inversion);
    step_until(&mut h, "the inversion animation", Duration::from_secs(180), |a| {
        a.presentation.anim().is_some()
    });
    h.key_press(Key::ArrowDown);
    h.run_steps(2);
    h.get_by_label_contains("iteration 10 of 500");
    // P shows the presenter view: the sentence to say, the next slide, the timer; P hides it.
    h.key_press(Key::P);
    h.run_steps(2);
    h.get_by_label_contains("Slide 6 of 9");
    h.get_by_label("7. Where memorization lives inside an encoder");
    assert!(
        h.query_all_by_label_contains("gradient descent on the input")
            .count()
            >= 2,
        "narrative on the slide and in the notes"
    );
    h.key_press(Key::P);
    h.run_steps(2);
    assert!(h.query_by_label_contains("Slide 6 of 9").is_none());
    // Escape leaves: the top bar and the zoom come back.
    h.key_press(Key::Escape);
    h.run_steps(2);
    assert!(!h.state().presentation.active);
    assert!((h.ctx.zoom_factor() - zoom).abs() < 1e-6);
    h.get_by_label("Present");
}
