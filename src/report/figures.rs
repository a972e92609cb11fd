//! Galleries as PNG: images in a grid, scaled up by whole pixels, each with an optional coloured
//! frame, with extra space between groups of columns (e.g. generation | nearest training image).

use std::path::Path;

use crate::data::Dataset;
use crate::error::{CoreError, CoreResult};

/// Frame of a hit (an extraction, the closer completion).
pub(crate) const GREEN: [u8; 3] = [40, 170, 70];
/// Frame of a planted sample or a miss.
pub(crate) const RED: [u8; 3] = [210, 50, 50];
/// Neutral frame.
pub(crate) const GREY: [u8; 3] = [200, 203, 210];

/// One image of a gallery: RGB pixels, row-major.
#[derive(Clone, Debug)]
pub(crate) struct Tile {
    /// Width.
    pub w: usize,
    /// Height.
    pub h: usize,
    /// RGB bytes, `w * h * 3`.
    pub rgb: Vec<u8>,
    /// Frame colour.
    pub frame: [u8; 3],
}

impl Tile {
    /// A tile from C x H x W bytes in `0..=max_value` (1 or 3 channels; others show channel 0).
    pub fn from_chw(bytes: &[u8], [c, h, w]: [usize; 3], max_value: u8, frame: [u8; 3]) -> Self {
        let m = f32::from(max_value.max(1));
        let at = |k: usize, i: usize| {
            let v = bytes.get(k * h * w + i).copied().unwrap_or(0);
            (f32::from(v) / m * 255.0).round().clamp(0.0, 255.0) as u8
        };
        let mut rgb = Vec::with_capacity(h * w * 3);
        for i in 0..h * w {
            if c == 3 {
                rgb.extend([at(0, i), at(1, i), at(2, i)]);
            } else {
                rgb.extend([at(0, i); 3]);
            }
        }
        Self { w, h, rgb, frame }
    }

    /// Image `i` of a data set (a blank tile when out of range).
    pub fn from_dataset(ds: &Dataset, i: usize, frame: [u8; 3]) -> Self {
        let bytes = ds.image(i).unwrap_or(&[]);
        Self::from_chw(bytes, [ds.c, ds.h, ds.w], ds.max_value, frame)
    }
}

/// Whole-pixel scale that makes a `side`-pixel image at least `min` pixels.
fn scale_for(side: usize, min: usize) -> usize {
    min.div_ceil(side.max(1)).max(1)
}

/// Draws `tiles` in rows of `cols`, scaled so each is at least 56 pixels on its long side, with a
/// 2-pixel frame, 4 pixels between tiles and 16 more after every `group` columns.
pub(crate) fn gallery(tiles: &[Tile], cols: usize, group: usize) -> image::RgbImage {
    const FRAME: usize = 2;
    const GAP: usize = 4;
    const GROUP_GAP: usize = 16;
    let (tw, th) = tiles.iter().fold((1, 1), |(w, h), t| (w.max(t.w), h.max(t.h)));
    let scale = scale_for(tw.max(th), 56);
    let (cw, ch) = (tw * scale + 2 * FRAME, th * scale + 2 * FRAME);
    let cols = cols.clamp(1, tiles.len().max(1));
    let rows = tiles.len().div_ceil(cols).max(1);
    let group = group.max(1);
    let x_of = |col: usize| GAP + col * (cw + GAP) + (col / group) * GROUP_GAP;
    let width = x_of(cols - 1) + cw + GAP;
    let height = GAP + rows * (ch + GAP);
    let mut img = image::RgbImage::from_pixel(width as u32, height as u32, image::Rgb([255; 3]));
    for (n, t) in tiles.iter().enumerate() {
        let (x0, y0) = (x_of(n % cols), GAP + (n / cols) * (ch + GAP));
        for y in 0..(t.h * scale + 2 * FRAME) {
            for x in 0..(t.w * scale + 2 * FRAME) {
                let inside = x >= FRAME && y >= FRAME && x < FRAME + t.w * scale && y < FRAME + t.h * scale;
                let px = if inside {
                    let k = ((y - FRAME) / scale * t.w + (x - FRAME) / scale) * 3;
                    [
                        t.rgb.get(k).copied().unwrap_or(0),
                        t.rgb.get(k + 1).copied().unwrap_or(0),
                        t.rgb.get(k + 2).copied().unwrap_or(0),
                    ]
                } else {
                    t.frame
                };
                img.put_pixel((x0 + x) as u32, (y0 + y) as u32, image::Rgb(px));
            }
        }
    }
    img
}

/// PNG bytes of `img` (`name` only for the error message).
pub(crate) fn png_bytes(img: &image::RgbImage, name: &str) -> CoreResult<Vec<u8>> {
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .map_err(|e| CoreError::format(Path::new(name), format!("cannot encode PNG: {e}")))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gallery_scales_frames_and_groups() {
        let t = Tile::from_chw(&[0, 2, 4, 4], [1, 2, 2], 4, RED);
        let img = gallery(&[t.clone(), t.clone(), t], 2, 1);
        // A 2-pixel image scaled x28 = 56, + 2x2 frame = 60 per cell; gaps of 4, and one group gap
        // of 16 between the two columns (groups of one).
        assert_eq!(img.width() as usize, 4 + 60 + 4 + 16 + 60 + 4);
        assert_eq!(img.height() as usize, 4 + 2 * (60 + 4));
        assert_eq!(img.get_pixel(4, 4).0, RED);
        assert_eq!(img.get_pixel(6, 6).0, [0; 3]);
        assert_eq!(
            img.get_pixel(6 + 56 + 1, 6 + 56 + 1).0,
            RED,
            "frame after the pixels"
        );
        assert_eq!(img.get_pixel(6 + 55, 6 + 55).0, [255; 3], "last pixel 4 of max 4");
    }
}
