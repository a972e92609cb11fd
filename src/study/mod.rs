//! The study folder: `study.json`, `models/<id>/` (weights + card + per-sample scores) and
//! `results/`. GUI and CLI read and write the same folders. Every write is atomic (a temporary file
//! in the same folder, synced, then renamed), and a model folder appears only once complete.
//! Opening a study removes what killed writers left behind (see [`clean_stale`]).

mod atomic;
pub mod inventory;

pub use atomic::{clean_stale, replace_dir, staging_name, write_atomic, write_json_atomic};
pub use inventory::{ModelEntry, ModelKind, inventory};

use std::path::{Path, PathBuf};

use crate::error::{CoreError, CoreResult};
use crate::model::ModelCard;

/// The manifest stored as `study.json`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct StudyManifest {
    /// Format version.
    pub format: u32,
    /// Display name.
    pub name: String,
    /// Free-text description.
    pub description: String,
    /// rote version that created it.
    pub created_by: String,
    /// Data sets the study works on (bundled names or paths).
    pub datasets: Vec<String>,
}

impl Default for StudyManifest {
    fn default() -> Self {
        Self {
            format: 1,
            name: "study".into(),
            description: String::new(),
            created_by: format!("rote {}", crate::VERSION),
            datasets: Vec::new(),
        }
    }
}

impl StudyManifest {
    /// Parses the text of a `study.json`; `path` only names the file in errors.
    pub fn from_json(path: &Path, text: &str) -> CoreResult<Self> {
        serde_json::from_str(text).map_err(|e| CoreError::format(path, format!("bad study manifest: {e}")))
    }
}

/// An open study folder.
#[derive(Clone, Debug)]
pub struct Study {
    /// The folder.
    pub root: PathBuf,
    /// Its manifest.
    pub manifest: StudyManifest,
}

/// A model found in a study.
#[derive(Clone, Debug)]
pub struct StudyModel {
    /// Folder name under `models/`.
    pub id: String,
    /// The folder.
    pub dir: PathBuf,
    /// Its card.
    pub card: ModelCard,
}

impl Study {
    /// Opens an existing study, or creates the folder structure and manifest if `path` does not
    /// hold one yet.
    pub fn open_or_create(path: &Path) -> CoreResult<Self> {
        if path.join("study.json").is_file() {
            return Self::open(path);
        }
        if path.exists() && !path.is_dir() {
            return Err(CoreError::format(path, "exists and is not a folder"));
        }
        std::fs::create_dir_all(path.join("models")).map_err(|e| CoreError::io(path, e))?;
        std::fs::create_dir_all(path.join("results")).map_err(|e| CoreError::io(path, e))?;
        let name = path
            .file_name()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "study".into());
        let manifest = StudyManifest {
            name,
            ..StudyManifest::default()
        };
        write_json_atomic(&path.join("study.json"), &manifest)?;
        Ok(Self {
            root: path.to_path_buf(),
            manifest,
        })
    }

    /// Opens an existing study (a folder with `study.json`), removing the temporary files and
    /// staging folders of writers that were killed (see [`Study::clean_staging`]).
    pub fn open(path: &Path) -> CoreResult<Self> {
        let mp = path.join("study.json");
        if path.is_dir() && !mp.exists() {
            return Err(CoreError::format(
                &mp,
                "not found: this folder is not a study (rote train --out or rote demo --out creates one)",
            ));
        }
        let text = std::fs::read_to_string(&mp).map_err(|e| CoreError::io(&mp, e))?;
        let manifest = StudyManifest::from_json(&mp, &text)?;
        for sub in ["models", "results"] {
            std::fs::create_dir_all(path.join(sub)).map_err(|e| CoreError::io(path.join(sub), e))?;
        }
        let study = Self {
            root: path.to_path_buf(),
            manifest,
        };
        study.clean_staging();
        Ok(study)
    }

    /// Saves the manifest.
    pub fn save_manifest(&self) -> CoreResult<()> {
        write_json_atomic(&self.root.join("study.json"), &self.manifest)
    }

    /// Records that the study uses a data set.
    pub fn add_dataset(&mut self, name: &str) -> CoreResult<()> {
        if !self.manifest.datasets.iter().any(|d| d == name) {
            self.manifest.datasets.push(name.to_string());
            self.save_manifest()?;
        }
        Ok(())
    }

    /// The `models/` folder.
    pub fn models_dir(&self) -> PathBuf {
        self.root.join("models")
    }

    /// The `results/` folder.
    pub fn results_dir(&self) -> PathBuf {
        self.root.join("results")
    }

    /// Every complete model (folders whose card parses and matches the header of its weights,
    /// read without loading them), sorted by id. Broken folders are returned as errors beside
    /// the good ones, so one bad model hides nothing else.
    pub fn models(&self) -> (Vec<StudyModel>, Vec<CoreError>) {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        let Ok(entries) = std::fs::read_dir(self.models_dir()) else {
            return (good, bad);
        };
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for dir in dirs {
            let id = dir
                .file_name()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            if id.starts_with('.') {
                continue;
            }
            let card_path = dir.join("card.json");
            let checked = ModelCard::load(&card_path).and_then(|card| {
                let weights = dir.join("weights.safetensors");
                crate::model::header::check_weights(&card.spec, &card_path, &weights).map(|()| card)
            });
            match checked {
                Ok(card) => good.push(StudyModel { id, dir, card }),
                Err(e) => bad.push(e),
            }
        }
        (good, bad)
    }

    /// A fresh, unused model id built from `stem`.
    pub fn new_model_id(&self, stem: &str) -> String {
        fresh_id(&self.models_dir(), stem)
    }

    /// A staging folder for a model being written; [`Study::commit_model`] renames it into place.
    pub fn staging_dir(&self, id: &str) -> CoreResult<PathBuf> {
        let dir = self.models_dir().join(staging_name(id));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| CoreError::io(&dir, e))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| CoreError::io(&dir, e))?;
        Ok(dir)
    }

    /// Moves a complete staging folder to `models/<id>/`.
    pub fn commit_model(&self, staging: &Path, id: &str) -> CoreResult<PathBuf> {
        let dest = self.models_dir().join(id);
        std::fs::rename(staging, &dest).map_err(|e| CoreError::io(&dest, e))?;
        atomic::sync_dir(&self.models_dir());
        Ok(dest)
    }

    /// Copies the whole study to `dest` (which must not exist or be empty) and opens the copy.
    /// Every file is written atomically; staging leftovers are not copied.
    pub fn copy_to(&self, dest: &Path) -> CoreResult<Self> {
        if dest.exists() {
            let non_empty = std::fs::read_dir(dest)
                .map_err(|e| CoreError::io(dest, e))?
                .next()
                .is_some();
            if non_empty {
                return Err(CoreError::format(dest, "the destination folder is not empty"));
            }
        }
        copy_tree(&self.root, dest)?;
        Self::open(dest)
    }

    /// Removes leftovers of interrupted writes anywhere in the study (staging folders, temporary
    /// files) whose process is gone, and restores a folder whose replacement was cut short.
    /// Returns how many were cleaned.
    pub fn clean_staging(&self) -> usize {
        clean_stale(&self.root)
    }
}

/// Copies a folder tree file by file (atomically each), skipping dot-files.
pub fn copy_tree(src: &Path, dest: &Path) -> CoreResult<()> {
    std::fs::create_dir_all(dest).map_err(|e| CoreError::io(dest, e))?;
    for entry in std::fs::read_dir(src).map_err(|e| CoreError::io(src, e))? {
        let entry = entry.map_err(|e| CoreError::io(src, e))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let from = entry.path();
        let to = dest.join(&name);
        if from.is_dir() {
            copy_tree(&from, &to)?;
        } else {
            let bytes = std::fs::read(&from).map_err(|e| CoreError::io(&from, e))?;
            write_atomic(&to, &bytes)?;
        }
    }
    Ok(())
}

/// `stem` cleaned to a folder name (ASCII letters, digits, - and _), with -2, -3, ... appended
/// until no entry of `dir` has that name.
pub fn fresh_id(dir: &Path, stem: &str) -> String {
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut id = clean.clone();
    let mut k = 2;
    while dir.join(&id).exists() {
        id = format!("{clean}-{k}");
        k += 1;
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_reopen_and_ids() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("s");
        let mut s = Study::open_or_create(&root).unwrap();
        s.add_dataset("mnist10k").unwrap();
        let s2 = Study::open(&root).unwrap();
        assert_eq!(s2.manifest.datasets, vec!["mnist10k"]);
        std::fs::create_dir_all(root.join("models/mlp-a")).unwrap();
        assert_eq!(s2.new_model_id("mlp a"), "mlp-a-2");
        let (good, bad) = s2.models();
        assert!(good.is_empty());
        assert_eq!(bad.len(), 1, "a folder without a card is reported");
        std::fs::write(root.join("results/r.json"), "{}").unwrap();
        let copy = s2.copy_to(&dir.path().join("copy")).unwrap();
        assert_eq!(copy.manifest.datasets, vec!["mnist10k"]);
        assert!(copy.results_dir().join("r.json").is_file());
        assert!(
            s2.copy_to(&dir.path().join("copy")).is_err(),
            "refuses a non-empty destination"
        );
    }

    #[test]
    fn broken_manifest_names_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("study.json"), "{not json").unwrap();
        let err = Study::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("study.json"), "{err}");
    }
}
