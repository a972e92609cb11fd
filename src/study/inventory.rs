//! Every model a study holds, of every kind: classifiers (`models/`), zoos (`zoos/`), diffusion
//! models (`diffusion/`), language models (`lm/`) and SSL encoders (`ssl/`), each with its kind,
//! id, family, data set, folder and one headline metric. `rote models`, the report's Models
//! section and anything else that lists a study's models read this one list; a new model kind adds
//! one arm here.

use std::path::{Path, PathBuf};

use super::Study;
use crate::error::{CoreError, CoreResult};

/// The kinds of model a study can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// An image classifier (`models/<id>/`).
    Classifier,
    /// A zoo of classifiers trained on recorded subsets (`zoos/<id>/`).
    Zoo,
    /// A denoising diffusion model (`diffusion/<id>/`).
    Ddpm,
    /// A language model with canaries (`lm/<id>/`).
    Lm,
    /// A self-supervised encoder (`ssl/<id>/`).
    SslEncoder,
}

impl ModelKind {
    /// The name shown in tables and written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Classifier => "classifier",
            Self::Zoo => "zoo",
            Self::Ddpm => "ddpm",
            Self::Lm => "lm",
            Self::SslEncoder => "ssl-encoder",
        }
    }
}

/// One model of a study.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ModelEntry {
    /// Kind.
    pub kind: ModelKind,
    /// Folder name.
    pub id: String,
    /// Architecture family (mlp, cnn, softmax, unet, lstm, resnet-simclr, ...).
    pub family: String,
    /// Data set trained on.
    pub dataset: String,
    /// The model's folder.
    pub path: PathBuf,
    /// Name of the headline metric (test_acc, models, final_loss, max_exposure_bits, val_loss).
    pub metric: String,
    /// Its value.
    pub value: f64,
}

/// Every model of `study` (grouped by kind, sorted by id within a kind), and the folders whose
/// card is unreadable, out of range or does not match its weights' header (checked without
/// loading the weights), so one broken model hides nothing else.
pub fn inventory(study: &Study) -> (Vec<ModelEntry>, Vec<CoreError>) {
    let mut good = Vec::new();
    let (classifiers, mut bad) = study.models();
    for m in classifiers {
        good.push(ModelEntry {
            kind: ModelKind::Classifier,
            id: m.id,
            family: m.card.spec.family.as_str().into(),
            dataset: m.card.dataset.name,
            path: m.dir,
            metric: "test_acc".into(),
            value: m.card.metrics.test_acc,
        });
    }
    for (kind, sub) in [
        (ModelKind::Zoo, "zoos"),
        (ModelKind::Ddpm, "diffusion"),
        (ModelKind::Lm, "lm"),
        (ModelKind::SslEncoder, "ssl"),
    ] {
        for dir in model_folders(&study.root.join(sub)) {
            match entry(kind, &dir) {
                Ok(e) => good.push(e),
                Err(e) => bad.push(e),
            }
        }
    }
    (good, bad)
}

/// The non-hidden sub-folders of `dir`, sorted (none when it does not exist).
fn model_folders(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

/// A corpus source as a data-set name: "bundled: assets/text/austen-6-novels.txt.gz" becomes
/// "austen-6-novels"; a user's path stays as it is.
fn corpus_name(source: &str) -> String {
    match source.strip_prefix("bundled: ") {
        Some(p) => {
            let file = Path::new(p)
                .file_name()
                .map_or(p.into(), |f| f.to_string_lossy().to_string());
            file.split('.').next().unwrap_or(&file).to_string()
        }
        None => source.to_string(),
    }
}

fn entry(kind: ModelKind, dir: &Path) -> CoreResult<ModelEntry> {
    let id = dir
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let e = |family: String, dataset: String, metric: &str, value: f64| ModelEntry {
        kind,
        id: id.clone(),
        family,
        dataset,
        path: dir.to_path_buf(),
        metric: metric.into(),
        value,
    };
    Ok(match kind {
        ModelKind::Classifier => {
            let c = crate::model::ModelCard::load(&dir.join("card.json"))?;
            e(
                c.spec.family.as_str().into(),
                c.dataset.name,
                "test_acc",
                c.metrics.test_acc,
            )
        }
        ModelKind::Zoo => {
            let z = crate::train::zoo::Zoo::open(dir)?;
            let n = z.model_indices().len();
            let m = z.manifest;
            e(
                format!("{}-zoo", m.config.train.family.as_str()),
                m.dataset.name,
                "models",
                n as f64,
            )
        }
        ModelKind::Ddpm => {
            let c = crate::diffusion::DiffusionCard::check_folder(dir)?;
            e("unet".into(), c.dataset.name, "final_loss", c.final_loss)
        }
        ModelKind::Lm if crate::lm::card::is_hf_folder(dir) => {
            // A Hugging Face folder: a GPT rote trained (with its card) or anyone's model.
            let cfg = crate::lm::check_folder(dir)?;
            match crate::lm::card::GptCard::read(dir)? {
                Some(c) => e(
                    cfg.model_type().into(),
                    corpus_name(&c.corpus.source),
                    "val_loss",
                    c.epochs.last().map_or(f64::NAN, |ep| ep.val_loss),
                ),
                None => e(cfg.model_type().into(), "unknown".into(), "val_loss", f64::NAN),
            }
        }
        ModelKind::Lm => {
            let c = crate::canary::card::LmCard::check_folder(dir)?;
            let top = c
                .epochs
                .last()
                .map(|ep| ep.exposure.iter().copied().fold(0.0, f64::max))
                .unwrap_or(0.0);
            e(
                "char-lstm".into(),
                corpus_name(&c.corpus.source),
                "max_exposure_bits",
                top,
            )
        }
        ModelKind::SslEncoder => {
            let c = crate::ssl::card::SslCard::check_folder(dir)?;
            e(
                format!("simclr-{}", c.role.as_str()),
                c.dataset.name,
                "final_loss",
                c.final_loss,
            )
        }
    })
}
