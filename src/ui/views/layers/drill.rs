//! The Layers view's drill-down: one candidate with its augmented views, its LayerMem row against
//! the candidates' mean, and its nearest neighbours in f's and g's representation.

use egui_plot::{Legend, Line, Plot, PlotPoints};

use super::LayersView;
use crate::ssl::split::SampleRef;
use crate::ui::app::AppCtx;
use crate::ui::layer_jobs::LoadedLayers;
use crate::ui::theme;
use crate::ui::views::diffusion_common::{bytes_ui, data_ui};

impl LayersView {
    pub(super) fn drill_ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>, loaded: &LoadedLayers) {
        let Some(c) = self.selected else { return };
        let r = &loaded.report;
        let Some(&sample) = loaded.refs.get(c) else { return };
        egui::ScrollArea::vertical().auto_shrink(false).show(ui, |ui| {
            let planted = loaded.planted.get(c) == Some(&true);
            ui.heading(format!(
                "Candidate #{}",
                r.candidates.get(c).copied().unwrap_or(0)
            ));
            if planted {
                ui.colored_label(theme::ERROR, "planted outlier");
            }
            if ui.button("Close").clicked() {
                self.selected = None;
            }
            ui.horizontal(|ui| {
                sample_ui(ui, ctx, loaded, sample, 96.0);
            });
            let rank = loaded.order.iter().position(|&x| x == c).map_or(0, |p| p + 1);
            ui.label(format!(
                "rank {rank} of {} by last-layer LayerMem",
                loaded.order.len()
            ));
            ui.label("Its LayerMem by layer (red) against the candidates' mean");
            let row: Vec<[f64; 2]> = r
                .layermem
                .iter()
                .enumerate()
                .map(|(l, v)| [l as f64, f64::from(v.get(c).copied().unwrap_or(f32::NAN))])
                .collect();
            let mean: Vec<[f64; 2]> = r
                .layermem_mean
                .iter()
                .enumerate()
                .map(|(l, &v)| [l as f64, v])
                .collect();
            Plot::new("layers_drill_row")
                .height(150.0)
                .legend(Legend::default())
                .allow_scroll(false)
                .x_axis_label("layer")
                .show(ui, |plot| {
                    plot.line(
                        Line::new("this candidate", PlotPoints::from(row))
                            .color(theme::ERROR)
                            .width(2.0),
                    );
                    plot.line(Line::new("mean", PlotPoints::from(mean)).color(theme::SERIES[0]));
                });
            let Some(d) = self.drill.as_ref().filter(|d| d.position == c) else {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Computing views and neighbours");
                });
                return;
            };
            ui.label("The measurement's augmented views (the same draws for f and g)");
            let ds = loaded.locate(sample).map(|(d, _)| d.clone());
            if let Some(ds) = ds {
                ui.horizontal_wrapped(|ui| {
                    for (j, v) in d.views.iter().enumerate() {
                        let max = f32::from(ds.max_value);
                        let bytes: Vec<u8> = v
                            .iter()
                            .map(|&p| (p.clamp(0.0, 1.0) * max).round() as u8)
                            .collect();
                        let key = format!("layers-view-{}-{c}", loaded.path.display());
                        bytes_ui(ui, ctx.textures, &key, j, &ds, &bytes, None, 56.0);
                    }
                });
            }
            for (title, list) in [
                ("Nearest training images in f's representation", &d.neighbours_f),
                (
                    "The same in g's representation (g never saw this candidate)",
                    &d.neighbours_g,
                ),
            ] {
                ui.label(title);
                ui.horizontal_wrapped(|ui| {
                    for &(n, dist) in list {
                        ui.vertical(|ui| {
                            sample_ui(ui, ctx, loaded, n, 48.0);
                            ui.label(egui::RichText::new(format!("{dist:.3}")).small());
                        });
                    }
                });
            }
        });
    }
}

/// Draws a candidate or training sample (main or outlier data set).
fn sample_ui(ui: &mut egui::Ui, ctx: &mut AppCtx<'_>, loaded: &LoadedLayers, s: SampleRef, width: f32) {
    if let Some((ds, i)) = loaded.locate(s) {
        let tip = match s {
            SampleRef::Main(_) => format!("{} #{i}", ds.name),
            SampleRef::Outlier(_) => format!("{} #{i} (planted outlier)", ds.name),
        };
        data_ui(ui, ctx.textures, ds, i, width).on_hover_text(tip);
    }
}
