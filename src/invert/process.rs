//! The PROCESS step of MI-FACE (Fredrikson et al. 2015): the paper denoises and sharpens each
//! iterate of its DAE target. Here: non-local-means denoising (Buades, Coll, Morel 2005; OpenCV's
//! fastNlMeans parameters h, template and search window) followed by an unsharp mask, or a
//! Gaussian blur. Planes are processed independently; borders are clamped.

use super::Process;
use super::metrics::gaussian_kernel;

/// Applies `step` in place to one image of shape `[c, h, w]` (values in [0, 1]).
pub fn apply(img: &mut [f32], shape: [usize; 3], step: Process) {
    let [c, h, w] = shape;
    for plane in img.chunks_exact_mut(h * w).take(c) {
        match step {
            Process::None => {}
            Process::Blur { sigma } => {
                let b = blur(plane, h, w, sigma);
                plane.copy_from_slice(&b);
            }
            Process::DenoiseSharpen {
                h: strength,
                template,
                search,
                amount,
            } => {
                let d = nl_means(plane, h, w, strength, template, search);
                let b = blur(&d, h, w, 1.0);
                for ((p, dv), bv) in plane.iter_mut().zip(&d).zip(&b) {
                    *p = dv + amount * (dv - bv);
                }
            }
        }
    }
}

fn at(p: &[f32], h: usize, w: usize, y: isize, x: isize) -> f32 {
    let y = y.clamp(0, h as isize - 1) as usize;
    let x = x.clamp(0, w as isize - 1) as usize;
    p[y * w + x]
}

/// Gaussian blur of an `h` x `w` plane (separable, clamped borders).
pub fn blur(p: &[f32], h: usize, w: usize, sigma: f32) -> Vec<f32> {
    let radius = (3.0 * sigma.max(0.1)).ceil() as isize;
    let k = gaussian_kernel((2 * radius + 1) as usize, f64::from(sigma.max(0.1)));
    let mut rows = vec![0f32; h * w];
    for y in 0..h {
        for x in 0..w {
            rows[y * w + x] = k
                .iter()
                .enumerate()
                .map(|(t, kv)| *kv as f32 * at(p, h, w, y as isize, x as isize + t as isize - radius))
                .sum();
        }
    }
    let mut out = vec![0f32; h * w];
    for y in 0..h {
        for x in 0..w {
            out[y * w + x] = k
                .iter()
                .enumerate()
                .map(|(t, kv)| *kv as f32 * at(&rows, h, w, y as isize + t as isize - radius, x as isize))
                .sum();
        }
    }
    out
}

/// Non-local means: each pixel becomes the average of the pixels in its search window, weighted
/// by exp(-d^2 / h^2) with d^2 the mean squared difference (grey levels 0..255) of the patches.
pub fn nl_means(p: &[f32], h: usize, w: usize, strength: f32, template: usize, search: usize) -> Vec<f32> {
    let tr = (template / 2) as isize;
    let sr = (search / 2) as isize;
    let h2 = (strength.max(1e-3)).powi(2);
    let n_patch = ((2 * tr + 1) * (2 * tr + 1)) as f32;
    let mut out = vec![0f32; h * w];
    for y in 0..h as isize {
        for x in 0..w as isize {
            let (mut num, mut den) = (0f32, 0f32);
            for dy in -sr..=sr {
                for dx in -sr..=sr {
                    let mut d2 = 0f32;
                    for ty in -tr..=tr {
                        for tx in -tr..=tr {
                            let a = at(p, h, w, y + ty, x + tx);
                            let b = at(p, h, w, y + dy + ty, x + dx + tx);
                            d2 += (255.0 * (a - b)).powi(2);
                        }
                    }
                    let wgt = (-(d2 / n_patch) / h2).exp();
                    num += wgt * at(p, h, w, y + dy, x + dx);
                    den += wgt;
                }
            }
            out[(y as usize) * w + x as usize] = num / den.max(1e-12);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processing_keeps_flat_images_and_denoising_reduces_noise() {
        let mut flat = vec![0.4f32; 36];
        apply(
            &mut flat,
            [1, 6, 6],
            Process::DenoiseSharpen {
                h: 10.0,
                template: 3,
                search: 5,
                amount: 0.5,
            },
        );
        assert!(flat.iter().all(|v| (v - 0.4).abs() < 1e-5));
        // Pseudo-random noise around 0.5: denoising shrinks the mean deviation.
        let noisy: Vec<f32> = (0..64u32)
            .map(|i| 0.5 + ((i.wrapping_mul(2_654_435_761) % 1000) as f32 / 1000.0 - 0.5) * 0.1)
            .collect();
        let d = nl_means(&noisy, 8, 8, 100.0, 3, 5);
        let dev = |v: &[f32]| v.iter().map(|x| (x - 0.5).abs()).sum::<f32>() / v.len() as f32;
        assert!(dev(&d) < dev(&noisy) * 0.5, "{} vs {}", dev(&d), dev(&noisy));
    }
}
