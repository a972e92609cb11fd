//! What the views' headless GUI tests share: the app on a study at a view, and stepping frames
//! until a condition holds.

use std::path::Path;
use std::time::{Duration, Instant};

use egui_kittest::Harness;

use super::{App, AppOptions, View};

/// The app on `study`, opened at `view`, in a window of `size`.
pub fn harness(study: &Path, view: View, size: egui::Vec2) -> Harness<'static, App> {
    let options = AppOptions {
        study: Some(study.to_path_buf()),
        view,
        ..AppOptions::default()
    };
    Harness::builder()
        .with_size(size)
        .wgpu()
        .build_eframe(|cc| App::new(cc, options))
}

/// Steps frames until `pred` holds (panics after `limit`), then three more.
pub fn step_until(h: &mut Harness<'_, App>, what: &str, limit: Duration, pred: impl Fn(&App) -> bool) {
    let t0 = Instant::now();
    while !pred(h.state()) {
        assert!(t0.elapsed() < limit, "timed out waiting for: {what}");
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    h.run_steps(3);
}
