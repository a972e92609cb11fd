//! What the Extraction and Inpainting views share: drawing images that are not data-set rows
//! (generations, completions), tags, and the model picker.

use crate::data::Dataset;
use crate::diffusion::DiffusionCard;
use crate::ui::textures::TextureCache;
use crate::ui::theme;

/// RGBA of one C x H x W image of `ds`'s shape and scale; pixels whose `keep` (H x W) is 0 are
/// painted in the mask colour.
pub fn rgba(ds: &Dataset, bytes: &[u8], keep: Option<&[f32]>) -> Vec<u8> {
    let hw = ds.h * ds.w;
    let max = u32::from(ds.max_value.max(1));
    let px = |k: usize| -> u8 {
        let v = bytes.get(k).copied().unwrap_or(0);
        ((u32::from(v) * 255 + max / 2) / max).min(255) as u8
    };
    let mut out = Vec::with_capacity(hw * 4);
    for p in 0..hw {
        if keep.is_some_and(|k| k.get(p).is_some_and(|&v| v == 0.0)) {
            let [r, g, b, a] = theme::MASKED.to_array();
            out.extend_from_slice(&[r, g, b, a]);
        } else if ds.c == 1 {
            let g = px(p);
            out.extend_from_slice(&[g, g, g, 255]);
        } else {
            out.extend_from_slice(&[px(p), px(hw + p), px(2 * hw + p), 255]);
        }
    }
    out
}

/// Draws a texture (or a placeholder while it uploads) `width` wide with the image's aspect.
pub fn image_ui(ui: &mut egui::Ui, tex: Option<egui::TextureId>, ds: &Dataset, width: f32) -> egui::Response {
    let cell = egui::vec2(width, width * ds.h as f32 / ds.w as f32);
    match tex {
        Some(t) => ui.add(egui::Image::new((t, cell)).sense(egui::Sense::hover())),
        None => {
            let (rect, resp) = ui.allocate_exact_size(cell, egui::Sense::hover());
            ui.painter().rect_filled(rect, 0.0, theme::PLACEHOLDER);
            resp
        }
    }
}

/// Draws image `i` of a set of images that are not data-set rows, cached under `key`.
#[expect(
    clippy::too_many_arguments,
    reason = "an image, where it is cached, and how to draw it"
)]
pub fn bytes_ui(
    ui: &mut egui::Ui,
    textures: &mut TextureCache,
    key: &str,
    i: usize,
    ds: &Dataset,
    bytes: &[u8],
    keep: Option<&[f32]>,
    width: f32,
) -> egui::Response {
    let tex = textures.get_with(ui.ctx(), key, i, [ds.w, ds.h], || rgba(ds, bytes, keep));
    image_ui(ui, tex, ds, width)
}

/// Draws data-set image `i`.
pub fn data_ui(
    ui: &mut egui::Ui,
    textures: &mut TextureCache,
    ds: &Dataset,
    i: usize,
    width: f32,
) -> egui::Response {
    let tex = textures.get(ui.ctx(), ds, i);
    image_ui(ui, tex, ds, width)
}

/// A small coloured tag ("dup x16", "extracted").
pub fn tag(ui: &mut egui::Ui, text: &str, colour: egui::Color32) {
    egui::Frame::new()
        .fill(colour)
        .corner_radius(3.0)
        .inner_margin(egui::Margin::symmetric(4, 1))
        .show(ui, |ui| {
            ui.label(egui::RichText::new(text).color(egui::Color32::WHITE).small());
        });
}

/// A labelled combo box over the study's diffusion models; returns whether the choice changed.
pub fn model_combo(
    ui: &mut egui::Ui,
    label: &str,
    cards: &[DiffusionCard],
    selected: &mut Option<String>,
) -> bool {
    let before = selected.clone();
    let text = selected.clone().unwrap_or_else(|| "choose a model".into());
    let l = ui.label(label);
    egui::ComboBox::from_id_salt(("diffusion_model", label))
        .selected_text(text)
        .width(220.0)
        .show_ui(ui, |ui| {
            for c in cards {
                ui.selectable_value(selected, Some(c.id.clone()), &c.id)
                    .on_hover_text(format!(
                        "{} training images of {} ({} planted duplicates x{}), {} steps, final loss {:.4}",
                        c.train_indices.len(),
                        c.dataset.name,
                        c.duplicated.len(),
                        c.dup_factor,
                        c.steps,
                        c.final_loss
                    ));
            }
        })
        .response
        .labelled_by(l.id);
    *selected != before
}

/// A label and a drag value tied to it (so screen readers and tests can find the field).
pub fn labelled_drag<N: egui::emath::Numeric>(
    ui: &mut egui::Ui,
    label: &str,
    value: &mut N,
    range: std::ops::RangeInclusive<N>,
) -> egui::Response {
    let l = ui.label(label);
    ui.add(egui::DragValue::new(value).range(range)).labelled_by(l.id)
}

/// "Import diffusers model…": picks a UNet2DModel folder, then the folder of its training
/// images, and asks the app to import both into the study.
pub fn import_diffusers_button(ui: &mut egui::Ui, commands: &mut Vec<crate::ui::command::Command>) {
    if ui
        .button("Import diffusers model…")
        .on_hover_text(
            "A diffusers UNet2DModel folder (config.json, scheduler_config.json, \
             diffusion_pytorch_model.safetensors), then the folder of its training images",
        )
        .clicked()
        && let Some(model) = rfd::FileDialog::new()
            .set_title("A diffusers UNet2DModel folder")
            .pick_folder()
        && let Some(data) = rfd::FileDialog::new()
            .set_title("Its training images (an image folder or CIFAR batches)")
            .pick_folder()
    {
        commands.push(crate::ui::command::Command::ImportDiffusers { model, data });
    }
}

/// What the diffusion views show when the study has no diffusion model.
pub fn no_models_ui(ui: &mut egui::Ui, study: Option<&crate::study::Study>) {
    ui.heading("No diffusion models in this study");
    ui.label("Train one (tiny models take a minute on a CPU), then reopen the study:");
    let study = study.map_or("STUDY".to_string(), |s| s.root.display().to_string());
    ui.code(format!(
        "rote train --family ddpm --data mnist10k --images 256 --plant-duplicates 8 --out {study}\n\
         rote train --family ddpm --data mnist10k --models 2 --out {study}"
    ));
    ui.label("or bring a diffusers UNet2DModel with the images it was trained on:");
    ui.code(format!(
        "rote import-diffusers MODEL_DIR --train-data IMAGES --study {study}"
    ));
}
