//! The Inversion view's grid: every person's inversion (live while "Invert all" runs), framed
//! green where the evaluation classifier identified the person and red where it did not; a click
//! selects the person.

use super::InversionView;
use crate::invert::InversionReport;
use crate::ui::app::AppCtx;
use crate::ui::invert_jobs::LoadedInversion;
use crate::ui::theme;
use crate::ui::views::diffusion_common::image_ui;

/// Width of a grid cell.
const CELL: f32 = 64.0;

impl InversionView {
    pub(super) fn grid_ui(
        &mut self,
        ui: &mut egui::Ui,
        ctx: &mut AppCtx<'_>,
        loaded: &LoadedInversion,
        report: Option<&InversionReport>,
        people: usize,
        running: bool,
    ) {
        ui.label("All people: green frame = identified by the evaluation classifier, red = not");
        let ds = &loaded.data;
        ui.horizontal_wrapped(|ui| {
            for class in 0..people {
                let saved = report.and_then(|r| r.classes.iter().find(|c| c.class == class));
                let live = self.live_tex.get(&class).filter(|_| running).map(|t| t.id());
                ui.vertical(|ui| {
                    let resp = match (live, saved, report) {
                        (Some(t), _, _) => image_ui(ui, Some(t), ds, CELL),
                        (None, Some(c), Some(r)) => self.saved_image_ui(ui, ctx, loaded, r, c, CELL),
                        _ => image_ui(ui, None, ds, CELL),
                    };
                    let resp = resp.interact(egui::Sense::click());
                    let name = ds.class_names.get(class).cloned().unwrap_or_default();
                    if let Some(c) = saved.filter(|_| live.is_none()) {
                        let colour = if c.eval_top1 { theme::OK } else { theme::ERROR };
                        ui.painter().rect_stroke(
                            resp.rect.expand(1.0),
                            0.0,
                            egui::Stroke::new(2.0, colour),
                            egui::StrokeKind::Outside,
                        );
                    }
                    if class == self.person {
                        ui.painter().rect_stroke(
                            resp.rect.expand(3.5),
                            0.0,
                            egui::Stroke::new(2.0, theme::SELECTED),
                            egui::StrokeKind::Outside,
                        );
                    }
                    let resp = resp.on_hover_text(match saved {
                        Some(c) => format!(
                            "{name}: rank {} with the evaluation classifier, target p {:.3}",
                            c.eval_rank, c.target_p
                        ),
                        None => format!("{name}: not inverted yet"),
                    });
                    if resp.clicked() {
                        self.person = class;
                    }
                    ui.label(egui::RichText::new(name).small());
                });
            }
        });
    }
}
