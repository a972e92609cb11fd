//! The Layers view's UnitMem section: a histogram of UnitMem over the units of one layer (f, and g
//! as the never-saw-them baseline) and a units x layers heatmap of f's UnitMem.

use egui_plot::{Bar, BarChart, Legend, Line, Plot, PlotPoints, Points};

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
        self.class_vs_unit_ui(ui, loaded);
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

impl LayersView {
    /// ClassMem against UnitMem per unit (Wang et al. 2024, Fig. 7): SSL units above the diagonal
    /// memorize data points, supervised units towards the class side.
    fn class_vs_unit_ui(&mut self, ui: &mut egui::Ui, loaded: &LoadedLayers) {
        let r = &loaded.report;
        let l = self.unit_layer;
        let ssl: Vec<[f64; 2]> = match (r.unitmem_f.get(l), r.classmem_f.get(l)) {
            (Some(u), Some(c)) => u
                .unitmem
                .iter()
                .zip(c)
                .filter_map(|(u, c)| Some([f64::from((*c)?), f64::from((*u)?)]))
                .collect(),
            _ => Vec::new(),
        };
        if ssl.is_empty() && loaded.supervised.is_empty() {
            return;
        }
        let mean = |v: Option<f64>| v.map_or("n/a".into(), |m| format!("{m:.3}"));
        let mut text = format!(
            "UnitMem against ClassMem per unit, {}: f mean UnitMem {} vs ClassMem {}",
            r.unitmem_f.get(l).map_or("", |u| u.layer.as_str()),
            mean(r.unitmem_mean_f.get(l).copied().flatten()),
            mean(r.classmem_mean_f.get(l).copied().flatten())
        );
        for s in &loaded.supervised {
            for u in &s.units {
                text.push_str(&format!(
                    "; supervised {} {}: {} vs {}",
                    s.model,
                    u.layer,
                    mean(u.unitmem_mean),
                    mean(u.classmem_mean)
                ));
            }
        }
        ui.label(text);
        Plot::new("layers_class_vs_unit")
            .height(220.0)
            .data_aspect(1.0)
            .legend(Legend::default())
            .allow_scroll(false)
            .x_axis_label("ClassMem")
            .y_axis_label("UnitMem")
            .include_x(0.0)
            .include_x(1.0)
            .include_y(0.0)
            .include_y(1.0)
            .show(ui, |plot| {
                plot.line(
                    Line::new("y = x", PlotPoints::from(vec![[0.0, 0.0], [1.0, 1.0]]))
                        .color(egui::Color32::GRAY),
                );
                plot.points(
                    Points::new("SSL f (this layer)", ssl)
                        .radius(2.5)
                        .color(theme::SERIES[0]),
                );
                let mut k = 0;
                for s in &loaded.supervised {
                    for u in &s.units {
                        k += 1;
                        let pts: Vec<[f64; 2]> = u
                            .unitmem
                            .iter()
                            .zip(&u.classmem)
                            .filter_map(|(a, c)| Some([f64::from((*c)?), f64::from((*a)?)]))
                            .collect();
                        let colour = theme::SERIES[k % theme::SERIES.len()];
                        plot.points(
                            Points::new(format!("supervised {} {}", s.model, u.layer), pts)
                                .radius(1.5)
                                .color(colour),
                        );
                    }
                }
            });
    }
}
