//! IDX files (the MNIST format), gzip'd or plain: a 4-byte magic (0, 0, type, ndims), ndims
//! big-endian u32 sizes, then the data. Only unsigned bytes (type 0x08) are supported, which is what
//! every bundled set uses.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::Dataset;
use crate::error::{CoreError, CoreResult};

/// The most bytes an IDX file may declare (guards against absurd headers before allocating).
const MAX_IDX_BYTES: usize = 4 << 30;

/// A decoded IDX array of bytes.
#[derive(Clone, Debug)]
pub struct IdxArray {
    /// Sizes of each dimension.
    pub dims: Vec<usize>,
    /// Row-major data.
    pub data: Vec<u8>,
}

/// Opens `path`, transparently un-gzipping when the file starts with the gzip magic.
pub(crate) fn open_maybe_gz(path: &Path) -> CoreResult<Box<dyn Read>> {
    let mut file = std::fs::File::open(path).map_err(|e| CoreError::io(path, e))?;
    let mut magic = [0u8; 2];
    let n = file.read(&mut magic).map_err(|e| CoreError::io(path, e))?;
    let head = std::io::Cursor::new(magic[..n].to_vec());
    let chained = head.chain(file);
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(flate2::read::GzDecoder::new(chained)))
    } else {
        Ok(Box::new(chained))
    }
}

fn read_exact_or(path: &Path, r: &mut dyn Read, buf: &mut [u8], what: &str) -> CoreResult<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => {
                return Err(CoreError::format(
                    path,
                    format!("truncated {what}: expected {} bytes, found {filled}", buf.len()),
                ));
            }
            Ok(k) => filled += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(CoreError::format(path, format!("cannot read {what}: {e}")));
            }
        }
    }
    Ok(())
}

/// Reads an IDX file of unsigned bytes.
pub fn read_idx(path: &Path) -> CoreResult<IdxArray> {
    let bytes = std::fs::read(path).map_err(|e| CoreError::io(path, e))?;
    parse_idx(path, &bytes)
}

/// Decodes the bytes of an IDX file (gzip'd or plain); `path` only names the file in errors.
/// The data is read as it comes, so a header that declares more than the file holds is a
/// "truncated" error rather than a large allocation.
pub fn parse_idx(path: &Path, bytes: &[u8]) -> CoreResult<IdxArray> {
    let mut r: Box<dyn Read + '_> = if bytes.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(bytes))
    } else {
        Box::new(bytes)
    };
    let mut magic = [0u8; 4];
    read_exact_or(path, &mut r, &mut magic, "IDX header")?;
    if magic[0] != 0 || magic[1] != 0 {
        return Err(CoreError::format(
            path,
            format!(
                "not an IDX file (magic bytes {:02x} {:02x} {:02x} {:02x}, expected 00 00 08 nn)",
                magic[0], magic[1], magic[2], magic[3]
            ),
        ));
    }
    if magic[2] != 0x08 {
        return Err(CoreError::format(
            path,
            format!(
                "IDX element type 0x{:02x} is not supported (only unsigned bytes, 0x08)",
                magic[2]
            ),
        ));
    }
    let ndims = magic[3] as usize;
    if ndims == 0 || ndims > 4 {
        return Err(CoreError::format(
            path,
            format!("IDX file with {ndims} dimensions (1 to 4 supported)"),
        ));
    }
    let mut dims_raw = vec![0u8; 4 * ndims];
    read_exact_or(path, &mut r, &mut dims_raw, "IDX dimensions")?;
    let dims: Vec<usize> = dims_raw
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let total = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&t| t <= MAX_IDX_BYTES)
        .ok_or_else(|| CoreError::format(path, format!("IDX dimensions {dims:?} are too large")))?;
    let mut data = Vec::with_capacity(total.min(bytes.len()));
    (&mut r)
        .take(total as u64)
        .read_to_end(&mut data)
        .map_err(|e| CoreError::format(path, format!("cannot read IDX data: {e}")))?;
    if data.len() < total {
        return Err(CoreError::format(
            path,
            format!("truncated IDX data: expected {total} bytes, found {}", data.len()),
        ));
    }
    Ok(IdxArray { dims, data })
}

/// Finds the labels file that belongs to an images file: `images` replaced by `labels` in the name
/// (with idx1 for idx3/idx4).
pub(crate) fn labels_path_for(images: &Path) -> Option<PathBuf> {
    let name = images.file_name()?.to_string_lossy().to_string();
    let cand = name
        .replace("images", "labels")
        .replace("idx3", "idx1")
        .replace("idx4", "idx1");
    if cand == name {
        return None;
    }
    Some(images.with_file_name(cand))
}

/// Converts an IDX images array (N x H x W grey, or N x H x W x C channels-last) into N x C x H x W.
pub(crate) fn images_from_idx(path: &Path, arr: IdxArray) -> CoreResult<([usize; 4], Vec<u8>)> {
    if arr.dims.len() >= 3 && arr.dims[1..].contains(&0) {
        return Err(CoreError::format(
            path,
            format!("IDX images of size {:?} have no pixels", &arr.dims[1..]),
        ));
    }
    match arr.dims.as_slice() {
        [n, h, w] => Ok(([*n, 1, *h, *w], arr.data)),
        [n, h, w, c] if *c == 1 || *c == 3 => {
            let (n, h, w, c) = (*n, *h, *w, *c);
            let mut out = vec![0u8; arr.data.len()];
            for i in 0..n {
                for y in 0..h {
                    for x in 0..w {
                        for ch in 0..c {
                            out[((i * c + ch) * h + y) * w + x] = arr.data[((i * h + y) * w + x) * c + ch];
                        }
                    }
                }
            }
            Ok(([n, c, h, w], out))
        }
        other => Err(CoreError::format(
            path,
            format!("IDX images must be N x H x W or N x H x W x C (C = 1 or 3), found {other:?}"),
        )),
    }
}

/// Reads labels from an IDX1 file.
pub(crate) fn read_labels(path: &Path, n: usize) -> CoreResult<Vec<u16>> {
    labels_from_idx(path, read_idx(path)?, n)
}

/// Checks that an IDX array holds `n` labels, one dimension.
fn labels_from_idx(path: &Path, arr: IdxArray, n: usize) -> CoreResult<Vec<u16>> {
    if arr.dims.len() != 1 {
        return Err(CoreError::format(
            path,
            format!("labels must be 1-dimensional, found {:?}", arr.dims),
        ));
    }
    if arr.dims[0] != n {
        return Err(CoreError::format(
            path,
            format!("{} labels for {n} images", arr.dims[0]),
        ));
    }
    Ok(arr.data.into_iter().map(u16::from).collect())
}

/// Loads an IDX images file plus its labels file (found by name, see [`labels_path_for`]).
pub fn load_idx_images_with_labels(path: &Path) -> CoreResult<Dataset> {
    let bytes = std::fs::read(path).map_err(|e| CoreError::io(path, e))?;
    let Some(lp) = labels_path_for(path).filter(|p| p.exists()) else {
        // A broken images file is the first thing to report.
        parse_idx(path, &bytes)?;
        return Err(CoreError::format(
            path,
            "no labels file beside it (expected the same name with 'labels' for 'images')",
        ));
    };
    let label_bytes = std::fs::read(&lp).map_err(|e| CoreError::io(&lp, e))?;
    parse_idx_dataset(path, &bytes, &lp, &label_bytes)
}

/// Builds a data set from the bytes of an IDX images file and of its labels file (the paths
/// only name the files in errors and the data set).
pub fn parse_idx_dataset(
    path: &Path,
    bytes: &[u8],
    labels_path: &Path,
    label_bytes: &[u8],
) -> CoreResult<Dataset> {
    let (shape, pixels) = images_from_idx(path, parse_idx(path, bytes)?)?;
    let labels = labels_from_idx(labels_path, parse_idx(labels_path, label_bytes)?, shape[0])?;
    let max_value = pixels.iter().copied().max().unwrap_or(255).max(1);
    let max_value = if max_value <= 16 { 16 } else { 255 };
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().split('-').next().unwrap_or("idx").to_string())
        .unwrap_or_else(|| "idx".into());
    Dataset::new(
        name,
        path.display().to_string(),
        shape,
        pixels,
        labels,
        vec![],
        max_value,
        None,
    )
}

/// Writes an IDX file of unsigned bytes (gzip'd when `gz`), atomically. `data` is not checked
/// against `dims`, so tests can write deliberately broken files.
pub fn write_idx(path: &Path, dims: &[u32], data: &[u8], gz: bool) -> CoreResult<()> {
    use std::io::Write as _;
    let mut bytes = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    if gz {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&bytes).map_err(|e| CoreError::io(path, e))?;
        bytes = enc.finish().map_err(|e| CoreError::io(path, e))?;
    }
    crate::study::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_and_gz_and_channels_last() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..2 * 2 * 2 * 3).map(|v| v as u8).collect();
        let p = dir.path().join("x-images-idx4-ubyte.gz");
        write_idx(&p, &[2, 2, 2, 3], &data, true).unwrap();
        write_idx(&dir.path().join("x-labels-idx1-ubyte.gz"), &[2], &[0, 1], false).unwrap();
        let ds = load_idx_images_with_labels(&p).unwrap();
        assert_eq!((ds.n, ds.c, ds.h, ds.w), (2, 3, 2, 2));
        // Image 0, channel 1 (G) at (0,0) was byte 1 of the channels-last data.
        assert_eq!(ds.image(0).unwrap()[4], 1);
        assert_eq!(ds.labels.to_vec(), vec![0, 1]);
    }

    #[test]
    fn truncated_and_bad_magic_and_huge_dims_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.idx");
        write_idx(&p, &[10, 28, 28], &[0; 100], false).unwrap();
        let err = read_idx(&p).unwrap_err().to_string();
        assert!(err.contains("t.idx") && err.contains("truncated"), "{err}");

        std::fs::write(&p, b"PK\x03\x04garbage").unwrap();
        let err = read_idx(&p).unwrap_err().to_string();
        assert!(err.contains("not an IDX file"), "{err}");

        write_idx(&p, &[u32::MAX, u32::MAX, u32::MAX], &[], false).unwrap();
        let err = read_idx(&p).unwrap_err().to_string();
        assert!(err.contains("too large"), "{err}");
    }

    /// Fuzzing: a header declaring gigabytes over a few bytes of data, plain or gzip'd, must be
    /// a "truncated" error without allocating what it declares; zero-sized images are refused
    /// before converting (a huge N with empty images used to spin over N).
    #[test]
    fn huge_declared_sizes_and_empty_images_are_errors() {
        let p = Path::new("big-images-idx3-ubyte");
        let mut bytes = vec![0, 0, 8, 3];
        for d in [1u32 << 20, 1 << 11, 1] {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes.extend_from_slice(&[7; 10]);
        let err = parse_idx(p, &bytes).unwrap_err().to_string();
        assert!(
            err.contains("big-images") && err.contains("truncated IDX data"),
            "{err}"
        );
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut enc, &bytes).unwrap();
        let gz = enc.finish().unwrap();
        let err = parse_idx(p, &gz).unwrap_err().to_string();
        assert!(err.contains("truncated IDX data"), "{err}");

        let mut empty = vec![0, 0, 8, 4];
        for d in [u32::MAX, 0, 1, 1] {
            empty.extend_from_slice(&d.to_be_bytes());
        }
        let err = parse_idx_dataset(p, &empty, Path::new("l"), &[0, 0, 8, 1, 0, 0, 0, 0])
            .unwrap_err()
            .to_string();
        assert!(err.contains("have no pixels"), "{err}");
    }
}
