//! TabCutMix and TabCutMixPlus: the memorization mitigations of Fang et al., *Unveiling
//! Memorization in Diffusion Models for Tabular Data* (arXiv:2412.11044), after the reference code
//! at github.com/fangzy96/TabCutMix (`cutmix_tabular` and `cutmix_tabular_cluster` in
//! `cutmix_intra.py`, the feature clustering in `process_dataset_tabcutmixplus.py`).
//!
//! Each new row starts from a random training row A; a random row B with A's label donates
//! ⌊λ·G⌋ randomly chosen groups of columns, λ ~ U(0, 1), and the row keeps A's label. TabCutMix
//! swaps single feature columns; TabCutMixPlus swaps whole clusters of associated columns so that
//! strongly dependent features (education and education-num in adult) travel together.
//!
//! Deviations from the reference: the clustering leaves the target out (the reference clusters the
//! label with the features and then overwrites it with A's label, which drags the label's
//! associations into the linkage); the number of new rows is rounded rather than truncated; the
//! random draws come from a seeded ChaCha8 stream instead of NumPy's global state.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::table::{ColumnRef, MixedTable};

/// How to augment the training rows before fitting a tabular generative model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Augment {
    /// The training rows as they are.
    None,
    /// TabCutMix: swap single feature columns between rows of one label.
    #[serde(rename = "tabcutmix")]
    #[value(name = "tabcutmix")]
    TabCutMix,
    /// TabCutMixPlus: swap whole clusters of associated feature columns.
    #[serde(rename = "tabcutmix-plus")]
    #[value(name = "tabcutmix-plus")]
    TabCutMixPlus,
}

impl Augment {
    /// The name used on the command line and in reports.
    pub fn label(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::TabCutMix => "tabcutmix",
            Self::TabCutMixPlus => "tabcutmix-plus",
        }
    }
}

/// New rows appended per training row (the reference appends `int(0.3 n)` rows for adult).
pub const NEW_ROW_FRACTION: f64 = 0.3;

/// The distance threshold at which TabCutMixPlus cuts the feature dendrogram (the reference's
/// `threshold=0.3`): columns whose average association exceeds 0.7 share a cluster.
pub const CLUSTER_THRESHOLD: f64 = 0.3;

/// Where one new row came from: base row `a`, donor row `b` (same label), and how many column
/// groups were copied from `b`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MixRecord {
    pub a: usize,
    pub b: usize,
    pub k: usize,
}

/// Every column but the target, in schema order.
fn feature_columns(table: &MixedTable) -> Vec<ColumnRef> {
    let target = ColumnRef::Cat(table.schema.target);
    table
        .schema
        .order
        .iter()
        .copied()
        .filter(|&c| c != target)
        .collect()
}

/// Each feature column as a group of its own (TabCutMix's unit of swapping).
fn singletons(table: &MixedTable) -> Vec<Vec<ColumnRef>> {
    feature_columns(table).into_iter().map(|c| vec![c]).collect()
}

/// The shared mixing loop: `groups` are the units swapped (single columns for TabCutMix, clusters
/// for TabCutMixPlus). The target is never copied from B (B has A's label anyway).
pub(crate) fn mix_rows(
    table: &MixedTable,
    n_new: usize,
    groups: &[Vec<ColumnRef>],
    seed: u64,
) -> (MixedTable, Vec<MixRecord>) {
    let n = table.n_rows();
    let mut out = table.clone();
    let mut records = Vec::with_capacity(n_new);
    if n == 0 || table.schema.n_cat() == 0 {
        return (out, records);
    }
    let target = table.schema.target;
    let labels = table.labels();
    let n_levels = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    let mut by_label: Vec<Vec<usize>> = vec![Vec::new(); n_levels];
    for (i, &l) in labels.iter().enumerate() {
        by_label[l as usize].push(i);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for _ in 0..n_new {
        let lambda: f64 = rng.random();
        let a = rng.random_range(0..n);
        let same = &by_label[labels[a] as usize];
        let b = same[rng.random_range(0..same.len())];
        let k = ((lambda * groups.len() as f64).floor() as usize).min(groups.len());
        let mut num = table.num_row(a).to_vec();
        let mut cat = table.cat_row(a).to_vec();
        for g in rand::seq::index::sample(&mut rng, groups.len(), k) {
            for &c in &groups[g] {
                match c {
                    ColumnRef::Num(j) => num[j] = table.num_row(b)[j],
                    ColumnRef::Cat(j) => cat[j] = table.cat_row(b)[j],
                }
            }
        }
        cat[target] = labels[a];
        out.push(&num, &cat);
        records.push(MixRecord { a, b, k });
    }
    (out, records)
}

/// TabCutMix (`cutmix_tabular`): the rows of `table` followed by `n_new` mixed rows. Each copies
/// ⌊λ·F⌋ distinct random feature columns (numeric and categorical alike, F = all but the target)
/// from a same-label donor into a random base row. An empty table is returned unchanged.
pub fn tabcutmix(table: &MixedTable, n_new: usize, seed: u64) -> MixedTable {
    mix_rows(table, n_new, &singletons(table), seed).0
}

/// TabCutMixPlus (`cutmix_tabular_cluster`): like [`tabcutmix`] but λ picks ⌊λ·C⌋ of the `C`
/// `clusters`, each copied whole from the donor row.
pub fn tabcutmix_plus(
    table: &MixedTable,
    n_new: usize,
    clusters: &[Vec<ColumnRef>],
    seed: u64,
) -> MixedTable {
    mix_rows(table, n_new, clusters, seed).0
}

/// `table` augmented by `how` with `round(share · n)` new rows (the reference's share is
/// [`NEW_ROW_FRACTION`]); TabCutMixPlus clusters the features at [`CLUSTER_THRESHOLD`] first.
/// [`Augment::None`] returns a copy.
pub fn augment(table: &MixedTable, how: Augment, share: f64, seed: u64) -> MixedTable {
    let n_new = (share.max(0.0) * table.n_rows() as f64).round() as usize;
    match how {
        Augment::None => table.clone(),
        Augment::TabCutMix => tabcutmix(table, n_new, seed),
        Augment::TabCutMixPlus => {
            let clusters = feature_clusters(table, CLUSTER_THRESHOLD);
            tabcutmix_plus(table, n_new, &clusters, seed)
        }
    }
}

enum Values {
    Num(Vec<f64>),
    Cat(Vec<u32>),
}

fn column_values(table: &MixedTable, c: ColumnRef) -> Values {
    let n = table.n_rows();
    match c {
        ColumnRef::Num(k) => Values::Num((0..n).map(|i| table.num_row(i)[k]).collect()),
        ColumnRef::Cat(k) => Values::Cat((0..n).map(|i| table.cat_row(i)[k]).collect()),
    }
}

/// |Pearson correlation|; 0 when either column is constant.
fn abs_pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len());
    if n < 2 {
        return 0.0;
    }
    let mx = x[..n].iter().sum::<f64>() / n as f64;
    let my = y[..n].iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx <= 0.0 || syy <= 0.0 {
        return 0.0;
    }
    (sxy / (sxx * syy).sqrt()).abs().min(1.0)
}

/// Bias-corrected Cramér's V (Bergsma 2013) over the observed levels (as pandas' crosstab), chi²
/// as scipy's `chi2_contingency` computes it (Yates' continuity correction at one degree of
/// freedom). 0 when either column has a single observed level.
pub(crate) fn cramers_v(x: &[u32], y: &[u32]) -> f64 {
    let n = x.len().min(y.len());
    if n < 2 {
        return 0.0;
    }
    let compact = |v: &[u32]| -> (Vec<usize>, usize) {
        let mut levels = v.to_vec();
        levels.sort_unstable();
        levels.dedup();
        let codes = v.iter().map(|c| levels.binary_search(c).unwrap_or(0)).collect();
        (codes, levels.len())
    };
    let (xs, r) = compact(&x[..n]);
    let (ys, k) = compact(&y[..n]);
    if r < 2 || k < 2 {
        return 0.0;
    }
    let mut obs = vec![0.0f64; r * k];
    for (&i, &j) in xs.iter().zip(&ys) {
        obs[i * k + j] += 1.0;
    }
    let nf = n as f64;
    let row: Vec<f64> = (0..r).map(|i| obs[i * k..(i + 1) * k].iter().sum()).collect();
    let col: Vec<f64> = (0..k).map(|j| (0..r).map(|i| obs[i * k + j]).sum()).collect();
    let yates = (r - 1) * (k - 1) == 1;
    let mut chi2 = 0.0;
    for i in 0..r {
        for j in 0..k {
            let e = row[i] * col[j] / nf;
            let mut o = obs[i * k + j];
            if yates {
                let d = e - o;
                o += d.signum() * d.abs().min(0.5);
            }
            chi2 += (o - e) * (o - e) / e;
        }
    }
    let (rf, kf) = (r as f64, k as f64);
    let phi2 = chi2 / nf;
    let phi2corr = (phi2 - (kf - 1.0) * (rf - 1.0) / (nf - 1.0)).max(0.0);
    let rcorr = rf - (rf - 1.0).powi(2) / (nf - 1.0);
    let kcorr = kf - (kf - 1.0).powi(2) / (nf - 1.0);
    let denom = (kcorr - 1.0).min(rcorr - 1.0);
    if denom <= 0.0 {
        return 0.0;
    }
    (phi2corr / denom).sqrt().clamp(0.0, 1.0)
}

/// The correlation ratio sqrt(η²) = sqrt(SS_between / SS_total) of `num` grouped by `cat`; 0 when
/// `num` is constant.
fn correlation_ratio(cat: &[u32], num: &[f64]) -> f64 {
    let n = cat.len().min(num.len());
    if n == 0 {
        return 0.0;
    }
    let mean = num[..n].iter().sum::<f64>() / n as f64;
    let width = cat[..n].iter().map(|&c| c as usize + 1).max().unwrap_or(0);
    let mut count = vec![0.0f64; width];
    let mut sum = vec![0.0f64; width];
    let mut ss_total = 0.0;
    for (&c, &v) in cat.iter().zip(num) {
        count[c as usize] += 1.0;
        sum[c as usize] += v;
        ss_total += (v - mean) * (v - mean);
    }
    if ss_total <= 0.0 {
        return 0.0;
    }
    let ss_between: f64 = count
        .iter()
        .zip(&sum)
        .filter(|(c, _)| **c > 0.0)
        .map(|(c, s)| c * (s / c - mean).powi(2))
        .sum();
    (ss_between / ss_total).clamp(0.0, 1.0).sqrt()
}

fn association(a: &Values, b: &Values) -> f64 {
    match (a, b) {
        (Values::Num(x), Values::Num(y)) => abs_pearson(x, y),
        (Values::Cat(x), Values::Cat(y)) => cramers_v(x, y),
        (Values::Cat(c), Values::Num(v)) | (Values::Num(v), Values::Cat(c)) => correlation_ratio(c, v),
    }
}

fn association_of(table: &MixedTable, cols: &[ColumnRef]) -> Vec<f64> {
    let m = cols.len();
    let values: Vec<Values> = cols.iter().map(|&c| column_values(table, c)).collect();
    let mut out = vec![0.0; m * m];
    for i in 0..m {
        out[i * m + i] = 1.0;
        for j in i + 1..m {
            let v = association(&values[i], &values[j]);
            out[i * m + j] = v;
            out[j * m + i] = v;
        }
    }
    out
}

/// The association of every pair of columns (the target included), in `schema.order`:
/// |Pearson| between numeric columns, bias-corrected Cramér's V between categorical ones, and the
/// correlation ratio sqrt(η²) between a categorical and a numeric one. Returns the columns and the
/// row-major symmetric matrix, 1 on the diagonal, every entry in [0, 1].
pub fn association_matrix(table: &MixedTable) -> (Vec<ColumnRef>, Vec<f64>) {
    let cols = table.schema.order.clone();
    let assoc = association_of(table, &cols);
    (cols, assoc)
}

/// Average-linkage agglomerative clustering of `m` items with row-major distances `dist`, cut so
/// that merging stops once the closest pair of clusters is farther apart than `threshold`
/// (scipy's `fcluster(..., criterion='distance')` on a `method='average'` linkage).
fn average_linkage(dist: &[f64], m: usize, threshold: f64) -> Vec<Vec<usize>> {
    let mut clusters: Vec<Vec<usize>> = (0..m).map(|i| vec![i]).collect();
    // Summed item distances between clusters; the average is the sum over the product of sizes.
    let mut sums: Vec<Vec<f64>> = (0..m)
        .map(|i| (0..m).map(|j| dist[i * m + j]).collect())
        .collect();
    loop {
        let mut best: Option<(f64, usize, usize)> = None;
        for i in 0..clusters.len() {
            for j in i + 1..clusters.len() {
                let d = sums[i][j] / (clusters[i].len() * clusters[j].len()) as f64;
                if best.is_none_or(|(bd, _, _)| d < bd) {
                    best = Some((d, i, j));
                }
            }
        }
        let Some((d, i, j)) = best else { break };
        if d > threshold {
            break;
        }
        let moved = clusters.remove(j);
        clusters[i].extend(moved);
        let row_j = sums.remove(j);
        for (s, extra) in sums[i].iter_mut().zip(&row_j) {
            *s += extra;
        }
        for row in &mut sums {
            let extra = row.remove(j);
            row[i] += extra;
        }
    }
    for c in &mut clusters {
        c.sort_unstable();
    }
    clusters.sort_by_key(|c| c.first().copied());
    clusters
}

/// TabCutMixPlus' feature clusters: distance 1 − association (see [`association_matrix`]) between
/// feature columns, average linkage cut at `threshold` ([`CLUSTER_THRESHOLD`] in the paper). The
/// target is left out (the reference clusters it too and then resets it). Each cluster lists its
/// columns in schema order; clusters are ordered by their first column.
pub fn feature_clusters(table: &MixedTable, threshold: f64) -> Vec<Vec<ColumnRef>> {
    let cols = feature_columns(table);
    let m = cols.len();
    let dist: Vec<f64> = association_of(table, &cols)
        .into_iter()
        .map(|a| 1.0 - a)
        .collect();
    average_linkage(&dist, m, threshold)
        .into_iter()
        .map(|c| c.into_iter().map(|i| cols[i]).collect())
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "augment_tests.rs"]
pub(crate) mod tests;
