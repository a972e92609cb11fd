//! Layers view (Wang, Dziedzic, Backes, Boenisch, *Localizing Memorization in SSL Vision
//! Encoders*, NeurIPS 2024): where memorization lives inside an SSL encoder. A heatmap of
//! LayerMem (layers x candidates, most memorized first, planted outliers marked), per-layer curves
//! (mean, quartiles, delta LayerMem, planted vs rest), UnitMem histograms and a units x layers heatmap;
//! clicking a candidate opens it with its augmentations, its LayerMem row and its nearest
//! neighbours in f's and g's representation.

use std::path::PathBuf;
use std::sync::Arc;

use egui_plot::{Legend, Line, Plot, PlotPoints};

use crate::ui::app::AppCtx;
use crate::ui::command::Command;
use crate::ui::layer_jobs::{Drill, LoadedLayers};
use crate::ui::theme;
use crate::ui::widgets::{HeatmapData, colour_bar_ui, heatmap_ui};

mod drill;
mod units;

/// Layers view state.
#[derive(Default)]
pub struct LayersView {
    /// Report files of the study (None while listing).
    pub reports: Option<Vec<PathBuf>>,
    /// The chosen report.
    pub chosen: Option<PathBuf>,
    /// The opened report.
    pub loaded: Option<Arc<LoadedLayers>>,
    /// Selected candidate position.
    pub selected: Option<usize>,
    /// Its drill-down (None while computing).
    pub drill: Option<Drill>,
    /// Layer whose UnitMem histogram is shown.
    pub unit_layer: usize,
    /// Where the LayerMem heatmap was last drawn (for tests and screenshots that click it).
    pub heatmap_rect: Option<egui::Rect>,
}

/// The q-quantile of `v` (sorted copy, linear interpolation).
pub(crate) fn quantile(v: &[f32], q: f64) -> f64 {
    let mut s: Vec<f32> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f32::total_cmp);
    let x = q.clamp(0.0, 1.0) * (s.len() - 1) as f64;
    let (i, f) = (x.floor() as usize, x - x.floor());
    let hi = s[(i + 1).min(s.len() - 1)];
    f64::from(s[i]) * (1.0 - f) + f64::from(hi) * f
}

impl LayersView {
    /// Draws the view.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>) {
        let Some(reports) = self.reports.clone() else {
            ui.spinner();
            return;
        };
        if reports.is_empty() {
            ui.heading("No LayerMem results in this study");
            ui.label("Train an SSL encoder pair with planted outliers and measure it:");
            let study = ctx
                .study
                .map_or("STUDY".to_string(), |s| s.root.display().to_string());
            ui.code(format!(
                "rote ssl-pair --data mnist10k --plant-outliers 10 --out {study}\nrote layermem --f {study}/ssl/<f> --g {study}/ssl/<g>"
            ));
            return;
        }
        ui.horizontal(|ui| {
            let l = ui.label("Encoder pair");
            let name = |p: &PathBuf| {
                p.file_stem()
                    .map(|s| s.to_string_lossy().to_string())
                    .unwrap_or_default()
            };
            let before = self.chosen.clone();
            egui::ComboBox::from_id_salt("layers_report")
                .selected_text(self.chosen.as_ref().map(name).unwrap_or_default())
                .width(280.0)
                .show_ui(ui, |ui| {
                    for p in &reports {
                        ui.selectable_value(&mut self.chosen, Some(p.clone()), name(p));
                    }
                })
                .response
                .labelled_by(l.id);
            if self.chosen != before
                && let Some(p) = self.chosen.clone()
            {
                self.loaded = None;
                self.selected = None;
                self.drill = None;
                ctx.commands.push(Command::OpenLayers(p));
            }
        });
        let Some(loaded) = self.loaded.clone() else {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Opening the report");
            });
            return;
        };
        summary_ui(ui, &loaded);
        if self.selected.is_some() {
            egui::Panel::right("layers_drill")
                .default_size(360.0)
                .show(ui, |ui| self.drill_ui(ui, ctx, &loaded));
        }
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical().auto_shrink(false).show(ui, |ui| {
                self.heatmap_section(ui, ctx, &loaded);
                ui.separator();
                curves_ui(ui, &loaded);
                ui.separator();
                self.units_ui(ui, &loaded);
            });
        });
    }

    fn heatmap_section(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>, loaded: &LoadedLayers) {
        let r = &loaded.report;
        ui.label(format!(
            "LayerMem per candidate: rows are layers (input side on top), columns the {} candidates, most \
             memorized (last layer) first; red ticks mark planted outliers. Click a cell.",
            loaded.order.len()
        ));
        let values: Vec<Vec<Option<f32>>> = r
            .layermem
            .iter()
            .map(|row| loaded.order.iter().map(|&c| row.get(c).copied()).collect())
            .collect();
        let all: Vec<f32> = r
            .layermem
            .iter()
            .flatten()
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        let (min, max) = (quantile(&all, 0.01) as f32, quantile(&all, 0.99) as f32);
        let key = format!("layermem-{}", loaded.path.display());
        let width = (ui.available_width() - 150.0).max(200.0);
        let height = (r.layers.len() as f32 * 22.0).max(60.0);
        let hit = ui
            .horizontal(|ui| {
                ui.vertical(|ui| {
                    ui.spacing_mut().item_spacing.y = 0.0;
                    for name in &r.layers {
                        let (rect, _) = ui.allocate_exact_size(
                            egui::vec2(140.0, height / r.layers.len().max(1) as f32),
                            egui::Sense::hover(),
                        );
                        ui.painter().text(
                            rect.right_center(),
                            egui::Align2::RIGHT_CENTER,
                            name,
                            egui::FontId::proportional(12.0),
                            ui.visuals().text_color(),
                        );
                    }
                });
                ui.spacing_mut().item_spacing.y = 0.0;
                ui.vertical(|ui| {
                    let hit = heatmap_ui(
                        ui,
                        &HeatmapData {
                            values: &values,
                            min,
                            max,
                            key: &key,
                        },
                        egui::vec2(width, height),
                    );
                    let (strip, _) = ui.allocate_exact_size(egui::vec2(width, 8.0), egui::Sense::hover());
                    let n = loaded.order.len().max(1) as f32;
                    for (col, &c) in loaded.order.iter().enumerate() {
                        if loaded.planted.get(c) == Some(&true) {
                            let x = strip.left() + (col as f32 + 0.5) / n * strip.width();
                            ui.painter().line_segment(
                                [egui::pos2(x, strip.top()), egui::pos2(x, strip.bottom())],
                                egui::Stroke::new(2.0, theme::ERROR),
                            );
                        }
                        if Some(c) == self.selected {
                            let x = strip.left() + (col as f32 + 0.5) / n * strip.width();
                            ui.painter()
                                .circle_filled(egui::pos2(x, strip.center().y), 3.5, theme::SELECTED);
                        }
                    }
                    hit
                })
                .inner
            })
            .inner;
        self.heatmap_rect = hit.rect;
        colour_bar_ui(ui, min, max, 240.0, "LayerMem (1st to 99th percentile)");
        let describe = |(row, col): (usize, usize)| -> String {
            let c = loaded.order.get(col).copied().unwrap_or(0);
            let v = r
                .layermem
                .get(row)
                .and_then(|l| l.get(c))
                .copied()
                .unwrap_or(f32::NAN);
            format!(
                "{}, candidate #{} (rank {} of {}){}: LayerMem {v:.4}",
                r.layers.get(row).cloned().unwrap_or_default(),
                r.candidates.get(c).copied().unwrap_or(0),
                col + 1,
                loaded.order.len(),
                if loaded.planted.get(c) == Some(&true) {
                    ", planted outlier"
                } else {
                    ""
                }
            )
        };
        match hit.hovered {
            Some(cell) => ui.label(describe(cell)),
            None => ui.label("Hover a cell for its value."),
        };
        if let Some((_, col)) = hit.clicked
            && let Some(&c) = loaded.order.get(col)
        {
            self.select(ctx, loaded, c);
        }
    }

    /// Selects candidate position `c` and starts its drill-down.
    pub fn select(&mut self, ctx: &mut AppCtx<'_>, loaded: &LoadedLayers, c: usize) {
        self.selected = Some(c);
        self.drill = None;
        let Some(study) = ctx.study else { return };
        ctx.commands.push(Command::DrillLayers(Box::new(
            crate::ui::layer_jobs::DrillRequest {
                study: study.root.clone(),
                f_card: loaded.f_card.clone(),
                g: loaded.report.g.clone(),
                position: c,
                seed: loaded.report.config.seed,
                views: loaded.report.config.augmentations.clamp(1, 8),
                k: 8,
                main: loaded.main.clone(),
                outliers: loaded.outliers.clone(),
                device: ctx.settings.device.clone(),
            },
        )));
    }
}

fn summary_ui(ui: &mut egui::Ui, loaded: &LoadedLayers) {
    let r = &loaded.report;
    let first = r.layermem_mean.first().copied().unwrap_or(f64::NAN);
    let last = r.layermem_mean.last().copied().unwrap_or(f64::NAN);
    let ratio = r.outliers.ratio.map_or("n/a".to_string(), |v| format!("{v:.2}"));
    ui.label(format!(
        "f = {} (trained on the candidates), g = {} (never saw them); {} candidates, {} planted outliers; \
         mean LayerMem first layer {first:.4}, last layer {last:.4}; planted / rest (last layer) {ratio}; \
         {}, {} draws",
        r.f,
        r.g,
        r.candidates.len(),
        r.outliers.planted.len(),
        match r.config.norm {
            crate::ssl::stats::Norm::Range => "divided by each layer's range (reference code)",
            crate::ssl::stats::Norm::Minmax => "min-max normalised per layer",
            crate::ssl::stats::Norm::None => "raw differences of alignment losses",
        },
        r.config.augmentations
    ));
}

fn curves_ui(ui: &mut egui::Ui, loaded: &LoadedLayers) {
    let r = &loaded.report;
    let xs = |v: &[f64]| -> PlotPoints<'static> {
        PlotPoints::from(
            v.iter()
                .enumerate()
                .map(|(i, &y)| [i as f64, y])
                .collect::<Vec<_>>(),
        )
    };
    let quant = |q: f64| -> Vec<f64> { r.layermem.iter().map(|row| quantile(row, q)).collect() };
    let names = r.layers.clone();
    ui.label("Per layer (x: layer index, hover for names): mean LayerMem with quartiles, delta LayerMem, planted vs rest");
    Plot::new("layers_curves")
        .height(220.0)
        .legend(Legend::default())
        .allow_scroll(false)
        .x_axis_formatter(move |m, _| names.get(m.value.round() as usize).cloned().unwrap_or_default())
        .show(ui, |plot| {
            plot.line(
                Line::new("mean LayerMem", xs(&r.layermem_mean))
                    .color(theme::SERIES[0])
                    .width(2.0),
            );
            plot.line(Line::new("25th percentile", xs(&quant(0.25))).color(theme::SERIES[1]));
            plot.line(Line::new("75th percentile", xs(&quant(0.75))).color(theme::SERIES[1]));
            plot.line(Line::new("delta LayerMem", xs(&r.delta_layermem_mean)).color(theme::SERIES[2]));
            if !r.layermem_mean_planted.is_empty() {
                plot.line(Line::new("planted outliers", xs(&r.layermem_mean_planted)).color(theme::ERROR));
                plot.line(Line::new("other candidates", xs(&r.layermem_mean_rest)).color(theme::SERIES[3]));
            }
        });
}
