//! Presentation mode on the projectors speakers meet: every slide of the demo story, at
//! 1024x768, 1280x720, 1280x800, 1920x1080 and 3840x2160, shows its text whole (nothing cut at
//! the window's edge or a panel's, nothing shortened with an ellipsis) and its heading large.
#![cfg(feature = "gui")]
#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use std::time::Duration;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use rote::story::STEPS;
use rote::ui::present::fit::{cut_images, cut_text};
use rote::ui::{App, AppOptions};

const SIZES: [[f32; 2]; 5] = [
    [1024.0, 768.0],
    [1280.0, 720.0],
    [1280.0, 800.0],
    [1920.0, 1080.0],
    [3840.0, 2160.0],
];

#[test]
fn every_slide_fits_every_projector() {
    let dir = tempfile::tempdir().unwrap();
    let study = dir.path().join("demo");
    rote::demo::write_demo(&study).unwrap();
    let mut failures = Vec::new();
    for size in SIZES {
        let options = AppOptions {
            study: Some(study.clone()),
            select: Some(0),
            ..AppOptions::default()
        };
        let mut h = Harness::builder()
            .with_size(egui::vec2(size[0], size[1]))
            .wgpu()
            .build_eframe(|cc| App::new(cc, options));
        rote::ui::screenshot::settle(&mut h, Duration::from_secs(60));
        let ctx = h.ctx.clone();
        h.state_mut().enter_presentation(&ctx, Some(0));
        for (k, step) in STEPS.iter().enumerate() {
            h.state_mut().present_step(k);
            rote::ui::screenshot::settle(&mut h, Duration::from_secs(120));
            // The finished slide: the animation's last frame with its verdict.
            {
                let p = &mut h.state_mut().presentation;
                p.frame = p.anim().map_or(0, |a| a.frames.len().saturating_sub(1));
                p.shown = None;
            }
            h.run_steps(3);
            let screen = h.ctx.content_rect();
            let native = screen.size() * h.ctx.zoom_factor();
            assert!(
                (native.x - size[0]).abs() < 2.0 && (native.y - size[1]).abs() < 2.0,
                "the slide fills the window: {native:?} at {size:?}"
            );
            let title = h.get_by_label_contains(step.title()).rect();
            assert!(
                title.height() >= 0.045 * screen.height() && screen.contains_rect(title),
                "{} at {size:?}: heading {title:?} on {screen:?}",
                step.slug()
            );
            let narrative = h.get_by_label_contains(step.narrative()).rect();
            assert!(
                screen.contains_rect(narrative),
                "{} at {size:?}: narrative {narrative:?}",
                step.slug()
            );
            for cut in cut_text(&h.output().shapes, screen) {
                failures.push(format!("{} at {}x{}: {cut}", step.slug(), size[0], size[1]));
            }
            for cut in cut_images(&h.output().shapes, screen) {
                failures.push(format!(
                    "{} at {}x{}: image {cut:?} cut sideways",
                    step.slug(),
                    size[0],
                    size[1]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "text not shown whole:\n{}",
        failures.join("\n")
    );
}
