//! Mixed-type rows for tabular generative models: numeric columns as `f64`, categorical columns
//! (the target among them) as codes into a fixed list of levels. Training rows, augmented rows and
//! synthetic rows share one schema, so distances and metrics compare them directly.

use std::path::Path;

use crate::data::tabular::{ColumnValues, TabularData};
use crate::error::{CoreError, CoreResult};

/// The level a missing categorical value becomes.
pub const MISSING_LEVEL: &str = "?";

/// Which column of the original table a schema column is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ColumnRef {
    /// The `k`-th numeric column.
    Num(usize),
    /// The `k`-th categorical column.
    Cat(usize),
}

/// The columns of a [`MixedTable`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Schema {
    /// Names of the numeric columns.
    pub num_names: Vec<String>,
    /// Whether each numeric column holds only whole numbers on the training rows (synthetic
    /// values are rounded for those).
    pub integer: Vec<bool>,
    /// Names of the categorical columns (the target is one of them).
    pub cat_names: Vec<String>,
    /// The levels of each categorical column (a missing value is the level `?`).
    pub levels: Vec<Vec<String>>,
    /// Index of the target among the categorical columns.
    pub target: usize,
    /// The original column order, for writing rows back out.
    pub order: Vec<ColumnRef>,
}

impl Schema {
    /// Number of numeric columns.
    pub fn n_num(&self) -> usize {
        self.num_names.len()
    }

    /// Number of categorical columns (the target included).
    pub fn n_cat(&self) -> usize {
        self.cat_names.len()
    }

    /// Number of features (every column but the target).
    pub fn n_features(&self) -> usize {
        self.n_num() + self.n_cat() - 1
    }

    /// Name of a column.
    pub fn name(&self, c: ColumnRef) -> &str {
        match c {
            ColumnRef::Num(k) => &self.num_names[k],
            ColumnRef::Cat(k) => &self.cat_names[k],
        }
    }
}

/// Rows over a [`Schema`]: `num` is `n x n_num`, `cat` is `n x n_cat`, both row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct MixedTable {
    /// The columns.
    pub schema: Schema,
    /// Numeric values, row-major.
    pub num: Vec<f64>,
    /// Categorical codes, row-major.
    pub cat: Vec<u32>,
}

impl MixedTable {
    /// The rows `rows` of `data`. Levels are those of the whole table (plus `?` where a value is
    /// missing anywhere), so any two row sets of one table share a schema. A missing number
    /// becomes the mean of its column over the train split (TabDDPM's `num_nan_policy = mean`).
    pub fn from_data(data: &TabularData, rows: &[usize]) -> Self {
        let train = data.train_indices();
        let mut schema = Schema {
            num_names: Vec::new(),
            integer: Vec::new(),
            cat_names: Vec::new(),
            levels: Vec::new(),
            target: 0,
            order: Vec::new(),
        };
        let mut num_cols: Vec<(&[Option<f64>], f64)> = Vec::new();
        let mut cat_cols: Vec<(&[Option<u32>], u32)> = Vec::new();
        for (k, col) in data.columns.iter().enumerate() {
            match &col.values {
                ColumnValues::Numeric(v) => {
                    let xs: Vec<f64> = train.iter().filter_map(|&i| v[i]).collect();
                    let mean = if xs.is_empty() {
                        0.0
                    } else {
                        xs.iter().sum::<f64>() / xs.len() as f64
                    };
                    schema.order.push(ColumnRef::Num(schema.num_names.len()));
                    schema.num_names.push(col.name.clone());
                    schema.integer.push(xs.iter().all(|x| x.fract() == 0.0));
                    num_cols.push((v, mean));
                }
                ColumnValues::Categorical { codes, categories } => {
                    if k == data.target {
                        schema.target = schema.cat_names.len();
                    }
                    let mut levels = categories.clone();
                    let missing = levels.len() as u32;
                    if codes.iter().any(Option::is_none) {
                        levels.push(MISSING_LEVEL.to_string());
                    }
                    schema.order.push(ColumnRef::Cat(schema.cat_names.len()));
                    schema.cat_names.push(col.name.clone());
                    schema.levels.push(levels);
                    cat_cols.push((codes, missing));
                }
            }
        }
        let mut num = Vec::with_capacity(rows.len() * num_cols.len());
        let mut cat = Vec::with_capacity(rows.len() * cat_cols.len());
        for &i in rows {
            for &(v, mean) in &num_cols {
                num.push(v.get(i).copied().flatten().unwrap_or(mean));
            }
            for &(codes, missing) in &cat_cols {
                cat.push(codes.get(i).copied().flatten().unwrap_or(missing));
            }
        }
        Self { schema, num, cat }
    }

    /// An empty table over `schema`.
    pub fn empty(schema: Schema) -> Self {
        Self {
            schema,
            num: Vec::new(),
            cat: Vec::new(),
        }
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        if self.schema.n_cat() > 0 {
            self.cat.len() / self.schema.n_cat()
        } else {
            self.num.len() / self.schema.n_num().max(1)
        }
    }

    /// The numeric values of row `i`.
    pub fn num_row(&self, i: usize) -> &[f64] {
        let w = self.schema.n_num();
        &self.num[i * w..(i + 1) * w]
    }

    /// The categorical codes of row `i`.
    pub fn cat_row(&self, i: usize) -> &[u32] {
        let w = self.schema.n_cat();
        &self.cat[i * w..(i + 1) * w]
    }

    /// The target code of every row.
    pub fn labels(&self) -> Vec<u32> {
        (0..self.n_rows())
            .map(|i| self.cat_row(i)[self.schema.target])
            .collect()
    }

    /// Appends a row.
    pub fn push(&mut self, num: &[f64], cat: &[u32]) {
        self.num.extend_from_slice(num);
        self.cat.extend_from_slice(cat);
    }

    /// The rows `rows`, in that order.
    pub fn subset(&self, rows: &[usize]) -> Self {
        let mut out = Self::empty(self.schema.clone());
        for &i in rows {
            out.push(self.num_row(i), self.cat_row(i));
        }
        out
    }

    /// This table's rows followed by `other`'s (same schema).
    pub fn concat(&self, other: &Self) -> Self {
        let mut out = self.clone();
        out.num.extend_from_slice(&other.num);
        out.cat.extend_from_slice(&other.cat);
        out
    }

    /// The values of row `i` as strings, in the original column order.
    pub fn row_strings(&self, i: usize) -> Vec<String> {
        self.schema
            .order
            .iter()
            .map(|&c| match c {
                ColumnRef::Num(k) => format_number(self.num_row(i)[k]),
                ColumnRef::Cat(k) => {
                    let code = self.cat_row(i)[k] as usize;
                    self.schema.levels[k]
                        .get(code)
                        .cloned()
                        .unwrap_or_else(|| MISSING_LEVEL.to_string())
                }
            })
            .collect()
    }

    /// The header, in the original column order.
    pub fn header(&self) -> Vec<String> {
        self.schema
            .order
            .iter()
            .map(|&c| self.schema.name(c).to_string())
            .collect()
    }

    /// Writes the rows as CSV with a header, atomically.
    pub fn write_csv(&self, path: &Path) -> CoreResult<()> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let io = |e: csv::Error| CoreError::format(path, format!("cannot write CSV: {e}"));
        w.write_record(self.header()).map_err(io)?;
        for i in 0..self.n_rows() {
            w.write_record(self.row_strings(i)).map_err(io)?;
        }
        let bytes = w
            .into_inner()
            .map_err(|e| CoreError::format(path, format!("cannot write CSV: {e}")))?;
        crate::study::write_atomic(path, &bytes)
    }

    /// Reads rows written by [`write_csv`](Self::write_csv) back over `schema`; an unknown level
    /// or a non-number in a numeric column is an error naming the line and column.
    pub fn read_csv(path: &Path, schema: &Schema) -> CoreResult<Self> {
        let table = crate::data::load_csv(path, true)?;
        let header: Vec<String> = schema.order.iter().map(|&c| schema.name(c).to_string()).collect();
        if table.columns != header {
            // Name the first column that differs (the whole headers make a line too long to read).
            let k = table
                .columns
                .iter()
                .zip(&header)
                .position(|(a, b)| a != b)
                .unwrap_or(table.columns.len().min(header.len()));
            let found = table
                .columns
                .get(k)
                .map_or("nothing".into(), |c| format!("'{c}'"));
            let want = header.get(k).map_or("nothing".into(), |c| format!("'{c}'"));
            return Err(CoreError::format(
                path,
                format!(
                    "header column {} is {found} where this model's rows have {want} ({} columns, \
                     expected {})",
                    k + 1,
                    table.columns.len(),
                    header.len()
                ),
            ));
        }
        let mut out = Self::empty(schema.clone());
        let mut num = vec![0.0; schema.n_num()];
        let mut cat = vec![0u32; schema.n_cat()];
        for (r, row) in table.rows.iter().enumerate() {
            for (value, &c) in row.iter().zip(&schema.order) {
                let bad = |what: &str| {
                    CoreError::format(
                        path,
                        format!("line {}, column '{}': {what} '{value}'", r + 2, schema.name(c)),
                    )
                };
                match c {
                    ColumnRef::Num(k) => {
                        num[k] = value
                            .trim()
                            .parse::<f64>()
                            .ok()
                            .filter(|x| x.is_finite())
                            .ok_or_else(|| bad("not a number:"))?;
                    }
                    ColumnRef::Cat(k) => {
                        cat[k] = schema.levels[k]
                            .iter()
                            .position(|l| l == value.trim())
                            .ok_or_else(|| bad("unknown level"))? as u32;
                    }
                }
            }
            out.push(&num, &cat);
        }
        Ok(out)
    }
}

/// A number as short as it round-trips (whole numbers without a fraction).
fn format_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}
