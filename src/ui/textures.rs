//! Thumbnails uploaded once per (data set, image) and kept while they are in use; at most a few
//! hundred new uploads per frame so scrolling a 10k gallery never stalls, and at most
//! [`MAX_TEXTURES`] kept, the least recently drawn dropped first, so scrolling through a 60k set
//! does not keep 60k textures alive.

use std::collections::HashMap;

use crate::data::Dataset;

/// Uploads per frame.
const UPLOADS_PER_FRAME: usize = 400;

/// Textures kept; beyond this the least recently drawn quarter is dropped (never one drawn in the
/// current frame). A full-screen gallery of the smallest thumbnails shows about 2,000.
pub const MAX_TEXTURES: usize = 8192;

/// The texture cache.
#[derive(Default)]
pub struct TextureCache {
    /// Texture and the frame it was last drawn in.
    map: HashMap<(String, usize), (egui::TextureHandle, u64)>,
    frame: u64,
    uploads_this_frame: usize,
    /// Whether some thumbnails were deferred to the next frame.
    pub pending: bool,
}

impl TextureCache {
    /// Call once per frame.
    pub fn begin_frame(&mut self) {
        self.uploads_this_frame = 0;
        self.pending = false;
        self.frame += 1;
    }

    /// The cached texture under `key`, marked as drawn this frame.
    fn hit(&mut self, key: &(String, usize)) -> Option<egui::TextureId> {
        let frame = self.frame;
        self.map.get_mut(key).map(|(t, used)| {
            *used = frame;
            t.id()
        })
    }

    /// Keeps `handle` under `key` and drops the least recently drawn textures when over the cap.
    fn insert(&mut self, key: (String, usize), handle: egui::TextureHandle) -> egui::TextureId {
        let id = handle.id();
        self.map.insert(key, (handle, self.frame));
        self.uploads_this_frame += 1;
        if self.map.len() > MAX_TEXTURES {
            let mut ages: Vec<u64> = self.map.values().map(|(_, used)| *used).collect();
            let cut = ages.len() / 4;
            let (_, &mut oldest_kept, _) = ages.select_nth_unstable(cut);
            let now = self.frame;
            self.map
                .retain(|_, (_, used)| *used >= oldest_kept || *used == now);
        }
        id
    }

    /// The texture of image `i` of `ds`, uploading it if the frame's budget allows.
    pub fn get(&mut self, ctx: &egui::Context, ds: &Dataset, i: usize) -> Option<egui::TextureId> {
        let key = (ds.hash.clone(), i);
        if let Some(id) = self.hit(&key) {
            return Some(id);
        }
        if self.uploads_this_frame >= UPLOADS_PER_FRAME {
            self.pending = true;
            return None;
        }
        let rgba = ds.image_rgba(i)?;
        let img = egui::ColorImage::from_rgba_unmultiplied([ds.w, ds.h], &rgba);
        let handle = ctx.load_texture(format!("{}-{i}", ds.name), img, egui::TextureOptions::NEAREST);
        Some(self.insert(key, handle))
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
        if let Some(id) = self.hit(&k) {
            return Some(id);
        }
        if self.uploads_this_frame >= UPLOADS_PER_FRAME {
            self.pending = true;
            return None;
        }
        let img = egui::ColorImage::from_rgba_unmultiplied(size, &rgba());
        let handle = ctx.load_texture(format!("{key}-{i}"), img, egui::TextureOptions::NEAREST);
        Some(self.insert(k, handle))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(cache: &mut TextureCache, ctx: &egui::Context, i: usize) -> Option<egui::TextureId> {
        cache.get_with(ctx, "t", i, [1, 1], || vec![0, 0, 0, 255])
    }

    #[test]
    fn least_recently_drawn_textures_go_first_and_the_visible_ones_stay() {
        let ctx = egui::Context::default();
        let mut cache = TextureCache::default();
        // Scroll through twice the cap, 400 new thumbnails a frame, keeping image 0 on screen.
        let mut next = 1;
        while next < 2 * MAX_TEXTURES {
            cache.begin_frame();
            assert!(upload(&mut cache, &ctx, 0).is_some());
            for _ in 0..UPLOADS_PER_FRAME - 1 {
                upload(&mut cache, &ctx, next);
                next += 1;
            }
            assert!(cache.len() <= MAX_TEXTURES, "{} textures kept", cache.len());
        }
        let key0 = ("t".to_string(), 0);
        assert!(
            cache.map.contains_key(&key0),
            "the image drawn every frame is kept"
        );
        assert!(
            !cache.map.contains_key(&("t".to_string(), 1)),
            "the first scrolled past is gone"
        );
        let newest = ("t".to_string(), next - 1);
        assert!(cache.map.contains_key(&newest));
        // The textures themselves are freed, not only forgotten.
        let live = ctx.tex_manager().read().num_allocated();
        assert!(live <= MAX_TEXTURES + 2, "{live} textures allocated");
    }
}
