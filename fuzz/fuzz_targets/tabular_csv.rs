//! Tables from CSV bytes (issue 20): the plain CSV reader (`rote fairness --predictions`), typed
//! tables with the first column as target (`rote train-tabular --data FILE.csv`), and a table's
//! rows written and read back over its own schema (`samples.csv`, `rote tab-memorization
//! --samples`). Every input is an error naming the file or a consistent table, and every table
//! rote writes reads back with the same rows.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("rote-fuzz-tabular-{}", std::process::id()));
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let path = dir.join("fuzz.csv");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(t) = rote::data::load_csv(&path, true) {
        assert!(t.rows.iter().all(|r| r.len() == t.columns.len()));
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(target) = text.lines().next().and_then(|l| l.split(',').next()) else {
        return;
    };
    let spec = rote::data::TabularSpec::new(target.trim());
    let Ok(table) = rote::data::load_csv_tabular(&path, &spec) else {
        return;
    };
    let n = table.n_rows();
    assert_eq!(table.labels.len(), n);
    assert_eq!(table.split.len(), n);
    assert!(table.labels.iter().all(|&l| usize::from(l) < table.class_names.len()));
    let rows: Vec<usize> = (0..n).collect();
    let mixed = rote::tabular::MixedTable::from_data(&table, &rows);
    let back = dir.join("rows.csv");
    if mixed.write_csv(&back).is_ok() {
        let read = rote::tabular::MixedTable::read_csv(&back, &mixed.schema);
        assert!(read.is_ok_and(|r| r.n_rows() == n), "rows written by rote must read back");
    }
});
