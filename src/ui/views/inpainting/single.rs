//! The Inpainting view's one-image mode: the image picker, the side-by-side row original |
//! masked | IN completion | OUT completion, and the live denoising previews.

use std::sync::Arc;

use super::super::diffusion_common::{bytes_ui, data_ui, image_ui, labelled_drag, rgba, tag};
use super::{InpaintingView, trained_on};
use crate::data::Dataset;
use crate::diffusion::DiffusionCard;
use crate::diffusion::inpaint::keep_mask;
use crate::ui::app::AppCtx;
use crate::ui::command::Command;
use crate::ui::jobs::JobKind;
use crate::ui::theme;

impl InpaintingView {
    fn picker_ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>, ds: &Dataset) {
        ui.horizontal(|ui| {
            labelled_drag(ui, "Image #", &mut self.image, 0..=ds.n.saturating_sub(1));
        });
        let Some(models) = ctx.diffusion else { return };
        let all = self.candidates(&models.cards);
        let names = [
            self.a.clone().unwrap_or_default(),
            self.b.clone().unwrap_or_default(),
        ];
        egui::ScrollArea::vertical().auto_shrink(false).show(ui, |ui| {
            for (side, name) in ["A", "B"].into_iter().zip(names) {
                let mine: Vec<usize> = all.iter().filter(|c| c.1 == (side == "A")).map(|c| c.0).collect();
                ui.label(format!("Only {side} ({name}) trained on these {}:", mine.len()));
                ui.horizontal_wrapped(|ui| {
                    for &i in mine.iter().take(300) {
                        let resp = data_ui(ui, ctx.textures, ds, i, 36.0)
                            .interact(egui::Sense::click())
                            .on_hover_text(format!("#{i}"));
                        if i == self.image {
                            ui.painter().rect_stroke(
                                resp.rect.expand(1.0),
                                0.0,
                                egui::Stroke::new(2.0, theme::SELECTED),
                                egui::StrokeKind::Outside,
                            );
                        }
                        if resp.clicked() {
                            self.image = i;
                        }
                    }
                    if mine.len() > 300 {
                        ui.label(format!("+{} more (type the index)", mine.len() - 300));
                    }
                });
                ui.add_space(6.0);
            }
        });
    }

    pub(super) fn single_ui(
        &mut self,
        ui: &mut egui::Ui,
        ctx: &mut AppCtx<'_>,
        ds: &Arc<Dataset>,
        a: &DiffusionCard,
        b: &DiffusionCard,
    ) {
        egui::Panel::left("inpaint_pick")
            .default_size(300.0)
            .show(ui, |ui| self.picker_ui(ui, ctx, ds));
        let i = self.image;
        let (in_a, in_b) = (trained_on(a, i), trained_on(b, i));
        let running = ctx.jobs.is_running(JobKind::Inpaint);
        ui.horizontal(|ui| {
            let ok = in_a != in_b && i < ds.n;
            let run = ui.add_enabled(!running && ok, egui::Button::new("Inpaint"));
            let run = if ok {
                run.on_hover_text("Complete the hidden region with the IN and the OUT model")
            } else {
                run.on_disabled_hover_text("Pick an image exactly one of the two models trained on")
            };
            if run.clicked()
                && let Some(req) = self.request()
            {
                ctx.commands.push(Command::Inpaint(Box::new(req)));
            }
            match (in_a, in_b) {
                (true, false) => ui.label(format!("#{i}: A ({}) trained on it, B did not", a.id)),
                (false, true) => ui.label(format!("#{i}: B ({}) trained on it, A did not", b.id)),
                (true, true) => ui.colored_label(theme::ERROR, format!("#{i} is in both training sets")),
                (false, false) => ui.colored_label(theme::ERROR, format!("#{i} is in neither training set")),
            };
            if a.duplicated.contains(&(i as u32)) || b.duplicated.contains(&(i as u32)) {
                tag(
                    ui,
                    &format!("dup x{}", a.dup_factor.max(b.dup_factor)),
                    theme::DUPLICATE,
                );
            }
        });
        ui.separator();
        let w = 128.0;
        let keep = keep_mask(self.mask, ds.h, ds.w, self.seed);
        let (in_id, out_id) = if in_a { (&a.id, &b.id) } else { (&b.id, &a.id) };
        let shown = if running {
            self.refresh_live(ui.ctx(), ds);
            None
        } else {
            self.last.as_ref().filter(|l| l.index == i && l.keep == keep)
        };
        let original = ds.image(i).unwrap_or(&[]).to_vec();
        let key = format!("inpaint-{}-{i}-{:?}-{}", ds.hash, self.mask, self.seed);
        ui.horizontal(|ui| {
            let cell = |ui: &mut egui::Ui, title: &str, body: &mut dyn FnMut(&mut egui::Ui)| {
                ui.vertical(|ui| {
                    ui.strong(title);
                    body(ui);
                });
            };
            cell(ui, "Original", &mut |ui| {
                data_ui(ui, ctx.textures, ds, i, w);
            });
            cell(ui, "Masked", &mut |ui| {
                bytes_ui(ui, ctx.textures, &key, 0, ds, &original, Some(&keep), w);
            });
            for (role, title) in [(0usize, "IN completion"), (1, "OUT completion")] {
                let id = if role == 0 { in_id } else { out_id };
                cell(ui, title, &mut |ui| {
                    ui.label(id.as_str());
                    match shown {
                        Some(l) => {
                            let k = format!("inpaint-result-{}", self.results);
                            bytes_ui(ui, ctx.textures, &k, role, ds, &l.completions[role], None, w);
                            ui.label(format!("hidden-region l2 {:.4}", l.errors[role]));
                        }
                        None => {
                            let tex = self.live_tex[role].as_ref().filter(|_| running).map(|t| t.id());
                            image_ui(ui, tex, ds, w);
                            ui.label(if running { "denoising" } else { "press Inpaint" });
                        }
                    }
                });
            }
        });
        if let Some(l) = shown {
            let [e_in, e_out] = l.errors;
            ui.label(if e_in < e_out {
                format!("The IN model completes it closer to the original ({e_in:.4} < {e_out:.4}): a membership signal.")
            } else {
                format!("The OUT model does as well or better ({e_out:.4} <= {e_in:.4}): no signal on this image.")
            });
        }
    }

    /// Uploads new live frames.
    fn refresh_live(&mut self, ctx: &egui::Context, ds: &Dataset) {
        let live = self.live.lock();
        if live.version == self.live_seen {
            return;
        }
        self.live_seen = live.version;
        for (role, frame) in live.frames.iter().enumerate() {
            let Some(f) = frame else {
                self.live_tex[role] = None;
                continue;
            };
            let img = egui::ColorImage::from_rgba_unmultiplied([ds.w, ds.h], &rgba(ds, f, None));
            match &mut self.live_tex[role] {
                Some(t) => t.set(img, egui::TextureOptions::NEAREST),
                slot @ None => {
                    *slot = Some(ctx.load_texture(
                        format!("inpaint-live-{role}"),
                        img,
                        egui::TextureOptions::NEAREST,
                    ));
                }
            }
        }
    }
}
