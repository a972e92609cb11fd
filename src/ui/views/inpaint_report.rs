//! The inpainting attack's report: AUC and TPR at low FPR, the ROC on log-log axes, and every
//! attacked image with its IN and OUT completions.

use super::diffusion_common::{bytes_ui, data_ui};
use crate::ui::inpaint_jobs::LoadedInpaint;
use crate::ui::textures::TextureCache;

/// Floor of the report's log-log ROC points (`inpaint_attack` clamps at 1e-3).
const FLOOR: f64 = 1e-3;

/// Draws a loaded attack report.
pub fn report_ui(ui: &mut egui::Ui, textures: &mut TextureCache, r: &LoadedInpaint) {
    let rep = &r.report;
    let ds = &r.data;
    let file = r
        .source
        .file_name()
        .map_or(String::new(), |f| f.to_string_lossy().to_string());
    ui.label(format!(
        "{} images, {} half hidden, {} with {} steps, best of {} (seed {}), from {file}",
        rep.rows.len(),
        format!("{:?}", rep.mask).to_lowercase(),
        format!("{:?}", rep.config.method).to_lowercase(),
        rep.config.steps,
        rep.samples,
        rep.seed
    ));
    egui::Panel::left("inpaint_roc")
        .default_size(440.0)
        .show(ui, |ui| {
            egui::Grid::new("inpaint_metrics")
                .num_columns(2)
                .striped(true)
                .show(ui, |ui| {
                    let rows = [
                        ("AUC", format!("{:.4}", rep.auc)),
                        ("TPR @ 1% FPR", format!("{:.4}", rep.tpr_at_1pct_fpr)),
                        ("TPR @ 0.1% FPR", format!("{:.4}", rep.tpr_at_0_1pct_fpr)),
                        ("Mean hidden-region l2, IN", format!("{:.4}", rep.mean_err_in)),
                        ("Mean hidden-region l2, OUT", format!("{:.4}", rep.mean_err_out)),
                    ];
                    for (k, v) in rows {
                        ui.label(k);
                        ui.strong(v);
                        ui.end_row();
                    }
                });
            ui.label("ROC of -error, IN vs OUT, log-log (chance is the diagonal)");
            let name = format!("inpainting (AUC {:.3})", rep.auc);
            super::privacy::log_roc_plot_points(
                ui,
                "inpaint_roc_plot",
                320.0,
                FLOOR,
                &[(name, rep.roc_points.clone())],
            );
        });
    egui::CentralPanel::default().show(ui, |ui| {
        ui.label("Original · masked · IN completion · OUT completion, with the hidden-region l2 of each");
        // Four thumbnails per row; the row's text goes to the hover when the panel is too narrow.
        let gap = ui.spacing().item_spacing.x;
        let w = ((ui.available_width() - 4.0 * gap) / 4.0).clamp(24.0, 56.0);
        let text_room = ui.available_width() - 4.0 * (w + gap);
        let row_h = (w * ds.h as f32 / ds.w as f32).max(24.0);
        let keep = &rep.keep;
        egui::ScrollArea::vertical()
            .auto_shrink(false)
            .show_rows(ui, row_h, rep.rows.len(), |ui, range| {
                for k in range {
                    let row = &rep.rows[k];
                    ui.horizontal(|ui| {
                        ui.set_min_height(row_h);
                        let text = format!(
                            "#{}: {}\nIN {} l2 {:.4}\nOUT {} l2 {:.4}",
                            row.index,
                            if row.err_in < row.err_out {
                                "IN closer"
                            } else {
                                "OUT closer"
                            },
                            row.in_model,
                            row.err_in,
                            row.out_model,
                            row.err_out
                        );
                        data_ui(ui, textures, ds, row.index, w).on_hover_text(format!("original {text}"));
                        let masked = ds.image(row.index).unwrap_or(&[]);
                        let key = format!("inpaint-report-masked-{}", r.serial);
                        bytes_ui(ui, textures, &key, row.index, ds, masked, Some(keep), w)
                            .on_hover_text("masked");
                        let key = format!("inpaint-report-in-{}", r.serial);
                        bytes_ui(ui, textures, &key, k, ds, &row.completion_in, None, w)
                            .on_hover_text(format!("IN: {}", row.in_model));
                        let key = format!("inpaint-report-out-{}", r.serial);
                        bytes_ui(ui, textures, &key, k, ds, &row.completion_out, None, w)
                            .on_hover_text(format!("OUT: {}", row.out_model));
                        // Too narrow for the numbers: the original's hover has them.
                        if text_room >= 160.0 {
                            ui.add(egui::Label::new(text).wrap());
                        }
                    });
                }
            });
    });
}
