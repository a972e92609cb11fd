//! Fitting a slide to the screen it is shown on: the zoom, the type sizes of the heading and
//! the narrative, the animation panel's share, and the check that no text on a slide is cut.
//!
//! Projectors run at 1024x768, 1280x720, 1280x800, 1920x1080 and 3840x2160. The slide keeps a
//! logical canvas of at least [`CANVAS`] points' worth of room for the view beside the animation
//! by zooming no further than the screen allows, and sizes the heading and the sentence to read
//! out as a share of the screen's height, so they are as large on a 1024x768 projector as on a
//! 4K one: the heading is 5% of the height and the narrative 3.3%, that is 27 pt and 18 pt on a
//! PowerPoint slide (540 pt high), the usual minimum for the back of a room.

/// The logical room (width, height in points) a slide keeps for its views.
pub const CANVAS: [f32; 2] = [1100.0, 740.0];

/// The zoom bounds while presenting: never smaller than the app's own type, at most 4x.
const ZOOM: (f32, f32) = (1.0, 4.0);

/// The heading's and the narrative's height as shares of the screen's height.
pub const TITLE_SHARE: f32 = 0.05;
/// See [`TITLE_SHARE`].
pub const NARRATIVE_SHARE: f32 = 0.033;

/// The zoom factor for a window of `native` points (the window's size at zoom 1).
pub fn fit_zoom(native: egui::Vec2) -> f32 {
    let z = (native.x / CANVAS[0]).min(native.y / CANVAS[1]);
    if z.is_finite() {
        z.clamp(ZOOM.0, ZOOM.1)
    } else {
        ZOOM.0
    }
}

/// Type sizes (points at the current zoom) of the slide's heading, narrative and small print
/// for a screen `height` points high at the current zoom.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlideType {
    /// The step's title.
    pub title: f32,
    /// The sentence to read out.
    pub narrative: f32,
    /// Captions, the verdict and the slide count.
    pub caption: f32,
}

impl SlideType {
    /// The sizes for a screen `height` points high.
    pub fn for_height(height: f32) -> Self {
        let title = (height * TITLE_SHARE).max(20.0);
        let narrative = (height * NARRATIVE_SHARE).max(14.0);
        Self {
            title,
            narrative,
            caption: (narrative * 0.8).max(14.0),
        }
    }
}

/// The animation panel's share of the slide's width: more room for the view on narrow screens.
pub fn anim_share(width: f32, height: f32) -> f32 {
    if width < height * 1.45 { 0.38 } else { 0.42 }
}

/// A piece of text that is not shown whole.
#[derive(Clone, Debug, PartialEq)]
pub struct CutText {
    /// The text (its first line, shortened).
    pub text: String,
    /// Why: "cut at the right", "elided", ...
    pub why: &'static str,
}

impl std::fmt::Display for CutText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "'{}' ({})", self.text, self.why)
    }
}

/// The text of a painted frame that is cut sideways by its clip rectangle or the screen, or
/// shortened with an ellipsis. Text cut only at the top or bottom is left out: that is a list
/// scrolled part-way, which the user scrolls. Text wholly outside its clip (scrolled away) is
/// not shown and not cut.
pub fn cut_text(shapes: &[egui::epaint::ClippedShape], screen: egui::Rect) -> Vec<CutText> {
    let mut out = Vec::new();
    for clipped in shapes {
        let clip = clipped.clip_rect.intersect(screen);
        visit_text(&clipped.shape, &mut |text| {
            let rect = text.visual_bounding_rect();
            let shown = rect.intersect(clip);
            if !shown.is_positive() || text.galley.is_empty() {
                return;
            }
            let name = || {
                let t = text.galley.text();
                let line = t.lines().next().unwrap_or_default();
                line.chars().take(60).collect::<String>()
            };
            if text.galley.elided {
                out.push(CutText {
                    text: name(),
                    why: "shortened with an ellipsis",
                });
            } else if rect.max.x > clip.max.x + 1.5 {
                out.push(CutText {
                    text: name(),
                    why: "cut at the right",
                });
            } else if rect.min.x < clip.min.x - 1.5 {
                out.push(CutText {
                    text: name(),
                    why: "cut at the left",
                });
            }
        });
    }
    out
}

fn visit_text(shape: &egui::Shape, f: &mut impl FnMut(&egui::epaint::TextShape)) {
    match shape {
        egui::Shape::Text(t) => f(t),
        egui::Shape::Vec(v) => v.iter().for_each(|s| visit_text(s, f)),
        _ => {}
    }
}

/// The images of a painted frame cut sideways by their clip rectangle or the screen, as
/// (left, right) edges; images cut only at the top or bottom (a list scrolled part-way) are left
/// out.
pub fn cut_images(shapes: &[egui::epaint::ClippedShape], screen: egui::Rect) -> Vec<egui::Rect> {
    let mut out = Vec::new();
    for clipped in shapes {
        let clip = clipped.clip_rect.intersect(screen);
        if let egui::Shape::Mesh(mesh) = &clipped.shape
            && mesh.texture_id != egui::TextureId::default()
        {
            let rect = mesh.calc_bounds();
            if rect.intersect(clip).is_positive()
                && (rect.max.x > clip.max.x + 1.5 || rect.min.x < clip.min.x - 1.5)
            {
                out.push(rect);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoom_keeps_the_canvas_and_never_shrinks_type() {
        assert_eq!(fit_zoom(egui::vec2(1024.0, 768.0)), 1.0);
        assert_eq!(fit_zoom(egui::vec2(1280.0, 720.0)), 1.0);
        let z = fit_zoom(egui::vec2(1920.0, 1080.0));
        assert!((z - 1080.0 / CANVAS[1]).abs() < 1e-5);
        assert!(1920.0 / z >= CANVAS[0] && 1080.0 / z >= CANVAS[1] - 1e-3);
        // 4K keeps the same logical canvas as 1080p: twice the zoom.
        assert!((fit_zoom(egui::vec2(3840.0, 2160.0)) - 2.0 * z).abs() < 1e-4);
        assert_eq!(fit_zoom(egui::vec2(0.0, 0.0)), 1.0);
    }

    #[test]
    fn heading_and_narrative_follow_the_screen_height() {
        let small = SlideType::for_height(720.0);
        assert!((small.title - 36.0).abs() < 1e-4);
        assert!(small.narrative >= 23.7);
        assert!(SlideType::for_height(1080.0).narrative > small.narrative);
    }

    #[test]
    fn cut_text_finds_text_past_its_clip_and_ignores_scrolled_rows() {
        let ctx = egui::Context::default();
        let mut shapes = Vec::new();
        let mut out = ctx.run_ui(egui::RawInput::default(), |ui| {
            let font = egui::FontId::proportional(14.0);
            let galley =
                ui.painter()
                    .layout_no_wrap("a long line of text".into(), font, egui::Color32::WHITE);
            let width = galley.size().x;
            let at =
                |x: f32, y: f32| egui::Shape::galley(egui::pos2(x, y), galley.clone(), egui::Color32::WHITE);
            let clip = egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(width + 10.0, 100.0));
            for (shape, _) in [
                (at(0.0, 10.0), "whole"),
                (at(20.0, 10.0), "cut"),
                (at(0.0, 95.0), "scrolled"),
                (at(0.0, 300.0), "away"),
            ] {
                shapes.push(egui::epaint::ClippedShape {
                    clip_rect: clip,
                    shape,
                    transform_after_tessellation: egui::emath::TSTransform::IDENTITY,
                });
            }
        });
        out.textures_delta.clear();
        let screen = egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(1000.0, 1000.0));
        let cut = cut_text(&shapes, screen);
        assert_eq!(cut.len(), 1, "{cut:?}");
        assert_eq!(cut[0].why, "cut at the right");
        assert_eq!(cut[0].text, "a long line of text");
    }

    #[test]
    fn cut_images_finds_an_image_past_its_clip() {
        let tex = egui::TextureId::User(7);
        let uv = egui::Rect::from_min_max(egui::Pos2::ZERO, egui::pos2(1.0, 1.0));
        let image = |x: f32| {
            let rect = egui::Rect::from_min_size(egui::pos2(x, 0.0), egui::vec2(50.0, 50.0));
            egui::Shape::image(tex, rect, uv, egui::Color32::WHITE)
        };
        let clip = egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(100.0, 100.0));
        let shapes: Vec<_> = [image(10.0), image(80.0), image(300.0)]
            .into_iter()
            .map(|shape| egui::epaint::ClippedShape {
                clip_rect: clip,
                shape,
                transform_after_tessellation: egui::emath::TSTransform::IDENTITY,
            })
            .collect();
        let screen = egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(1000.0, 1000.0));
        let cut = cut_images(&shapes, screen);
        assert_eq!(cut.len(), 1, "only the image across the clip's edge: {cut:?}");
        assert!((cut[0].min.x - 80.0).abs() < 1e-3);
    }
}
