//! Drawing a slide: the heading with the step's narrative, the animation panel, and the key hints.

use egui::RichText;

use super::fit::SlideType;
use super::{AnimSlot, Presentation};
use crate::story::{Panel, STEPS};

/// The slide's heading: step title, narrative, and where the talk is.
pub fn header_ui(ui: &mut egui::Ui, p: &Presentation) {
    let step = p.current();
    let size = SlideType::for_height(ui.ctx().content_rect().height());
    ui.add_space(6.0);
    // The count sits at the right; the title wraps in the room left of it.
    let count = RichText::new(format!("{} / {}", p.step + 1, STEPS.len())).size(size.caption);
    ui.horizontal_top(|ui| {
        let room = ui.available_width() - 5.0 * size.caption;
        ui.allocate_ui(egui::vec2(room.max(50.0), 0.0), |ui| {
            ui.add(egui::Label::new(RichText::new(step.title()).size(size.title).strong()).wrap());
        });
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Min), |ui| {
            ui.label(count);
        });
    });
    ui.add(egui::Label::new(RichText::new(step.narrative()).size(size.narrative)).wrap());
    ui.add_space(6.0);
}

/// Sizes the talk can be exported at (pixels).
pub const EXPORT_SIZES: [[u32; 2]; 4] = [[1280, 720], [1920, 1080], [1024, 768], [3840, 2160]];

/// The key hints, the animation's position and the Export button; returns the size the speaker
/// asked to export at.
pub fn hints_ui(ui: &mut egui::Ui, p: &mut Presentation) -> Option<[u32; 2]> {
    let mut asked = None;
    ui.horizontal_wrapped(|ui| {
        let i = p.export_size.min(EXPORT_SIZES.len() - 1);
        let name = |s: [u32; 2]| format!("{}x{}", s[0], s[1]);
        if ui
            .button("Export talk…")
            .on_hover_text("Every slide as a PNG, an animated GIF and an APNG, with index.html that plays them (rote present --export)")
            .clicked()
        {
            asked = Some(EXPORT_SIZES[i]);
        }
        egui::ComboBox::from_id_salt("export_size")
            .selected_text(name(EXPORT_SIZES[i]))
            .show_ui(ui, |ui| {
                for (k, s) in EXPORT_SIZES.iter().enumerate() {
                    ui.selectable_value(&mut p.export_size, k, name(*s));
                }
            });
        ui.separator();
        let n = p.anim().map_or(0, |a| a.frames.len());
        if n > 1 {
            let state = if p.playing { "playing" } else { "paused" };
            ui.label(format!("frame {} / {n} ({state}, {:.0} fps)", p.frame + 1, p.fps));
            ui.add(
                egui::ProgressBar::new(p.frame as f32 / (n - 1) as f32)
                    .desired_width(220.0)
                    .desired_height(8.0),
            );
            ui.separator();
        }
        ui.weak("Right/Space: play, next   Left: back   Down/Up: frame   +/-: speed   P: presenter view   Esc/F11: leave");
    });
    asked
}

/// The animation of the current step (left of the step's view), sized to `width`.
pub fn anim_panel_ui(ui: &mut egui::Ui, p: &mut Presentation) {
    let key = (p.step, p.frame);
    let slot = p.anims.get(&p.step);
    let anim = match slot {
        None | Some(AnimSlot::Loading) => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Preparing the animation (computed once, then cached in the study)");
            });
            return;
        }
        Some(AnimSlot::Failed(e)) => {
            ui.colored_label(ui.visuals().error_fg_color, format!("No animation: {e}"));
            return;
        }
        Some(AnimSlot::Ready(a)) => a,
    };
    let Some(frame) = anim.frames.get(p.frame.min(anim.frames.len().saturating_sub(1))) else {
        return;
    };
    let size = SlideType::for_height(ui.ctx().content_rect().height());
    ui.add(egui::Label::new(RichText::new(&anim.subject).size(size.caption * 0.85)).wrap());
    ui.add_space(4.0);
    let fresh = p
        .shown
        .as_ref()
        .is_none_or(|(k, t)| *k != key || t.len() != frame.panels.len());
    if fresh {
        let textures = frame
            .panels
            .iter()
            .enumerate()
            .map(|(i, panel)| {
                ui.ctx().load_texture(
                    format!("story-{}-{i}", p.step),
                    color_image(panel),
                    egui::TextureOptions::NEAREST,
                )
            })
            .collect();
        p.shown = Some((key, textures));
    }
    let Some((_, textures)) = &p.shown else { return };
    let n = frame.panels.len().max(1) as f32;
    let width = ui.available_width();
    let gap = 10.0;
    // The item spacing sits between panels too; stay inside the panel so text below wraps.
    let spacing = ui.spacing().item_spacing.x;
    let side = ((width - (gap + spacing) * (n - 1.0)) / n - 1.0)
        .min(ui.available_height() * 0.6)
        .max(24.0);
    ui.horizontal_top(|ui| {
        for (k, (panel, tex)) in frame.panels.iter().zip(textures).enumerate() {
            if k > 0 {
                ui.add_space(gap);
            }
            let [_, h, w] = panel.shape;
            let scale = side / w.max(h).max(1) as f32;
            ui.vertical(|ui| {
                ui.set_width(side);
                ui.image((tex.id(), egui::vec2(w as f32 * scale, h as f32 * scale)));
                ui.add(egui::Label::new(RichText::new(&panel.label).size(size.caption * 0.75)).wrap());
            });
        }
    });
    ui.add_space(8.0);
    ui.set_max_width(width);
    ui.add(egui::Label::new(RichText::new(&frame.caption).size(size.caption).monospace()).wrap());
    if p.frame + 1 >= anim.frames.len() {
        ui.add_space(8.0);
        ui.add(
            egui::Label::new(
                RichText::new(&anim.verdict)
                    .size(size.caption)
                    .color(ui.visuals().warn_fg_color),
            )
            .wrap(),
        );
    }
}

/// A panel's display bytes as an egui image (grey or RGB).
fn color_image(panel: &Panel) -> egui::ColorImage {
    let [c, h, w] = panel.shape;
    let plane = h * w;
    let pixels = (0..plane)
        .map(|k| {
            let at = |ch: usize| panel.pixels.get(ch * plane + k).copied().unwrap_or(0);
            if c >= 3 {
                egui::Color32::from_rgb(at(0), at(1), at(2))
            } else {
                egui::Color32::from_gray(at(0))
            }
        })
        .collect();
    egui::ColorImage::new([w.max(1), h.max(1)], pixels)
}
