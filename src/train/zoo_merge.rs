//! Zoo shards (`rote zoo --shard I/N`: the models with index = I mod N) and merging shard folders
//! into one zoo (`rote zoo merge`) with exactly the files one run would write.

use std::path::{Path, PathBuf};

use super::zoo::{Zoo, ZooManifest, model_file};
use crate::error::{CoreError, CoreResult};
use crate::study::{write_atomic, write_json_atomic};

/// Which models a run trains.
#[derive(Clone, Copy, Debug)]
pub struct Shard {
    /// This shard.
    pub index: u32,
    /// Number of shards.
    pub count: u32,
}

impl Shard {
    /// Parses "I/N".
    pub fn parse(s: &str) -> CoreResult<Self> {
        let bad = || CoreError::Invalid(format!("shard '{s}' is not I/N with 0 <= I < N"));
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

/// Copies the model records of zoo folders `shards` into `dest` (created with the first shard's
/// manifest). Every shard must have the same manifest; a model present twice must be identical.
pub fn merge_zoos(shards: &[PathBuf], dest: &Path) -> CoreResult<usize> {
    let first = shards
        .first()
        .ok_or_else(|| CoreError::Invalid("no shards to merge".into()))?;
    let base = Zoo::open(first)?;
    std::fs::create_dir_all(dest.join("models")).map_err(|e| CoreError::io(dest, e))?;
    if !dest.join("zoo.json").exists() {
        write_json_atomic(&dest.join("zoo.json"), &base.manifest)?;
    }
    let target = Zoo::open(dest)?;
    let same = |a: &ZooManifest, b: &ZooManifest| {
        a.config == b.config && a.dataset == b.dataset && a.planted == b.planted
    };
    if !same(&target.manifest, &base.manifest) {
        return Err(CoreError::Mismatch(format!(
            "{} holds a zoo with another configuration",
            dest.display()
        )));
    }
    let mut copied = 0;
    for s in shards {
        let z = Zoo::open(s)?;
        if !same(&z.manifest, &base.manifest) {
            return Err(CoreError::Mismatch(format!(
                "{} was trained with another configuration than {}",
                s.display(),
                first.display()
            )));
        }
        for k in z.model_indices() {
            let from = model_file(s, k);
            let bytes = std::fs::read(&from).map_err(|e| CoreError::io(&from, e))?;
            let to = model_file(dest, k);
            if to.exists() {
                let existing = std::fs::read(&to).map_err(|e| CoreError::io(&to, e))?;
                if existing != bytes {
                    return Err(CoreError::Mismatch(format!(
                        "model {k} differs between shards ({})",
                        from.display()
                    )));
                }
                continue;
            }
            write_atomic(&to, &bytes)?;
            copied += 1;
        }
    }
    Ok(copied)
}
