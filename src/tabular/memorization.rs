//! The memorization ratio of tabular generative models (Fang et al. 2024, "Unveiling Memorization
//! in Diffusion Models for Tabular Data", §3, after Yoon et al. 2023 and Gu et al. 2023): a
//! synthetic row is memorized when its nearest training row is closer than 1/3 of its
//! second-nearest, d(s, NN₁) / d(s, NN₂) < 1/3; the ratio is the share of such rows.
//!
//! Two mixed-type distances, both over every column (the target included, as the reference):
//! - [`DistanceRule::Code`], the reference `custom_distance` (`cal_memorization.py`): the Euclidean
//!   distance over the raw numerics, min–max scaled over the training rows *per query*, plus the
//!   number of mismatching categorical columns, divided by the number of columns. Per-query scaling
//!   sets the numerically nearest row's numeric part to 0 (spec 07 pitfall B).
//! - [`DistanceRule::Global`]: each numeric column min–max scaled once over the training rows, the
//!   Euclidean distance over them, plus the Hamming count, divided by the number of columns.
//!
//! Ties: 0/0 (a synthetic row equal to two identical training rows) counts as memorized; x/0
//! cannot occur as d₂ ≥ d₁. The reference's NaN counts as not memorized (`docs/fidelity.md`).

use rayon::prelude::*;

use super::table::MixedTable;

/// The paper's threshold on d₁/d₂.
pub const THRESHOLD: f64 = 1.0 / 3.0;

/// Which mixed-type distance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DistanceRule {
    /// The reference code's per-query min–max scaling ("TabCutMix-code").
    Code,
    /// Columns min–max scaled once over the training rows.
    Global,
}

impl DistanceRule {
    /// How the rule is named in outputs.
    pub fn label(self) -> &'static str {
        match self {
            Self::Code => "TabCutMix-code (per-query min-max)",
            Self::Global => "global min-max",
        }
    }
}

/// A synthetic row's two nearest training rows.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Nearest {
    /// Index of the synthetic row.
    pub synthetic: usize,
    /// Index of the nearest training row.
    pub first: usize,
    /// Index of the second-nearest training row.
    pub second: usize,
    /// Distance to the nearest.
    pub d1: f64,
    /// Distance to the second-nearest.
    pub d2: f64,
}

impl Nearest {
    /// d₁ / d₂, with 0/0 as 0.
    pub fn ratio(&self) -> f64 {
        if self.d2 <= 0.0 { 0.0 } else { self.d1 / self.d2 }
    }

    /// Whether the row counts as memorized at `threshold`.
    pub fn memorized(&self, threshold: f64) -> bool {
        self.ratio() < threshold
    }
}

/// The memorization ratio and what it rests on.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MemorizationRatio {
    /// The distance used.
    pub rule: DistanceRule,
    /// Share of synthetic rows with d₁/d₂ < 1/3.
    pub ratio: f64,
    /// The reference's threshold-free "memorization AUC": the ratio at thresholds
    /// `linspace(0, 1, 10)`, integrated by the trapezoid rule.
    pub auc: f64,
    /// Median distance to the closest training record (DCR).
    pub median_dcr: f64,
}

/// The nearest and second-nearest training rows of every synthetic row.
pub fn nearest_two(train: &MixedTable, synthetic: &MixedTable, rule: DistanceRule) -> Vec<Nearest> {
    let n_num = train.schema.n_num();
    let n_cat = train.schema.n_cat();
    let columns = (n_num + n_cat).max(1) as f64;
    let span = column_spans(train);
    let n_train = train.n_rows();
    (0..synthetic.n_rows())
        .into_par_iter()
        .map_init(
            || vec![0f64; n_train],
            |numeric, s| {
                let sn = synthetic.num_row(s);
                let sc = synthetic.cat_row(s);
                for (i, e) in numeric.iter_mut().enumerate() {
                    let tn = train.num_row(i);
                    let sq: f64 = match rule {
                        DistanceRule::Code => tn.iter().zip(sn).map(|(a, b)| (a - b) * (a - b)).sum(),
                        DistanceRule::Global => (0..n_num)
                            .map(|k| {
                                let d = (tn[k] - sn[k]) / span[k];
                                d * d
                            })
                            .sum(),
                    };
                    *e = sq.sqrt();
                }
                let (min, max) = if rule == DistanceRule::Code && n_num > 0 {
                    numeric
                        .iter()
                        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                            (a.min(v), b.max(v))
                        })
                } else {
                    (0.0, 1.0)
                };
                let range = if max > min { max - min } else { 1.0 };
                let mut best = (f64::INFINITY, usize::MAX);
                let mut second = (f64::INFINITY, usize::MAX);
                for (i, &e) in numeric.iter().enumerate() {
                    let tc = train.cat_row(i);
                    let mismatches = tc.iter().zip(sc).filter(|(a, b)| a != b).count() as f64;
                    let scaled = if n_num > 0 { (e - min) / range } else { 0.0 };
                    let d = (scaled + mismatches) / columns;
                    if d < best.0 {
                        second = best;
                        best = (d, i);
                    } else if d < second.0 {
                        second = (d, i);
                    }
                }
                Nearest {
                    synthetic: s,
                    first: best.1,
                    second: second.1,
                    d1: best.0,
                    d2: second.0,
                }
            },
        )
        .collect()
}

/// Per numeric column: the range over the training rows (1 where the column is constant).
fn column_spans(train: &MixedTable) -> Vec<f64> {
    let n_num = train.schema.n_num();
    let mut lo = vec![f64::INFINITY; n_num];
    let mut hi = vec![f64::NEG_INFINITY; n_num];
    for i in 0..train.n_rows() {
        for (k, &v) in train.num_row(i).iter().enumerate() {
            lo[k] = lo[k].min(v);
            hi[k] = hi[k].max(v);
        }
    }
    lo.iter()
        .zip(&hi)
        .map(|(a, b)| if b > a { b - a } else { 1.0 })
        .collect()
}

/// The memorization ratio, its threshold sweep and the median DCR from nearest pairs.
pub fn summarize(rule: DistanceRule, pairs: &[Nearest]) -> MemorizationRatio {
    let n = pairs.len().max(1) as f64;
    let at = |th: f64| pairs.iter().filter(|p| p.memorized(th)).count() as f64 / n;
    let thresholds: Vec<f64> = (0..10).map(|i| i as f64 / 9.0).collect();
    let curve: Vec<f64> = thresholds.iter().map(|&t| at(t)).collect();
    let auc = thresholds
        .windows(2)
        .zip(curve.windows(2))
        .map(|(t, c)| (t[1] - t[0]) * (c[0] + c[1]) / 2.0)
        .sum();
    let mut d1: Vec<f64> = pairs.iter().map(|p| p.d1).collect();
    d1.sort_by(f64::total_cmp);
    let median_dcr = d1.get(d1.len() / 2).copied().unwrap_or(f64::NAN);
    MemorizationRatio {
        rule,
        ratio: at(THRESHOLD),
        auc,
        median_dcr,
    }
}

/// The memorization ratio of `synthetic` against `train` under `rule`.
pub fn memorization_ratio(
    train: &MixedTable,
    synthetic: &MixedTable,
    rule: DistanceRule,
) -> MemorizationRatio {
    summarize(rule, &nearest_two(train, synthetic, rule))
}
