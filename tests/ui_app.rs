//! The real app driven headlessly with egui_kittest on the wgpu renderer (lavapipe in CI).
#![cfg(feature = "gui")]
#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use rote::ui::{App, AppOptions, Command, SortKey, SplitFilter, View, ZooForm};

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
fn zoo_views_show_memorization_pairs_and_roc() {
    use rote::job::{CancelToken, JobCtx, NullSink};
    use rote::measure::memorization::PairThresholds;
    use rote::measure::mia::{Attack, MiaConfig};
    use rote::measure::zoo_report::{load_zoo, memorization_report, mia_report, save_report};
    use rote::train::zoo::{ZooConfig, train_zoo};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let mut study = rote::study::Study::open_or_create(&path).unwrap();
    study.add_dataset("digits8x8").unwrap();
    let ds = rote::data::load("digits8x8").unwrap();
    let cfg = ZooConfig {
        id: "z".into(),
        train: rote::train::TrainConfig {
            data: "digits8x8".into(),
            epochs: 2,
            batch_size: 64,
            ..ZooConfig::default().train
        },
        plant_mislabel: 0.02,
        ..ZooConfig::default()
    };
    let cancel = CancelToken::new();
    train_zoo(&cfg, &ds, &study, 4, None, 4, &JobCtx::new(&cancel, &NullSink)).unwrap();
    let z = load_zoo(&study, None).unwrap();
    save_report(
        &study,
        "z",
        "memorization",
        &memorization_report(&z, &PairThresholds::default()),
    )
    .unwrap();
    let r = mia_report(&z, Attack::LiraOnline, &MiaConfig::default()).unwrap();
    save_report(&study, "z", "mia-lira-online", &r).unwrap();

    let mut h = harness_plain(&path, View::Memorization);
    let app = h.state();
    assert_eq!(
        app.zoo.as_ref().expect("zoo results loaded").memorization.models,
        4
    );
    let cols = &app.scores[&ds.hash];
    assert!(
        cols.iter().any(|(n, _)| n == "mem · z"),
        "the Data view can sort by mem"
    );
    assert!(
        cols.iter()
            .any(|(n, _)| n.starts_with("vulnerability (LiraOnline)"))
    );
    h.get_by_label_contains("planted mislabels");
    h.get_by_label("Influence").click();
    h.run_steps(3);
    h.get_by_label("Test samples");
    h.get_by_label("Membership").click();
    h.run_steps(3);
    h.get_by_label("TPR @ 1% FPR");
    // The audited ε lower bound beside each ROC (measure::audit).
    h.get_by_label("Audited ε ≥");
    h.get_by_label_contains("LiraOnline: audited ε ≥");
    h.check_accessibility();
}

#[test]
fn training_a_zoo_in_the_app_plots_convergence_live_and_opens_its_results() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let mut study = rote::study::Study::open_or_create(&path).unwrap();
    study.add_dataset("digits8x8").unwrap();
    let mut h = harness_plain(&path, View::Memorization);
    assert!(h.state().zoo.is_none());
    h.get_by_label("Train zoo…").click();
    h.run_steps(2);
    h.state_mut().memorization_view.zoo_form = Some(ZooForm {
        models: 16,
        ratio: 0.5,
        epochs: 2,
        plant: 0.02,
    });
    h.run_steps(2);
    h.get_by_label("Start zoo").click();
    step_until(
        &mut h,
        "a live convergence point",
        Duration::from_secs(300),
        |app| {
            app.jobs
                .running()
                .iter()
                .any(|j| j.series.get("mem change").is_some_and(|s| !s.is_empty()))
                || app.zoo.is_some()
        },
    );
    step_until(&mut h, "the zoo's results", Duration::from_secs(300), |app| {
        app.zoo.is_some()
    });
    let z = h.state().zoo.clone().unwrap();
    assert_eq!(z.memorization.models, 16);
    assert!(z.memorization.planted_recall.is_some());
    assert_eq!(z.mia.len(), 4, "every attack ran");
    assert_eq!(z.memorization.convergence.last().map(|p| p[0]), Some(16.0));
}

/// A study with tiny DDPMs on the 8x8 digits (they only need to run, not to memorize).
fn diffusion_study(path: &std::path::Path, models: usize) -> Vec<String> {
    use rote::diffusion::{DdpmTrainConfig, train_into_study};
    use rote::job::{CancelToken, JobCtx, NullSink};
    let mut study = rote::study::Study::open_or_create(path).unwrap();
    study.add_dataset("digits8x8").unwrap();
    let cfg = DdpmTrainConfig {
        data: "digits8x8".into(),
        images: 8,
        plant_duplicates: 1,
        dup_factor: 4,
        base: 8,
        steps: 20,
        batch_size: 8,
        models,
        subset_ratio: 0.5,
        ..DdpmTrainConfig::default()
    };
    let cancel = CancelToken::new();
    let done = train_into_study(&cfg, path, "test", false, &JobCtx::new(&cancel, &NullSink)).unwrap();
    done.into_iter().map(|(id, _)| id).collect()
}

#[test]
fn extraction_view_counts_extractions_and_the_threshold_moves_them() {
    use rote::diffusion::diffusion_dir;
    use rote::diffusion::extract::run_extraction;
    use rote::diffusion::sample::Sampler;
    use rote::job::{CancelToken, JobCtx, NullSink};
    use rote::measure::extraction::ExtractionConfig;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let id = diffusion_study(&path, 1).remove(0);
    let ds = rote::data::load("digits8x8").unwrap();
    let cancel = CancelToken::new();
    let n = 12;
    let run = run_extraction(
        &diffusion_dir(&path).join(&id),
        &ds,
        &rote::diffusion::extract::GenSpec {
            n,
            seed: 0,
            sampler: Sampler::Ddim { steps: 10, eta: 0.0 },
        },
        &ExtractionConfig::default(),
        false,
        &JobCtx::new(&cancel, &NullSink),
    )
    .unwrap();
    let report = path
        .join("results/diffusion")
        .join(&id)
        .join(format!("extraction-s0-n{n}.json"));
    rote::study::write_json_atomic(&report, &run).unwrap();
    let scores: Vec<f64> = run.report.rows.iter().map(|r| f64::from(r.score)).collect();
    let count = |delta: f64| scores.iter().filter(|&&s| s <= delta).count();

    let mut h = harness_plain(&path, View::Extraction);
    step_until(&mut h, "the saved extraction", Duration::from_secs(60), |app| {
        app.extraction_view.current().is_some()
    });
    h.run_steps(3);
    let shown = h.state().extraction_view.current().unwrap().clone();
    assert_eq!(shown.ex.run.report.rows.len(), n);
    assert_eq!(shown.ex.gens.len(), n * 64, "generations from the model's cache");
    let at_default = count(1.0 / 3.0);
    h.get_by_label(&format!("{at_default} of {n} generations extracted"));
    h.get_by_label_contains("of 1 planted duplicates extracted");
    h.check_accessibility();

    // Raising the threshold to the largest score extracts every generation; counts follow live.
    let hi = scores
        .iter()
        .copied()
        .filter(|s| s.is_finite())
        .fold(0.0, f64::max);
    h.state_mut().extraction_view.delta = hi;
    h.run_steps(2);
    let all = count(hi);
    assert!(all > at_default || at_default == n, "{all} vs {at_default}");
    h.get_by_label(&format!("{all} of {n} generations extracted"));
    assert_eq!(shown.counts(hi).extracted, all);
    let unique = shown.counts(hi).unique;
    h.get_by_label_contains(&format!("{unique} unique training images extracted"));
    // Reset goes back to the report's threshold.
    h.get_by_label("Reset").click();
    h.run_steps(2);
    h.get_by_label(&format!("{at_default} of {n} generations extracted"));
    // The cliques tab draws.
    h.get_by_label_contains("Cliques (").click();
    h.run_steps(2);
    h.check_accessibility();
}

#[test]
fn inpainting_view_completes_an_image_live_and_runs_the_attack() {
    use rote::ui::InpaintMode;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let ids = diffusion_study(&path, 2);
    let mut h = harness_plain(&path, View::Inpainting);
    let view = &h.state().inpainting_view;
    assert_eq!(
        (view.a.clone(), view.b.clone()),
        (Some(ids[0].clone()), Some(ids[1].clone())),
        "the disjoint pair is the default"
    );
    h.state_mut().inpainting_view.cfg.steps = 10;
    h.run_steps(2);
    h.get_by_label("Inpaint").click();
    step_until(&mut h, "the completions", Duration::from_secs(120), |app| {
        app.inpainting_view.last.is_some()
    });
    {
        let live = h.state().inpainting_view.live.lock();
        assert!(
            live.version >= 3 && live.frames.iter().all(Option::is_some),
            "intermediate states of both models were streamed"
        );
    }
    h.run_steps(3);
    assert_eq!(h.get_all_by_label_contains("hidden-region l2").count(), 2);
    h.check_accessibility();
    // Batch mode: the attack's ROC on every image one model trained on.
    h.state_mut().inpainting_view.mode = InpaintMode::Batch;
    h.state_mut().inpainting_view.count = 4;
    h.run_steps(2);
    h.get_by_label("Run attack").click();
    step_until(&mut h, "the attack report", Duration::from_secs(180), |app| {
        app.inpainting_view
            .reports
            .values()
            .any(|r| r.as_ref().is_some_and(|r| r.report.rows.len() == 4))
    });
    h.run_steps(3);
    h.get_by_label("TPR @ 1% FPR");
    h.check_accessibility();
    assert!(
        path.join("results/diffusion")
            .join(&ids[0])
            .join(format!("inpaint-{}.json", ids[1]))
            .is_file()
    );
    // From the Data view: an image only B trained on opens the Inpainting view with B as IN.
    let card_b: rote::diffusion::DiffusionCard = serde_json::from_str(
        &std::fs::read_to_string(path.join("diffusion").join(&ids[1]).join("card.json")).unwrap(),
    )
    .unwrap();
    let img = card_b.train_indices[0] as usize;
    h.state_mut()
        .push_command(rote::ui::Command::LoadDataset("digits8x8".into()));
    h.state_mut()
        .push_command(rote::ui::Command::ShowView(View::Data));
    step_until(
        &mut h,
        "digits8x8 in the Data view",
        Duration::from_secs(60),
        |app| app.current_dataset().is_some_and(|d| d.name == "digits8x8"),
    );
    h.state_mut().data_view.selected = Some(img);
    h.run_steps(3);
    h.get_by_label("Inpaint this image").click();
    h.run_steps(3);
    let app = h.state();
    assert_eq!(app.view, View::Inpainting);
    assert_eq!(app.inpainting_view.image, img);
    assert_eq!(app.inpainting_view.a.as_deref(), Some(ids[1].as_str()));
    assert_eq!(app.inpainting_view.b.as_deref(), Some(ids[0].as_str()));
}

#[test]
fn membership_view_shows_the_diffusion_mia_against_t() {
    use rote::diffusion::mia::{DiffusionMiaConfig, diffusion_mia};
    use rote::diffusion::{Ddpm, diffusion_dir};
    use rote::job::{CancelToken, JobCtx, NullSink};
    use rote::measure::mia::Attack;
    use rote::ui::MembershipTab;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let ids = diffusion_study(&path, 2);
    let dev = rote::model::device("cpu").unwrap();
    let models: Vec<Ddpm> = ids
        .iter()
        .map(|id| Ddpm::load(&diffusion_dir(&path).join(id), &dev).unwrap())
        .collect();
    let ds = rote::data::load("digits8x8").unwrap();
    let cfg = DiffusionMiaConfig {
        timesteps: vec![10, 100, 500],
        draws: 1,
        seed: 0,
    };
    let cancel = CancelToken::new();
    let report = diffusion_mia(&models, &ds, &cfg, &JobCtx::new(&cancel, &NullSink)).unwrap();
    let results = path.join("results/diffusion");
    rote::study::write_json_atomic(&results.join(&ids[0]).join("mia-diffusion.json"), &report).unwrap();
    // A broken report is an error line; the good one still opens.
    std::fs::create_dir_all(results.join("broken")).unwrap();
    std::fs::write(results.join("broken/mia-diffusion.json"), b"{ not json").unwrap();

    let mut h = harness_plain(&path, View::Privacy);
    step_until(
        &mut h,
        "the diffusion MIA reports",
        Duration::from_secs(30),
        |app| app.privacy_view.diffusion.list.is_some(),
    );
    h.run_steps(3);
    let list = h.state().privacy_view.diffusion.list.clone().unwrap();
    assert_eq!(list.reports.len(), 1);
    assert_eq!(list.errors.len(), 1, "{:?}", list.errors);
    assert!(h.state().toasts.error_log.iter().any(|e| e.contains("broken")));
    // No zoo in this study: the diffusion section shows without asking.
    assert!(h.state().zoo.is_none());
    h.get_by_label_contains("LOSS attack at t = ");
    h.get_by_label("Classifier zoo").click();
    h.run_steps(3);
    h.get_by_label("No zoo results in this study");
    h.get_by_label("Diffusion models").click();
    h.run_steps(3);
    assert_eq!(h.state().privacy_view.tab, Some(MembershipTab::Diffusion));
    // The view lists the unreadable report (a toast says it too).
    assert!(h.get_all_by_label_contains("not a diffusion MIA report").count() >= 1);
    h.get_by_label_contains(&format!(
        "Models {}, {}: {} images",
        ids[0],
        ids[1],
        report.pool.len()
    ));
    h.get_by_label("TPR @ 1% FPR");
    h.check_accessibility();
    // Picking t = 100 redraws the ROC and the caption with that timestep's figures.
    h.get_by_label("t = 100").click();
    h.run_steps(3);
    assert_eq!(h.state().privacy_view.diffusion.t, Some(100));
    let loss = report.per_t[1]
        .attacks
        .iter()
        .find(|a| a.attack == Attack::Loss)
        .unwrap();
    h.get_by_label_contains(&format!(
        "LOSS attack at t = 100: AUC {:.3}, TPR @ 1% FPR {:.3}",
        loss.auc, loss.tpr_at_1pct_fpr
    ));
    h.get_by_label("ROC at t = 100, log-log (chance is the diagonal)");
    h.get_by_label_contains("Loss (AUC ");
    h.check_accessibility();
}

#[test]
fn inversion_view_shows_the_demo_grid_and_inverts_people_live() {
    use rote::invert::Method;

    let dir = tempfile::tempdir().unwrap();
    let study = dir.path().join("demo");
    let mut h = harness(&study, View::Inversion);
    step_until(&mut h, "the demo face model", Duration::from_secs(60), |app| {
        app.inversion_view.loaded.is_some()
    });
    h.run_steps(3);
    // The shipped TV grid: at least 80% of the 40 people identified (the bar).
    let tv = h
        .state()
        .inversion_view
        .loaded
        .as_ref()
        .unwrap()
        .report(Method::Tv)
        .unwrap()
        .clone();
    let hits = tv.classes.iter().filter(|c| c.eval_top1).count();
    assert_eq!(tv.classes.len(), 40);
    assert!(hits >= 32, "{hits} of 40 identified");
    h.get_by_label_contains(&format!("identifies {hits} of 40 inverted people"));
    h.get_by_label("Training faces (the classifier saw these)");
    h.check_accessibility();
    // MI-FACE as published is shipped too, and its summary replaces TV's when chosen.
    h.state_mut().inversion_view.method = Method::MiFace;
    h.run_steps(2);
    let mf = h
        .state()
        .inversion_view
        .loaded
        .as_ref()
        .unwrap()
        .report(Method::MiFace)
        .unwrap()
        .clone();
    let mf_hits = mf.classes.iter().filter(|c| c.eval_top1).count();
    h.get_by_label_contains(&format!("identifies {mf_hits} of 40 inverted people"));
    // Run two people with a few TV steps (a small evaluation classifier keeps the test quick):
    // each run streams frames and lands in one report with both people.
    let view = &mut h.state_mut().inversion_view;
    view.method = Method::Tv;
    view.configs.get_mut("tv").unwrap().alpha = 30;
    view.eval = rote::invert::EvalConfig {
        widths: vec![16],
        epochs: 2,
        copies: 1,
        ..rote::invert::EvalConfig::default()
    };
    for person in [4usize, 7] {
        h.state_mut().inversion_view.person = person;
        h.run_steps(2);
        h.get_by_label(&format!("Run on s{}", person + 1)).click();
        h.run_steps(1);
        step_until(&mut h, "the inversion", Duration::from_secs(180), |app| {
            app.is_idle()
                && app
                    .inversion_view
                    .loaded
                    .as_ref()
                    .and_then(|l| l.report(Method::Tv))
                    .is_some_and(|r| r.config.alpha == 30 && r.classes.iter().any(|c| c.class == person))
        });
        let live = h.state().inversion_view.live.lock();
        let curve = live.curves.get(&person).expect("frames of the running person");
        assert!(curve.len() >= 3, "frames every 10 steps: {curve:?}");
        assert!(
            curve.last().unwrap()[1] < curve[0][1],
            "the cost fell while it ran"
        );
    }
    let r = h
        .state()
        .inversion_view
        .loaded
        .as_ref()
        .unwrap()
        .report(Method::Tv)
        .unwrap()
        .clone();
    assert_eq!(r.classes.iter().map(|c| c.class).collect::<Vec<_>>(), vec![4, 7]);
    let saved = rote::invert::load_report(&study.join("results/inversion/softmax-orl-demo/tv.json")).unwrap();
    assert_eq!(saved.classes.len(), 2, "the merged report is on disk");
    // Export the grid: 2 cells of 112x92 plus frames.
    let png = dir.path().join("grid.png");
    h.state_mut()
        .push_command(Command::ExportInversionGrid(Method::Tv, png.clone()));
    h.run_steps(2);
    let img = image::open(&png).unwrap();
    assert_eq!((img.width(), img.height()), (2 * (92 + 4), 112 + 4));
}

#[test]
fn layers_view_shows_the_demo_heatmap_and_drills_into_a_candidate() {
    let dir = tempfile::tempdir().unwrap();
    let study = dir.path().join("demo");
    let mut h = harness(&study, View::Layers);
    step_until(
        &mut h,
        "the demo LayerMem report",
        Duration::from_secs(60),
        |app| app.layers_view.loaded.is_some(),
    );
    h.run_steps(3);
    let loaded = h.state().layers_view.loaded.clone().unwrap();
    let r = &loaded.report;
    assert!(!r.outliers.planted.is_empty(), "the demo plants outliers");
    h.get_by_label_contains("planted outliers; mean LayerMem first layer");
    h.get_by_label("UnitMem histogram of layer");
    h.check_accessibility();
    // SSL units memorize data points more than classes (Wang et al. 2024): in f's last layer mean
    // UnitMem is above mean ClassMem; the demo's supervised MLP report is there to compare.
    let last_l = r.layers.len() - 1;
    assert!(r.unitmem_mean_f[last_l].unwrap() > r.classmem_mean_f[last_l].unwrap());
    assert_eq!(loaded.supervised.len(), 1);
    assert_eq!(loaded.supervised[0].model, "mlp-mnist10k-demo");
    // The heatmap's columns run from the most memorized candidate (last layer) down.
    let last = r.layermem.last().unwrap();
    let col: Vec<f32> = loaded.order.iter().map(|&c| last[c]).collect();
    assert!(
        col.windows(2).all(|w| w[0] >= w[1]),
        "columns sorted by last-layer LayerMem"
    );
    // Click the heatmap's first column: the most memorized candidate opens with its views and
    // its neighbours in f and g.
    let top = loaded.order[0];
    let rect = h.state().layers_view.heatmap_rect.expect("the heatmap was drawn");
    let at = egui::pos2(
        rect.left() + 0.4 * rect.width() / loaded.order.len() as f32,
        rect.center().y,
    );
    h.event(egui::Event::PointerMoved(at));
    h.run_steps(1);
    for pressed in [true, false] {
        h.event(egui::Event::PointerButton {
            pos: at,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: egui::Modifiers::NONE,
        });
        h.run_steps(1);
    }
    assert_eq!(
        h.state().layers_view.selected,
        Some(top),
        "the click selected the first column"
    );
    step_until(&mut h, "the drill-down", Duration::from_secs(120), |app| {
        app.layers_view.drill.is_some()
    });
    h.run_steps(3);
    let d = h.state().layers_view.drill.as_ref().unwrap();
    assert_eq!(d.views.len(), r.config.augmentations.clamp(1, 8));
    let me = loaded.refs[top];
    for list in [&d.neighbours_f, &d.neighbours_g] {
        assert_eq!(list.len(), 8);
        assert!(
            list.iter().all(|(r, _)| *r != me),
            "the candidate is not its own neighbour"
        );
        assert!(list.windows(2).all(|w| w[0].1 <= w[1].1), "nearest first");
    }
    h.get_by_label("Nearest training images in f's representation");
    h.check_accessibility();
}

#[test]
fn exposure_view_shows_the_demo_canaries_and_extracts_the_most_inserted_live() {
    let dir = tempfile::tempdir().unwrap();
    let study = dir.path().join("demo");
    let mut h = harness(&study, View::Exposure);
    step_until(&mut h, "the demo LM", Duration::from_secs(60), |app| {
        app.exposure_view.loaded.is_some()
    });
    h.run_steps(3);
    let loaded = h.state().exposure_view.loaded.clone().unwrap();
    let rep = loaded
        .report
        .as_ref()
        .expect("the demo ships its exposure report");
    // The shipped report shows the planted ground truth: the x32 PIN at rank 1, the control near
    // the baseline, exposure rising from x1 to x32.
    let pin = |n: u32| {
        rep.canaries
            .iter()
            .find(|c| c.format == 0 && c.insertions == n)
            .unwrap()
    };
    assert_eq!(pin(32).exact_rank, Some(1));
    assert!(pin(0).exact.unwrap() < 4.0);
    assert!(pin(32).exact.unwrap() > pin(16).exact.unwrap());
    assert!(pin(16).exact.unwrap() > pin(8).exact.unwrap());
    assert!(pin(8).exact.unwrap() > pin(1).exact.unwrap());
    h.get_by_label("Exposure vs insertions");
    h.get_by_label(&pin(32).secret);
    h.check_accessibility();
    // Extract: the search types out the x32 PIN as its first candidate.
    h.get_by_label("Extract").click();
    h.run_steps(2);
    step_until(&mut h, "the search", Duration::from_secs(60), |app| {
        app.exposure_view.last_search.is_some()
    });
    h.run_steps(3);
    let s = h.state().exposure_view.last_search.clone().unwrap();
    assert_eq!(s.candidates[0].secret, pin(32).secret);
    assert!(!s.out_of_budget);
    assert_eq!(
        h.state().exposure_view.live.lock().candidates.len(),
        s.candidates.len()
    );
    h.get_by_label("canary, inserted x32");
}

/// The Exposure view on a transformer: the tiny GPT-2 fixture under `STUDY/lm/` with rote's card
/// (one 3-digit format, two canaries) is listed, opened, measured and searched.
#[test]
fn exposure_view_measures_and_searches_a_transformer() {
    let dir = tempfile::tempdir().unwrap();
    let study = dir.path().join("demo");
    rote::demo::write_demo(&study).unwrap();
    let gpt = study.join("lm").join("gpt-a-tiny");
    std::fs::create_dir_all(&gpt).unwrap();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lm/gpt2");
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(fixture.join(f), gpt.join(f)).unwrap();
    }
    let card = serde_json::json!({
        "kind": "gpt", "id": "gpt-a-tiny",
        "corpus": {"source": "austen", "hash": "h", "offset": 0, "chars": 1000, "val_chars": 100},
        "formats": [{"prefix": "my pin is ", "digits": 3, "insertions": [8, 0], "secrets": ["907", "123"]}],
        "canaries": [{"format": 0, "secret": "907", "insertions": 8}, {"format": 0, "secret": "123", "insertions": 0}],
        "passages": [],
        "recipe": {"n_layer": 2, "n_embd": 32, "n_head": 4, "n_ctx": 64, "vocab_size": 400,
                   "epochs": 1, "batch_size": 2, "lr": 1e-3, "seed": 0},
        "epochs": [{"epoch": 1, "train_loss": 5.0, "val_loss": 5.5}],
        "seconds": 1.0, "n_params": 1, "command": "rote train-lm --arch gpt", "rote_version": "test"
    });
    std::fs::write(gpt.join("card.json"), card.to_string()).unwrap();
    let mut h = harness_plain(&study, View::Exposure);
    step_until(&mut h, "the model list", Duration::from_secs(60), |app| {
        app.exposure_view.loaded.is_some()
    });
    let loaded = h.state().exposure_view.loaded.clone().unwrap();
    assert_eq!(
        loaded.dir, gpt,
        "the transformer sorts first (before the demo GPT and LSTM)"
    );
    assert!(loaded.card.kind.contains("gpt2"), "{}", loaded.card.kind);
    assert_eq!(loaded.card.canaries.len(), 2);
    h.run_steps(3);
    h.get_by_label("Measure exposure").click();
    h.run_steps(2);
    step_until(&mut h, "the measurement", Duration::from_secs(120), |app| {
        app.exposure_view
            .loaded
            .as_ref()
            .is_some_and(|l| l.report.is_some())
    });
    let rep = h
        .state()
        .exposure_view
        .loaded
        .clone()
        .unwrap()
        .report
        .clone()
        .unwrap();
    assert_eq!(rep.model, "gpt-a-tiny");
    assert!(
        rep.canaries
            .iter()
            .all(|c| c.exact_rank.is_some_and(|r| (1..=1000).contains(&r)))
    );
    assert!(study.join("results/exposure/gpt-a-tiny-both.json").is_file());
    h.run_steps(3);
    h.get_by_label("Extract").click();
    h.run_steps(2);
    step_until(&mut h, "the search", Duration::from_secs(60), |app| {
        app.exposure_view.last_search.is_some()
    });
    let s = h.state().exposure_view.last_search.clone().unwrap();
    assert_eq!(s.candidates.len(), 10);
    // Dijkstra's first candidate is the space's cheapest: no canary costs less.
    assert!(
        rep.canaries
            .iter()
            .all(|c| c.px_bits >= s.candidates[0].bits - 1e-4)
    );
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

#[test]
fn defences_view_shows_the_demo_variants_under_their_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(&dir.path().join("demo"), View::Defences);
    step_until(&mut h, "the defences comparison", Duration::from_secs(120), |a| {
        a.defences_view.report.is_some()
    });
    h.run_steps(3);
    let report = h.state().defences_view.report.clone().unwrap();
    let ids: Vec<&str> = report.rows.iter().map(|r| r.zoo.as_str()).collect();
    assert_eq!(
        ids,
        [
            "zoo-mnist-demo",
            "zoo-mnist-demo-demem-eps0p1",
            "zoo-mnist-demo-dp-eps8",
            "zoo-mnist-demo-pgdat-eps0p1"
        ]
    );
    for r in &report.rows[1..] {
        assert_eq!(r.variant_of.as_deref(), Some("zoo-mnist-demo"));
    }
    let dp = &report.rows[2];
    // Adversarial training: robust accuracy recorded, natural accuracy kept.
    for r in [&report.rows[1], &report.rows[3]] {
        assert!(r.robust_accuracy.unwrap() > 0.6 && r.test_accuracy > 0.9, "{r:?}");
    }
    // The finding: the variant no longer memorizes the planted mislabels, LiRA is near chance, and
    // the audited bound stays under the accountant's ε.
    assert!(report.rows[0].planted_recall.unwrap() > 0.5 && dp.planted_recall.unwrap() < 0.1);
    assert!(dp.lira_auc < 0.52 && report.rows[0].lira_auc > 0.58);
    assert!(dp.audited_epsilon.unwrap() <= dp.accountant_epsilon.unwrap());
    h.get_by_label_contains("planted-mislabel recall 0.85 to 0.00");
    h.get_by_label("DP ε");
    h.get_by_label("robust acc");
    h.get_by_label("Train defended variant");
    h.check_accessibility();
}
