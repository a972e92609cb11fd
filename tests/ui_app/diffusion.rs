//! The diffusion views in the app, on a study of tiny DDPMs: the Extraction view's counts and
//! threshold, the Inpainting view's live completion and attack (and its entry from the Data view),
//! and the Membership view's diffusion MIA against the timestep t.

use std::time::Duration;

use egui_kittest::kittest::Queryable as _;
use rote::ui::View;

use super::{harness_plain, step_until};

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
