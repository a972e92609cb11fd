//! The classifier-zoo views in the app: a zoo's memorization, influence and membership results
//! (pairs, ROC, audited ε), a zoo trained from the GUI plotting its convergence live, and the
//! Defences view comparing the demo's defended variants with their baseline.

use std::time::Duration;

use egui_kittest::kittest::Queryable as _;
use rote::ui::{View, ZooForm};

use super::{harness, harness_plain, step_until};

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
