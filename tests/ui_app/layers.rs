//! The Layers view in the app: the demo SSL encoder pair's LayerMem heatmap (sorted columns, the
//! supervised MLP beside it) and a click on its first column drilling into the most memorized
//! candidate with its augmented views and its neighbours in f and g.

use std::time::Duration;

use egui_kittest::kittest::Queryable as _;
use rote::ui::View;

use super::{harness, step_until};

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
