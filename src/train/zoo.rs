//! Model zoos for subsampled memorization (Feldman & Zhang 2020) and reference-model membership
//! inference: K models, model k trained on its own seeded random subset (ratio r of the training
//! split), with every model's membership mask and per-sample signals (correctness, loss, margin)
//! over the whole data set recorded in `STUDY/zoos/<id>/models/mNNNNN.bin`.
//!
//! A model's subset, initialisation and batch order come from a seed derived from the zoo seed and
//! the model's index alone, so zoos can be resumed, grown (more models later), and trained in
//! shards (`--shard I/N` trains the models with index = I mod N) that merge into exactly the files
//! one run would write.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};

pub use super::batched_mlp::MlpInit;
pub use super::zoo_merge::{Shard, merge_zoos};
pub use super::zoo_record::ZooModel;
pub use super::zoo_subsets::{Subsets, SubsetsRef};
use super::zoo_subsets::{subsets_path, with_subset_split};
use super::{OptimizerKind, TrainConfig};
use crate::data::Dataset;
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
use crate::model::Family;
use crate::study::{Study, write_atomic, write_json_atomic};

/// What defines a zoo. Stored as `zoo.json`; a resumed or grown zoo must match it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ZooConfig {
    /// Zoo id (folder name under `zoos/`).
    pub id: String,
    /// Training recipe shared by all models (its seed is the zoo seed; `subset_ratio` is r).
    pub train: TrainConfig,
    /// Fraction of training-split samples whose label is flipped (0 = none).
    pub plant_mislabel: f64,
    /// Seed for choosing and flipping the planted samples.
    pub plant_seed: u64,
    /// Hidden widths of the MLP.
    pub hidden: Vec<usize>,
    /// Given subsets (`--subsets FILE.npy`): model k trains on exactly row k's data-set rows, and
    /// the rows any subset names are the training candidates. `None`: seeded draws of ratio r.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subsets: Option<SubsetsRef>,
    /// MLP initialisation and input scaling: the official Feldman–Zhang script's Glorot-normal
    /// (the default since it was added), or PyTorch's uniform init on standardised inputs (what a
    /// `zoo.json` without this field was trained with).
    #[serde(default, skip_serializing_if = "MlpInit::is_default")]
    pub init: MlpInit,
    /// DP-SGD (`--dp-epsilon`/`--dp-noise`): the guarantee each model has for its training rows
    /// and the settings it depends on. `None`: plain training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dp: Option<crate::defence::dp_sgd::DpRecord>,
    /// PGD adversarial training, optionally DeMem-style (`--adversarial`, `--demem`); each model
    /// records its robust accuracy. `None`: plain training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adversarial: Option<crate::defence::demem::Adversarial>,
}

impl Default for ZooConfig {
    fn default() -> Self {
        Self {
            id: String::new(),
            train: TrainConfig {
                optimizer: OptimizerKind::Sgd,
                lr: 0.1,
                momentum: 0.9,
                batch_size: 128,
                epochs: 40,
                subset_ratio: 0.7,
                ..TrainConfig::default()
            },
            plant_mislabel: 0.0,
            plant_seed: 0,
            hidden: vec![512, 256],
            subsets: None,
            init: MlpInit::GlorotNormal,
            dp: None,
            adversarial: None,
        }
    }
}

/// `zoo.json`: the configuration plus what was fixed when the zoo was created.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ZooManifest {
    /// The configuration.
    pub config: ZooConfig,
    /// Data set name, hash and size (of the original, unplanted labels).
    pub dataset: crate::model::DatasetRef,
    /// Planted (index, original label, planted label), ascending by index.
    pub planted: Vec<(u32, u16, u16)>,
    /// rote version.
    pub rote_version: String,
}

impl ZooConfig {
    /// The defence this zoo trains with, in words; `None` for plain training.
    pub fn defence(&self) -> Option<String> {
        match (&self.dp, &self.adversarial) {
            (Some(dp), _) => Some(format!(
                "DP-SGD ε = {:.2} (δ = {:.0e}, σ = {:.2}, C = {})",
                dp.epsilon, dp.delta, dp.noise_multiplier, dp.clip
            )),
            (None, Some(adv)) => Some(adv.describe()),
            (None, None) => None,
        }
    }
}

impl ZooManifest {
    /// Parses and checks the text of a `zoo.json`; `path` only names the file in errors.
    pub fn from_json(path: &Path, text: &str) -> CoreResult<Self> {
        let manifest: Self = serde_json::from_str(text)
            .map_err(|e| CoreError::format(path, format!("bad zoo manifest: {e}")))?;
        manifest.check().map_err(|why| CoreError::format(path, why))?;
        Ok(manifest)
    }

    /// Sizes in range (see `model::limits`) and planted samples inside the data set.
    pub fn check(&self) -> Result<(), String> {
        use crate::model::limits::{DATASET_N, MLP_LAYERS, WIDTH, all_in_range, in_range};
        in_range("dataset.n", self.dataset.n, DATASET_N)?;
        all_in_range("config.hidden", &self.config.hidden, MLP_LAYERS, WIDTH)?;
        match self.planted.iter().find(|p| p.0 as usize >= self.dataset.n) {
            Some(p) => Err(format!(
                "planted sample {} is outside the data set of {} images",
                p.0, self.dataset.n
            )),
            None => Ok(()),
        }
    }
}

/// The zoo to use: `id` when given, else the study's only zoo, or its only zoo trained without a
/// defence when the others are its defended variants (an error names the choices).
pub fn resolve_zoo_id(study: &Study, id: Option<&str>) -> CoreResult<String> {
    if let Some(id) = id {
        return Ok(id.to_string());
    }
    let zoos_dir = study.root.join("zoos");
    let mut ids = zoo_ids(study);
    match ids.len() {
        0 => Err(CoreError::format(
            &zoos_dir,
            "the study has no zoo (train one with `rote zoo`)",
        )),
        1 => Ok(ids.remove(0)),
        _ => {
            // A study with one baseline and its defended variants (`rote defences`): the baseline.
            let mut baselines: Vec<&String> = ids
                .iter()
                .filter(|id| {
                    Zoo::open(&zoo_dir(study, id)).is_ok_and(|z| z.manifest.config.defence().is_none())
                })
                .collect();
            if baselines.len() == 1
                && let Some(id) = baselines.pop()
            {
                return Ok(id.clone());
            }
            Err(CoreError::Invalid(format!(
                "the study has several zoos ({}); pick one with --zoo",
                ids.join(", ")
            )))
        }
    }
}

/// The ids of the study's zoos (folders under `zoos/` with a `zoo.json`), sorted.
pub fn zoo_ids(study: &Study) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(study.root.join("zoos"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().join("zoo.json").is_file())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

/// The folder of zoo `id` in `study`.
pub fn zoo_dir(study: &Study, id: &str) -> PathBuf {
    study.root.join("zoos").join(id)
}

pub(super) fn model_file(dir: &Path, k: u32) -> PathBuf {
    dir.join("models").join(format!("m{k:05}.bin"))
}

/// The seed of model `k` of a zoo with seed `seed`.
pub fn model_seed(seed: u64, k: u32) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (u64::from(k) + 1).wrapping_mul(0xD1B5_4A32_D192_ED03)
}

/// Chooses and flips the planted labels: `frac` of the training split, each to a different class.
pub fn plant_mislabels(ds: &Dataset, frac: f64, seed: u64) -> Vec<(u32, u16, u16)> {
    if frac <= 0.0 {
        return Vec::new();
    }
    let mut pool = ds.train_indices();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x91a7_0003);
    pool.shuffle(&mut rng);
    let m = ((pool.len() as f64) * frac).round() as usize;
    let c = ds.n_classes() as u16;
    let mut out: Vec<(u32, u16, u16)> = pool
        .into_iter()
        .take(m)
        .map(|i| {
            let orig = ds.labels[i];
            let shift = rng.random_range(1..c.max(2));
            (i as u32, orig, (orig + shift) % c)
        })
        .collect();
    out.sort_unstable();
    out
}

/// The data set as zoo `manifest` (in folder `dir`) sees it: the split its subsets define, if
/// any, and its planted labels.
pub fn zoo_data(ds: &Dataset, dir: &Path, manifest: &ZooManifest) -> CoreResult<Dataset> {
    match &manifest.config.subsets {
        Some(r) => {
            let s = Subsets::in_zoo(dir, r, ds.n)?;
            with_planted(&with_subset_split(ds, &s.rows)?, &manifest.planted)
        }
        None => with_planted(ds, &manifest.planted),
    }
}

/// The data set with the planted labels applied.
pub fn with_planted(ds: &Dataset, planted: &[(u32, u16, u16)]) -> CoreResult<Dataset> {
    if planted.is_empty() {
        return Ok(ds.clone());
    }
    let mut labels = ds.labels.to_vec();
    for &(i, _, new) in planted {
        *labels.get_mut(i as usize).ok_or_else(|| {
            CoreError::Invalid(format!(
                "planted sample {i} is outside the data set of {} images",
                ds.n
            ))
        })? = new;
    }
    Dataset::new(
        ds.name.clone(),
        format!("{} with {} planted mislabels", ds.source, planted.len()),
        [ds.n, ds.c, ds.h, ds.w],
        ds.pixels.to_vec(),
        labels,
        ds.class_names.clone(),
        ds.max_value,
        // The split stays the original one: planting must not move samples between splits.
        Some(ds.split.to_vec()),
    )
    .map(|d| d.with_features_of(ds))
}

/// An open zoo: manifest, folder and the indices of the models on disk.
pub struct Zoo {
    /// Its folder.
    pub dir: PathBuf,
    /// `zoo.json`.
    pub manifest: ZooManifest,
}

impl Zoo {
    /// Opens a zoo folder.
    pub fn open(dir: &Path) -> CoreResult<Self> {
        let mp = dir.join("zoo.json");
        let text = std::fs::read_to_string(&mp).map_err(|e| CoreError::io(&mp, e))?;
        let manifest = ZooManifest::from_json(&mp, &text)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    /// Indices of the models on disk, ascending.
    pub fn model_indices(&self) -> Vec<u32> {
        let mut v: Vec<u32> = std::fs::read_dir(self.dir.join("models"))
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().to_string();
                        name.strip_prefix('m')?.strip_suffix(".bin")?.parse().ok()
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort_unstable();
        v
    }

    /// Loads every model record (ascending index).
    pub fn load_models(&self) -> CoreResult<Vec<ZooModel>> {
        let n = self.manifest.dataset.n;
        self.model_indices()
            .into_iter()
            .map(|k| {
                let p = model_file(&self.dir, k);
                let bytes = std::fs::read(&p).map_err(|e| CoreError::io(&p, e))?;
                let m = ZooModel::from_bytes(&p, &bytes, n)?;
                if m.index != k {
                    return Err(CoreError::format(
                        &p,
                        format!("holds model {} but is named for {k}", m.index),
                    ));
                }
                Ok(m)
            })
            .collect()
    }
}

/// Summary of a zoo run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ZooRun {
    /// Zoo folder.
    pub dir: PathBuf,
    /// Models trained by this run.
    pub trained: usize,
    /// Models on disk now.
    pub total: usize,
    /// Seconds.
    pub seconds: f64,
}

/// Creates or resumes zoo `cfg.id` in `study` and trains the missing models among `0..k` (those of
/// `shard` only), `group` models at a time.
pub fn train_zoo(
    cfg: &ZooConfig,
    ds: &Dataset,
    study: &Study,
    k: u32,
    shard: Option<Shard>,
    group: usize,
    ctx: &JobCtx<'_>,
) -> CoreResult<ZooRun> {
    cfg.train.family.check_data(ds)?;
    let t0 = Instant::now();
    let dir = zoo_dir(study, &cfg.id);
    let manifest = match Zoo::open(&dir) {
        Ok(z) => {
            if z.manifest.config != *cfg {
                return Err(CoreError::Mismatch(format!(
                    "zoo '{}' exists with another configuration; use a new --id or the same options",
                    cfg.id
                )));
            }
            if z.manifest.dataset.hash != ds.hash {
                return Err(CoreError::Mismatch(format!(
                    "zoo '{}' was built on data with hash {}, this data set has hash {}",
                    cfg.id, z.manifest.dataset.hash, ds.hash
                )));
            }
            z.manifest
        }
        Err(_) => {
            std::fs::create_dir_all(dir.join("models")).map_err(|e| CoreError::io(&dir, e))?;
            let split = match &cfg.subsets {
                Some(r) => {
                    let s = Subsets::read(Path::new(&r.file), ds.n)?;
                    if s.reference != *r {
                        return Err(CoreError::format(
                            &r.file,
                            "changed since the zoo's configuration was made from it",
                        ));
                    }
                    write_atomic(&subsets_path(&dir), &s.bytes)?;
                    with_subset_split(ds, &s.rows)?
                }
                None => ds.clone(),
            };
            let planted = plant_mislabels(&split, cfg.plant_mislabel, cfg.plant_seed);
            let m = ZooManifest {
                config: cfg.clone(),
                dataset: crate::model::DatasetRef {
                    name: cfg.train.data.clone(),
                    source: ds.source.clone(),
                    hash: ds.hash.clone(),
                    n: ds.n,
                },
                planted,
                rote_version: crate::VERSION.into(),
            };
            write_json_atomic(&dir.join("zoo.json"), &m)?;
            m
        }
    };
    let work = zoo_data(ds, &dir, &manifest)?;
    let subsets = manifest
        .config
        .subsets
        .as_ref()
        .map(|r| Subsets::in_zoo(&dir, r, ds.n))
        .transpose()?;
    if let Some(s) = &subsets {
        s.row(k.saturating_sub(1))?;
    }
    let zoo = Zoo {
        dir: dir.clone(),
        manifest,
    };
    let have = zoo.model_indices();
    let todo: Vec<u32> = (0..k)
        .filter(|i| shard.is_none_or(|s| i % s.count == s.index))
        .filter(|i| have.binary_search(i).is_err())
        .collect();
    let group = group.max(1);
    let total_groups = todo.len().div_ceil(group);
    for (g, chunk) in todo.chunks(group).enumerate() {
        ctx.checkpoint()?;
        let stage = format!(
            "models {}-{} (group {}/{total_groups})",
            chunk[0],
            chunk[chunk.len() - 1],
            g + 1
        );
        if cfg.train.family != Family::Mlp && !cfg.init.is_default() {
            return Err(CoreError::Invalid(format!(
                "--init {} applies to MLP zoos; {} zoos use their family's own initialisation",
                serde_json::to_value(cfg.init)
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
                cfg.train.family.as_str()
            )));
        }
        if cfg.adversarial.is_some() && cfg.train.family != Family::Mlp {
            return Err(CoreError::Invalid(format!(
                "adversarial zoos are MLP zoos for now (--family mlp); {} zoos train without it",
                cfg.train.family.as_str()
            )));
        }
        let records = match cfg.train.family {
            Family::Mlp => {
                super::zoo_groups::train_group_mlp(cfg, &work, subsets.as_ref(), chunk, &stage, ctx)?
            }
            Family::Cnn | Family::Softmax => {
                super::zoo_groups::train_group_sequential(cfg, &work, subsets.as_ref(), chunk, &stage, ctx)?
            }
        };
        for r in records {
            write_atomic(&model_file(&dir, r.index), &r.to_bytes())?;
        }
    }
    Ok(ZooRun {
        dir,
        trained: todo.len(),
        total: zoo.model_indices().len(),
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// How many training rows each model of a zoo trains on (model 0's count; every model's is the
/// same for seeded draws): the row length of given `subsets`, else ratio x the training split.
pub fn rows_per_model(ds: &Dataset, subsets: Option<&Subsets>, ratio: f64, seed: u64) -> CoreResult<usize> {
    Ok(subset_for(ds, subsets, 0, ratio, model_seed(seed, 0))?.len())
}

/// Model `k`'s training rows, ascending: its row of the given subsets, else a seeded draw.
pub(super) fn subset_for(
    ds: &Dataset,
    subsets: Option<&Subsets>,
    k: u32,
    ratio: f64,
    seed: u64,
) -> CoreResult<Vec<usize>> {
    Ok(match subsets {
        Some(s) => {
            let mut v = s.row(k)?.to_vec();
            v.sort_unstable();
            v
        }
        None => super::run::draw_subset(&ds.train_indices(), ratio, seed),
    })
}
