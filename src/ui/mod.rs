//! The egui front end (feature `gui`). It only draws and sends commands: every long operation runs
//! as a job from [`crate::job`] on its own thread, and results come back as events drained in
//! `App::logic` within a time budget.

pub mod app;
mod command;
pub mod diffusion_jobs;
pub mod exposure_jobs;
pub mod frame_bench;
pub mod icl_jobs;
pub mod inpaint_jobs;
pub mod invert_jobs;
mod jobs;
pub mod layer_jobs;
pub mod present;
pub mod screenshot;
pub mod tabular_jobs;
#[cfg(test)]
mod test_support;
pub mod text_jobs;
mod textures;
mod theme;
mod toasts;
mod views;
mod widgets;

pub use app::{App, AppOptions, View};
pub use command::Command;
pub use views::{
    ExtractionTab, InpaintMode, InversionView, LayersView, MembershipTab, SortKey, SplitFilter, ZooForm,
};

use std::path::PathBuf;

/// Opens the main window on `study` (default: the demo study, written on first launch).
pub fn run_native(study: Option<PathBuf>, present: bool) -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("rote: what did the model memorize?")
            .with_inner_size([1280.0, 800.0])
            .with_min_inner_size([720.0, 480.0]),
        renderer: eframe::Renderer::Wgpu,
        ..Default::default()
    };
    eframe::run_native(
        "rote",
        options,
        Box::new(move |cc| {
            Ok(Box::new(App::new(
                cc,
                AppOptions {
                    study,
                    present,
                    ..AppOptions::default()
                },
            )))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}
