//! Comparing rote's per-sample estimates with another implementation's on the same zoo
//! (`rote memorization --compare FILE.npy`): Pearson's r and Spearman's rho over the rows both
//! estimate, the figures `docs/fidelity.md` reports against the official Feldman–Zhang script.

use std::path::Path;

use crate::error::{CoreError, CoreResult};

/// How two per-row vectors agree.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Agreement {
    /// The other vector's file.
    pub file: String,
    /// Rows compared (finite in both, among the rows asked for).
    pub n: usize,
    /// Pearson's correlation coefficient.
    pub pearson: f64,
    /// Spearman's rank correlation (average ranks for ties).
    pub spearman: f64,
    /// Mean of ours and of theirs over the compared rows.
    pub mean_ours: f64,
    /// Mean of the other vector over the compared rows.
    pub mean_theirs: f64,
    /// Mean absolute difference.
    pub mean_abs_diff: f64,
}

/// Reads a 1-D NPY vector of `n` values (one per data-set row; NaN for rows it does not
/// estimate) and compares it with `ours` on `rows`.
pub fn compare_with_file(path: &Path, ours: &[f32], rows: &[usize]) -> CoreResult<Agreement> {
    let bytes = std::fs::read(path).map_err(|e| CoreError::io(path, e))?;
    let theirs = crate::data::parse_npy_vector(path, &bytes)?;
    if theirs.len() != ours.len() {
        return Err(CoreError::format(
            path,
            format!(
                "holds {} values, but the zoo's data set has {} rows (one value per row is needed)",
                theirs.len(),
                ours.len()
            ),
        ));
    }
    let (a, b): (Vec<f64>, Vec<f64>) = rows
        .iter()
        .map(|&i| (f64::from(ours[i]), theirs[i]))
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .unzip();
    if a.len() < 3 {
        return Err(CoreError::format(
            path,
            format!("only {} rows have a finite value in both estimates", a.len()),
        ));
    }
    let n = a.len() as f64;
    Ok(Agreement {
        file: path.display().to_string(),
        n: a.len(),
        pearson: pearson(&a, &b),
        spearman: pearson(&ranks(&a), &ranks(&b)),
        mean_ours: a.iter().sum::<f64>() / n,
        mean_theirs: b.iter().sum::<f64>() / n,
        mean_abs_diff: a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum::<f64>() / n,
    })
}

/// Pearson's r of two equally long vectors (NaN when either is constant).
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    sab / (saa * sbb).sqrt()
}

/// Ranks from 1, ties given their average rank.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
    let mut r = vec![0.0; v.len()];
    let mut lo = 0;
    while lo < order.len() {
        let mut hi = lo + 1;
        while hi < order.len() && v[order[hi]] == v[order[lo]] {
            hi += 1;
        }
        let avg = (lo + hi + 1) as f64 / 2.0;
        for &i in &order[lo..hi] {
            r[i] = avg;
        }
        lo = hi;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlations_of_known_vectors() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert!((pearson(&a, &[2.0, 4.0, 6.0, 8.0]) - 1.0).abs() < 1e-12);
        assert!((pearson(&a, &[4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        // scipy.stats.pearsonr([1,2,3,4],[1,3,2,4]) = 0.8
        assert!((pearson(&a, &[1.0, 3.0, 2.0, 4.0]) - 0.8).abs() < 1e-12);
        assert_eq!(ranks(&[10.0, 20.0, 20.0, 5.0]), vec![2.0, 3.5, 3.5, 1.0]);
        assert!(pearson(&a, &[1.0; 4]).is_nan());
    }

    #[test]
    fn a_file_of_the_wrong_length_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mem.npy");
        let data: Vec<u8> = [0.5f32, 0.25].iter().flat_map(|v| v.to_le_bytes()).collect();
        let bytes = crate::data::npy_bytes("<f4", &[2], &data);
        std::fs::write(&p, &bytes).unwrap();
        let e = compare_with_file(&p, &[0.1, 0.2, 0.3], &[0, 1, 2])
            .unwrap_err()
            .to_string();
        assert!(e.contains("mem.npy") && e.contains("holds 2 values"), "{e}");
    }
}
