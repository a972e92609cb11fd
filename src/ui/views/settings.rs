//! Settings view: compute device for models, GPU adapter for our kernels, paths.

use crate::ui::app::AppCtx;

/// Settings view (stateless; the settings live in the app).
pub struct SettingsView;

impl SettingsView {
    /// Draws the view.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>) {
        ui.heading("Settings");
        egui::Grid::new("settings")
            .num_columns(2)
            .spacing([16.0, 10.0])
            .show(ui, |ui| {
                ui.label("Model device (candle)");
                ui.horizontal(|ui| {
                    ui.radio_value(&mut ctx.settings.device, "cpu".to_string(), "CPU");
                    let cuda = crate::model::cuda_built();
                    ui.add_enabled_ui(cuda, |ui| {
                        ui.radio_value(&mut ctx.settings.device, "cuda".to_string(), "CUDA");
                    })
                    .response
                    .on_disabled_hover_text("This build has no CUDA support (rebuild with --features cuda)");
                });
                ui.end_row();
                ui.label("GPU adapter (wgpu kernels)");
                match ctx.gpu {
                    Some(Ok(info)) => {
                        ui.label(format!("{} · {} · {}", info.name, info.backend, info.device_type))
                    }
                    Some(Err(why)) => ui.label(format!("none: {why} (CPU twins are used)")),
                    None => ui.label("probing…"),
                };
                ui.end_row();
                ui.label("Neighbour search");
                ui.checkbox(
                    &mut ctx.settings.use_gpu_kernels,
                    "use the GPU kernel when an adapter exists",
                );
                ui.end_row();
                ui.label("Study folder");
                ui.label(ctx.study.map_or("none".into(), |s| s.root.display().to_string()));
                ui.end_row();
                ui.label("Assets");
                ui.label(crate::paths::assets_dir().display().to_string());
                ui.end_row();
                ui.label("Version");
                ui.label(format!("rote {}", crate::VERSION));
                ui.end_row();
            });
    }
}
