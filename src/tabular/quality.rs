//! The quality of synthetic rows next to real ones: per-column marginal fidelity (synthcity's and
//! SDMetrics' "column shapes": 1 − Kolmogorov–Smirnov statistic for numbers, 1 − total-variation
//! distance for categories), the correlation difference (mean absolute change of the pairwise
//! associations of [`association_matrix`], the measures TabCutMixPlus clusters on), and machine
//! learning efficacy: train on synthetic, test on real (TSTR) with a multinomial logistic
//! regression. Fang et al., *Unveiling Memorization in Diffusion Models for Tabular Data*
//! (arXiv:2412.11044, code github.com/fangzy96/TabCutMix) report these alongside the memorization
//! ratio to show that TabCutMix lowers memorization without hurting quality.
//!
//! The train-on-real baseline (TRTR) is [`tstr_accuracy`] called with real training rows.

use rayon::prelude::*;

use super::augment::association_matrix;
use super::table::{ColumnRef, MixedTable};
use crate::data::tabular::ColumnKind;

/// How closely one column's synthetic marginal follows the real one.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ColumnFidelity {
    /// The column's name.
    pub name: String,
    /// Numeric (compared by KS) or categorical (by total variation).
    pub kind: ColumnKind,
    /// 1 − KS statistic or 1 − total-variation distance, in [0, 1]; 1 is a perfect match.
    pub fidelity: f64,
}

/// Marginal and pairwise quality of a synthetic table against the real one.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Quality {
    /// Mean column fidelity over all columns, the target included.
    pub marginal_fidelity: f64,
    /// Each column's fidelity, in the original column order.
    pub columns: Vec<ColumnFidelity>,
    /// Mean over off-diagonal column pairs of |association(real) − association(synthetic)|.
    pub correlation_difference: f64,
}

/// The two-sample Kolmogorov–Smirnov statistic sup |F_a − F_b|, exact over the sorted values
/// (ties step both empirical CDFs together). 1 when exactly one sample is empty, 0 when both are.
pub(crate) fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return 0.0,
        (true, false) | (false, true) => return 1.0,
        _ => {}
    }
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let v = if a[i].total_cmp(&b[j]).is_le() { a[i] } else { b[j] };
        while i < a.len() && a[i].total_cmp(&v).is_le() {
            i += 1;
        }
        while j < b.len() && b[j].total_cmp(&v).is_le() {
            j += 1;
        }
        d = d.max((i as f64 / na - j as f64 / nb).abs());
    }
    d
}

/// Total-variation distance ½ Σ |p − q| between the level frequencies of two code columns.
/// 1 when exactly one is empty, 0 when both are.
pub(crate) fn total_variation(a: &[u32], b: &[u32]) -> f64 {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return 0.0,
        (true, false) | (false, true) => return 1.0,
        _ => {}
    }
    let width = a.iter().chain(b).map(|&c| c as usize + 1).max().unwrap_or(0);
    let mut p = vec![0.0f64; width];
    for &c in a {
        p[c as usize] += 1.0 / a.len() as f64;
    }
    for &c in b {
        p[c as usize] -= 1.0 / b.len() as f64;
    }
    (0.5 * p.iter().map(|x| x.abs()).sum::<f64>()).min(1.0)
}

/// Column shapes and correlation difference of `synthetic` against `real` (same schema).
pub fn quality(real: &MixedTable, synthetic: &MixedTable) -> Quality {
    let schema = &real.schema;
    let columns: Vec<ColumnFidelity> = schema
        .order
        .iter()
        .map(|&c| {
            let (kind, distance) = match c {
                ColumnRef::Num(k) => {
                    let col =
                        |t: &MixedTable| -> Vec<f64> { (0..t.n_rows()).map(|i| t.num_row(i)[k]).collect() };
                    (ColumnKind::Numeric, ks_statistic(&col(real), &col(synthetic)))
                }
                ColumnRef::Cat(k) => {
                    let col =
                        |t: &MixedTable| -> Vec<u32> { (0..t.n_rows()).map(|i| t.cat_row(i)[k]).collect() };
                    (
                        ColumnKind::Categorical,
                        total_variation(&col(real), &col(synthetic)),
                    )
                }
            };
            ColumnFidelity {
                name: schema.name(c).to_string(),
                kind,
                fidelity: 1.0 - distance,
            }
        })
        .collect();
    let marginal_fidelity = if columns.is_empty() {
        1.0
    } else {
        columns.iter().map(|c| c.fidelity).sum::<f64>() / columns.len() as f64
    };
    let (cols, a_real) = association_matrix(real);
    let (_, a_syn) = association_matrix(synthetic);
    let m = cols.len();
    let correlation_difference = if m < 2 {
        0.0
    } else {
        let mut sum = 0.0;
        for i in 0..m {
            for j in i + 1..m {
                sum += (a_real[i * m + j] - a_syn[i * m + j]).abs();
            }
        }
        sum / (m * (m - 1) / 2) as f64
    };
    Quality {
        marginal_fidelity,
        columns,
        correlation_difference,
    }
}

/// Gradient steps of the logistic regression.
const ITERATIONS: usize = 250;
/// Adam's step size.
const LEARNING_RATE: f64 = 0.05;
/// L2 penalty on the weights (not the biases).
const L2: f64 = 1e-4;
/// Rows per parallel gradient chunk (fixed, so the summation order and the result are
/// deterministic whatever the thread count).
const CHUNK: usize = 1024;

/// The design of the logistic regression, fitted on the training table: numeric columns
/// standardised with the training mean and standard deviation, every other categorical column
/// one-hot (stored as the index of its active unit).
struct Encoder {
    mean: Vec<f64>,
    std: Vec<f64>,
    /// (categorical column, offset of its first one-hot unit).
    onehot: Vec<(usize, usize)>,
    /// Width of each one-hot block.
    widths: Vec<usize>,
    dim: usize,
}

/// One encoded row: the standardised numbers and the active one-hot units.
struct Row {
    num: Vec<f64>,
    hot: Vec<usize>,
    label: usize,
}

impl Encoder {
    fn fit(train: &MixedTable) -> Self {
        let s = &train.schema;
        let n = train.n_rows();
        let mut mean = vec![0.0; s.n_num()];
        let mut std = vec![1.0; s.n_num()];
        for k in 0..s.n_num() {
            if n == 0 {
                break;
            }
            let m = (0..n).map(|i| train.num_row(i)[k]).sum::<f64>() / n as f64;
            let var = (0..n).map(|i| (train.num_row(i)[k] - m).powi(2)).sum::<f64>() / n as f64;
            mean[k] = m;
            std[k] = if var > 0.0 { var.sqrt() } else { 1.0 };
        }
        let mut onehot = Vec::new();
        let mut widths = Vec::new();
        let mut dim = s.n_num();
        for k in (0..s.n_cat()).filter(|&k| k != s.target) {
            onehot.push((k, dim));
            widths.push(s.levels[k].len());
            dim += s.levels[k].len();
        }
        Self {
            mean,
            std,
            onehot,
            widths,
            dim,
        }
    }

    fn encode(&self, t: &MixedTable, target: usize) -> Vec<Row> {
        (0..t.n_rows())
            .map(|i| Row {
                num: (t.num_row(i).iter().zip(&self.mean).zip(&self.std))
                    .map(|((x, m), s)| (x - m) / s)
                    .collect(),
                hot: (self.onehot.iter().zip(&self.widths))
                    .filter_map(|(&(k, off), &w)| {
                        let code = t.cat_row(i)[k] as usize;
                        (code < w).then_some(off + code)
                    })
                    .collect(),
                label: t.cat_row(i)[target] as usize,
            })
            .collect()
    }
}

/// Class scores `b + W x` of one row; `w` is `classes x dim`, row-major.
fn logits(w: &[f64], b: &[f64], dim: usize, row: &Row, out: &mut [f64]) {
    for (c, o) in out.iter_mut().enumerate() {
        let wc = &w[c * dim..(c + 1) * dim];
        let mut z = b[c];
        for (x, wk) in row.num.iter().zip(wc) {
            z += x * wk;
        }
        for &h in &row.hot {
            z += wc[h];
        }
        *o = z;
    }
}

/// The summed cross-entropy gradient of a chunk of rows: `classes x dim` weights, then biases.
fn chunk_gradient(w: &[f64], b: &[f64], dim: usize, rows: &[Row]) -> Vec<f64> {
    let classes = b.len();
    let mut g = vec![0.0; classes * dim + classes];
    let mut p = vec![0.0; classes];
    for row in rows {
        logits(w, b, dim, row, &mut p);
        let max = p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut z = 0.0;
        for v in &mut p {
            *v = (*v - max).exp();
            z += *v;
        }
        for (c, &pc) in p.iter().enumerate() {
            let err = pc / z - if c == row.label { 1.0 } else { 0.0 };
            let gc = &mut g[c * dim..(c + 1) * dim];
            for (gk, x) in gc.iter_mut().zip(&row.num) {
                *gk += err * x;
            }
            for &h in &row.hot {
                gc[h] += err;
            }
            g[classes * dim + c] += err;
        }
    }
    g
}

/// Train-on-`train`, test-on-`test` accuracy of a multinomial logistic regression predicting the
/// target column from all other columns (numbers standardised with `train`'s mean and standard
/// deviation, a constant column's deviation taken as 1; other categorical columns one-hot). Fit by
/// full-batch Adam from zero weights for a fixed number of steps with a small L2 penalty, so the
/// result is deterministic; `_seed` is accepted for symmetry with the other fitted steps and does
/// not change it. A label level missing from `train` is simply never predicted well; an empty
/// `test` gives 0.
///
/// TRTR, the real-data baseline, is this function with real training rows as `train`.
pub fn tstr_accuracy(train: &MixedTable, test: &MixedTable, _seed: u64) -> f64 {
    let target = train.schema.target;
    let classes = train.schema.levels[target].len().max(
        train
            .labels()
            .iter()
            .chain(&test.labels())
            .map(|&l| l as usize + 1)
            .max()
            .unwrap_or(1),
    );
    let enc = Encoder::fit(train);
    let dim = enc.dim;
    let rows = enc.encode(train, target);
    let mut params = vec![0.0; classes * dim + classes];
    if !rows.is_empty() {
        let (mut m1, mut m2) = (vec![0.0; params.len()], vec![0.0; params.len()]);
        let (beta1, beta2, eps) = (0.9f64, 0.999f64, 1e-8);
        let n = rows.len() as f64;
        for step in 1..=ITERATIONS {
            let (w, b) = params.split_at(classes * dim);
            let parts: Vec<Vec<f64>> = rows
                .par_chunks(CHUNK)
                .map(|chunk| chunk_gradient(w, b, dim, chunk))
                .collect();
            let mut grad = vec![0.0; params.len()];
            for part in &parts {
                for (g, v) in grad.iter_mut().zip(part) {
                    *g += v;
                }
            }
            let t = step as i32;
            for (k, g) in grad.iter_mut().enumerate() {
                *g /= n;
                if k < classes * dim {
                    *g += L2 * params[k];
                }
                m1[k] = beta1 * m1[k] + (1.0 - beta1) * *g;
                m2[k] = beta2 * m2[k] + (1.0 - beta2) * *g * *g;
                let mh = m1[k] / (1.0 - beta1.powi(t));
                let vh = m2[k] / (1.0 - beta2.powi(t));
                params[k] -= LEARNING_RATE * mh / (vh.sqrt() + eps);
            }
        }
    }
    let test_rows = enc.encode(test, target);
    if test_rows.is_empty() {
        return 0.0;
    }
    let (w, b) = params.split_at(classes * dim);
    let correct: usize = test_rows
        .par_iter()
        .map(|row| {
            let mut z = vec![0.0; classes];
            logits(w, b, dim, row, &mut z);
            let pred = z
                .iter()
                .enumerate()
                .fold(
                    (0, f64::NEG_INFINITY),
                    |best, (c, &v)| {
                        if v > best.1 { (c, v) } else { best }
                    },
                )
                .0;
            usize::from(pred == row.label)
        })
        .sum();
    correct as f64 / test_rows.len() as f64
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::tabular::augment::tests::{normals, table};
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::StandardNormal;

    /// x, y = x + small noise, cat = [x > 0] as the target, another cat = [y > 0.5].
    fn associated(n: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<Vec<u32>>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = normals(&mut rng, n);
        let y: Vec<f64> = x
            .iter()
            .map(|v| v + 0.2 * rng.sample::<f64, _>(StandardNormal))
            .collect();
        let label: Vec<u32> = x.iter().map(|&v| u32::from(v > 0.0)).collect();
        let c: Vec<u32> = y.iter().map(|&v| u32::from(v > 0.5)).collect();
        (vec![x, y], vec![label, c])
    }

    #[test]
    fn ks_and_total_variation_on_small_samples() {
        assert!((ks_statistic(&[1.0, 2.0, 3.0], &[2.0, 3.0, 4.0]) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(ks_statistic(&[1.0, 1.0, 2.0], &[2.0, 1.0, 1.0]), 0.0);
        assert_eq!(ks_statistic(&[0.0, 1.0], &[5.0, 6.0]), 1.0);
        assert!((total_variation(&[0, 0, 1, 1], &[0, 1, 1, 1]) - 0.25).abs() < 1e-12);
        assert_eq!(total_variation(&[0, 1], &[1, 0]), 0.0);
    }

    #[test]
    fn real_against_itself_is_perfect() {
        let (nums, cats) = associated(400, 1);
        let t = table(&nums, &cats, 0);
        let q = quality(&t, &t);
        assert_eq!(q.marginal_fidelity, 1.0);
        assert_eq!(q.correlation_difference, 0.0);
        assert_eq!(q.columns.len(), 4);
        assert_eq!(q.columns[0].kind, ColumnKind::Numeric);
        assert_eq!(q.columns[3].kind, ColumnKind::Categorical);
        assert!(q.columns.iter().all(|c| c.fidelity == 1.0));
        let json = serde_json::to_string(&q).unwrap();
        assert_eq!(serde_json::from_str::<Quality>(&json).unwrap(), q);
    }

    #[test]
    fn shifted_column_loses_fidelity() {
        let (nums, cats) = associated(500, 2);
        let real = table(&nums, &cats, 0);
        let mut shifted = nums.clone();
        let sd = {
            let m = nums[1].iter().sum::<f64>() / 500.0;
            (nums[1].iter().map(|v| (v - m).powi(2)).sum::<f64>() / 500.0).sqrt()
        };
        shifted[1].iter_mut().for_each(|v| *v += 3.0 * sd);
        let q = quality(&real, &table(&shifted, &cats, 0));
        assert!(q.columns[1].fidelity < 0.5, "{:?}", q.columns[1]);
        assert_eq!(q.columns[0].fidelity, 1.0);
        assert!(q.marginal_fidelity < 0.9);
    }

    #[test]
    fn shuffled_columns_keep_marginals_but_lose_associations() {
        let (nums, cats) = associated(1000, 3);
        let real = table(&nums, &cats, 0);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let (mut sn, mut sc) = (nums.clone(), cats.clone());
        sn.iter_mut().for_each(|c| c.shuffle(&mut rng));
        sc.iter_mut().for_each(|c| c.shuffle(&mut rng));
        let q = quality(&real, &table(&sn, &sc, 0));
        assert!(q.marginal_fidelity > 0.999);
        assert!(q.correlation_difference > 0.1, "{}", q.correlation_difference);
    }

    #[test]
    fn tstr_learns_a_planted_rule() {
        let (nums, cats) = associated(3000, 5);
        let all = table(&nums, &cats, 0);
        let train = all.subset(&(0..2000).collect::<Vec<_>>());
        let test = all.subset(&(2000..3000).collect::<Vec<_>>());
        let acc = tstr_accuracy(&train, &test, 0);
        assert!(acc > 0.95, "{acc}");
        assert_eq!(acc, tstr_accuracy(&train, &test, 1));
    }

    #[test]
    fn tstr_on_independent_labels_stays_near_the_majority_rate() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let n = 3000;
        let nums = vec![normals(&mut rng, n), normals(&mut rng, n)];
        let label: Vec<u32> = (0..n).map(|_| u32::from(rng.random::<f64>() < 0.3)).collect();
        let other: Vec<u32> = (0..n).map(|_| rng.random_range(0..4)).collect();
        let all = table(&nums, &[other, label], 1);
        let train = all.subset(&(0..2000).collect::<Vec<_>>());
        let test = all.subset(&(2000..n).collect::<Vec<_>>());
        let majority = test.labels().iter().filter(|&&l| l == 0).count() as f64 / 1000.0;
        let acc = tstr_accuracy(&train, &test, 0);
        assert!((acc - majority).abs() < 0.05, "acc {acc}, majority {majority}");
    }

    #[test]
    fn label_level_absent_from_training_does_not_panic() {
        let (nums, mut cats) = associated(300, 7);
        cats[0][299] = 2;
        let all = table(&nums, &cats, 0);
        let train = all.subset(&(0..200).collect::<Vec<_>>());
        let test = all.subset(&(200..300).collect::<Vec<_>>());
        let acc = tstr_accuracy(&train, &test, 0);
        assert!(acc > 0.8 && acc < 1.0, "{acc}");
        assert_eq!(
            tstr_accuracy(&train, &MixedTable::empty(all.schema.clone()), 0),
            0.0
        );
    }
}
