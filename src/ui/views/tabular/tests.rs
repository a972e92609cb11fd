//! The Tabular view driven headlessly on a study holding the demo's two tabular models (Adult,
//! 400 epochs, seed 0, without and with TabCutMix): the finding, the memorized rows beside their
//! twins, the switch to TabCutMix, fairness of an MLP trained from the view, and a broken card.

use std::path::{Path, PathBuf};
use std::time::Duration;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;

use super::side::finding;
use crate::tabular::augment::Augment;
use crate::ui::{App, View};

/// A study holding copies of the shipped demo tabular models.
fn study_with_demo_models(root: &Path) -> PathBuf {
    crate::study::Study::open_or_create(root).unwrap();
    let src = crate::demo::demo_assets_dir().join("tabular");
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        let dest = crate::tabular::train::tabular_dir(root).join(e.file_name());
        crate::study::copy_tree(&e.path(), &dest).unwrap();
    }
    root.to_path_buf()
}

fn harness(study: &Path) -> Harness<'static, App> {
    crate::ui::test_support::harness(study, View::Tabular, egui::vec2(1400.0, 860.0))
}

fn step_until(h: &mut Harness<'_, App>, what: &str, pred: impl Fn(&App) -> bool) {
    crate::ui::test_support::step_until(h, what, Duration::from_secs(180), pred);
}

fn twins_of(a: &App, augment: Augment) -> bool {
    let v = &a.tabular_view;
    v.chosen_model().is_some_and(|m| m.card.config.augment == augment)
        && v.twins
            .as_ref()
            .is_some_and(|(d, _, _)| Some(d) == v.chosen.as_ref())
}

#[test]
fn tabular_view_shows_memorized_rows_tabcutmix_and_fairness() {
    let dir = tempfile::tempdir().unwrap();
    let study = study_with_demo_models(&dir.path().join("s"));
    let mut h = harness(&study);
    // Opens on the unaugmented model and measures its rows.
    step_until(&mut h, "the unaugmented model's rows", |a| {
        twins_of(a, Augment::None)
    });
    let v = &h.state().tabular_view;
    assert_eq!(v.models.len(), 2);
    let none = v.chosen_model().unwrap().clone();
    let (_, _, twins) = v.twins.clone().unwrap();
    // The rows are the card's final ratio, and a real share of them.
    let last = none.card.by_epoch.last().unwrap().code.ratio;
    assert!(
        (twins.summary.ratio - last).abs() < 1e-9,
        "{} vs {last}",
        twins.summary.ratio
    );
    assert!(twins.rows.len() as f64 > 0.15 * twins.n_synthetic as f64);
    // Memorization grows with epochs, and the finding says so.
    let first = none.card.by_epoch.first().unwrap().code.ratio;
    assert!(last > first, "{first} -> {last}");
    let said = finding(v);
    assert!(said.contains("up from"), "{said}");
    h.get_by_label(&said);
    // The closest pair is on screen, its synthetic row above its training twin.
    let top = &twins.rows[0];
    h.get_by_label(&format!("synthetic #{}", top.synthetic_row));
    assert!(top.equal_cells() >= top.synthetic.len() - 2, "{top:?}");

    // TabCutMix: fewer memorized rows than without, at the same epochs.
    let tcm = v
        .models
        .iter()
        .find(|m| m.card.config.augment == Augment::TabCutMix)
        .unwrap()
        .dir
        .clone();
    h.state_mut().tabular_view.chosen = Some(tcm);
    step_until(&mut h, "TabCutMix's rows", |a| twins_of(a, Augment::TabCutMix));
    let said = finding(&h.state().tabular_view);
    assert!(said.contains("without augmentation at epoch 400"), "{said}");
    let (_, _, t2) = h.state().tabular_view.twins.clone().unwrap();
    assert!(
        t2.summary.ratio < twins.summary.ratio,
        "{} vs {}",
        t2.summary.ratio,
        twins.summary.ratio
    );
    h.get_by_label(&said);

    // The global distance: the rows are measured again.
    h.get_by_label("global min-max").click();
    step_until(&mut h, "the global rows", |a| {
        a.tabular_view
            .twins
            .as_ref()
            .is_some_and(|(_, r, _)| *r == crate::tabular::memorization::DistanceRule::Global)
    });

    // Fairness: train an MLP on Adult from the view, measure it: Adult's known gap.
    h.get_by_label("Train an MLP on Adult (5 epochs)").click();
    step_until(&mut h, "the MLP", |a| {
        a.models.iter().any(|m| m.id == "mlp-adult")
    });
    h.get_by_label("Measure").click();
    step_until(&mut h, "fairness", |a| a.tabular_view.fairness.is_some());
    let (_, f) = h.state().tabular_view.fairness.clone().unwrap();
    assert_eq!((f.first.as_str(), f.second.as_str()), ("Male", "Female"));
    assert!(f.report.statistical_parity_difference > 0.05, "{:?}", f.report);
    assert!(h.state().tabular_view.error.is_none());
}

#[test]
fn tabular_view_on_a_broken_card_says_which_file() {
    let dir = tempfile::tempdir().unwrap();
    let study = study_with_demo_models(&dir.path().join("s"));
    let bad = crate::tabular::train::tabular_dir(&study).join("broken");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("card.json"), "{ not json").unwrap();
    let mut h = harness(&study);
    step_until(&mut h, "the rows", |a| twins_of(a, Augment::None));
    // The two good models are listed; the broken one is reported by name.
    assert_eq!(h.state().tabular_view.models.len(), 2);
    let toasts = h.state().toasts.error_log.clone();
    assert!(
        toasts
            .iter()
            .any(|m| m.contains("broken") && m.contains("card.json")),
        "{toasts:?}"
    );
}
