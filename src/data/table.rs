//! CSV tables (comma-separated, optionally gzip'd; surrounding spaces trimmed, as in UCI Adult).

use std::path::Path;

use super::idx::open_maybe_gz;
use crate::error::{CoreError, CoreResult};

/// A table of strings with named columns.
#[derive(Clone, Debug)]
pub struct Table {
    /// Where it came from.
    pub source: String,
    /// Column names (`c0`, `c1`, ... when the file has no header).
    pub columns: Vec<String>,
    /// Rows, each as long as `columns`.
    pub rows: Vec<Vec<String>>,
}

/// Loads a CSV file. `has_header` says whether the first line names the columns. Rows of a length
/// different from the first row are an error naming the line.
pub fn load_csv(path: &Path, has_header: bool) -> CoreResult<Table> {
    let r = open_maybe_gz(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(has_header)
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(r);
    let mut columns: Vec<String> = if has_header {
        reader
            .headers()
            .map_err(|e| CoreError::format(path, format!("bad CSV header: {e}")))?
            .iter()
            .map(str::to_string)
            .collect()
    } else {
        Vec::new()
    };
    let mut rows = Vec::new();
    for rec in reader.records() {
        let rec = rec.map_err(|e| CoreError::format(path, format!("bad CSV: {e}")))?;
        if rec.len() == 1 && rec.get(0).is_some_and(str::is_empty) {
            continue;
        }
        rows.push(rec.iter().map(str::to_string).collect::<Vec<_>>());
    }
    if columns.is_empty() {
        let width = rows.first().map_or(0, Vec::len);
        columns = (0..width).map(|k| format!("c{k}")).collect();
    }
    if rows.is_empty() {
        return Err(CoreError::format(path, "the table has no rows"));
    }
    Ok(Table {
        source: path.display().to_string(),
        columns,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_adult_style_and_reports_ragged_rows() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, "39, State-gov, <=50K\n50, Private, >50K\n\n").unwrap();
        let t = load_csv(&p, false).unwrap();
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[1][2], ">50K");
        std::fs::write(&p, "a,b\n1,2\n3\n").unwrap();
        let err = load_csv(&p, true).unwrap_err().to_string();
        assert!(err.contains("t.csv"), "{err}");
    }
}
