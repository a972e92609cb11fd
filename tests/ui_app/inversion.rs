//! The Inversion view in the app: the demo face model's shipped grid (>= 80% of people
//! identified, TV and MI-FACE), two live runs streaming frames and merging into one report, and
//! the grid exported as a PNG.

use std::time::Duration;

use egui_kittest::kittest::Queryable as _;
use rote::ui::{Command, View};

use super::{harness, step_until};

/// The TV report the Inversion view has loaded.
fn tv_report(h: &egui_kittest::Harness<'static, rote::ui::App>) -> rote::invert::InversionReport {
    h.state()
        .inversion_view
        .loaded
        .as_ref()
        .unwrap()
        .report(rote::invert::Method::Tv)
        .unwrap()
        .clone()
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
    let tv = tv_report(&h);
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
    let r = tv_report(&h);
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
