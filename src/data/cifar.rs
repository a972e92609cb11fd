//! CIFAR-10 binary batches: records of 1 label byte + 3072 pixel bytes (1024 R, 1024 G, 1024 B,
//! 32x32 each), as in `data_batch_*.bin` and `test_batch.bin`. A folder loads every `.bin` file in
//! name order; files named `test_batch*` form the test split. Class names come from
//! `batches.meta.txt` when present.

use std::path::{Path, PathBuf};

use super::bundled::cifar_classes;
use super::{Dataset, Split};
use crate::error::{CoreError, CoreResult};

const RECORD: usize = 1 + 3 * 32 * 32;

/// Decodes the bytes of one CIFAR-10 binary batch into labels and pixels (3 x 32 x 32 per image);
/// `path` only names the file in errors.
pub fn parse_cifar_batch(path: &Path, bytes: &[u8]) -> CoreResult<(Vec<u16>, Vec<u8>)> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        return Err(CoreError::format(
            path,
            format!(
                "{} bytes is not a whole number of {RECORD}-byte CIFAR-10 records",
                bytes.len()
            ),
        ));
    }
    let mut labels = Vec::with_capacity(bytes.len() / RECORD);
    let mut pixels = Vec::with_capacity(bytes.len() / RECORD * (RECORD - 1));
    for rec in bytes.chunks_exact(RECORD) {
        let (&label, px) = rec
            .split_first()
            .ok_or_else(|| CoreError::format(path, "empty CIFAR-10 record"))?;
        if label > 9 {
            return Err(CoreError::format(
                path,
                format!("label {label} out of range 0..9"),
            ));
        }
        labels.push(u16::from(label));
        pixels.extend_from_slice(px);
    }
    Ok((labels, pixels))
}

/// Loads one CIFAR-10 binary batch file, or every `.bin` file in a folder.
pub fn load_cifar_binary(path: &Path) -> CoreResult<Dataset> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| CoreError::io(path, e))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "bin"))
            .collect();
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    };
    if files.is_empty() {
        return Err(CoreError::format(path, "no CIFAR-10 .bin batch files found"));
    }
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    let mut split = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).map_err(|e| CoreError::io(f, e))?;
        let (batch_labels, batch_pixels) = parse_cifar_batch(f, &bytes)?;
        let is_test = f
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("test_batch"));
        split.extend(std::iter::repeat_n(
            if is_test { Split::Test } else { Split::Train },
            batch_labels.len(),
        ));
        labels.extend(batch_labels);
        pixels.extend(batch_pixels);
    }
    let meta = if path.is_dir() {
        path.join("batches.meta.txt")
    } else {
        path.with_file_name("batches.meta.txt")
    };
    let classes = std::fs::read_to_string(&meta)
        .map(|s| {
            s.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_else(|_| cifar_classes());
    let n = labels.len();
    let has_both = split.contains(&Split::Test) && split.contains(&Split::Train);
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "cifar".into());
    Dataset::new(
        name,
        path.display().to_string(),
        [n, 3, 32, 32],
        pixels,
        labels,
        classes,
        255,
        has_both.then_some(split),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_records_and_rejects_partial() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = Vec::new();
        for k in 0..3u8 {
            bytes.push(k);
            bytes.extend(std::iter::repeat_n(k * 10, 3072));
        }
        std::fs::write(dir.path().join("data_batch_1.bin"), &bytes).unwrap();
        std::fs::write(dir.path().join("test_batch.bin"), &bytes[..RECORD]).unwrap();
        let ds = load_cifar_binary(dir.path()).unwrap();
        assert_eq!((ds.n, ds.c, ds.h, ds.w), (4, 3, 32, 32));
        assert_eq!(ds.labels.to_vec(), vec![0, 1, 2, 0]);
        assert_eq!(ds.test_indices(), vec![3]);
        assert_eq!(ds.image(2).unwrap()[100], 20);

        let bad = dir.path().join("bad.bin");
        std::fs::write(&bad, &bytes[..RECORD + 5]).unwrap();
        let err = load_cifar_binary(&bad).unwrap_err().to_string();
        assert!(err.contains("bad.bin") && err.contains("whole number"), "{err}");
    }
}
