//! Subsampled memorization and influence estimates (Feldman & Zhang, "What Neural Networks
//! Memorize and Why", NeurIPS 2020, the estimator of their Lemma 2.1 as implemented in the official
//! `mnist_infl_mem.py`):
//!
//! ```text
//! mem(i)     = mean_k { C[k, i] | i in S_k } - mean_k { C[k, i] | i not in S_k }
//! infl(i, j) = mean_k { C[k, j] | i in S_k } - mean_k { C[k, j] | i not in S_k }
//! ```
//!
//! with C the 0/1 correctness of model k, S_k its training subset, and masked means divided by
//! max(count, 1e-10) as in the reference code. Standard errors use the binomial approximation
//! se = sqrt(p_in (1 - p_in) / N_in + p_out (1 - p_out) / N_out). Influence is computed per block
//! of test rows (never the whole n_test x n matrix) and only the pairs and top influencers are kept.

use rayon::prelude::*;

use crate::error::{CoreError, CoreResult};

/// The zoo's signals as dense K x n matrices (row-major).
#[derive(Clone, Debug, Default)]
pub struct ZooMatrix {
    /// Models.
    pub k: usize,
    /// Samples (the whole data set).
    pub n: usize,
    /// Model k trained on sample i.
    pub member: Vec<bool>,
    /// Model k predicts sample i's label.
    pub correct: Vec<bool>,
    /// Model k's loss on sample i.
    pub loss: Vec<f32>,
}

impl ZooMatrix {
    /// From per-model rows.
    pub fn from_rows(rows: &[(Vec<bool>, Vec<bool>, Vec<f32>)]) -> CoreResult<Self> {
        let k = rows.len();
        let n = rows.first().map_or(0, |r| r.0.len());
        let mut m = Self {
            k,
            n,
            ..Self::default()
        };
        for (member, correct, loss) in rows {
            if member.len() != n || correct.len() != n || loss.len() != n {
                return Err(CoreError::Invalid("zoo rows of different lengths".into()));
            }
            m.member.extend(member);
            m.correct.extend(correct);
            m.loss.extend(loss);
        }
        Ok(m)
    }

    /// Keeps only the first `k` models (for convergence curves).
    pub fn first(&self, k: usize) -> Self {
        let k = k.min(self.k);
        Self {
            k,
            n: self.n,
            member: self.member[..k * self.n].to_vec(),
            correct: self.correct[..k * self.n].to_vec(),
            loss: self.loss[..k * self.n].to_vec(),
        }
    }
}

/// Memorization of every sample.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct MemEstimate {
    /// mem(i) (NaN for samples no model could train on, i.e. the test split).
    #[serde(with = "super::serde_nan")]
    pub mem: Vec<f32>,
    /// Standard error of mem(i).
    #[serde(with = "super::serde_nan")]
    pub se: Vec<f32>,
    /// Accuracy on i of the models that trained on it.
    #[serde(with = "super::serde_nan")]
    pub p_in: Vec<f32>,
    /// Accuracy on i of the models that did not.
    #[serde(with = "super::serde_nan")]
    pub p_out: Vec<f32>,
    /// Number of models that trained on i.
    pub n_in: Vec<u32>,
    /// Number of models that did not.
    pub n_out: Vec<u32>,
}

/// The masked mean of the reference code: sum / max(count, 1e-10).
fn masked_mean(sum: f64, count: u32) -> f64 {
    sum / f64::from(count).max(1e-10)
}

/// mem(i) for every sample `i` in `train`; other entries are NaN.
pub fn memorization(z: &ZooMatrix, train: &[usize]) -> MemEstimate {
    let n = z.n;
    let mut est = MemEstimate {
        mem: vec![f32::NAN; n],
        se: vec![f32::NAN; n],
        p_in: vec![f32::NAN; n],
        p_out: vec![f32::NAN; n],
        n_in: vec![0; n],
        n_out: vec![0; n],
    };
    let rows: Vec<(usize, f32, f32, f32, f32, u32, u32)> = train
        .par_iter()
        .map(|&i| {
            let (mut s_in, mut c_in, mut s_out, mut c_out) = (0.0f64, 0u32, 0.0f64, 0u32);
            for k in 0..z.k {
                let c = f64::from(u8::from(z.correct[k * n + i]));
                if z.member[k * n + i] {
                    s_in += c;
                    c_in += 1;
                } else {
                    s_out += c;
                    c_out += 1;
                }
            }
            let p_in = masked_mean(s_in, c_in);
            let p_out = masked_mean(s_out, c_out);
            let var = |p: f64, c: u32| if c == 0 { 0.0 } else { p * (1.0 - p) / f64::from(c) };
            let se = (var(p_in, c_in) + var(p_out, c_out)).sqrt();
            (
                i,
                (p_in - p_out) as f32,
                se as f32,
                p_in as f32,
                p_out as f32,
                c_in,
                c_out,
            )
        })
        .collect();
    for (i, mem, se, p_in, p_out, c_in, c_out) in rows {
        est.mem[i] = mem;
        est.se[i] = se;
        est.p_in[i] = p_in;
        est.p_out[i] = p_out;
        est.n_in[i] = c_in;
        est.n_out[i] = c_out;
    }
    est
}

/// A (training sample, test sample) pair with its influence.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InflPair {
    /// Training sample.
    pub train: usize,
    /// Test sample.
    pub test: usize,
    /// mem(train).
    pub mem: f32,
    /// infl(train, test).
    pub infl: f32,
    /// Standard error of infl.
    pub se: f32,
}

/// Influence results.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct InflEstimate {
    /// High-influence pairs: mem >= mem_thr, infl >= infl_thr (and same class when asked),
    /// sorted by infl descending.
    pub pairs: Vec<InflPair>,
    /// For each test sample (in the order given), its `top` most influential training samples.
    pub top: Vec<(usize, Vec<InflPair>)>,
}

/// Thresholds for high-influence pairs (the paper's defaults).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct PairThresholds {
    /// Minimum mem of the training sample.
    pub mem: f32,
    /// Minimum influence.
    pub infl: f32,
    /// Only pairs of the same class.
    pub same_class: bool,
    /// Top influencers kept per test sample.
    pub top: usize,
}

impl Default for PairThresholds {
    fn default() -> Self {
        Self {
            mem: 0.25,
            infl: 0.15,
            same_class: true,
            top: 4,
        }
    }
}

/// infl(i, j) for every training sample i in `train` and test sample j in `test`, in blocks of test
/// rows; returns the high-influence pairs and each test sample's top influencers.
pub fn influence(
    z: &ZooMatrix,
    mem: &MemEstimate,
    train: &[usize],
    test: &[usize],
    labels: &[u16],
    thr: &PairThresholds,
) -> InflEstimate {
    let n = z.n;
    let words = z.k.div_ceil(64);
    // Model sets as bitsets: which models trained on each training sample, and which models are
    // right on a test sample; their intersection count is one popcount per word.
    let bits = |f: &dyn Fn(usize) -> bool| -> Vec<u64> {
        let mut v = vec![0u64; words];
        for k in 0..z.k {
            if f(k) {
                v[k / 64] |= 1 << (k % 64);
            }
        }
        v
    };
    let member_bits: Vec<Vec<u64>> = train.iter().map(|&i| bits(&|k| z.member[k * n + i])).collect();
    let n_in: Vec<u32> = member_bits
        .iter()
        .map(|b| b.iter().map(|w| w.count_ones()).sum())
        .collect();
    let results: Vec<(usize, Vec<InflPair>, Vec<InflPair>)> = test
        .par_iter()
        .map(|&j| {
            let c_j = bits(&|k| z.correct[k * n + j]);
            let total_correct: u32 = c_j.iter().map(|w| w.count_ones()).sum();
            let mut row: Vec<InflPair> = Vec::with_capacity(train.len());
            for (t, &i) in train.iter().enumerate() {
                let s_in: u32 = c_j
                    .iter()
                    .zip(&member_bits[t])
                    .map(|(a, b)| (a & b).count_ones())
                    .sum();
                let c_in = n_in[t];
                let c_out = z.k as u32 - c_in;
                let p_in = masked_mean(f64::from(s_in), c_in);
                let p_out = masked_mean(f64::from(total_correct - s_in), c_out);
                let var = |p: f64, c: u32| if c == 0 { 0.0 } else { p * (1.0 - p) / f64::from(c) };
                row.push(InflPair {
                    train: i,
                    test: j,
                    mem: mem.mem.get(i).copied().unwrap_or(f32::NAN),
                    infl: (p_in - p_out) as f32,
                    se: (var(p_in, c_in) + var(p_out, c_out)).sqrt() as f32,
                });
            }
            let pairs: Vec<InflPair> = row
                .iter()
                .filter(|p| p.mem >= thr.mem && p.infl >= thr.infl)
                .filter(|p| !thr.same_class || labels.get(p.train) == labels.get(p.test))
                .cloned()
                .collect();
            row.sort_by(|a, b| b.infl.total_cmp(&a.infl).then(a.train.cmp(&b.train)));
            row.truncate(thr.top);
            (j, pairs, row)
        })
        .collect();
    let mut pairs: Vec<InflPair> = results.iter().flat_map(|r| r.1.iter().cloned()).collect();
    pairs.sort_by(|a, b| {
        b.infl
            .total_cmp(&a.infl)
            .then(a.test.cmp(&b.test))
            .then(a.train.cmp(&b.train))
    });
    InflEstimate {
        pairs,
        top: results.into_iter().map(|(j, _, top)| (j, top)).collect(),
    }
}

/// Mean |mem_K - mem_final| over training samples for K = step, 2 step, ...: how the estimates
/// settle as the zoo grows.
pub fn convergence(z: &ZooMatrix, train: &[usize], points: usize) -> Vec<[f64; 2]> {
    if z.k == 0 || train.is_empty() {
        return Vec::new();
    }
    let last = memorization(z, train);
    let step = (z.k / points.max(1)).max(1);
    (1..=z.k)
        .filter(|k| k % step == 0 || *k == z.k)
        .map(|k| {
            let e = memorization(&z.first(k), train);
            let dev: f64 = train
                .iter()
                .map(|&i| f64::from((e.mem[i] - last.mem[i]).abs()))
                .sum::<f64>()
                / train.len() as f64;
            [k as f64, dev]
        })
        .collect()
}

/// Mean loss on each sample of the models that did not train on it (NaN where no model left it
/// out). The tie-break of [`mem_order`].
pub fn held_out_loss(z: &ZooMatrix, train: &[usize]) -> Vec<f32> {
    let n = z.n;
    let mut out = vec![f32::NAN; n];
    let vals: Vec<(usize, f32)> = train
        .par_iter()
        .map(|&i| {
            let (mut s, mut c) = (0.0f64, 0u32);
            for k in 0..z.k {
                if !z.member[k * n + i] {
                    s += f64::from(z.loss[k * n + i]);
                    c += 1;
                }
            }
            (
                i,
                if c == 0 {
                    f32::NAN
                } else {
                    (s / f64::from(c)) as f32
                },
            )
        })
        .collect();
    for (i, v) in vals {
        out[i] = v;
    }
    out
}

/// Samples with a finite mem, most memorized first. With few models mem takes few distinct
/// values (at K = 64 about 150 samples tie at exactly 1), so ties are broken by the held-out loss,
/// higher first: among samples every IN model fits and every OUT model gets wrong, the one whose
/// label surprises the OUT models most ranks first. This only orders equal mem values; the
/// estimate itself is the paper's 0/1 masked mean. Remaining ties go to the smaller index.
pub fn mem_order(mem: &[f32], held_out_loss: &[f32]) -> Vec<usize> {
    let key = |i: usize| {
        held_out_loss
            .get(i)
            .copied()
            .filter(|v| v.is_finite())
            .unwrap_or(f32::NEG_INFINITY)
    };
    let mut order: Vec<usize> = (0..mem.len()).filter(|&i| mem[i].is_finite()).collect();
    order.sort_by(|&a, &b| {
        mem[b]
            .total_cmp(&mem[a])
            .then(key(b).total_cmp(&key(a)))
            .then(a.cmp(&b))
    });
    order
}

/// Fraction of the planted samples among the `planted.len()` first samples of [`mem_order`]
/// (None when nothing was planted).
pub fn planted_recall(mem: &[f32], held_out_loss: &[f32], planted: &[usize]) -> Option<f64> {
    if planted.is_empty() {
        return None;
    }
    let top: std::collections::HashSet<usize> = mem_order(mem, held_out_loss)
        .into_iter()
        .take(planted.len())
        .collect();
    Some(planted.iter().filter(|i| top.contains(i)).count() as f64 / planted.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *state >> 33
    }

    /// A fixed random mask/correctness matrix.
    fn fixed(k: usize, n: usize) -> ZooMatrix {
        let mut s = 42u64;
        let mut z = ZooMatrix {
            k,
            n,
            ..ZooMatrix::default()
        };
        for _ in 0..k * n {
            z.member.push(lcg(&mut s) % 10 < 7);
            z.correct.push(!lcg(&mut s).is_multiple_of(4));
            z.loss.push(0.0);
        }
        z
    }

    #[test]
    fn mem_and_infl_match_a_direct_evaluation_of_the_formulas() {
        let (k, n) = (37, 12);
        let z = fixed(k, n);
        let train: Vec<usize> = (0..8).collect();
        let test: Vec<usize> = (8..12).collect();
        let est = memorization(&z, &train);
        // Direct: two explicit masked means per sample, as in the reference code.
        for &i in &train {
            let ins: Vec<f64> = (0..k)
                .filter(|&m| z.member[m * n + i])
                .map(|m| f64::from(u8::from(z.correct[m * n + i])))
                .collect();
            let outs: Vec<f64> = (0..k)
                .filter(|&m| !z.member[m * n + i])
                .map(|m| f64::from(u8::from(z.correct[m * n + i])))
                .collect();
            let mean = |v: &[f64]| v.iter().sum::<f64>() / (v.len() as f64).max(1e-10);
            let want = mean(&ins) - mean(&outs);
            assert!((f64::from(est.mem[i]) - want).abs() < 1e-6, "mem[{i}]");
            assert_eq!(est.n_in[i] as usize, ins.len());
            assert_eq!(est.n_out[i] as usize, outs.len());
            let (pi, po) = (mean(&ins), mean(&outs));
            let se = (pi * (1.0 - pi) / ins.len() as f64 + po * (1.0 - po) / outs.len() as f64).sqrt();
            assert!((f64::from(est.se[i]) - se).abs() < 1e-6);
        }
        assert!(est.mem[9].is_nan(), "test samples get no mem");
        let labels = vec![0u16; n];
        let thr = PairThresholds {
            mem: -2.0,
            infl: -2.0,
            same_class: true,
            top: 8,
        };
        let inf = influence(&z, &est, &train, &test, &labels, &thr);
        assert_eq!(inf.pairs.len(), train.len() * test.len());
        for p in &inf.pairs {
            let (i, j) = (p.train, p.test);
            let ins: Vec<f64> = (0..k)
                .filter(|&m| z.member[m * n + i])
                .map(|m| f64::from(u8::from(z.correct[m * n + j])))
                .collect();
            let outs: Vec<f64> = (0..k)
                .filter(|&m| !z.member[m * n + i])
                .map(|m| f64::from(u8::from(z.correct[m * n + j])))
                .collect();
            let mean = |v: &[f64]| v.iter().sum::<f64>() / (v.len() as f64).max(1e-10);
            assert!(
                (f64::from(p.infl) - (mean(&ins) - mean(&outs))).abs() < 1e-6,
                "infl[{i},{j}]"
            );
        }
        // Top influencers are sorted.
        for (_, top) in &inf.top {
            assert!(top.windows(2).all(|w| w[0].infl >= w[1].infl));
        }
    }

    #[test]
    fn planted_recall_counts_planted_among_top() {
        let mem = vec![0.1, 0.9, 0.8, f32::NAN, 0.2, 0.95];
        assert_eq!(planted_recall(&mem, &[], &[1, 5]), Some(1.0));
        assert_eq!(planted_recall(&mem, &[], &[1, 4]), Some(0.5));
        assert_eq!(planted_recall(&mem, &[], &[]), None);
        // Equal mem: the higher held-out loss ranks first.
        let tied = [1.0f32, 1.0, 1.0, 0.0];
        let loss = [0.5f32, 9.0, 2.0, 0.0];
        assert_eq!(mem_order(&tied, &loss), vec![1, 2, 0, 3]);
        assert_eq!(planted_recall(&tied, &loss, &[1]), Some(1.0));
        assert_eq!(planted_recall(&tied, &[], &[1]), Some(0.0));
    }
}
