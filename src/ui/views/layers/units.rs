//! The Layers view's UnitMem section: a histogram of UnitMem over the units of one layer (f, and g
//! as the never-saw-them baseline) and a units x layers heatmap of f's UnitMem.

use egui_plot::{Bar, BarChart, Legend, Plot};

use super::LayersView;
use crate::ssl::report::LayerUnits;
use crate::ui::layer_jobs::LoadedLayers;
use crate::ui::theme;
use crate::ui::widgets::{HeatmapData, colour_bar_ui, heatmap_ui};

/// Histogram bins over [0, 1].
const BINS: usize = 20;

fn histogram(units: &LayerUnits) -> Vec<f64> {
    let mut h = vec![0.0; BINS];
    for v in units.unitmem.iter().flatten() {
        let b = ((v.clamp(0.0, 1.0) * BINS as f32) as usize).min(BINS - 1);
        h[b] += 1.0;
    }
    h
}

impl LayersView {
    pub(super) fn units_ui(&mut self, ui: &mut egui::Ui, loaded: &LoadedLayers) {
        let r = &loaded.report;
        if r.unitmem_f.is_empty() {
            ui.label("This report has no UnitMem.");
            return;
        }
        self.unit_layer = self.unit_layer.min(r.unitmem_f.len() - 1);
        ui.horizontal(|ui| {
            let l = ui.label("UnitMem histogram of layer");
            egui::ComboBox::from_id_salt("layers_unit_layer")
                .selected_text(r.unitmem_f[self.unit_layer].layer.clone())
                .show_ui(ui, |ui| {
                    for (i, u) in r.unitmem_f.iter().enumerate() {
                        ui.selectable_value(&mut self.unit_layer, i, &u.layer);
                    }
                })
                .response
                .labelled_by(l.id);
        });
        let f = &r.unitmem_f[self.unit_layer];
        let g = r.unitmem_g.get(self.unit_layer);
        ui.label(format!(
            "{}: {} units ({} dead), mean UnitMem f {} vs g {}; {} units fire most for a planted outlier",
            f.layer,
            f.unitmem.len(),
            f.dead,
            f.mean.map_or("n/a".into(), |m| format!("{m:.3}")),
            g.and_then(|g| g.mean).map_or("n/a".into(), |m| format!("{m:.3}")),
            f.units_on_planted
        ));
        let width = 1.0 / BINS as f64;
        let bars = |h: Vec<f64>, shift: f64| -> Vec<Bar> {
            h.into_iter()
                .enumerate()
                .map(|(i, c)| Bar::new((i as f64 + 0.5) * width + shift, c).width(width * 0.45))
                .collect()
        };
        Plot::new("layers_unit_hist")
            .height(180.0)
            .legend(Legend::default())
            .allow_scroll(false)
            .x_axis_label("UnitMem")
            .y_axis_label("units")
            .show(ui, |plot| {
                plot.bar_chart(
                    BarChart::new("f (saw the candidates)", bars(histogram(f), -width * 0.22))
                        .color(theme::SERIES[0]),
                );
                if let Some(g) = g {
                    plot.bar_chart(
                        BarChart::new("g (never saw them)", bars(histogram(g), width * 0.22))
                            .color(theme::SERIES[1]),
                    );
                }
            });
        ui.label("UnitMem of f: rows are layers, columns units (grey: no such unit or a dead one)");
        let values: Vec<Vec<Option<f32>>> = r.unitmem_f.iter().map(|u| u.unitmem.clone()).collect();
        let key = format!("unitmem-{}", loaded.path.display());
        let width = (ui.available_width() - 10.0).max(200.0);
        let hit = heatmap_ui(
            ui,
            &HeatmapData {
                values: &values,
                min: 0.0,
                max: 1.0,
                key: &key,
            },
            egui::vec2(width, (values.len() as f32 * 16.0).max(48.0)),
        );
        colour_bar_ui(ui, 0.0, 1.0, 240.0, "UnitMem");
        if let Some((row, col)) = hit.hovered
            && let Some(u) = r.unitmem_f.get(row)
        {
            let v = u.unitmem.get(col).copied().flatten();
            let who = u.argmax.get(col).map(|&c| c as usize);
            ui.label(match (v, who) {
                (Some(v), Some(c)) => format!(
                    "{} unit {col}: UnitMem {v:.3}, fires most for candidate #{}{}",
                    u.layer,
                    r.candidates.get(c).copied().unwrap_or(0),
                    if loaded.planted.get(c) == Some(&true) {
                        " (planted outlier)"
                    } else {
                        ""
                    }
                ),
                _ => format!("{} unit {col}: no value", u.layer),
            });
        }
    }
}
