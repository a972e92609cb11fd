//! Loss and accuracy curves (egui_plot).

use std::collections::BTreeMap;

use egui_plot::{Legend, Line, Plot, PlotPoints};

use crate::ui::theme;

/// Two plots side by side: training loss by step, and train/test accuracy by epoch.
pub fn curves_ui(ui: &mut egui::Ui, id: &str, series: &BTreeMap<String, Vec<[f64; 2]>>, height: f32) {
    let width = (ui.available_width() / 2.0 - 8.0).max(120.0);
    ui.horizontal(|ui| {
        ui.vertical(|ui| {
            ui.label("Training loss by step");
            Plot::new(format!("{id}-loss"))
                .height(height)
                .width(width)
                .legend(Legend::default())
                .allow_scroll(false)
                .x_axis_label("step")
                .show(ui, |plot| {
                    if let Some(pts) = series.get("train loss") {
                        plot.line(
                            Line::new("train loss", PlotPoints::from(pts.clone())).color(theme::SERIES[0]),
                        );
                    }
                });
        });
        ui.vertical(|ui| {
            ui.label("Accuracy by epoch");
            Plot::new(format!("{id}-acc"))
                .height(height)
                .width(width)
                .legend(Legend::default())
                .allow_scroll(false)
                .x_axis_label("epoch")
                .include_y(1.0)
                .show(ui, |plot| {
                    for (k, name) in ["train acc", "test acc"].iter().enumerate() {
                        if let Some(pts) = series.get(*name) {
                            plot.line(
                                Line::new(*name, PlotPoints::from(pts.clone())).color(theme::SERIES[k + 1]),
                            );
                        }
                    }
                });
        });
    });
}
