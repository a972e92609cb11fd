//! A heatmap drawn as one texture (one texel per cell, nearest filtering), with a colour bar,
//! the value under the pointer and click-to-select.

use egui::{Color32, Rect, Sense, Vec2};

/// A rows x cols matrix to draw; `None` cells are blank.
pub struct HeatmapData<'a> {
    /// Cells, row-major: `values[r][c]`.
    pub values: &'a [Vec<Option<f32>>],
    /// Value mapped to the first colour.
    pub min: f32,
    /// Value mapped to the last colour.
    pub max: f32,
    /// Texture cache key (change it when the values change).
    pub key: &'a str,
}

/// What the pointer did on the heatmap.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeatmapHit {
    /// Cell under the pointer.
    pub hovered: Option<(usize, usize)>,
    /// Cell clicked this frame.
    pub clicked: Option<(usize, usize)>,
    /// Where the heatmap was drawn.
    pub rect: Option<Rect>,
}

/// Viridis-like colour of `t` in [0, 1].
pub fn colour(t: f32) -> Color32 {
    const STOPS: [[f32; 3]; 5] = [
        [68.0, 1.0, 84.0],
        [59.0, 82.0, 139.0],
        [33.0, 145.0, 140.0],
        [94.0, 201.0, 98.0],
        [253.0, 231.0, 37.0],
    ];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let x = t * (STOPS.len() - 1) as f32;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f32;
    let c = |k: usize| (STOPS[i][k] * (1.0 - f) + STOPS[i + 1][k] * f).round() as u8;
    Color32::from_rgb(c(0), c(1), c(2))
}

fn texture(ui: &egui::Ui, data: &HeatmapData<'_>, cols: usize) -> egui::TextureHandle {
    let id = egui::Id::unique(("heatmap", data.key));
    if let Some(t) = ui.ctx().data(|d| d.get_temp::<egui::TextureHandle>(id)) {
        return t;
    }
    let rows = data.values.len();
    let span = (data.max - data.min).max(f32::EPSILON);
    let mut pixels = Vec::with_capacity(rows * cols);
    for row in data.values {
        for c in 0..cols {
            pixels.push(match row.get(c).copied().flatten() {
                Some(v) => colour((v - data.min) / span),
                None => Color32::from_gray(40),
            });
        }
    }
    let img = egui::ColorImage::new([cols.max(1), rows.max(1)], pixels);
    let t = ui
        .ctx()
        .load_texture(data.key.to_string(), img, egui::TextureOptions::NEAREST);
    ui.ctx().data_mut(|d| d.insert_temp(id, t.clone()));
    t
}

/// Draws `data` `size` large; returns the hovered and clicked cells.
pub fn heatmap_ui(ui: &mut egui::Ui, data: &HeatmapData<'_>, size: Vec2) -> HeatmapHit {
    let rows = data.values.len();
    let cols = data.values.iter().map(Vec::len).max().unwrap_or(0);
    if rows == 0 || cols == 0 {
        ui.label("(empty)");
        return HeatmapHit::default();
    }
    let tex = texture(ui, data, cols);
    let (rect, resp) = ui.allocate_exact_size(size, Sense::click());
    ui.painter().image(
        tex.id(),
        rect,
        Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)),
        Color32::WHITE,
    );
    let cell = |p: egui::Pos2| -> Option<(usize, usize)> {
        if !rect.contains(p) {
            return None;
        }
        let c = ((p.x - rect.left()) / rect.width() * cols as f32) as usize;
        let r = ((p.y - rect.top()) / rect.height() * rows as f32) as usize;
        Some((r.min(rows - 1), c.min(cols - 1)))
    };
    let hovered = resp.hover_pos().and_then(cell);
    let clicked = if resp.clicked() {
        resp.interact_pointer_pos().and_then(cell)
    } else {
        None
    };
    HeatmapHit {
        hovered,
        clicked,
        rect: Some(rect),
    }
}

/// A horizontal colour bar from `min` to `max`, `width` wide, with its end values.
pub fn colour_bar_ui(ui: &mut egui::Ui, min: f32, max: f32, width: f32, label: &str) {
    ui.horizontal(|ui| {
        ui.label(format!("{min:.3}"));
        let (rect, _) = ui.allocate_exact_size(egui::vec2(width, 12.0), Sense::hover());
        let steps = 48;
        for k in 0..steps {
            let x0 = rect.left() + rect.width() * k as f32 / steps as f32;
            let x1 = rect.left() + rect.width() * (k + 1) as f32 / steps as f32;
            ui.painter().rect_filled(
                Rect::from_min_max(egui::pos2(x0, rect.top()), egui::pos2(x1, rect.bottom())),
                0.0,
                colour((k as f32 + 0.5) / steps as f32),
            );
        }
        ui.label(format!("{max:.3}"));
        ui.label(label);
    });
}
