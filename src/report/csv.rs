//! Tables as CSV (RFC 4180: CRLF line ends, fields with a comma, quote or line break quoted, quotes
//! doubled; a header row; `.` decimals, `nan` for NaN, an empty field for a missing value), the
//! form pandas' `read_csv` reads with its defaults.

/// One value of a table.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Cell {
    /// Text.
    Text(String),
    /// An integer.
    Int(i64),
    /// A number (written with the shortest representation that reads back exactly).
    F64(f64),
    /// A single-precision number (written as f32 prints, so JSON and CSV agree).
    F32(f32),
    /// true / false.
    Bool(bool),
    /// A missing value (empty field).
    Empty,
}

impl Cell {
    /// The field as written in the CSV file.
    pub fn csv_text(&self) -> String {
        match self {
            Self::Text(s) => s.clone(),
            Self::Int(v) => v.to_string(),
            Self::F64(v) => float_text(*v, |x| x.to_string(), |x| format!("{x:e}")),
            Self::F32(v) => float_text(f64::from(*v), |_| v.to_string(), |_| format!("{v:e}")),
            Self::Bool(b) => b.to_string(),
            Self::Empty => String::new(),
        }
    }

    /// The value as shown in the page (numbers rounded).
    pub fn display(&self) -> String {
        let num = |v: f64| {
            if v.is_nan() {
                "nan".to_string()
            } else if v.is_infinite() {
                if v > 0.0 { "inf" } else { "-inf" }.to_string()
            } else if v == 0.0 || (1e-3..1e6).contains(&v.abs()) {
                let s = format!("{v:.4}");
                let s = s.trim_end_matches('0').trim_end_matches('.');
                s.to_string()
            } else {
                format!("{v:.3e}")
            }
        };
        match self {
            Self::F64(v) => num(*v),
            Self::F32(v) => num(f64::from(*v)),
            Self::Bool(true) => "yes".into(),
            Self::Bool(false) => "no".into(),
            other => other.csv_text(),
        }
    }
}

/// `nan`, `inf`, `-inf`; plain decimals for ordinary magnitudes, exponent notation for tiny or
/// huge ones (both parse as floats in pandas and Python).
fn float_text(v: f64, plain: impl Fn(f64) -> String, exp: impl Fn(f64) -> String) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.into()
    } else if v == 0.0 || (1e-5..1e16).contains(&v.abs()) {
        plain(v)
    } else {
        exp(v)
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Self::Text(s.to_string())
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}

impl From<f64> for Cell {
    fn from(v: f64) -> Self {
        Self::F64(v)
    }
}

impl From<f32> for Cell {
    fn from(v: f32) -> Self {
        Self::F32(v)
    }
}

impl From<bool> for Cell {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}

impl From<usize> for Cell {
    fn from(v: usize) -> Self {
        Self::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<u64> for Cell {
    fn from(v: u64) -> Self {
        Self::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<u32> for Cell {
    fn from(v: u32) -> Self {
        Self::Int(i64::from(v))
    }
}

impl From<u16> for Cell {
    fn from(v: u16) -> Self {
        Self::Int(i64::from(v))
    }
}

impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Empty, Into::into)
    }
}

/// A table: a header and rows of the same width.
#[derive(Clone, Debug, Default)]
pub(crate) struct Table {
    /// Column names.
    pub header: Vec<String>,
    /// Rows (each as long as the header).
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    /// An empty table with these columns.
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| (*h).to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row, padded with empty cells or cut to the header's width.
    pub fn push(&mut self, mut row: Vec<Cell>) {
        row.resize(self.header.len(), Cell::Empty);
        self.rows.push(row);
    }

    /// The CSV text.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let line = |out: &mut String, fields: &mut dyn Iterator<Item = String>| {
            let mut first = true;
            for f in fields {
                if !first {
                    out.push(',');
                }
                first = false;
                out.push_str(&quote(&f));
            }
            out.push_str("\r\n");
        };
        line(&mut out, &mut self.header.iter().cloned());
        for row in &self.rows {
            line(&mut out, &mut row.iter().map(Cell::csv_text));
        }
        out
    }
}

/// A field quoted when it must be (RFC 4180).
pub(crate) fn quote(field: &str) -> String {
    if field.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_numbers_and_missing_values() {
        let mut t = Table::new(&["name", "x", "y"]);
        t.push(vec![
            "a, \"b\"\nc".into(),
            f64::NAN.into(),
            Cell::from(None::<f64>),
        ]);
        t.push(vec!["plain".into(), 0.1f32.into(), 1e-9f64.into()]);
        t.push(vec![true.into(), f64::NEG_INFINITY.into()]);
        assert_eq!(
            t.to_csv(),
            "name,x,y\r\n\"a, \"\"b\"\"\nc\",nan,\r\nplain,0.1,1e-9\r\ntrue,-inf,\r\n"
        );
        assert_eq!(Cell::F64(0.123456).display(), "0.1235");
        assert_eq!(Cell::F64(2.0).display(), "2");
        assert_eq!(Cell::F64(1.5e-5).display(), "1.500e-5");
    }
}
