//! Membership-inference view: ROC on log-log axes for each attack run on the zoo (LOSS, LiRA online
//! and offline, RMIA), with AUC and TPR at low FPR, and the samples most exposed to LiRA.

use egui_plot::{Legend, Line, Plot, PlotPoints};

use super::memorization::no_zoo_ui;
use super::zoo_results::thumb;
use crate::measure::roc::log_roc_points;
use crate::ui::app::AppCtx;
use crate::ui::theme;

/// MIA view (stateless).
#[derive(Default)]
pub struct PrivacyView;

impl PrivacyView {
    /// Draws the view.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>) {
        let Some(z) = ctx.zoo else {
            no_zoo_ui(ui, ctx);
            return;
        };
        if z.mia.is_empty() {
            ui.label(
                "No attack results yet: run `rote mia STUDY --attack lira` (or loss, lira-offline, rmia).",
            );
            return;
        }
        egui::Panel::left("roc").default_size(520.0).show(ui, |ui| {
            egui::Grid::new("mia_table")
                .num_columns(4)
                .striped(true)
                .show(ui, |ui| {
                    for h in ["Attack", "AUC", "TPR @ 0.1% FPR", "TPR @ 1% FPR"] {
                        ui.strong(h);
                    }
                    ui.end_row();
                    for r in &z.mia {
                        ui.label(format!("{:?}", r.attack));
                        ui.label(format!("{:.4}", r.auc));
                        ui.label(format!("{:.4}", r.tpr_at_0_1pct_fpr));
                        ui.label(format!("{:.4}", r.tpr_at_1pct_fpr));
                        ui.end_row();
                    }
                });
            ui.label("ROC, log-log (chance is the diagonal)");
            Plot::new("mia_roc")
                .height(380.0)
                .legend(Legend::default())
                .x_axis_label("log10 FPR")
                .y_axis_label("log10 TPR")
                .allow_scroll(false)
                .show(ui, |p| {
                    p.line(
                        Line::new("chance", PlotPoints::from(vec![[-5.0, -5.0], [0.0, 0.0]]))
                            .color(egui::Color32::GRAY),
                    );
                    for (k, r) in z.mia.iter().enumerate() {
                        // Points at the clamp floor are not measurements: drop them.
                        let pts: Vec<[f64; 2]> = log_roc_points(&r.roc, 1e-5, 400)
                            .into_iter()
                            .filter(|[x, y]| *x > 1.5e-5 && *y > 1.5e-5)
                            .map(|[x, y]| [x.log10(), y.log10()])
                            .collect();
                        let colour = theme::SERIES[k % theme::SERIES.len()];
                        p.line(
                            Line::new(
                                format!("{:?} (AUC {:.3})", r.attack, r.auc),
                                PlotPoints::from(pts),
                            )
                            .color(colour),
                        );
                    }
                });
        });
        egui::CentralPanel::default().show(ui, |ui| {
            let r = z
                .mia
                .iter()
                .find(|r| format!("{:?}", r.attack).starts_with("Lira"))
                .unwrap_or(&z.mia[0]);
            ui.label(format!(
                "Most exposed samples under {:?} (per-sample AUC across target models)",
                r.attack
            ));
            let mut order: Vec<usize> = (0..r.vulnerability.len())
                .filter(|&i| r.vulnerability[i].is_finite())
                .collect();
            order.sort_by(|&a, &b| r.vulnerability[b].total_cmp(&r.vulnerability[a]).then(a.cmp(&b)));
            let mem = &z.memorization.mem.mem;
            egui::ScrollArea::vertical().show(ui, |ui| {
                ui.horizontal_wrapped(|ui| {
                    for &i in order.iter().take(60) {
                        thumb(ui, ctx.textures, &z.data, i, 56.0, z.is_planted(i)).on_hover_text(format!(
                            "#{i} · {} · vulnerability {:.2} · mem {:.2}",
                            z.data.class_names[z.data.labels[i] as usize],
                            r.vulnerability[i],
                            mem.get(i).copied().unwrap_or(f32::NAN)
                        ));
                    }
                });
            });
        });
    }
}
