#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use super::*;

fn class_rate(d: &TabularData, rows: &[usize], class: u16) -> f64 {
    rows.iter().filter(|&&i| d.labels[i] == class).count() as f64 / rows.len() as f64
}

#[test]
fn adult_loads_typed_split_and_hashed() {
    let d = load_adult().unwrap();
    assert_eq!(d.name, "adult");
    assert_eq!(d.n_rows(), 32_561);
    assert_eq!(d.columns.len(), 15);
    assert_eq!(d.columns[d.target].name, "income");
    assert_eq!(d.class_names, vec!["<=50K", ">50K"]);
    let names: Vec<&str> = d.protected.iter().map(|&k| d.columns[k].name.as_str()).collect();
    assert_eq!(names, vec!["sex", "race"]);
    assert_eq!(d.column("age").unwrap().kind(), ColumnKind::Numeric);
    assert_eq!(d.column("age").unwrap().missing_count(), 0);
    let work = d.column("workclass").unwrap();
    assert_eq!(work.kind(), ColumnKind::Categorical);
    assert!(work.missing_count() > 1000, "{}", work.missing_count());
    let ColumnValues::Categorical { categories, .. } = &work.values else {
        panic!("workclass is not categorical");
    };
    assert!(categories.contains(&"Private".to_string()));
    assert!(!categories.iter().any(|c| c == "?"));
    let numeric = d
        .columns
        .iter()
        .filter(|c| c.kind() == ColumnKind::Numeric)
        .count();
    assert_eq!(numeric, 6);

    let counts = d.class_counts();
    assert_eq!(counts[1], 7_841);
    let all: Vec<usize> = (0..d.n_rows()).collect();
    let rate = class_rate(&d, &all, 1);
    assert!((0.23..0.25).contains(&rate), "{rate}");

    let (train, test) = (d.train_indices(), d.test_indices());
    assert_eq!(train.len() + test.len(), d.n_rows());
    let frac = test.len() as f64 / d.n_rows() as f64;
    assert!((frac - 0.2).abs() < 0.005, "{frac}");
    for rows in [&train, &test] {
        let r = class_rate(&d, rows, 1);
        assert!((r - rate).abs() < 0.01, "{r} vs {rate}");
    }

    let again = load_adult().unwrap();
    assert_eq!(d.hash.len(), 16);
    assert_eq!(d.hash, again.hash);
    assert_eq!(d.split, again.split);

    // Encoding: 6 numerics + every category of the 8 categorical features.
    let n_cats: usize = d
        .columns
        .iter()
        .enumerate()
        .filter(|(k, _)| *k != d.target)
        .map(|(_, c)| match &c.values {
            ColumnValues::Categorical { categories, .. } => categories.len(),
            ColumnValues::Numeric(_) => 0,
        })
        .sum();
    let (x, width) = d.encode(&train);
    assert_eq!(width, 6 + n_cats);
    assert_eq!(d.feature_names().len(), width);
    assert_eq!(x.len(), train.len() * width);
    let names = d.feature_names();
    assert!(
        names.contains(&"sex=Female".to_string()),
        "protected stays a feature"
    );
    assert!(!names.iter().any(|n| n.starts_with("income")), "target excluded");
    let age = names.iter().position(|n| n == "age").unwrap();
    let col: Vec<f64> = x.chunks(width).map(|r| f64::from(r[age])).collect();
    let mean = col.iter().sum::<f64>() / col.len() as f64;
    let std = (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / col.len() as f64).sqrt();
    assert!(mean.abs() < 1e-4 && (std - 1.0).abs() < 1e-4, "{mean} {std}");
    // A row with missing workclass has no workclass bit set.
    let ColumnValues::Categorical { codes, .. } = &work.values else {
        panic!("workclass is not categorical");
    };
    let miss = codes.iter().position(Option::is_none).unwrap();
    let (row, _) = d.encode(&[miss]);
    let wk: Vec<usize> = (0..width)
        .filter(|&j| names[j].starts_with("workclass="))
        .collect();
    assert_eq!(wk.len(), categories.len());
    assert!(wk.iter().all(|&j| row[j] == 0.0));
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn spec(target: &str) -> TabularSpec {
    TabularSpec::new(target)
}

#[test]
fn small_csv_infers_kinds_and_overrides_win() {
    let dir = tempfile::tempdir().unwrap();
    let text = "age,color,grade,y\n30,red,1,a\n?,blue,2,b\n41,,10,a\n25,red,2,b\n50,blue,1,a\n";
    let p = write(dir.path(), "small.csv", text);
    let d = load_csv_tabular(&p, &spec("y")).unwrap();
    assert_eq!(d.name, "small");
    assert_eq!(d.column("age").unwrap().kind(), ColumnKind::Numeric);
    assert_eq!(d.column("age").unwrap().missing_count(), 1);
    assert_eq!(d.column("color").unwrap().kind(), ColumnKind::Categorical);
    assert_eq!(d.column("color").unwrap().missing_count(), 1);
    assert_eq!(d.column("grade").unwrap().kind(), ColumnKind::Numeric);
    assert_eq!(d.labels, vec![0, 1, 0, 1, 0]);

    let mut s = spec("y");
    s.kinds.insert("grade".into(), ColumnKind::Categorical);
    let o = load_csv_tabular(&p, &s).unwrap();
    let g = o.column("grade").unwrap();
    assert_eq!(g.kind(), ColumnKind::Categorical);
    let ColumnValues::Categorical { codes, categories } = &g.values else {
        panic!("grade is not categorical");
    };
    assert_eq!(categories, &vec!["1", "2", "10"], "sorted numerically");
    assert_eq!(codes, &vec![Some(0), Some(1), Some(2), Some(1), Some(0)]);
    assert_ne!(o.hash, d.hash, "kind is part of the hash");
    let (_, width) = o.encode(&[0]);
    assert_eq!(width, 1 + 2 + 3);
    assert_eq!(
        o.feature_names(),
        vec!["age", "color=blue", "color=red", "grade=1", "grade=2", "grade=10"]
    );
}

#[test]
fn hash_changes_with_one_value_and_split_follows_seed() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("x,y\n");
    for i in 0..100 {
        text.push_str(&format!("{i},{}\n", if i % 4 == 0 { "p" } else { "q" }));
    }
    let p = write(dir.path(), "h.csv", &text);
    let a = load_csv_tabular(&p, &spec("y")).unwrap();
    let b = load_csv_tabular(&p, &spec("y")).unwrap();
    assert_eq!(a.hash, b.hash);
    assert_eq!(a.split, b.split);
    assert_eq!(a.test_indices().len(), 20);
    let mut s = spec("y");
    s.seed = 7;
    let c = load_csv_tabular(&p, &s).unwrap();
    assert_eq!(c.hash, a.hash, "the split is not content");
    assert_ne!(c.split, a.split);
    let q = write(dir.path(), "h2.csv", &text.replacen("\n57,", "\n58,", 1));
    let d = load_csv_tabular(&q, &spec("y")).unwrap();
    assert_ne!(d.hash, a.hash);
}

fn err_of(dir: &Path, name: &str, text: &str, s: &TabularSpec) -> String {
    let p = write(dir, name, text);
    load_csv_tabular(&p, s).unwrap_err().to_string()
}

#[test]
fn malformed_csvs_name_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let e = err_of(d, "empty.csv", "", &spec("y"));
    assert!(e.contains("empty.csv") && e.contains("the file is empty"), "{e}");
    let e = err_of(d, "head.csv", "a,y\n", &spec("y"));
    assert!(e.contains("head.csv") && e.contains("no data rows"), "{e}");
    let e = err_of(d, "ragged.csv", "a,b,y\n1,2,p\n3,4,q\n5,6\n", &spec("y"));
    assert!(e.contains("ragged.csv") && e.contains("line 4"), "{e}");
    assert!(e.contains("expected 3") && e.contains("found 2"), "{e}");

    let mut s = spec("y");
    s.kinds.insert("age".into(), ColumnKind::Numeric);
    let mut text = String::from("age,y\n");
    for i in 0..20 {
        text.push_str(&format!(
            "{},{}\n",
            if i == 15 { "abc".into() } else { i.to_string() },
            i % 2
        ));
    }
    let e = err_of(d, "adult.csv", &text, &s);
    assert!(
        e.contains("adult.csv: line 17, column \"age\": \"abc\" is not a number"),
        "{e}"
    );

    let e = err_of(d, "t.csv", "a,b\n1,2\n3,4\n", &spec("income"));
    assert!(
        e.contains("t.csv") && e.contains("\"income\"") && e.contains("a, b"),
        "{e}"
    );
    let mut s = spec("b");
    s.protected = vec!["sex".into()];
    let e = err_of(d, "p.csv", "a,b\n1,x\n3,y\n", &s);
    assert!(
        e.contains("p.csv") && e.contains("\"sex\"") && e.contains("a, b"),
        "{e}"
    );
    let e = err_of(d, "one.csv", "a,b\n1,x\n3,x\n", &spec("b"));
    assert!(
        e.contains("one.csv") && e.contains("\"b\"") && e.contains("1 class"),
        "{e}"
    );
    let e = err_of(d, "miss.csv", "a,b\n1,x\n3,?\n4,y\n", &spec("b"));
    assert!(e.contains("miss.csv: line 3, column \"b\""), "{e}");
}

#[test]
fn adult_hash_changes_when_one_value_changes() {
    use std::io::Read as _;
    let path = crate::paths::assets_dir().join("tabular").join("adult.data.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut s = TabularSpec::new("income");
    s.protected = vec!["sex".into(), "race".into()];
    let same = load_adult_with(&write(dir.path(), "same.data", &text), &s).unwrap();
    let bundled = load_adult().unwrap();
    assert_eq!(same.hash, bundled.hash, "gzip or not, same content");
    // First row's age 39 -> 40.
    assert!(text.starts_with("39, State-gov"));
    let changed = text.replacen("39, State-gov", "40, State-gov", 1);
    let other = load_adult_with(&write(dir.path(), "changed.data", &changed), &s).unwrap();
    assert_ne!(other.hash, bundled.hash);
    assert_eq!(other.n_rows(), bundled.n_rows());
}
