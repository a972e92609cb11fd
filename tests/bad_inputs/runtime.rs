//! The catalogue's `runtime:` inputs: built in a temporary folder at every run (file names that
//! are not UTF-8, a model whose data set changed after training, broken tabular model folders).

use std::path::{Path, PathBuf};

use super::formats::png;

/// Builds the `runtime:` inputs under `tmp` and returns the path that stands for `{file}`.
pub fn runtime_input(name: &str, tmp: &Path) -> PathBuf {
    match name {
        "non-utf8-class" => {
            use std::os::unix::ffi::OsStrExt as _;
            let root = tmp.join("non-utf8-class");
            let bad = root.join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
            std::fs::create_dir_all(&bad).unwrap();
            std::fs::create_dir_all(root.join("ok")).unwrap();
            std::fs::write(bad.join("0.png"), png(4, 4, 1)).unwrap();
            std::fs::write(root.join("ok/0.png"), png(4, 4, 200)).unwrap();
            root
        }
        "non-utf8-image" => {
            use std::os::unix::ffi::OsStrExt as _;
            let root = tmp.join("non-utf8-image");
            std::fs::create_dir_all(root.join("a")).unwrap();
            std::fs::create_dir_all(root.join("b")).unwrap();
            std::fs::write(root.join("a/0.png"), png(4, 4, 1)).unwrap();
            let name = std::ffi::OsStr::from_bytes(b"broken-\xff.png");
            std::fs::write(root.join("b").join(name), b"\x89PNG\r\n\x1a\n").unwrap();
            root
        }
        "shape-mismatch" => {
            // Train a tiny model on 4x4 images, then replace its data set by 5x5 images.
            let data = tmp.join("mm-images-idx3-ubyte");
            let labels: Vec<u8> = (0..20).map(|k| k % 2).collect();
            let px: Vec<u8> = (0..20 * 16)
                .map(|k| if (k / 16) % 2 == 0 { 20 } else { 220 })
                .collect();
            crate::common::write_idx(&data, &[20, 4, 4], &px, false);
            crate::common::write_idx(&tmp.join("mm-labels-idx1-ubyte"), &[20], &labels, false);
            let study = tmp.join("study");
            let out = crate::common::rote(
                &[
                    "train",
                    "--family",
                    "softmax",
                    "--data",
                    data.to_str().unwrap(),
                    "--out",
                    study.to_str().unwrap(),
                    "--epochs",
                    "1",
                    "--id",
                    "mm",
                    "--json",
                ],
                tmp,
            );
            crate::common::json_of(&out);
            crate::common::write_idx(&data, &[20, 5, 5], &[0; 500], false);
            study.join("models/mm")
        }
        "tab-broken-card" => {
            let dir = tmp.join("tab-broken");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("card.json"), "{\"format\": \"rote-tabular-ddpm\", ").unwrap();
            dir
        }
        "tab-samples-header" | "tab-samples-level" => {
            // The demo's tabular model with its synthetic rows broken.
            let demo =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/tabular/tabddpm-adult-none-e400-s0");
            let dir = tmp.join(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::copy(demo.join("card.json"), dir.join("card.json")).unwrap();
            let text = std::fs::read_to_string(demo.join("samples.csv")).unwrap();
            let broken = if name == "tab-samples-header" {
                text.replacen("fnlwgt", "weight", 1)
            } else {
                text.replacen("Private", "Privat", 1)
            };
            std::fs::write(dir.join("samples.csv"), broken).unwrap();
            dir
        }
        other => panic!("no runtime input '{other}'"),
    }
}
