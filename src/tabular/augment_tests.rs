use super::*;
use crate::tabular::table::Schema;
use rand_distr::StandardNormal;

/// A table with numeric columns `nums` and categorical columns `cats` (the target is
/// categorical column `target`), columns in the order numeric first.
pub(crate) fn table(nums: &[Vec<f64>], cats: &[Vec<u32>], target: usize) -> MixedTable {
    let n = cats.first().map_or_else(|| nums[0].len(), Vec::len);
    let schema = Schema {
        num_names: (0..nums.len()).map(|k| format!("x{k}")).collect(),
        integer: vec![false; nums.len()],
        cat_names: (0..cats.len()).map(|k| format!("c{k}")).collect(),
        levels: cats
            .iter()
            .map(|c| {
                let w = c.iter().max().map_or(1, |&m| m as usize + 1);
                (0..w).map(|l| format!("l{l}")).collect()
            })
            .collect(),
        target,
        order: (0..nums.len())
            .map(ColumnRef::Num)
            .chain((0..cats.len()).map(ColumnRef::Cat))
            .collect(),
    };
    let mut t = MixedTable::empty(schema);
    for i in 0..n {
        let num: Vec<f64> = nums.iter().map(|c| c[i]).collect();
        let cat: Vec<u32> = cats.iter().map(|c| c[i]).collect();
        t.push(&num, &cat);
    }
    t
}

pub(crate) fn normals(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.sample(StandardNormal)).collect()
}

fn codes(rng: &mut ChaCha8Rng, n: usize, levels: u32) -> Vec<u32> {
    (0..n).map(|_| rng.random_range(0..levels)).collect()
}

/// 3 numeric columns with distinct values, 3 categorical ones, target = categorical 1.
fn mixed(n: usize, seed: u64) -> MixedTable {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let nums: Vec<_> = (0..3).map(|_| normals(&mut rng, n)).collect();
    let cats: Vec<_> = [5, 3, 7].into_iter().map(|l| codes(&mut rng, n, l)).collect();
    table(&nums, &cats, 1)
}

fn value(t: &MixedTable, i: usize, c: ColumnRef) -> f64 {
    match c {
        ColumnRef::Num(k) => t.num_row(i)[k],
        ColumnRef::Cat(k) => f64::from(t.cat_row(i)[k]),
    }
}

#[test]
fn new_rows_keep_a_label_and_take_values_from_a_or_b() {
    let t = mixed(60, 1);
    let groups = singletons(&t);
    let (out, recs) = mix_rows(&t, 500, &groups, 7);
    assert_eq!(out.n_rows(), 560);
    assert_eq!(out.subset(&(0..60).collect::<Vec<_>>()), t);
    let labels = out.labels();
    for (r, rec) in recs.iter().enumerate() {
        let i = 60 + r;
        assert_eq!(labels[i], labels[rec.a]);
        assert_eq!(labels[rec.b], labels[rec.a]);
        let mut from_b = 0;
        for &c in &t.schema.order {
            let v = value(&out, i, c);
            assert!(v == value(&t, rec.a, c) || v == value(&t, rec.b, c));
            if v != value(&t, rec.a, c) {
                from_b += 1;
            }
        }
        assert!(from_b <= rec.k);
    }
}

#[test]
fn copied_column_count_covers_zero_to_f_minus_one() {
    let t = mixed(40, 2);
    let f = t.schema.n_features();
    let groups = singletons(&t);
    let (_, recs) = mix_rows(&t, 3000, &groups, 3);
    let mut seen = vec![0usize; f + 1];
    for r in &recs {
        seen[r.k] += 1;
    }
    for (k, &s) in seen.iter().enumerate().take(f) {
        assert!(s > 3000 / f / 2, "k = {k} seen {s} times");
    }
    assert_eq!(seen[f], 0);
}

#[test]
fn same_seed_same_rows() {
    let t = mixed(50, 3);
    assert_eq!(tabcutmix(&t, 20, 5), tabcutmix(&t, 20, 5));
    assert_ne!(tabcutmix(&t, 20, 5), tabcutmix(&t, 20, 6));
    let a = augment(&t, Augment::TabCutMixPlus, NEW_ROW_FRACTION, 9);
    assert_eq!(a, augment(&t, Augment::TabCutMixPlus, NEW_ROW_FRACTION, 9));
    assert_eq!(a.n_rows(), 65);
    assert_eq!(augment(&t, Augment::None, NEW_ROW_FRACTION, 9), t);
    assert_eq!(augment(&t, Augment::TabCutMix, NEW_ROW_FRACTION, 9).n_rows(), 65);
    assert_eq!(augment(&t, Augment::TabCutMix, 1.0, 9).n_rows(), 100);
}

#[test]
fn correlated_numeric_columns_cluster_and_noise_stays_apart() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let x = normals(&mut rng, 500);
    let y: Vec<f64> = x.iter().map(|v| 2.0 * v + 1.0).collect();
    let z = normals(&mut rng, 500);
    let label = codes(&mut rng, 500, 2);
    let t = table(&[x, y, z], &[label], 0);
    let clusters = feature_clusters(&t, CLUSTER_THRESHOLD);
    let (x, y, z) = (ColumnRef::Num(0), ColumnRef::Num(1), ColumnRef::Num(2));
    assert_eq!(clusters, vec![vec![x, y], vec![z]]);
}

#[test]
fn deterministic_categorical_function_clusters_with_its_source() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let n = 800;
    let education = codes(&mut rng, n, 8);
    let education_num: Vec<f64> = education.iter().map(|&e| f64::from(e * 3 + 1)).collect();
    let group: Vec<u32> = education.iter().map(|&e| e / 2).collect();
    let noise_cat = codes(&mut rng, n, 4);
    let label = codes(&mut rng, n, 2);
    let noise_num = normals(&mut rng, n);
    let t = table(
        &[education_num, noise_num],
        &[label, education, group, noise_cat],
        0,
    );
    let clusters = feature_clusters(&t, CLUSTER_THRESHOLD);
    assert!(clusters.contains(&vec![ColumnRef::Num(0), ColumnRef::Cat(1), ColumnRef::Cat(2)]));
    assert!(clusters.contains(&vec![ColumnRef::Num(1)]));
    assert!(clusters.contains(&vec![ColumnRef::Cat(3)]));
    assert!(clusters.iter().flatten().all(|&c| c != ColumnRef::Cat(0)));
}

#[test]
fn cramers_v_of_identical_and_independent_columns() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let x = codes(&mut rng, 2000, 4);
    assert!((cramers_v(&x, &x) - 1.0).abs() < 1e-3);
    let b = codes(&mut rng, 2000, 2);
    assert!(cramers_v(&b, &b) > 0.99);
    let y = codes(&mut rng, 2000, 3);
    assert!(cramers_v(&x, &y) < 0.05);
    assert_eq!(cramers_v(&x, &vec![0; 2000]), 0.0);
}

#[test]
fn cramers_v_matches_scipy_with_yates() {
    let crosstab = |cells: [usize; 4]| -> (Vec<u32>, Vec<u32>) {
        let col = |f: fn(usize) -> usize| {
            (0..4)
                .flat_map(|i| std::iter::repeat_n(f(i) as u32, cells[i]))
                .collect()
        };
        (col(|i| i / 2), col(|i| i % 2))
    };
    // [[10, 20], [30, 40]]: scipy's chi2_contingency gives chi2 = 0.44643 (Yates), below the
    // bias correction 1/99 · n, so V = 0.
    let (x, y) = crosstab([10, 20, 30, 40]);
    assert_eq!(cramers_v(&x, &y), 0.0);
    // [[40, 10], [10, 40]]: Yates chi2 = 4 · 14.5² / 25 (|O − E| = 15, corrected to 14.5).
    let (x, y) = crosstab([40, 10, 10, 40]);
    let chi2: f64 = 4.0 * 14.5 * 14.5 / 25.0;
    let n = 100.0;
    let phi2corr = chi2 / n - 1.0 / (n - 1.0);
    let denom = 2.0 - 1.0 / (n - 1.0) - 1.0;
    assert!((cramers_v(&x, &y) - (phi2corr / denom).sqrt()).abs() < 1e-12);
}

#[test]
fn association_matrix_is_symmetric_with_unit_diagonal() {
    let t = mixed(100, 8);
    let (cols, a) = association_matrix(&t);
    let m = cols.len();
    assert_eq!(cols, t.schema.order);
    for i in 0..m {
        assert_eq!(a[i * m + i], 1.0);
        for j in 0..m {
            assert_eq!(a[i * m + j], a[j * m + i]);
            assert!((0.0..=1.0).contains(&a[i * m + j]));
        }
    }
}

#[test]
fn tabcutmix_plus_copies_whole_clusters() {
    let t = mixed(80, 9);
    let clusters = vec![
        vec![ColumnRef::Num(0), ColumnRef::Num(1)],
        vec![ColumnRef::Cat(0)],
        vec![ColumnRef::Num(2), ColumnRef::Cat(2)],
    ];
    let (out, recs) = mix_rows(&t, 400, &clusters, 11);
    assert_eq!(out, tabcutmix_plus(&t, 400, &clusters, 11));
    let mut seen = [0usize; 4];
    for (r, rec) in recs.iter().enumerate() {
        let i = 80 + r;
        seen[rec.k] += 1;
        let mut copied = 0;
        for cl in &clusters {
            let all_a = cl.iter().all(|&c| value(&out, i, c) == value(&t, rec.a, c));
            let all_b = cl.iter().all(|&c| value(&out, i, c) == value(&t, rec.b, c));
            assert!(all_a || all_b, "cluster {cl:?} of new row {r} is split");
            if !all_a {
                copied += 1;
            }
        }
        assert!(copied <= rec.k);
        assert_eq!(out.labels()[i], t.labels()[rec.a]);
    }
    assert!(seen[..3].iter().all(|&s| s > 50));
    assert_eq!(seen[3], 0);
}

#[test]
fn labels_round_trip_through_serde_and_clap() {
    use clap::ValueEnum;
    for a in [Augment::None, Augment::TabCutMix, Augment::TabCutMixPlus] {
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, format!("\"{}\"", a.label()));
        assert_eq!(Augment::from_str(a.label(), false).unwrap(), a);
    }
}
