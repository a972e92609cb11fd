//! NPY image arrays (u8 0..255 or f32 0..1): N x H x W (grey), N x H x W x C or N x C x H x W
//! (C = 1 or 3). Labels come from `<stem>-labels.npy` or `labels.npy` beside the file (integer
//! array of length N); without one every image gets label 0.

use std::path::Path;

use candle_core::{DType, Tensor};

use super::Dataset;
use crate::error::{CoreError, CoreResult};

fn read(path: &Path) -> CoreResult<Tensor> {
    if !path.is_file() {
        return Err(CoreError::io(
            path,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    Tensor::read_npy(path).map_err(|e| CoreError::format(path, format!("not a readable NPY array: {e}")))
}

/// Loads an NPY image array and its labels.
pub fn load_npy_images(path: &Path) -> CoreResult<Dataset> {
    let t = read(path)?;
    let dims = t.dims().to_vec();
    let flat: Vec<u8> = match t.dtype() {
        DType::U8 => t.flatten_all()?.to_vec1::<u8>()?,
        DType::F32 | DType::F64 => t
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?
            .into_iter()
            .map(|v| {
                if v.is_finite() {
                    (v.clamp(0.0, 1.0) * 255.0).round() as u8
                } else {
                    0
                }
            })
            .collect(),
        other => {
            return Err(CoreError::format(
                path,
                format!("NPY dtype {other:?} is not supported (u8 or f32)"),
            ));
        }
    };
    let (shape, pixels) = match dims.as_slice() {
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
    };
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
            let lt = read(lp)?;
            let v: Vec<i64> = lt
                .to_dtype(DType::I64)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1::<i64>())
                .map_err(|e| CoreError::format(lp, format!("labels are not integers: {e}")))?;
            if v.len() != shape[0] {
                return Err(CoreError::format(
                    lp,
                    format!("{} labels for {} images", v.len(), shape[0]),
                ));
            }
            v.into_iter()
                .map(|l| {
                    u16::try_from(l).map_err(|_| CoreError::format(lp, format!("label {l} out of range")))
                })
                .collect::<CoreResult<Vec<u16>>>()?
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
}
