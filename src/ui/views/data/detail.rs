//! The Data view's detail panel: the selected image large, its label, split and every score
//! column, which models trained on it, the inpainting pair that can test it, and its nearest
//! neighbours.

use std::sync::Arc;

use super::{DataView, split_name};
use crate::data::Dataset;
use crate::ui::app::AppCtx;
use crate::ui::command::Command;
use crate::ui::theme;

impl DataView {
    pub(super) fn detail_ui(
        &mut self,
        ui: &mut egui::Ui,
        ctx: &mut AppCtx<'_>,
        key: &str,
        ds: &Dataset,
        columns: &[(String, Arc<Vec<f32>>)],
    ) {
        let Some(i) = self.selected.filter(|&i| i < ds.n) else {
            ui.label("Click an image to see its details");
            return;
        };
        ui.heading(format!("Image #{i}"));
        let big = 180.0 / ds.w.max(ds.h) as f32;
        if let Some(tex) = ctx.textures.get(ui.ctx(), ds, i) {
            ui.add(egui::Image::new((
                tex,
                egui::vec2(ds.w as f32 * big, ds.h as f32 * big),
            )));
        }
        // Long model names wrap inside their column rather than push the values off the panel.
        egui::Grid::new("detail_grid")
            .num_columns(2)
            .max_col_width((ui.available_width() * 0.55).max(80.0))
            .striped(true)
            .show(ui, |ui| {
                ui.label("Label");
                let name = &ds.class_names[ds.labels[i] as usize];
                if *name == ds.labels[i].to_string() {
                    ui.label(name.as_str());
                } else {
                    ui.label(format!("{name} ({})", ds.labels[i]));
                }
                ui.end_row();
                if let Some(z) = ctx.zoo.filter(|z| z.source_hash == ds.hash && z.is_planted(i)) {
                    ui.label("Planted");
                    let new = &z.data.class_names[z.data.labels[i] as usize];
                    ui.colored_label(theme::ERROR, format!("label flipped to {new} in {}", z.zoo));
                    ui.end_row();
                }
                ui.label("Split");
                ui.label(split_name(ds.split[i]));
                ui.end_row();
                ui.label("Mean intensity");
                ui.label(format!(
                    "{:.3}",
                    self.intensity(ds).get(i).copied().unwrap_or(0.0)
                ));
                ui.end_row();
                for (name, v) in columns {
                    ui.label(name.as_str());
                    ui.label(
                        v.get(i)
                            .filter(|x| x.is_finite())
                            .map_or("–".into(), |x| format!("{x:.4}")),
                    );
                    ui.end_row();
                }
                if let Some(d) = ctx.diffusion {
                    for c in d.cards.iter().filter(|c| c.dataset.hash == ds.hash) {
                        ui.label(format!("in {}", c.id));
                        ui.label(if c.train_indices.binary_search(&(i as u32)).is_ok() {
                            "trained on it"
                        } else {
                            "not trained on it"
                        });
                        ui.end_row();
                    }
                }
                for m in ctx.models.iter().filter(|m| m.card.dataset.hash == ds.hash) {
                    ui.label(format!("in {}", m.id));
                    ui.label(if m.card.train_indices.binary_search(&(i as u32)).is_ok() {
                        "trained on it"
                    } else {
                        "not trained on it"
                    });
                    ui.end_row();
                }
            });
        if let Some(pair) = ctx.diffusion.and_then(|d| inpaint_pair(&d.cards, &ds.hash, i))
            && ui
                .button("Inpaint this image")
                .on_hover_text(format!("{} trained on it, {} did not", pair.0, pair.1))
                .clicked()
        {
            ctx.commands.push(Command::InpaintImage {
                image: i,
                in_model: pair.0,
                out_model: pair.1,
            });
        }
        ui.separator();
        ui.strong("Nearest neighbours by pixel distance");
        match &self.neighbours {
            Some(nb) if nb.dataset == key && nb.index == i => {
                ui.label(format!("computed on {}", nb.backend));
                let thumb = 64.0;
                let size = egui::vec2(thumb, thumb * ds.h as f32 / ds.w as f32);
                let mut pick = None;
                egui::Grid::new("nn_grid")
                    .num_columns(3)
                    .spacing([8.0, 6.0])
                    .show(ui, |ui| {
                        for (k, n) in nb.found.iter().enumerate() {
                            if let Some(tex) = ctx.textures.get(ui.ctx(), ds, n.index) {
                                if ui
                                    .add(egui::Image::new((tex, size)).sense(egui::Sense::click()))
                                    .on_hover_text("Select")
                                    .clicked()
                                {
                                    pick = Some(n.index);
                                }
                            } else {
                                ui.label("…");
                            }
                            ui.label(format!(
                                "#{}\n{} · {}\nl2 {:.3}",
                                n.index,
                                ds.class_names[ds.labels[n.index] as usize],
                                split_name(ds.split[n.index]),
                                n.distance
                            ));
                            if k % 2 == 1 {
                                ui.end_row();
                            }
                        }
                    });
                if let Some(j) = pick {
                    self.select(key, j, ctx.commands);
                    self.scroll_to_selected = true;
                }
            }
            _ => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("searching…");
                });
            }
        }
    }
}

/// A diffusion model that trained on image `i` of the data set with hash `hash` and one that did
/// not (the first such pair by id), for the Inpainting view.
fn inpaint_pair(cards: &[crate::diffusion::DiffusionCard], hash: &str, i: usize) -> Option<(String, String)> {
    let on = |c: &crate::diffusion::DiffusionCard| c.train_indices.binary_search(&(i as u32)).is_ok();
    let same: Vec<&crate::diffusion::DiffusionCard> =
        cards.iter().filter(|c| c.dataset.hash == hash).collect();
    let a = same.iter().find(|c| on(c))?;
    let b = same.iter().find(|c| !on(c))?;
    Some((a.id.clone(), b.id.clone()))
}
