//! NPY image arrays (u8 0..255 or f32 0..1): N x H x W (grey), N x H x W x C or N x C x H x W
//! (C = 1 or 3). Labels come from `<stem>-labels.npy` or `labels.npy` beside the file (integer
//! array of length N); without one every image gets label 0.

use std::path::Path;

use super::Dataset;
use crate::error::{CoreError, CoreResult};

/// Element types rote reads from NPY files (little-endian where it matters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Elem {
    U8,
    Bool,
    I8,
    I16,
    U16,
    I32,
    I64,
    U32,
    U64,
    F32,
    F64,
}

impl Elem {
    fn from_descr(descr: &str) -> Option<Self> {
        let d = descr.strip_prefix(['<', '|', '=']).unwrap_or(descr);
        Some(match d {
            "u1" | "B" => Self::U8,
            "b1" | "?" => Self::Bool,
            "i1" | "b" => Self::I8,
            "i2" | "h" => Self::I16,
            "u2" | "H" => Self::U16,
            "i4" | "i" => Self::I32,
            "i8" | "q" => Self::I64,
            "u4" | "I" => Self::U32,
            "u8" | "Q" => Self::U64,
            "f4" | "f" => Self::F32,
            "f8" | "d" => Self::F64,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Self::U8 | Self::Bool | Self::I8 => 1,
            Self::I16 | Self::U16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::I64 | Self::U64 | Self::F64 => 8,
        }
    }

    fn is_integer(self) -> bool {
        !matches!(self, Self::Bool | Self::F32 | Self::F64)
    }

    /// The element at `b` as an i128 (integer types only; exact for every one of them).
    fn integer(self, b: &[u8]) -> Option<i128> {
        let mut w = [0u8; 8];
        let n = b.len().min(8);
        w[..n].copy_from_slice(&b[..n]);
        Some(match self {
            Self::U8 => i128::from(w[0]),
            Self::I8 => i128::from(w[0] as i8),
            Self::I16 => i128::from(i16::from_le_bytes([w[0], w[1]])),
            Self::U16 => i128::from(u16::from_le_bytes([w[0], w[1]])),
            Self::I32 => i128::from(i32::from_le_bytes([w[0], w[1], w[2], w[3]])),
            Self::U32 => i128::from(u32::from_le_bytes([w[0], w[1], w[2], w[3]])),
            Self::I64 => i128::from(i64::from_le_bytes(w)),
            Self::U64 => i128::from(u64::from_le_bytes(w)),
            Self::Bool | Self::F32 | Self::F64 => return None,
        })
    }
}

/// A parsed NPY array: shape, element type and exactly its data bytes (borrowed).
struct NpyArray<'a> {
    shape: Vec<usize>,
    descr: String,
    elem: Elem,
    data: &'a [u8],
}

impl NpyArray<'_> {
    /// The elements as f64 (exact for every supported type but 64-bit integers beyond 2^53).
    fn values(&self) -> impl Iterator<Item = f64> + '_ {
        let elem = self.elem;
        self.data.chunks_exact(elem.size()).map(move |b| {
            let mut w = [0u8; 8];
            w[..b.len()].copy_from_slice(b);
            match elem {
                Elem::U8 | Elem::Bool => f64::from(w[0]),
                Elem::I8 => f64::from(w[0] as i8),
                Elem::I16 => f64::from(i16::from_le_bytes([w[0], w[1]])),
                Elem::U16 => f64::from(u16::from_le_bytes([w[0], w[1]])),
                Elem::I32 => f64::from(i32::from_le_bytes([w[0], w[1], w[2], w[3]])),
                Elem::U32 => f64::from(u32::from_le_bytes([w[0], w[1], w[2], w[3]])),
                Elem::F32 => f64::from(f32::from_le_bytes([w[0], w[1], w[2], w[3]])),
                Elem::I64 => i64::from_le_bytes(w) as f64,
                Elem::U64 => u64::from_le_bytes(w) as f64,
                Elem::F64 => f64::from_le_bytes(w),
            }
        })
    }
}

/// The value after `'key':` in an NPY header dictionary.
fn header_value<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let (_, after) = header
        .split_once(&format!("'{key}'"))
        .or_else(|| header.split_once(&format!("\"{key}\"")))?;
    Some(after.trim_start().strip_prefix(':')?.trim_start())
}

/// Parses the header of an NPY file and checks that the data holds every element it declares
/// before anything is allocated.
fn parse_npy<'a>(path: &Path, bytes: &'a [u8]) -> CoreResult<NpyArray<'a>> {
    let bad = |msg: String| CoreError::format(path, format!("not a readable NPY array: {msg}"));
    let rest = bytes
        .strip_prefix(b"\x93NUMPY")
        .ok_or_else(|| bad("no NPY magic string".into()))?;
    let version = *rest.first().ok_or_else(|| bad("truncated header".into()))?;
    let len_len = match version {
        1 => 2,
        2 | 3 => 4,
        v => return Err(bad(format!("unsupported NPY version {v}"))),
    };
    let len_bytes = rest
        .get(2..2 + len_len)
        .ok_or_else(|| bad("truncated header".into()))?;
    let header_len = len_bytes
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    let (header, data) = rest
        .get(2 + len_len..)
        .filter(|r| r.len() >= header_len)
        .map(|r| r.split_at(header_len))
        .ok_or_else(|| bad(format!("truncated header (it declares {header_len} bytes)")))?;
    let header = String::from_utf8_lossy(header);
    let descr = header_value(&header, "descr")
        .and_then(|v| {
            let q = v.chars().next().filter(|c| *c == '\'' || *c == '"')?;
            v[1..].split(q).next()
        })
        .ok_or_else(|| bad("no descr in header".into()))?
        .to_string();
    if descr.trim_start_matches(['<', '>', '|', '=']) == "O" {
        return Err(bad(
            "an object array (ragged rows or Python objects, which would need unpickling); save a \
             regular numeric array"
                .into(),
        ));
    }
    let elem = Elem::from_descr(&descr).ok_or_else(|| bad(format!("unsupported element type '{descr}'")))?;
    match header_value(&header, "fortran_order") {
        None => {}
        Some(v) if v.starts_with("False") => {}
        Some(v) if v.starts_with("True") => return Err(bad("fortran order not supported".into())),
        Some(_) => return Err(bad("unknown fortran_order".into())),
    }
    let shape_text = header_value(&header, "shape")
        .and_then(|v| v.strip_prefix('('))
        .and_then(|v| v.split(')').next())
        .ok_or_else(|| bad("no shape in header".into()))?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse::<usize>())
        .collect::<Result<Vec<usize>, _>>()
        .map_err(|_| bad(format!("bad shape ({shape_text})")))?;
    let need = shape
        .iter()
        .try_fold(elem.size(), |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("shape {shape:?} is too large")))?;
    let data = data.get(..need).ok_or_else(|| {
        bad(format!(
            "truncated data: shape {shape:?} of '{descr}' needs {need} bytes, the file holds {}",
            data.len()
        ))
    })?;
    Ok(NpyArray {
        shape,
        descr,
        elem,
        data,
    })
}

/// Decodes the bytes of an NPY image array into (N, C, H, W) and u8 pixels; `path` only names
/// the file in errors.
pub fn parse_npy_images(path: &Path, bytes: &[u8]) -> CoreResult<([usize; 4], Vec<u8>)> {
    let arr = parse_npy(path, bytes)?;
    let flat: Vec<u8> = match arr.elem {
        Elem::U8 | Elem::Bool => arr.data.to_vec(),
        Elem::F32 | Elem::F64 => arr
            .values()
            .map(|v| {
                // In f32, as the loader always computed it (candle converted f64 arrays first).
                let v = v as f32;
                if v.is_finite() {
                    (v.clamp(0.0, 1.0) * 255.0).round() as u8
                } else {
                    0
                }
            })
            .collect(),
        _ => {
            return Err(CoreError::format(
                path,
                format!("NPY dtype '{}' is not supported (u8 or f32)", arr.descr),
            ));
        }
    };
    let dims = arr.shape;
    if dims.len() >= 3 && dims[1..].contains(&0) {
        return Err(CoreError::format(
            path,
            format!("NPY images of shape {dims:?} have no pixels"),
        ));
    }
    Ok(match dims.as_slice() {
        [n, h, w] => ([*n, 1, *h, *w], flat),
        [n, c, h, w] if *c == 1 || *c == 3 => ([*n, *c, *h, *w], flat),
        [n, h, w, c] if *c == 1 || *c == 3 => {
            let (n, h, w, c) = (*n, *h, *w, *c);
            let mut out = vec![0u8; flat.len()];
            for i in 0..n {
                for p in 0..h * w {
                    for ch in 0..c {
                        out[(i * c + ch) * h * w + p] = flat[(i * h * w + p) * c + ch];
                    }
                }
            }
            ([n, c, h, w], out)
        }
        other => {
            return Err(CoreError::format(
                path,
                format!("NPY shape {other:?} is not an image array"),
            ));
        }
    })
}

/// Decodes the bytes of an NPY labels array (integers 0..65535, `n` of them); `path` only names
/// the file in errors.
pub fn parse_npy_labels(path: &Path, bytes: &[u8], n: usize) -> CoreResult<Vec<u16>> {
    let arr = parse_npy(path, bytes)?;
    let count = arr.data.len() / arr.elem.size();
    if count != n {
        return Err(CoreError::format(path, format!("{count} labels for {n} images")));
    }
    arr.values()
        .map(|l| {
            if l.fract() != 0.0 || !l.is_finite() {
                return Err(CoreError::format(path, format!("labels are not integers: {l}")));
            }
            if !(0.0..=f64::from(u16::MAX)).contains(&l) {
                return Err(CoreError::format(path, format!("label {l} out of range")));
            }
            Ok(l as u16)
        })
        .collect()
}

/// The bytes of an NPY file (version 1.0, C order, header padded to 64 bytes as NumPy writes it)
/// holding `data` as elements of type `descr` (e.g. `<i4`) in `shape`; for fixtures and tests.
pub fn npy_bytes(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
    let shape = match dims.len() {
        1 => format!("{},", dims[0]),
        _ => dims.join(", "),
    };
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({shape}), }}").into_bytes();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(b' ');
    }
    h.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((h.len() as u16).to_le_bytes());
    out.extend(h);
    out.extend(data);
    out
}

/// Decodes the bytes of a numeric NPY array of any shape as (shape, values as f32); `path` only
/// names the file in errors.
pub fn parse_npy_f32_array(path: &Path, bytes: &[u8]) -> CoreResult<(Vec<usize>, Vec<f32>)> {
    let arr = parse_npy(path, bytes)?;
    Ok((arr.shape.clone(), arr.values().map(|v| v as f32).collect()))
}

/// Decodes the bytes of a 1-D numeric NPY array (a vector of per-row values) as f64; `path` only
/// names the file in errors.
pub fn parse_npy_vector(path: &Path, bytes: &[u8]) -> CoreResult<Vec<f64>> {
    let arr = parse_npy(path, bytes)?;
    if arr.shape.len() != 1 {
        return Err(CoreError::format(
            path,
            format!(
                "shape {:?} is not a vector (one value per data-set row)",
                arr.shape
            ),
        ));
    }
    Ok(arr.values().collect())
}

/// Decodes the bytes of a 2-D integer NPY array (any NPY integer type, little-endian or
/// single-byte) into (rows, columns, row-major values as i128); `path` only names the file in
/// errors, which say what is wrong (a float, 1-D or 3-D array, a ragged object array).
pub fn parse_npy_int_matrix(path: &Path, bytes: &[u8]) -> CoreResult<(usize, usize, Vec<i128>)> {
    let arr = parse_npy(path, bytes)?;
    if !arr.elem.is_integer() {
        return Err(CoreError::format(
            path,
            format!(
                "dtype '{}' is not an integer type (int8..int64, uint8..uint64)",
                arr.descr
            ),
        ));
    }
    let [rows, cols] = arr.shape[..] else {
        return Err(CoreError::format(
            path,
            format!(
                "shape {:?} is not a 2-D matrix (K subsets x m indices)",
                arr.shape
            ),
        ));
    };
    let values = arr
        .data
        .chunks_exact(arr.elem.size())
        .filter_map(|b| arr.elem.integer(b))
        .collect();
    Ok((rows, cols, values))
}

/// Loads an NPY image array and its labels.
pub fn load_npy_images(path: &Path) -> CoreResult<Dataset> {
    let bytes = std::fs::read(path).map_err(|e| CoreError::io(path, e))?;
    let (shape, pixels) = parse_npy_images(path, &bytes)?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let label_candidates = [
        path.with_file_name(format!("{stem}-labels.npy")),
        path.with_file_name("labels.npy"),
    ];
    let labels = match label_candidates.iter().find(|p| p.is_file() && *p != path) {
        Some(lp) => {
            let lbytes = std::fs::read(lp).map_err(|e| CoreError::io(lp, e))?;
            parse_npy_labels(lp, &lbytes, shape[0])?
        }
        None => vec![0; shape[0]],
    };
    Dataset::new(
        stem,
        path.display().to_string(),
        shape,
        pixels,
        labels,
        vec![],
        255,
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Tensor;

    #[test]
    fn reads_u8_and_f32_channels_last() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("imgs.npy");
        let t = Tensor::from_vec(
            (0..2 * 2 * 2 * 3).map(|v| v as u8).collect::<Vec<u8>>(),
            (2, 2, 2, 3),
            &candle_core::Device::Cpu,
        )
        .unwrap();
        t.write_npy(&p).unwrap();
        let l = Tensor::from_vec(vec![1i64, 0], 2, &candle_core::Device::Cpu).unwrap();
        l.write_npy(dir.path().join("imgs-labels.npy")).unwrap();
        let ds = load_npy_images(&p).unwrap();
        assert_eq!((ds.n, ds.c, ds.h, ds.w), (2, 3, 2, 2));
        assert_eq!(ds.labels.to_vec(), vec![1, 0]);
        assert_eq!(ds.image(0).unwrap()[4], 1);

        let pf = dir.path().join("f.npy");
        Tensor::from_vec(vec![0.0f32, 0.5, 1.0, 1.0], (1, 2, 2), &candle_core::Device::Cpu)
            .unwrap()
            .write_npy(&pf)
            .unwrap();
        let ds = load_npy_images(&pf).unwrap();
        assert_eq!(ds.image(0).unwrap(), &[0, 128, 255, 255]);

        std::fs::write(&pf, b"\x93NUMPY garbage").unwrap();
        assert!(load_npy_images(&pf).unwrap_err().to_string().contains("f.npy"));
    }

    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({shape}), }}");
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(header.len() as u16).to_le_bytes());
        b.extend_from_slice(header.as_bytes());
        b.extend_from_slice(data);
        b
    }

    /// Fuzzing: candle's reader allocated whatever the header declared (a 4 GiB header length,
    /// or the shape's element count) before reading; an overflowing shape panicked, and a huge N
    /// of empty images spun and then allocated N labels. All are named errors now.
    #[test]
    fn huge_or_empty_shapes_are_errors_before_allocating() {
        let p = Path::new("x.npy");
        let err = |b: &[u8]| parse_npy_images(p, b).unwrap_err().to_string();
        let e = err(&npy("<f4", "1000000000, 28, 28", &[0; 16]));
        assert!(e.contains("x.npy") && e.contains("truncated data"), "{e}");
        let e = err(&npy("|u1", "18446744073709551615, 2, 2", &[0; 16]));
        assert!(e.contains("too large"), "{e}");
        let e = err(&npy("|u1", "18446744073709551615, 0, 2", &[]));
        assert!(e.contains("no pixels"), "{e}");
        let e = err(b"\x93NUMPY\x02\x00\xff\xff\xff\xff{");
        assert!(e.contains("truncated header"), "{e}");
        let e = err(&npy("<i8", "1, 2, 2", &[0; 32]));
        assert!(e.contains("not supported"), "{e}");
        let ok = parse_npy_images(p, &npy("|u1", "1, 2, 2", &[1, 2, 3, 4])).unwrap();
        assert_eq!(ok, ([1, 1, 2, 2], vec![1, 2, 3, 4]));
        let e = parse_npy_labels(p, &npy("<f4", "1", &1.5f32.to_le_bytes()), 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not integers"), "{e}");
    }
}
