//! Typed tabular data sets: a CSV with a header (or the bundled UCI Adult) becomes columns of
//! numeric or categorical values, a target column, protected attributes, a seeded stratified
//! train/test split and a content hash.
//!
//! Column kinds are inferred (a column is numeric iff every non-missing value parses as a finite
//! number) and can be overridden per column. Missing values (`?` or an empty field) are `None`.
//! The target column is always categorical; its sorted distinct values are the class names.

use std::collections::BTreeMap;
use std::path::Path;

use sha2::Digest as _;

use super::dataset::{Split, stratified_split};
use super::idx::open_maybe_gz;
use crate::error::{CoreError, CoreResult};

/// How a column's values are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnKind {
    /// Numbers (standardised when encoded).
    Numeric,
    /// A fixed set of string values (one-hot when encoded).
    Categorical,
}

/// The values of one column, one per row; `None` is missing.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnValues {
    /// Numbers.
    Numeric(Vec<Option<f64>>),
    /// Codes into `categories`, which are sorted (numerically when every category is a number).
    Categorical {
        /// One code per row.
        codes: Vec<Option<u32>>,
        /// The distinct values, sorted.
        categories: Vec<String>,
    },
}

/// One named, typed column.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// The header name (or the UCI name for Adult).
    pub name: String,
    /// The values.
    pub values: ColumnValues,
}

impl Column {
    /// Numeric or categorical.
    pub fn kind(&self) -> ColumnKind {
        match self.values {
            ColumnValues::Numeric(_) => ColumnKind::Numeric,
            ColumnValues::Categorical { .. } => ColumnKind::Categorical,
        }
    }

    /// Number of rows with a missing value.
    pub fn missing_count(&self) -> usize {
        match &self.values {
            ColumnValues::Numeric(v) => v.iter().filter(|x| x.is_none()).count(),
            ColumnValues::Categorical { codes, .. } => codes.iter().filter(|x| x.is_none()).count(),
        }
    }
}

/// How to read a table: which column is the target, which are protected, kind overrides, split.
#[derive(Clone, Debug, PartialEq)]
pub struct TabularSpec {
    /// The column to predict.
    pub target: String,
    /// Protected attributes (e.g. `sex`, `race`); they stay features.
    pub protected: Vec<String>,
    /// Kind overrides by column name; they win over inference.
    pub kinds: BTreeMap<String, ColumnKind>,
    /// Fraction of each class held out for test, in `[0, 1)`.
    pub test_fraction: f64,
    /// Seed of the split.
    pub seed: u64,
}

impl TabularSpec {
    /// A spec with `target`, no protected columns, no overrides, a 20% test split and seed 0.
    pub fn new(target: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            protected: Vec::new(),
            kinds: BTreeMap::new(),
            test_fraction: 0.2,
            seed: 0,
        }
    }
}

/// A typed table with a target, protected attributes, a split and a content hash.
#[derive(Clone, Debug)]
pub struct TabularData {
    /// Short name (`adult`, or the file stem).
    pub name: String,
    /// Where it came from (a path or "bundled: ...").
    pub source: String,
    /// All columns, the target included, in file order.
    pub columns: Vec<Column>,
    /// Index of the target column in `columns`.
    pub target: usize,
    /// The target's classes (its sorted categories).
    pub class_names: Vec<String>,
    /// One label per row: an index into `class_names`.
    pub labels: Vec<u16>,
    /// Indices of the protected columns in `columns`.
    pub protected: Vec<usize>,
    /// Train or test, one per row.
    pub split: Vec<Split>,
    /// Hex content hash over column names, kinds, values and labels (first 16 hex of SHA-256).
    pub hash: String,
}

/// The UCI names of the 15 Adult columns, comma-separated.
pub const ADULT_COLUMNS: &str = "age,workclass,fnlwgt,education,education-num,marital-status,\
    occupation,relationship,race,sex,capital-gain,capital-loss,hours-per-week,native-country,income";

/// Loads a CSV (optionally gzip'd) whose first line names the columns.
pub fn load_csv_tabular(path: &Path, spec: &TabularSpec) -> CoreResult<TabularData> {
    let (header, rows) = read_records(path, true)?;
    let name = file_stem(path);
    build(path, &name, path.display().to_string(), header, &rows, spec)
}

/// Loads the bundled UCI Adult training file (`assets/tabular/adult.data.gz`): target `income`,
/// protected `sex` and `race`, 20% test, seed 0.
pub fn load_adult() -> CoreResult<TabularData> {
    let path = crate::paths::assets_dir().join("tabular").join("adult.data.gz");
    let mut spec = TabularSpec::new("income");
    spec.protected = vec!["sex".to_string(), "race".to_string()];
    load_adult_with(&path, &spec)
}

/// Loads a header-less Adult-format file with the UCI column names.
pub fn load_adult_with(path: &Path, spec: &TabularSpec) -> CoreResult<TabularData> {
    let (_, rows) = read_records(path, false)?;
    let header = ADULT_COLUMNS.split(',').map(str::to_string).collect();
    let source = format!("bundled: assets/tabular/{}", file_name(path));
    build(path, "adult", source, header, &rows, spec)
}

impl TabularData {
    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.labels.len()
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Rows on the train side.
    pub fn train_indices(&self) -> Vec<usize> {
        self.indices_of(Split::Train)
    }

    /// Rows on the test side.
    pub fn test_indices(&self) -> Vec<usize> {
        self.indices_of(Split::Test)
    }

    fn indices_of(&self, which: Split) -> Vec<usize> {
        (0..self.split.len())
            .filter(|&i| self.split[i] == which)
            .collect()
    }

    /// Rows per class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.class_names.len()];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        counts
    }

    /// Names of the encoded features, in [`encode`](Self::encode) order: every column but the
    /// target; a numeric column gives its name, a categorical one `name=value` per category.
    /// Protected attributes are kept as features (a fairness audit needs the model to see them).
    pub fn feature_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for (k, col) in self.columns.iter().enumerate() {
            if k == self.target {
                continue;
            }
            match &col.values {
                ColumnValues::Numeric(_) => names.push(col.name.clone()),
                ColumnValues::Categorical { categories, .. } => {
                    names.extend(categories.iter().map(|c| format!("{}={c}", col.name)));
                }
            }
        }
        names
    }

    /// Classifier inputs for `rows`: row-major `rows.len() x width`, returned with `width`.
    /// Numeric columns are standardised with the mean and standard deviation of the train split
    /// (a missing value becomes 0, the train mean); categorical columns are one-hot (a missing
    /// value is all zeros). The target is excluded; protected attributes are kept.
    /// Out-of-range row indices give rows of zeros.
    pub fn encode(&self, rows: &[usize]) -> (Vec<f32>, usize) {
        let train = self.train_indices();
        let mut blocks: Vec<(&ColumnValues, f64, f64)> = Vec::new();
        let mut width = 0;
        for (k, col) in self.columns.iter().enumerate() {
            if k == self.target {
                continue;
            }
            match &col.values {
                ColumnValues::Numeric(v) => {
                    let (mean, std) = mean_std(v, &train);
                    blocks.push((&col.values, mean, std));
                    width += 1;
                }
                ColumnValues::Categorical { categories, .. } => {
                    blocks.push((&col.values, 0.0, 1.0));
                    width += categories.len();
                }
            }
        }
        let mut out = vec![0.0f32; rows.len() * width];
        for (r, &i) in rows.iter().enumerate() {
            let row = &mut out[r * width..(r + 1) * width];
            let mut at = 0;
            for &(values, mean, std) in &blocks {
                match values {
                    ColumnValues::Numeric(v) => {
                        if let Some(Some(x)) = v.get(i) {
                            row[at] = ((x - mean) / std) as f32;
                        }
                        at += 1;
                    }
                    ColumnValues::Categorical { codes, categories } => {
                        if let Some(Some(c)) = codes.get(i)
                            && let Some(slot) = row.get_mut(at + *c as usize)
                        {
                            *slot = 1.0;
                        }
                        at += categories.len();
                    }
                }
            }
        }
        (out, width)
    }
}

/// Mean and population standard deviation of the non-missing values at `rows` (std 1 when it
/// would be 0 or there are no values, so constant columns encode as 0).
fn mean_std(v: &[Option<f64>], rows: &[usize]) -> (f64, f64) {
    let xs: Vec<f64> = rows.iter().filter_map(|&i| v.get(i).copied().flatten()).collect();
    if xs.is_empty() {
        return (0.0, 1.0);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    let std = var.sqrt();
    (mean, if std > 1e-12 { std } else { 1.0 })
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
}

fn file_stem(path: &Path) -> String {
    let name = file_name(path);
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    let name = name.strip_suffix(".csv").unwrap_or(name);
    name.to_string()
}

/// A data row with the 1-based line of the file it starts on.
type Row = (u64, Vec<String>);

/// Reads every record (fields trimmed), checking that each row has as many fields as the header
/// (or the first row when there is no header).
fn read_records(path: &Path, has_header: bool) -> CoreResult<(Vec<String>, Vec<Row>)> {
    let r = open_maybe_gz(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(r);
    let mut header: Vec<String> = Vec::new();
    let mut rows: Vec<Row> = Vec::new();
    let mut first = true;
    for rec in reader.records() {
        let rec = rec.map_err(|e| {
            let line = e
                .position()
                .map_or(String::new(), |p| format!("line {}: ", p.line()));
            CoreError::format(path, format!("{line}bad CSV: {e}"))
        })?;
        let line = rec.position().map_or(0, csv::Position::line);
        if rec.iter().all(str::is_empty) {
            continue;
        }
        let fields: Vec<String> = rec.iter().map(str::to_string).collect();
        if first && has_header {
            header = fields;
            first = false;
            continue;
        }
        first = false;
        let expected = if has_header {
            header.len()
        } else {
            rows.first().map_or(fields.len(), |(_, f)| f.len())
        };
        if fields.len() != expected {
            return Err(CoreError::format(
                path,
                format!(
                    "line {line}: ragged row: expected {expected} fields, found {}",
                    fields.len()
                ),
            ));
        }
        rows.push((line, fields));
    }
    if first {
        return Err(CoreError::format(path, "the file is empty"));
    }
    if rows.is_empty() {
        return Err(CoreError::format(path, "the file has a header but no data rows"));
    }
    Ok((header, rows))
}

/// Field `k` of a row (rows are checked to be as wide as the header).
fn cell(r: &Row, k: usize) -> &str {
    r.1.get(k).map_or("", String::as_str)
}

fn is_missing(s: &str) -> bool {
    s.is_empty() || s == "?"
}

fn parse_number(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// Sorted distinct values: numerically when every one is a number, else as strings.
fn sorted_categories<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut cats: Vec<String> = values
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(str::to_string)
        .collect();
    if cats.iter().all(|c| parse_number(c).is_some()) {
        cats.sort_by(|a, b| {
            let (x, y) = (parse_number(a).unwrap_or(0.0), parse_number(b).unwrap_or(0.0));
            x.total_cmp(&y).then_with(|| a.cmp(b))
        });
    }
    cats
}

fn unknown_column(path: &Path, what: &str, name: &str, header: &[String]) -> CoreError {
    CoreError::format(
        path,
        format!(
            "{what} column \"{name}\" not found; the columns are: {}",
            header.join(", ")
        ),
    )
}

fn build(
    path: &Path,
    name: &str,
    source: String,
    header: Vec<String>,
    rows: &[Row],
    spec: &TabularSpec,
) -> CoreResult<TabularData> {
    let find = |n: &str| header.iter().position(|h| h == n);
    if let Some((line, fields)) = rows.iter().find(|(_, f)| f.len() != header.len()) {
        return Err(CoreError::format(
            path,
            format!(
                "line {line}: ragged row: expected {} fields, found {}",
                header.len(),
                fields.len()
            ),
        ));
    }
    for (k, h) in header.iter().enumerate() {
        if header[..k].contains(h) {
            return Err(CoreError::format(
                path,
                format!("line 1: column \"{h}\" appears twice in the header"),
            ));
        }
    }
    let target = find(&spec.target).ok_or_else(|| unknown_column(path, "target", &spec.target, &header))?;
    let mut protected = Vec::new();
    for p in &spec.protected {
        let k = find(p).ok_or_else(|| unknown_column(path, "protected", p, &header))?;
        if k == target {
            return Err(CoreError::format(
                path,
                format!("column \"{p}\" cannot be both the target and protected"),
            ));
        }
        protected.push(k);
    }
    for (col, kind) in &spec.kinds {
        if find(col).is_none() {
            return Err(unknown_column(path, "overridden", col, &header));
        }
        if col == &spec.target && *kind == ColumnKind::Numeric {
            return Err(CoreError::format(
                path,
                format!("target column \"{col}\" cannot be numeric: the target is categorical"),
            ));
        }
    }
    if !(0.0..1.0).contains(&spec.test_fraction) {
        return Err(CoreError::Invalid(format!(
            "test fraction {} is outside [0, 1)",
            spec.test_fraction
        )));
    }
    let mut columns = Vec::with_capacity(header.len());
    for (k, col_name) in header.iter().enumerate() {
        let kind = if k == target {
            ColumnKind::Categorical
        } else if let Some(kind) = spec.kinds.get(col_name) {
            *kind
        } else if rows
            .iter()
            .map(|r| cell(r, k))
            .all(|s| is_missing(s) || parse_number(s).is_some())
        {
            ColumnKind::Numeric
        } else {
            ColumnKind::Categorical
        };
        let values = match kind {
            ColumnKind::Numeric => {
                let mut v = Vec::with_capacity(rows.len());
                for r in rows {
                    let s = cell(r, k);
                    if is_missing(s) {
                        v.push(None);
                    } else if let Some(x) = parse_number(s) {
                        v.push(Some(x));
                    } else {
                        return Err(CoreError::format(
                            path,
                            format!("line {}, column \"{col_name}\": \"{s}\" is not a number", r.0),
                        ));
                    }
                }
                ColumnValues::Numeric(v)
            }
            ColumnKind::Categorical => {
                let categories =
                    sorted_categories(rows.iter().map(|r| cell(r, k)).filter(|s| !is_missing(s)));
                let index: BTreeMap<&str, u32> = categories
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.as_str(), i as u32))
                    .collect();
                let codes = rows.iter().map(|r| index.get(cell(r, k)).copied()).collect();
                ColumnValues::Categorical { codes, categories }
            }
        };
        columns.push(Column {
            name: col_name.clone(),
            values,
        });
    }
    let (class_names, labels) = target_labels(path, &columns[target], rows)?;
    let split = stratified_split(&labels, spec.test_fraction, spec.seed);
    let hash = content_hash(&columns, &labels);
    Ok(TabularData {
        name: name.to_string(),
        source,
        columns,
        target,
        class_names,
        labels,
        protected,
        split,
        hash,
    })
}

fn target_labels(path: &Path, col: &Column, rows: &[Row]) -> CoreResult<(Vec<String>, Vec<u16>)> {
    let ColumnValues::Categorical { codes, categories } = &col.values else {
        return Err(CoreError::format(path, "the target column is not categorical"));
    };
    let name = &col.name;
    if categories.len() < 2 {
        return Err(CoreError::format(
            path,
            format!(
                "target column \"{name}\" has {} class{} ({}); need at least 2",
                categories.len(),
                if categories.len() == 1 { "" } else { "es" },
                categories.join(", ")
            ),
        ));
    }
    if categories.len() > usize::from(u16::MAX) {
        return Err(CoreError::format(
            path,
            format!(
                "target column \"{name}\" has {} classes; at most 65535",
                categories.len()
            ),
        ));
    }
    let mut labels = Vec::with_capacity(codes.len());
    for (code, r) in codes.iter().zip(rows) {
        match code {
            Some(c) => labels.push(*c as u16),
            None => {
                return Err(CoreError::format(
                    path,
                    format!("line {}, column \"{name}\": the target value is missing", r.0),
                ));
            }
        }
    }
    Ok((categories.clone(), labels))
}

fn content_hash(columns: &[Column], labels: &[u16]) -> String {
    let mut h = sha2::Sha256::new();
    let put_str = |h: &mut sha2::Sha256, s: &str| {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    h.update((columns.len() as u64).to_le_bytes());
    for col in columns {
        put_str(&mut h, &col.name);
        match &col.values {
            ColumnValues::Numeric(v) => {
                h.update(b"N");
                for x in v {
                    match x {
                        Some(x) => {
                            h.update([1u8]);
                            h.update(x.to_bits().to_le_bytes());
                        }
                        None => h.update([0u8]),
                    }
                }
            }
            ColumnValues::Categorical { codes, categories } => {
                h.update(b"C");
                h.update((categories.len() as u64).to_le_bytes());
                for c in categories {
                    put_str(&mut h, c);
                }
                for c in codes {
                    h.update(c.map_or(u32::MAX, |c| c).to_le_bytes());
                }
            }
        }
    }
    for l in labels {
        h.update(l.to_le_bytes());
    }
    let digest = h.finalize();
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[path = "tabular_tests.rs"]
mod tests;
