//! Thumbnails uploaded once per (data set, image) and kept; at most a few hundred new uploads per
//! frame so scrolling a 10k gallery never stalls.

use std::collections::HashMap;

use crate::data::Dataset;

/// Uploads per frame.
const UPLOADS_PER_FRAME: usize = 400;

/// The texture cache.
#[derive(Default)]
pub struct TextureCache {
    map: HashMap<(String, usize), egui::TextureHandle>,
    uploads_this_frame: usize,
    /// Whether some thumbnails were deferred to the next frame.
    pub pending: bool,
}

impl TextureCache {
    /// Call once per frame.
    pub fn begin_frame(&mut self) {
        self.uploads_this_frame = 0;
        self.pending = false;
    }

    /// The texture of image `i` of `ds`, uploading it if the frame's budget allows.
    pub fn get(&mut self, ctx: &egui::Context, ds: &Dataset, i: usize) -> Option<egui::TextureId> {
        let key = (ds.hash.clone(), i);
        if let Some(t) = self.map.get(&key) {
            return Some(t.id());
        }
        if self.uploads_this_frame >= UPLOADS_PER_FRAME {
            self.pending = true;
            return None;
        }
        let rgba = ds.image_rgba(i)?;
        let img = egui::ColorImage::from_rgba_unmultiplied([ds.w, ds.h], &rgba);
        let handle = ctx.load_texture(format!("{}-{i}", ds.name), img, egui::TextureOptions::NEAREST);
        let id = handle.id();
        self.map.insert(key, handle);
        self.uploads_this_frame += 1;
        Some(id)
    }

    /// The texture stored under (`key`, `i`), made from `rgba()` (`size` = [w, h]) if the frame's
    /// budget allows. For images that are not rows of a data set (generations, completions).
    pub fn get_with(
        &mut self,
        ctx: &egui::Context,
        key: &str,
        i: usize,
        size: [usize; 2],
        rgba: impl FnOnce() -> Vec<u8>,
    ) -> Option<egui::TextureId> {
        let k = (key.to_string(), i);
        if let Some(t) = self.map.get(&k) {
            return Some(t.id());
        }
        if self.uploads_this_frame >= UPLOADS_PER_FRAME {
            self.pending = true;
            return None;
        }
        let img = egui::ColorImage::from_rgba_unmultiplied(size, &rgba());
        let handle = ctx.load_texture(format!("{key}-{i}"), img, egui::TextureOptions::NEAREST);
        let id = handle.id();
        self.map.insert(k, handle);
        self.uploads_this_frame += 1;
        Some(id)
    }

    /// Number of textures held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
