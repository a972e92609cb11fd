//! Seeded SimCLR-style augmentations on plain CPU buffers (images as f32 in [0, 1], C x H x W):
//! random resized crop (bilinear, zero outside the image) with a small extra translation,
//! optional horizontal flip, and brightness/contrast jitter. Every draw comes from a ChaCha stream
//! keyed by (seed, sample id, epoch, view), so f and g see identical views of a shared sample, and
//! a measurement sees identical views in both encoders (the spec's pitfall: seed per (x, j)).

use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

/// Strength of the augmentations (recorded in the encoder card; measurements reuse it).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AugConfig {
    /// Area fraction range of the random resized crop.
    pub crop_scale: [f32; 2],
    /// Aspect-ratio range of the crop (width / height), sampled log-uniformly.
    pub crop_ratio: [f32; 2],
    /// Extra translation of the crop window, uniform in +- this many output pixels.
    pub max_shift: f32,
    /// Horizontal flip with probability 0.5 (off for digits).
    pub flip: bool,
    /// Probability of applying the brightness/contrast jitter.
    pub jitter_p: f32,
    /// Brightness factor drawn from [1 - b, 1 + b].
    pub brightness: f32,
    /// Contrast factor drawn from [1 - c, 1 + c] (around the image mean).
    pub contrast: f32,
}

impl Default for AugConfig {
    fn default() -> Self {
        Self {
            crop_scale: [0.4, 1.0],
            crop_ratio: [0.75, 4.0 / 3.0],
            max_shift: 2.0,
            flip: false,
            jitter_p: 0.8,
            brightness: 0.4,
            contrast: 0.4,
        }
    }
}

/// What a stream of augmentation draws is for; keeps training, LayerMem and UnitMem draws apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AugPurpose {
    /// A training view (epoch, view 0 or 1).
    Train,
    /// LayerMem's j-th augmentation of a candidate.
    LayerMem,
    /// UnitMem's k-th augmentation of a candidate.
    UnitMem,
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The random stream for one augmentation: keyed by the seed, what it is for, the sample's stable
/// id, the epoch (or 0) and the view / draw number.
pub fn aug_rng(seed: u64, purpose: AugPurpose, sample_id: u64, epoch: u64, view: u64) -> ChaCha8Rng {
    let tag = match purpose {
        AugPurpose::Train => 1u64,
        AugPurpose::LayerMem => 2,
        AugPurpose::UnitMem => 3,
    };
    let mut r = ChaCha8Rng::seed_from_u64(splitmix(seed ^ splitmix(tag)));
    r.set_stream(splitmix(splitmix(splitmix(sample_id) ^ epoch) ^ view));
    r
}

/// Bilinear sample of one plane at (y, x) in pixel coordinates, zero outside.
fn bilinear(plane: &[f32], h: usize, w: usize, y: f32, x: f32) -> f32 {
    let y0 = y.floor();
    let x0 = x.floor();
    let (fy, fx) = (y - y0, x - x0);
    let at = |yy: f32, xx: f32| -> f32 {
        if yy < 0.0 || xx < 0.0 || yy >= h as f32 || xx >= w as f32 {
            0.0
        } else {
            plane[yy as usize * w + xx as usize]
        }
    };
    let top = at(y0, x0) * (1.0 - fx) + at(y0, x0 + 1.0) * fx;
    let bottom = at(y0 + 1.0, x0) * (1.0 - fx) + at(y0 + 1.0, x0 + 1.0) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// The crop window (y0, x0, height, width) in source pixels, torchvision's RandomResizedCrop
/// sampling (10 tries, then the whole image).
fn crop_window(h: usize, w: usize, cfg: &AugConfig, rng: &mut ChaCha8Rng) -> [f32; 4] {
    let area = (h * w) as f32;
    let (lr0, lr1) = (cfg.crop_ratio[0].ln(), cfg.crop_ratio[1].ln());
    for _ in 0..10 {
        let s = rng.random_range(cfg.crop_scale[0]..=cfg.crop_scale[1]);
        let r = rng.random_range(lr0..=lr1).exp();
        let cw = (s * area * r).sqrt();
        let ch = (s * area / r).sqrt();
        if cw <= w as f32 && ch <= h as f32 && cw >= 1.0 && ch >= 1.0 {
            let y0 = rng.random_range(0.0..=(h as f32 - ch));
            let x0 = rng.random_range(0.0..=(w as f32 - cw));
            return [y0, x0, ch, cw];
        }
    }
    [0.0, 0.0, h as f32, w as f32]
}

/// One augmented view of `img` (C x H x W in [0, 1]) written into `out` (same size).
pub fn augment_into(img: &[f32], shape: [usize; 3], cfg: &AugConfig, rng: &mut ChaCha8Rng, out: &mut [f32]) {
    let [c, h, w] = shape;
    let [y0, x0, ch, cw] = crop_window(h, w, cfg, rng);
    let (dy, dx) = if cfg.max_shift > 0.0 {
        (
            rng.random_range(-cfg.max_shift..=cfg.max_shift),
            rng.random_range(-cfg.max_shift..=cfg.max_shift),
        )
    } else {
        (0.0, 0.0)
    };
    let flip = cfg.flip && rng.random_bool(0.5);
    let jitter = rng.random::<f32>() < cfg.jitter_p;
    let b = 1.0 + rng.random_range(-cfg.brightness..=cfg.brightness);
    let k = 1.0 + rng.random_range(-cfg.contrast..=cfg.contrast);
    let (sy, sx) = (ch / h as f32, cw / w as f32);
    let hw = h * w;
    for ci in 0..c {
        let plane = &img[ci * hw..(ci + 1) * hw];
        let dst = &mut out[ci * hw..(ci + 1) * hw];
        for oy in 0..h {
            // Output pixel centre mapped into the crop, shifted by (dy, dx) output pixels.
            let y = y0 + (oy as f32 + 0.5 - dy) * sy - 0.5;
            for ox in 0..w {
                let oxf = if flip { (w - 1 - ox) as f32 } else { ox as f32 };
                let x = x0 + (oxf + 0.5 - dx) * sx - 0.5;
                dst[oy * w + ox] = bilinear(plane, h, w, y, x);
            }
        }
    }
    if jitter {
        let mean = out.iter().sum::<f32>() / out.len().max(1) as f32 * b;
        for v in out.iter_mut() {
            *v = ((*v * b - mean) * k + mean).clamp(0.0, 1.0);
        }
    }
}

/// One augmented view of `img` (a new buffer).
pub fn augment(img: &[f32], shape: [usize; 3], cfg: &AugConfig, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut out = vec![0.0; img.len()];
    augment_into(img, shape, cfg, rng, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digit() -> Vec<f32> {
        (0..28 * 28)
            .map(|i| if (i / 28 + i % 28) % 5 == 0 { 1.0 } else { 0.0 })
            .collect()
    }

    #[test]
    fn same_key_same_view_other_key_other_view() {
        let img = digit();
        let cfg = AugConfig::default();
        let view = |id, epoch, v| {
            augment(
                &img,
                [1, 28, 28],
                &cfg,
                &mut aug_rng(7, AugPurpose::Train, id, epoch, v),
            )
        };
        assert_eq!(view(3, 1, 0), view(3, 1, 0));
        assert_ne!(view(3, 1, 0), view(3, 1, 1));
        assert_ne!(view(3, 1, 0), view(3, 2, 0));
        assert_ne!(view(3, 1, 0), view(4, 1, 0));
        let lm = augment(
            &img,
            [1, 28, 28],
            &cfg,
            &mut aug_rng(7, AugPurpose::LayerMem, 3, 1, 0),
        );
        assert_ne!(view(3, 1, 0), lm);
        assert!(view(3, 1, 0).iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn identity_config_keeps_the_image() {
        let img = digit();
        let cfg = AugConfig {
            crop_scale: [1.0, 1.0],
            crop_ratio: [1.0, 1.0],
            max_shift: 0.0,
            flip: false,
            jitter_p: 0.0,
            brightness: 0.0,
            contrast: 0.0,
        };
        let out = augment(
            &img,
            [1, 28, 28],
            &cfg,
            &mut aug_rng(0, AugPurpose::Train, 0, 0, 0),
        );
        let diff: f32 = img.iter().zip(&out).map(|(a, b)| (a - b).abs()).sum();
        assert!(diff < 1e-4, "{diff}");
    }
}
