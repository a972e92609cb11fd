//! Image folders: one subfolder per class, PNG or JPEG files inside (decoded by the `image` crate).
//! Classes are the subfolder names in sorted order. Every image is brought to the size of the first
//! one; the set is grey when every image is grey, else RGB. A held-out split can be given by
//! top-level `train/` and `test/` folders that each hold the class subfolders.

use std::path::{Path, PathBuf};

use super::{Dataset, Split};
use crate::error::{CoreError, CoreResult};

fn is_image(p: &Path) -> bool {
    p.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|e| matches!(e.as_str(), "png" | "jpg" | "jpeg"))
}

fn sorted_entries(dir: &Path) -> CoreResult<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| CoreError::io(dir, e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    v.sort();
    Ok(v)
}

fn class_dirs(root: &Path) -> CoreResult<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for p in sorted_entries(root)?.into_iter().filter(|p| p.is_dir()) {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| CoreError::format(&p, "class folder name is not valid UTF-8"))?
            .to_string();
        out.push((name, p));
    }
    Ok(out)
}

/// Largest width or height of one image in a folder (a sane cap before decoding).
const MAX_SIDE: u32 = 4096;
/// Most bytes the decoder may allocate for one image (a 4096 x 4096 RGBA image).
const MAX_DECODE_BYTES: u64 = 64 << 20;

/// Decodes the bytes of one image-folder entry as the loader does: the format comes from the
/// file's extension (PNG or JPEG), and images beyond [`MAX_SIDE`] pixels a side or
/// [`MAX_DECODE_BYTES`] of decoded data are refused before decoding.
pub fn decode_image_entry(path: &Path, bytes: &[u8]) -> CoreResult<image::DynamicImage> {
    if bytes.is_empty() {
        return Err(CoreError::format(
            path,
            "cannot decode image: the file is empty (0 bytes)",
        ));
    }
    let cannot = |e: image::ImageError| CoreError::format(path, format!("cannot decode image: {e}"));
    let format = image::ImageFormat::from_path(path).map_err(cannot)?;
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    reader.decode().map_err(cannot)
}

/// Loads an image folder.
pub fn load_image_folder(root: &Path) -> CoreResult<Dataset> {
    let has_split = root.join("train").is_dir() && root.join("test").is_dir();
    let parts: Vec<(Split, PathBuf)> = if has_split {
        vec![
            (Split::Train, root.join("train")),
            (Split::Test, root.join("test")),
        ]
    } else {
        vec![(Split::Train, root.to_path_buf())]
    };
    let mut class_names: Vec<String> = Vec::new();
    let mut files: Vec<(PathBuf, u16, Split)> = Vec::new();
    for (split, dir) in &parts {
        for (name, p) in class_dirs(dir)? {
            let label = match class_names.iter().position(|c| *c == name) {
                Some(k) => k,
                None => {
                    class_names.push(name.clone());
                    class_names.len() - 1
                }
            };
            for f in sorted_entries(&p)?.into_iter().filter(|f| is_image(f)) {
                files.push((f, label as u16, *split));
            }
        }
    }
    if class_names.is_empty() {
        return Err(CoreError::format(
            root,
            "no class subfolders (expected one folder per class holding PNG/JPEG files)",
        ));
    }
    if files.is_empty() {
        return Err(CoreError::format(
            root,
            "the class folders hold no PNG or JPEG images",
        ));
    }
    let mut decoded = Vec::with_capacity(files.len());
    let mut colour = false;
    for (f, _, _) in &files {
        let bytes = std::fs::read(f).map_err(|e| CoreError::io(f, e))?;
        let img = decode_image_entry(f, &bytes)?;
        colour |= img.color().has_color();
        decoded.push(img);
    }
    let (w, h) = (decoded[0].width() as usize, decoded[0].height() as usize);
    let c = if colour { 3 } else { 1 };
    let mut pixels = Vec::with_capacity(files.len() * c * h * w);
    for img in decoded {
        let img = if img.width() as usize != w || img.height() as usize != h {
            img.resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle)
        } else {
            img
        };
        if c == 1 {
            pixels.extend_from_slice(img.to_luma8().as_raw());
        } else {
            let rgb = img.to_rgb8();
            for ch in 0..3 {
                pixels.extend(rgb.pixels().map(|p| p.0[ch]));
            }
        }
    }
    let labels: Vec<u16> = files.iter().map(|f| f.1).collect();
    let split: Vec<Split> = files.iter().map(|f| f.2).collect();
    let name = root
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "images".into());
    Dataset::new(
        name,
        root.display().to_string(),
        [files.len(), c, h, w],
        pixels,
        labels,
        class_names,
        255,
        has_split.then_some(split),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_classes_and_reports_broken_png() {
        let dir = tempfile::tempdir().unwrap();
        for (class, v) in [("cat", 10u8), ("dog", 200u8)] {
            std::fs::create_dir_all(dir.path().join(class)).unwrap();
            for k in 0..3 {
                let img = image::GrayImage::from_pixel(4, 3, image::Luma([v + k]));
                img.save(dir.path().join(class).join(format!("{k}.png"))).unwrap();
            }
        }
        let ds = load_image_folder(dir.path()).unwrap();
        assert_eq!((ds.n, ds.c, ds.h, ds.w), (6, 1, 3, 4));
        assert_eq!(ds.class_names, vec!["cat", "dog"]);
        assert_eq!(ds.image(4).unwrap()[0], 201);

        std::fs::write(dir.path().join("dog").join("9.png"), b"\x89PNG\r\n\x1a\nbroken").unwrap();
        let err = load_image_folder(dir.path()).unwrap_err().to_string();
        assert!(err.contains("9.png") && err.contains("decode"), "{err}");
    }

    /// Fuzzing: a 170-byte JPEG declaring 12804 x 12803 grey pixels decoded to 164 MB and took
    /// seconds to resize; images beyond 4096 pixels a side are refused before decoding.
    #[test]
    fn decompression_bomb_is_refused() {
        let hex = [
            "ffd8ffe000104a46494600010100000100010000ffdb00430003020202020203020202030303030406040404",
            "0404080606050609080a0a090809090a0c0f0c0a0b0e0b000000000000001d1011100a0c12131210130f1010",
            "10ffc0000b083203320401011100ffc40014000100000000000000000000000000000009ffc4001a10000007",
            "0000000000000000000000000000010305165591ffda0008010100003f000100200000000032",
        ]
        .concat();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let err = decode_image_entry(Path::new("cats/bomb.jpg"), &bytes)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bomb.jpg") && err.contains("cannot decode image"),
            "{err}"
        );
    }
}
