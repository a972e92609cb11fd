//! Data sets: one [`Dataset`] type for every image set, loaders for the formats users bring, and the
//! bundled sets shipped in `assets/`.
//!
//! Every image set becomes `u8` pixels laid out N x C x H x W, a label per image, class names, the
//! source it came from, a content hash, and a deterministic train/test split.

mod bundled;
mod cifar;
mod dataset;
mod idx;
mod image_folder;
mod npy;
mod table;
pub mod tabular;
mod text;

pub use bundled::{BundledDataset, BundledKind, bundled, bundled_all, bundled_names, load_bundled};
pub use cifar::{load_cifar_binary, parse_cifar_batch};
pub use dataset::{Dataset, Split};
pub use idx::{IdxArray, parse_idx, parse_idx_dataset, read_idx, write_idx};
pub use image_folder::{decode_image_entry, load_image_folder};
pub use npy::{
    load_npy_images, npy_bytes, parse_npy_f32_array, parse_npy_images, parse_npy_int_matrix,
    parse_npy_labels, parse_npy_vector,
};
pub use table::{Table, load_csv};
pub use tabular::{Column, ColumnKind, ColumnValues, TabularData, TabularSpec, load_adult, load_csv_tabular};
pub use text::{TextCorpus, load_text};

use std::path::Path;

use crate::error::{CoreError, CoreResult};

/// Loads an image data set by bundled name (`mnist10k`) or by path: a folder of class subfolders,
/// a folder or file of CIFAR-10 binary batches, an `.npy` file, or an IDX images file (gzip'd or
/// plain) with a `labels` IDX file beside it.
pub fn load(name_or_path: &str) -> CoreResult<Dataset> {
    if bundled(name_or_path).is_some() {
        return load_bundled(name_or_path);
    }
    let path = Path::new(name_or_path);
    if !path.exists() {
        return Err(CoreError::Invalid(format!(
            "unknown data set '{name_or_path}': not a bundled name ({}) and no such file or folder",
            bundled_names().join(", ")
        )));
    }
    if path.is_dir() {
        let has_cifar = std::fs::read_dir(path)
            .map_err(|e| CoreError::io(path, e))?
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().ends_with(".bin"));
        if has_cifar {
            return load_cifar_binary(path);
        }
        return load_image_folder(path);
    }
    crate::model::refuse_pickled_data(path)?;
    let lower = name_or_path.to_ascii_lowercase();
    if lower.ends_with(".npy") {
        load_npy_images(path)
    } else if lower.ends_with(".bin") {
        load_cifar_binary(path)
    } else {
        idx::load_idx_images_with_labels(path)
    }
}
