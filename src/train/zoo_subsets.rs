//! Zoos on given subsets (`rote zoo --subsets FILE.npy`): model k trains on exactly the data-set
//! rows of row k of an integer K x m NPY matrix, so that rote's Feldman–Zhang estimates can be
//! compared with another implementation's on the same subsets (the official estimator's 32 MNIST
//! subsets ship in `shared/data/fz/`). Every row that any subset names is a training candidate and
//! the remaining rows are the test split. The matrix is copied into the zoo folder
//! (`subsets.npy`, byte for byte) and its SHA-256 recorded in `zoo.json`, so the zoo resumes,
//! grows up to K models and reports without the original file.

use std::path::{Path, PathBuf};

use sha2::Digest as _;

use crate::data::{Dataset, Split};
use crate::error::{CoreError, CoreResult};

/// The file name of the copied matrix inside a zoo folder.
pub const SUBSETS_FILE: &str = "subsets.npy";

/// Where a subsets matrix came from, as recorded in `zoo.json`. Two references are equal when
/// their contents are (hash and shape): the original path is informative only.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SubsetsRef {
    /// The file given to `--subsets` (absolute when it could be resolved).
    pub file: String,
    /// SHA-256 of the file's bytes, hex.
    pub sha256: String,
    /// Subsets (rows): the most models the zoo can hold.
    pub k: usize,
    /// Indices per subset.
    pub m: usize,
}

impl PartialEq for SubsetsRef {
    fn eq(&self, other: &Self) -> bool {
        self.sha256 == other.sha256 && self.k == other.k && self.m == other.m
    }
}

/// A validated subsets matrix: row k holds model k's data-set rows, in the file's order.
#[derive(Clone, Debug)]
pub struct Subsets {
    /// The rows.
    pub rows: Vec<Vec<usize>>,
    /// The reference recorded in `zoo.json`.
    pub reference: SubsetsRef,
    /// The file's bytes (copied into the zoo folder).
    pub bytes: Vec<u8>,
}

impl Subsets {
    /// Reads and checks `path` against a data set of `n` rows.
    pub fn read(path: &Path, n: usize) -> CoreResult<Self> {
        let bytes = std::fs::read(path).map_err(|e| CoreError::io(path, e))?;
        let rows = parse_subsets(path, &bytes, n)?;
        let file = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let reference = SubsetsRef {
            file: file.display().to_string(),
            sha256: hex(&sha2::Sha256::digest(&bytes)),
            k: rows.len(),
            m: rows.first().map_or(0, Vec::len),
        };
        Ok(Self {
            rows,
            reference,
            bytes,
        })
    }

    /// Reads the copy in zoo folder `dir` and checks it against the reference of `zoo.json`.
    pub fn in_zoo(dir: &Path, reference: &SubsetsRef, n: usize) -> CoreResult<Self> {
        let path = dir.join(SUBSETS_FILE);
        let s = Self::read(&path, n)?;
        if s.reference != *reference {
            return Err(CoreError::format(
                &path,
                format!(
                    "holds subsets with SHA-256 {} ({} x {}), but zoo.json records {} ({} x {})",
                    short(&s.reference.sha256),
                    s.reference.k,
                    s.reference.m,
                    short(&reference.sha256),
                    reference.k,
                    reference.m
                ),
            ));
        }
        Ok(s)
    }

    /// Model `k`'s rows, or an error when the matrix has fewer rows.
    pub fn row(&self, k: u32) -> CoreResult<&[usize]> {
        self.rows.get(k as usize).map(Vec::as_slice).ok_or_else(|| {
            CoreError::Invalid(format!(
                "the subsets file {} holds {} subsets, so the zoo can hold at most {} models (asked for model {k})",
                self.reference.file, self.reference.k, self.reference.k
            ))
        })
    }
}

/// The path of the copied matrix in zoo folder `dir`.
pub fn subsets_path(dir: &Path) -> PathBuf {
    dir.join(SUBSETS_FILE)
}

/// Parses and checks a subsets matrix for a data set of `n` rows: a 2-D integer NPY array with at
/// least one row and one column, every index in 0..n and no index twice in a row. `path` only
/// names the file in errors.
pub fn parse_subsets(path: &Path, bytes: &[u8], n: usize) -> CoreResult<Vec<Vec<usize>>> {
    let (k, m, values) = crate::data::parse_npy_int_matrix(path, bytes)?;
    if k == 0 || m == 0 {
        return Err(CoreError::format(
            path,
            format!("holds a {k} x {m} matrix: no subsets (K x m, one row of data-set indices per model)"),
        ));
    }
    let mut rows = Vec::with_capacity(k);
    let mut seen = vec![u32::MAX; n];
    for (r, chunk) in values.chunks_exact(m).enumerate() {
        let mut row = Vec::with_capacity(m);
        for &v in chunk {
            let i = usize::try_from(v).ok().filter(|&i| i < n).ok_or_else(|| {
                CoreError::format(
                    path,
                    format!(
                        "row {r} names index {v}, outside the data set's {n} rows (0..{})",
                        n.saturating_sub(1)
                    ),
                )
            })?;
            if seen[i] == r as u32 {
                return Err(CoreError::format(
                    path,
                    format!("row {r} names index {i} twice (a subset is a set of distinct rows)"),
                ));
            }
            seen[i] = r as u32;
            row.push(i);
        }
        rows.push(row);
    }
    Ok(rows)
}

/// `ds` with the split the subsets define: every row some subset names is a training candidate,
/// every other row is test data.
pub fn with_subset_split(ds: &Dataset, rows: &[Vec<usize>]) -> CoreResult<Dataset> {
    let mut split = vec![Split::Test; ds.n];
    for &i in rows.iter().flatten() {
        if let Some(s) = split.get_mut(i) {
            *s = Split::Train;
        }
    }
    Dataset::new(
        ds.name.clone(),
        format!("{} split by the zoo's subsets", ds.source),
        [ds.n, ds.c, ds.h, ds.w],
        ds.pixels.to_vec(),
        ds.labels.to_vec(),
        ds.class_names.clone(),
        ds.max_value,
        Some(split),
    )
    .map(|d| d.with_features_of(ds))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn short(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
        crate::data::npy_bytes(descr, shape, data)
    }

    fn err(bytes: &[u8], n: usize) -> String {
        parse_subsets(Path::new("s.npy"), bytes, n)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn every_integer_type_reads_the_same_rows() {
        let vals = [3i64, 0, 1, 2, 4, 0];
        let mk = |descr: &str, size: usize| {
            let data: Vec<u8> = vals
                .iter()
                .flat_map(|v| v.to_le_bytes()[..size].to_vec())
                .collect();
            npy(descr, &[2, 3], &data)
        };
        let want = vec![vec![3, 0, 1], vec![2, 4, 0]];
        for (d, s) in [
            ("|u1", 1),
            ("|i1", 1),
            ("<i2", 2),
            ("<u2", 2),
            ("<i4", 4),
            ("<u4", 4),
            ("<i8", 8),
            ("<u8", 8),
        ] {
            assert_eq!(
                parse_subsets(Path::new("s.npy"), &mk(d, s), 5).unwrap(),
                want,
                "{d}"
            );
        }
    }

    #[test]
    fn bad_matrices_are_named() {
        let i4 = |v: &[i32], shape: &[usize]| {
            let d: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            npy("<i4", shape, &d)
        };
        assert!(err(&i4(&[0, 1, 5, 2], &[2, 2]), 5).contains("row 1 names index 5, outside"));
        assert!(err(&i4(&[0, -1, 2, 3], &[2, 2]), 5).contains("row 0 names index -1"));
        assert!(err(&i4(&[0, 1, 2, 2], &[2, 2]), 5).contains("row 1 names index 2 twice"));
        assert!(err(&i4(&[0, 1, 2, 3], &[4]), 5).contains("not a 2-D matrix"));
        assert!(err(&i4(&[], &[0, 3]), 5).contains("no subsets"));
        let f = npy("<f4", &[1, 1], &1f32.to_le_bytes());
        assert!(err(&f, 5).contains("not an integer type"));
        let ragged = npy("|O", &[2], &[0u8; 16]);
        assert!(err(&ragged, 5).contains("object array (ragged rows"));
        assert!(err(&i4(&[0, 1, 2], &[2, 2]), 5).contains("truncated data"));
        assert!(err(b"PK\x03\x04", 5).contains("no NPY magic"));
    }

    #[test]
    fn the_subsets_decide_the_split() {
        let ds = Dataset::new(
            "t",
            "t",
            [4, 1, 1, 1],
            vec![0, 1, 2, 3],
            vec![0, 1, 0, 1],
            vec!["a".into(), "b".into()],
            255,
            None,
        )
        .unwrap();
        let d = with_subset_split(&ds, &[vec![3, 1], vec![1]]).unwrap();
        assert_eq!(d.train_indices(), vec![1, 3]);
        assert_eq!(d.test_indices(), vec![0, 2]);
        assert_eq!(d.hash, ds.hash);
    }
}
