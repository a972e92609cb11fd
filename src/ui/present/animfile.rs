//! Animated GIF and APNG files from a slide's rendered frames. Between frames only the animation
//! panel changes, so every frame after the first stores just the rectangle that differs from the
//! one before (identical frames lengthen the previous frame's delay): the files stay small and
//! quantizing them stays fast.

use image::RgbaImage;

use crate::error::{CoreError, CoreResult};

/// One frame of the file: the changed rectangle of the full image, and how long it shows.
struct Patch {
    x: u32,
    y: u32,
    image: RgbaImage,
    delay_ms: u32,
}

/// The bounding box (x, y, w, h) of the pixels that differ between `a` and `b` (same size).
fn changed(a: &RgbaImage, b: &RgbaImage) -> Option<(u32, u32, u32, u32)> {
    let (w, h) = a.dimensions();
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for y in 0..h {
        for x in 0..w {
            if a.get_pixel(x, y) != b.get_pixel(x, y) {
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x);
                y1 = y1.max(y);
            }
        }
    }
    (x0 <= x1 && y0 <= y1).then(|| (x0, y0, x1 - x0 + 1, y1 - y0 + 1))
}

/// The frames as patches; `delays_ms[i]` is how long frame i shows.
fn patches(frames: &[RgbaImage], delays_ms: &[u32]) -> Vec<Patch> {
    let mut out: Vec<Patch> = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        let delay_ms = delays_ms.get(i).copied().unwrap_or(100);
        let Some(prev) = i.checked_sub(1).and_then(|j| frames.get(j)) else {
            out.push(Patch {
                x: 0,
                y: 0,
                image: frame.clone(),
                delay_ms,
            });
            continue;
        };
        match changed(prev, frame) {
            Some((x, y, w, h)) => out.push(Patch {
                x,
                y,
                image: image::imageops::crop_imm(frame, x, y, w, h).to_image(),
                delay_ms,
            }),
            None => {
                if let Some(last) = out.last_mut() {
                    last.delay_ms += delay_ms;
                }
            }
        }
    }
    out
}

/// Encodes `frames` (all the same size) as an animated GIF that loops.
pub fn gif_bytes(frames: &[RgbaImage], delays_ms: &[u32]) -> CoreResult<Vec<u8>> {
    let err = |e: gif::EncodingError| CoreError::Invalid(format!("cannot encode GIF: {e}"));
    let Some(first) = frames.first() else {
        return Err(CoreError::Invalid("cannot encode GIF: no frames".into()));
    };
    let dim = |v: u32| {
        u16::try_from(v)
            .map_err(|_| CoreError::Invalid(format!("cannot encode GIF: {v} pixels is over 65535")))
    };
    let (w, h) = first.dimensions();
    let mut bytes = Vec::new();
    {
        let mut enc = gif::Encoder::new(&mut bytes, dim(w)?, dim(h)?, &[]).map_err(err)?;
        enc.set_repeat(gif::Repeat::Infinite).map_err(err)?;
        for p in patches(frames, delays_ms) {
            let (pw, ph) = p.image.dimensions();
            let mut rgba = p.image.into_raw();
            let mut frame = gif::Frame::from_rgba_speed(dim(pw)?, dim(ph)?, &mut rgba, 10);
            frame.left = dim(p.x)?;
            frame.top = dim(p.y)?;
            // Each patch draws over what is there.
            frame.dispose = gif::DisposalMethod::Keep;
            frame.delay = u16::try_from(p.delay_ms.div_ceil(10)).unwrap_or(u16::MAX);
            enc.write_frame(&frame).map_err(err)?;
        }
    }
    Ok(bytes)
}

/// Encodes `frames` (all the same size) as an animated PNG (full colour) that loops.
pub fn apng_bytes(frames: &[RgbaImage], delays_ms: &[u32]) -> CoreResult<Vec<u8>> {
    let err = |e: png::EncodingError| CoreError::Invalid(format!("cannot encode APNG: {e}"));
    let Some(first) = frames.first() else {
        return Err(CoreError::Invalid("cannot encode APNG: no frames".into()));
    };
    let (w, h) = first.dimensions();
    let patches = patches(frames, delays_ms);
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, w, h);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_animated(patches.len() as u32, 0).map_err(err)?;
        let mut writer = enc.write_header().map_err(err)?;
        for p in &patches {
            let (pw, ph) = p.image.dimensions();
            // Position 0 first, so the new size is always in bounds, then the real position.
            writer.set_frame_position(0, 0).map_err(err)?;
            writer.set_frame_dimension(pw, ph).map_err(err)?;
            writer.set_frame_position(p.x, p.y).map_err(err)?;
            writer.set_blend_op(png::BlendOp::Source).map_err(err)?;
            writer.set_dispose_op(png::DisposeOp::None).map_err(err)?;
            let ms = u16::try_from(p.delay_ms).unwrap_or(u16::MAX);
            writer.set_frame_delay(ms, 1000).map_err(err)?;
            writer.write_image_data(p.image.as_raw()).map_err(err)?;
        }
        writer.finish().map_err(err)?;
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(k: u8) -> RgbaImage {
        let mut im = RgbaImage::from_pixel(40, 30, image::Rgba([20, 20, 20, 255]));
        // A square that moves right by k pixels, the rest unchanged.
        for y in 10..16 {
            for x in 5 + u32::from(k)..11 + u32::from(k) {
                im.put_pixel(x, y, image::Rgba([250, 120, 0, 255]));
            }
        }
        im
    }

    #[test]
    fn only_the_changed_rectangle_is_stored_and_repeats_merge() {
        let frames = vec![frame(0), frame(3), frame(3), frame(6)];
        let p = patches(&frames, &[100, 100, 100, 500]);
        assert_eq!(p.len(), 3, "the repeated frame merges into the one before");
        assert_eq!((p[0].x, p[0].y, p[0].image.dimensions()), (0, 0, (40, 30)));
        assert_eq!((p[1].x, p[1].y, p[1].image.dimensions()), (5, 10, (9, 6)));
        assert_eq!(p[1].delay_ms, 200);
        assert_eq!(p[2].delay_ms, 500);
    }

    #[test]
    fn gif_and_apng_decode_to_the_frames_ending_on_the_last() {
        use image::AnimationDecoder as _;
        let frames = vec![frame(0), frame(3), frame(6)];
        let delays = [100, 100, 2000];
        let gif = gif_bytes(&frames, &delays).unwrap();
        let decoded = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(&gif))
            .unwrap()
            .into_frames()
            .collect_frames()
            .unwrap();
        assert_eq!(decoded.len(), 3);
        let last = decoded[2].buffer();
        assert_eq!(
            last.dimensions(),
            (40, 30),
            "frames are composited to the full size"
        );
        assert_eq!(
            last.get_pixel(12, 12)[0],
            250,
            "the last frame shows the moved square"
        );
        assert!(last.get_pixel(5, 12)[0] < 60, "and not where it started");
        let apng = apng_bytes(&frames, &delays).unwrap();
        let decoded = image::codecs::png::PngDecoder::new(std::io::Cursor::new(&apng))
            .unwrap()
            .apng()
            .unwrap()
            .into_frames()
            .collect_frames()
            .unwrap();
        assert_eq!(decoded.len(), 3);
        assert_eq!(decoded[2].buffer(), &frames[2], "full colour, exact");
    }
}
