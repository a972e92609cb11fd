//! The statistics behind the activation probes (spec 11 §B.3): L2-regularised logistic
//! regression on standardised features, grouped cross-validation (folds by sequence, never by
//! token, with the regularisation chosen inside each training fold), the held-out metrics, and the
//! per-neuron screen (AUC and Cohen's d of each unit between the classes).
//!
//! The logistic regression minimises the mean log-loss plus `‖w‖² / (2 C n)` (scikit-learn's
//! `C Σ loss + ½‖w‖²` divided by `C n`) by Nesterov-accelerated gradient descent with step
//! `1 / L`, `L` the loss's smoothness bound from the features' largest singular value.

use rand::SeedableRng as _;
use rand::seq::SliceRandom as _;

/// Inverse regularisation strengths tried inside each training fold.
pub const C_GRID: [f64; 3] = [0.1, 1.0, 10.0];
/// Gradient steps per fit.
const STEPS: usize = 300;

/// Labelled rows of features: `x` is `n × d` row-major, `y` the class, `group` the sequence each
/// row came from.
pub struct Rows<'a> {
    /// Features.
    pub x: &'a [f32],
    /// Width.
    pub d: usize,
    /// Classes (true = memorized).
    pub y: &'a [bool],
    /// Sequence of each row.
    pub group: &'a [usize],
}

impl Rows<'_> {
    fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.d..(i + 1) * self.d]
    }
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.y.len()
    }
    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
}

/// A fitted probe: weights on standardised features.
#[derive(Clone, Debug)]
pub struct Logistic {
    mean: Vec<f32>,
    scale: Vec<f32>,
    w: Vec<f32>,
    b: f32,
    /// The C it was fitted with.
    pub c: f64,
}

impl Logistic {
    /// P(memorized) of one row of raw features.
    pub fn prob(&self, row: &[f32]) -> f64 {
        let z: f32 = row
            .iter()
            .zip(&self.mean)
            .zip(&self.scale)
            .zip(&self.w)
            .map(|(((v, m), s), w)| (v - m) / s * w)
            .sum::<f32>()
            + self.b;
        sigmoid(f64::from(z))
    }

    /// The probe's direction in raw activation space (`w / scale`), unnormalised.
    pub fn raw_direction(&self) -> Vec<f32> {
        self.w.iter().zip(&self.scale).map(|(w, s)| w / s).collect()
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Fits a logistic probe on `rows.x[idx]` with inverse regularisation `c`.
pub fn fit(rows: &Rows<'_>, idx: &[usize], c: f64) -> Logistic {
    let d = rows.d;
    let n = idx.len().max(1);
    let mut mean = vec![0f64; d];
    let mut sq = vec![0f64; d];
    for &i in idx {
        for (j, &v) in rows.row(i).iter().enumerate() {
            mean[j] += f64::from(v);
            sq[j] += f64::from(v) * f64::from(v);
        }
    }
    let mean: Vec<f32> = mean.iter().map(|m| (m / n as f64) as f32).collect();
    let scale: Vec<f32> = sq
        .iter()
        .zip(&mean)
        .map(|(s, &m)| {
            let var = s / n as f64 - f64::from(m) * f64::from(m);
            if var > 1e-12 { var.sqrt() as f32 } else { 1.0 }
        })
        .collect();
    let z: Vec<f32> = idx
        .iter()
        .flat_map(|&i| {
            rows.row(i)
                .iter()
                .zip(&mean)
                .zip(&scale)
                .map(|((v, m), s)| (v - m) / s)
        })
        .collect();
    let y: Vec<f32> = idx.iter().map(|&i| f32::from(u8::from(rows.y[i]))).collect();
    let lambda = 1.0 / (c * n as f64);
    // Smoothness: σ_max(Z)² / (4 n) + λ (+ the intercept's column of ones).
    let sigma2 = top_singular_sq(&z, d, n);
    let lip = (sigma2 + n as f64) / (4.0 * n as f64) + lambda;
    let step = (1.0 / lip) as f32;
    let lambda = lambda as f32;
    let (mut w, mut b) = (vec![0f32; d], 0f32);
    let (mut v, mut vb) = (w.clone(), b);
    let mut t = 1f32;
    let mut grad = vec![0f32; d];
    for _ in 0..STEPS {
        grad.iter_mut().for_each(|g| *g = 0.0);
        let mut gb = 0f32;
        for (r, &yi) in z.chunks_exact(d).zip(&y) {
            let s: f32 = r.iter().zip(&v).map(|(a, b)| a * b).sum::<f32>() + vb;
            let e = (sigmoid(f64::from(s)) as f32 - yi) / n as f32;
            gb += e;
            grad.iter_mut().zip(r).for_each(|(g, a)| *g += e * a);
        }
        let t_next = (1.0 + (1.0 + 4.0 * t * t).sqrt()) / 2.0;
        let momentum = (t - 1.0) / t_next;
        for j in 0..d {
            let w_next = v[j] - step * (grad[j] + lambda * v[j]);
            v[j] = w_next + momentum * (w_next - w[j]);
            w[j] = w_next;
        }
        let b_next = vb - step * gb;
        vb = b_next + momentum * (b_next - b);
        b = b_next;
        t = t_next;
    }
    Logistic { mean, scale, w, b, c }
}

/// σ_max(Z)² of the `n × d` matrix `z` by power iteration on ZᵀZ.
fn top_singular_sq(z: &[f32], d: usize, n: usize) -> f64 {
    let mut v = vec![1.0f64 / (d as f64).sqrt(); d];
    let mut lambda = 0.0;
    for _ in 0..30 {
        let mut u = vec![0f64; d];
        for r in z.chunks_exact(d).take(n) {
            let s: f64 = r.iter().zip(&v).map(|(a, b)| f64::from(*a) * b).sum();
            u.iter_mut().zip(r).for_each(|(o, a)| *o += s * f64::from(*a));
        }
        let norm = u.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm == 0.0 {
            return 0.0;
        }
        lambda = norm;
        v = u.into_iter().map(|x| x / norm).collect();
    }
    lambda
}

/// Held-out metrics of scores against classes.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Metrics {
    /// Accuracy at probability ½.
    pub accuracy: f64,
    /// Area under the ROC curve.
    pub auc: f64,
    /// True-positive rate at a 1 % false-positive rate.
    pub tpr_at_1pct_fpr: f64,
    /// Precision at that threshold (0 when nothing passes it).
    pub precision_at_1pct_fpr: f64,
}

/// The metrics of probabilities `p` for classes `y`.
pub fn metrics(p: &[f64], y: &[bool]) -> Metrics {
    let correct = p.iter().zip(y).filter(|(p, y)| (**p >= 0.5) == **y).count();
    let neg: Vec<f64> = p.iter().zip(y).filter(|(_, y)| !**y).map(|(p, _)| *p).collect();
    let pos: Vec<f64> = p.iter().zip(y).filter(|(_, y)| **y).map(|(p, _)| *p).collect();
    let mut sorted = neg.clone();
    sorted.sort_by(|a, b| b.total_cmp(a));
    // The threshold that lets at most 1 % of negatives through (strictly above it).
    let allowed = neg.len() / 100;
    let thr = sorted.get(allowed).copied().unwrap_or(f64::NEG_INFINITY);
    let tp = pos.iter().filter(|&&s| s > thr).count();
    let fp = neg.iter().filter(|&&s| s > thr).count();
    Metrics {
        accuracy: correct as f64 / p.len().max(1) as f64,
        auc: auc(&pos, &neg),
        tpr_at_1pct_fpr: tp as f64 / pos.len().max(1) as f64,
        precision_at_1pct_fpr: if tp + fp == 0 {
            0.0
        } else {
            tp as f64 / (tp + fp) as f64
        },
    }
}

/// P(a positive scores above a negative), ties counted half.
pub fn auc(pos: &[f64], neg: &[f64]) -> f64 {
    if pos.is_empty() || neg.is_empty() {
        return 0.5;
    }
    let mut all: Vec<(f64, bool)> = pos
        .iter()
        .map(|&s| (s, true))
        .chain(neg.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Mid-ranks, then the Mann-Whitney U of the positives.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += mid * all[i..=j].iter().filter(|a| a.1).count() as f64;
        i = j + 1;
    }
    let (np, nn) = (pos.len() as f64, neg.len() as f64);
    (rank_sum - np * (np + 1.0) / 2.0) / (np * nn)
}

/// Fold of every group: groups of each class dealt round-robin in a seeded order, so every
/// fold holds both classes.
pub fn group_folds(rows: &Rows<'_>, folds: usize, seed: u64) -> Vec<usize> {
    let n_groups = rows.group.iter().max().map_or(0, |g| g + 1);
    let mut class = vec![None; n_groups];
    for (&g, &y) in rows.group.iter().zip(rows.y) {
        class[g] = Some(y);
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut fold = vec![0; n_groups];
    for want in [true, false] {
        let mut gs: Vec<usize> = (0..n_groups).filter(|&g| class[g] == Some(want)).collect();
        gs.shuffle(&mut rng);
        for (k, g) in gs.into_iter().enumerate() {
            fold[g] = k % folds.max(1);
        }
    }
    fold
}

/// Out-of-fold probe probabilities and the probe of each fold.
pub struct CrossValidated {
    /// P(memorized) of each row from the probe that did not see its sequence.
    pub oof: Vec<f64>,
    /// The probe trained without fold `k`.
    pub probes: Vec<Logistic>,
    /// The fold of each group.
    pub group_fold: Vec<usize>,
}

/// Grouped k-fold cross-validation: each fold's probe is fitted on the other folds with C chosen
/// on a grouped validation split of them.
pub fn cross_validate(rows: &Rows<'_>, folds: usize, seed: u64) -> CrossValidated {
    let group_fold = group_folds(rows, folds, seed);
    let mut oof = vec![0.5; rows.len()];
    let mut probes = Vec::with_capacity(folds);
    for k in 0..folds {
        let train: Vec<usize> = (0..rows.len())
            .filter(|&i| group_fold[rows.group[i]] != k)
            .collect();
        let c = choose_c(rows, &train, &group_fold, k, folds);
        let probe = fit(rows, &train, c);
        for i in (0..rows.len()).filter(|&i| group_fold[rows.group[i]] == k) {
            oof[i] = probe.prob(rows.row(i));
        }
        probes.push(probe);
    }
    CrossValidated {
        oof,
        probes,
        group_fold,
    }
}

/// The C of [`C_GRID`] with the best validation log-loss, validating on the training groups of
/// the next fold round (grouped, so no sequence is on both sides).
fn choose_c(rows: &Rows<'_>, train: &[usize], group_fold: &[usize], test_fold: usize, folds: usize) -> f64 {
    let val_fold = (test_fold + 1) % folds.max(1);
    let (val, fit_rows): (Vec<usize>, Vec<usize>) = train
        .iter()
        .partition(|&&i| group_fold[rows.group[i]] == val_fold);
    let has_both = |idx: &[usize]| idx.iter().any(|&i| rows.y[i]) && idx.iter().any(|&i| !rows.y[i]);
    if !has_both(&val) || !has_both(&fit_rows) {
        return 1.0;
    }
    let loss = |c: f64| {
        let p = fit(rows, &fit_rows, c);
        val.iter()
            .map(|&i| {
                let q = p.prob(rows.row(i)).clamp(1e-9, 1.0 - 1e-9);
                if rows.y[i] { -q.ln() } else { -(1.0 - q).ln() }
            })
            .sum::<f64>()
    };
    C_GRID
        .iter()
        .map(|&c| (c, loss(c)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(1.0, |(c, _)| c)
}

/// One unit's separation of the classes.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NeuronScore {
    /// Index of the unit in the activation vector.
    pub index: usize,
    /// AUC of its activation (memorized above not).
    pub auc: f64,
    /// Cohen's d: mean difference over the pooled standard deviation.
    pub cohen_d: f64,
}

/// The `top` units whose AUC is furthest from ½ (spec 11 §B.3a).
pub fn screen_neurons(rows: &Rows<'_>, top: usize) -> Vec<NeuronScore> {
    let mut scores: Vec<NeuronScore> = (0..rows.d)
        .map(|j| {
            let (mut pos, mut neg) = (Vec::new(), Vec::new());
            for i in 0..rows.len() {
                let v = f64::from(rows.x[i * rows.d + j]);
                if rows.y[i] { pos.push(v) } else { neg.push(v) }
            }
            let (m1, v1) = mean_var(&pos);
            let (m0, v0) = mean_var(&neg);
            let (n1, n0) = (pos.len() as f64, neg.len() as f64);
            let pooled = (((n1 - 1.0) * v1 + (n0 - 1.0) * v0) / (n1 + n0 - 2.0).max(1.0)).sqrt();
            NeuronScore {
                index: j,
                auc: auc(&pos, &neg),
                cohen_d: if pooled > 0.0 { (m1 - m0) / pooled } else { 0.0 },
            }
        })
        .collect();
    scores.sort_by(|a, b| (b.auc - 0.5).abs().total_cmp(&(a.auc - 0.5).abs()));
    scores.truncate(top);
    scores
}

fn mean_var(x: &[f64]) -> (f64, f64) {
    let n = x.len().max(1) as f64;
    let m = x.iter().sum::<f64>() / n;
    let v = x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1.0).max(1.0);
    (m, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two classes apart along unit 3 only, 20 groups of 10 rows.
    fn planted(d: usize, gap: f32) -> (Vec<f32>, Vec<bool>, Vec<usize>) {
        use rand::Rng as _;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let (mut x, mut y, mut g) = (Vec::new(), Vec::new(), Vec::new());
        for group in 0..20 {
            let class = group % 2 == 0;
            for _ in 0..10 {
                for j in 0..d {
                    let noise: f32 = rng.random_range(-1.0..1.0);
                    x.push(if j == 3 && class { noise + gap } else { noise } + 5.0);
                }
                y.push(class);
                g.push(group);
            }
        }
        (x, y, g)
    }

    #[test]
    fn a_planted_direction_is_found_and_noise_is_at_chance() {
        let (x, y, g) = planted(16, 3.0);
        let rows = Rows {
            x: &x,
            d: 16,
            y: &y,
            group: &g,
        };
        let cv = cross_validate(&rows, 5, 0);
        let m = metrics(&cv.oof, &y);
        assert!(m.accuracy > 0.95 && m.auc > 0.98, "{m:?}");
        let dir = fit(&rows, &(0..y.len()).collect::<Vec<_>>(), 1.0).raw_direction();
        let best = dir
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .unwrap()
            .0;
        assert_eq!(best, 3);
        assert_eq!(screen_neurons(&rows, 1)[0].index, 3);
        assert!(screen_neurons(&rows, 1)[0].cohen_d > 3.0);
        let (x, y, g) = planted(16, 0.0);
        let rows = Rows {
            x: &x,
            d: 16,
            y: &y,
            group: &g,
        };
        let m = metrics(&cross_validate(&rows, 5, 0).oof, &y);
        assert!(
            (m.accuracy - 0.5).abs() < 0.15 && (m.auc - 0.5).abs() < 0.15,
            "{m:?}"
        );
    }

    #[test]
    fn folds_never_split_a_group_and_hold_both_classes() {
        let (x, y, g) = planted(4, 1.0);
        let rows = Rows {
            x: &x,
            d: 4,
            y: &y,
            group: &g,
        };
        let f = group_folds(&rows, 5, 3);
        for k in 0..5 {
            let ys: Vec<bool> = (0..y.len()).filter(|&i| f[g[i]] == k).map(|i| y[i]).collect();
            assert!(ys.contains(&true) && ys.contains(&false));
        }
    }

    #[test]
    fn auc_and_low_fpr_metrics_by_hand() {
        assert!((auc(&[3.0, 4.0], &[1.0, 2.0]) - 1.0).abs() < 1e-12);
        assert!((auc(&[1.0], &[1.0]) - 0.5).abs() < 1e-12);
        assert!((auc(&[2.0, 0.0], &[1.0]) - 0.5).abs() < 1e-12);
        let m = metrics(&[0.9, 0.8, 0.2, 0.6], &[true, true, false, false]);
        assert!((m.accuracy - 0.75).abs() < 1e-12);
        // With 2 negatives no false positive is allowed: the threshold is the top negative, 0.6.
        assert!((m.tpr_at_1pct_fpr - 1.0).abs() < 1e-12);
        assert!((m.precision_at_1pct_fpr - 1.0).abs() < 1e-12);
    }
}
