//! Image similarity on plain pixel buffers (C x H x W, values in [0, 1]).
//!
//! SSIM follows Wang, Bovik, Sheikh, Simoncelli, *Image Quality Assessment: From Error Visibility
//! to Structural Similarity*, IEEE TIP 13(4), 2004: an 11x11 circular-symmetric Gaussian window
//! with sigma 1.5, K1 = 0.01, K2 = 0.03, dynamic range L = 1, local statistics at every position
//! where the window fits ("valid"), and the mean over positions (MSSIM), averaged over channels.
//! Images smaller than the window use a window as large as fits (odd).

/// Euclidean (l2) distance between two images.
pub fn l2(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = f64::from(x) - f64::from(y);
            d * d
        })
        .sum::<f64>()
        .sqrt()
}

/// Normalised 1-D Gaussian of `size` taps.
pub fn gaussian_kernel(size: usize, sigma: f64) -> Vec<f64> {
    let c = (size as f64 - 1.0) / 2.0;
    let k: Vec<f64> = (0..size)
        .map(|i| (-((i as f64 - c).powi(2)) / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f64 = k.iter().sum();
    k.into_iter().map(|v| v / s).collect()
}

/// Separable filtering of an `h` x `w` plane with kernel `k`, valid positions only.
fn filter_valid(img: &[f64], h: usize, w: usize, k: &[f64]) -> (Vec<f64>, usize, usize) {
    let n = k.len();
    let (oh, ow) = (h + 1 - n, w + 1 - n);
    let mut rows = vec![0.0; h * ow];
    for y in 0..h {
        for x in 0..ow {
            rows[y * ow + x] = k.iter().enumerate().map(|(t, kv)| kv * img[y * w + x + t]).sum();
        }
    }
    let mut out = vec![0.0; oh * ow];
    for y in 0..oh {
        for x in 0..ow {
            out[y * ow + x] = k
                .iter()
                .enumerate()
                .map(|(t, kv)| kv * rows[(y + t) * ow + x])
                .sum();
        }
    }
    (out, oh, ow)
}

/// Mean SSIM of two images of shape `[c, h, w]` (1 for identical images).
pub fn ssim(a: &[f32], b: &[f32], shape: [usize; 3]) -> f64 {
    let [c, h, w] = shape;
    let mut size = 11.min(h).min(w);
    if size.is_multiple_of(2) {
        size = size.saturating_sub(1);
    }
    if size == 0 || a.len() != c * h * w || b.len() != a.len() {
        return f64::NAN;
    }
    let k = gaussian_kernel(size, 1.5);
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let mut total = 0.0;
    for ch in 0..c {
        let pa: Vec<f64> = a[ch * h * w..(ch + 1) * h * w]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let pb: Vec<f64> = b[ch * h * w..(ch + 1) * h * w]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let prod = |x: &[f64], y: &[f64]| -> Vec<f64> { x.iter().zip(y).map(|(p, q)| p * q).collect() };
        let (mu_a, _, _) = filter_valid(&pa, h, w, &k);
        let (mu_b, _, _) = filter_valid(&pb, h, w, &k);
        let (aa, _, _) = filter_valid(&prod(&pa, &pa), h, w, &k);
        let (bb, _, _) = filter_valid(&prod(&pb, &pb), h, w, &k);
        let (ab, oh, ow) = filter_valid(&prod(&pa, &pb), h, w, &k);
        let mut sum = 0.0;
        for i in 0..oh * ow {
            let (ma, mb) = (mu_a[i], mu_b[i]);
            let (va, vb, cov) = (aa[i] - ma * ma, bb[i] - mb * mb, ab[i] - ma * mb);
            sum += ((2.0 * ma * mb + c1) * (2.0 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2));
        }
        total += sum / (oh * ow) as f64;
    }
    total / c as f64
}

/// TV_beta of an image: the sum over channels and over cells (i < h-1, j < w-1) of
/// `((x[i][j+1] - x[i][j])^2 + (x[i+1][j] - x[i][j])^2)^(beta/2)`.
pub fn total_variation(img: &[f32], shape: [usize; 3], beta: f64) -> f64 {
    let [c, h, w] = shape;
    let mut s = 0.0;
    for ch in 0..c {
        let p = &img[ch * h * w..(ch + 1) * h * w];
        for i in 0..h.saturating_sub(1) {
            for j in 0..w.saturating_sub(1) {
                let x = f64::from(p[i * w + j]);
                let dx = f64::from(p[i * w + j + 1]) - x;
                let dy = f64::from(p[(i + 1) * w + j]) - x;
                s += (dx * dx + dy * dy).powf(beta / 2.0);
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(h: usize, w: usize, phase: usize) -> Vec<f32> {
        (0..h * w)
            .map(|i| (((i * 7 + phase) % 13) as f32) / 12.0)
            .collect()
    }

    #[test]
    fn ssim_is_one_for_identical_images_and_matches_the_constant_image_formula() {
        let a = pattern(20, 17, 0);
        assert!((ssim(&a, &a, [1, 20, 17]) - 1.0).abs() < 1e-12);
        // Constant images: sigma = 0, so SSIM = (2 m1 m2 + C1) / (m1^2 + m2^2 + C1).
        let (m1, m2) = (0.2f32, 0.6f32);
        let s = ssim(&vec![m1; 16 * 16], &vec![m2; 16 * 16], [1, 16, 16]);
        let (m1, m2) = (f64::from(m1), f64::from(m2));
        let expect = (2.0 * m1 * m2 + 1e-4) / (m1 * m1 + m2 * m2 + 1e-4);
        assert!((s - expect).abs() < 1e-6, "{s} vs {expect}");
        // An inverted image is anti-correlated: SSIM < 0; an unrelated pattern scores below 1.
        let inv: Vec<f32> = a.iter().map(|v| 1.0 - v).collect();
        assert!(ssim(&a, &inv, [1, 20, 17]) < 0.0);
        let b = pattern(20, 17, 5);
        let s = ssim(&a, &b, [1, 20, 17]);
        assert!(s < 0.9 && s == ssim(&b, &a, [1, 20, 17]), "{s}");
    }

    #[test]
    fn l2_and_gaussian_kernel() {
        assert!((l2(&[0.0, 3.0], &[4.0, 0.0]) - 5.0).abs() < 1e-12);
        let k = gaussian_kernel(11, 1.5);
        assert!((k.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((k[0] - k[10]).abs() < 1e-15 && k[5] > k[4]);
    }
}
