//! The demo's SSL encoder pair and its LayerMem/UnitMem report (the Layers view opens on it):
//! encoder f trained on the shared and candidate images (with planted Fashion-MNIST outliers among
//! the candidates), g on the shared and independent ones, same recipe and seeds.

use std::path::Path;

use super::common::copy_missing;
use crate::error::CoreResult;
use crate::job::JobCtx;
use crate::ssl::augment::AugConfig;
use crate::ssl::stats::Norm;
use crate::ssl::{
    LayerMemConfig, SplitConfig, SslPairConfig, SslRecipe, layermem_into_study, pair_dirs, ssl_dir,
    train_pair_into_study,
};
use crate::study::{Study, copy_tree, write_atomic};

/// Copies the shipped encoders and report into `study` (what is already there is kept).
pub fn copy_demo_ssl(study: &Study, assets: &Path) -> CoreResult<()> {
    for (src, dest) in [
        (ssl_dir(assets), ssl_dir(&study.root)),
        (
            assets.join("results").join("layermem"),
            study.root.join("results").join("layermem"),
        ),
    ] {
        copy_missing(&src, &dest)?;
    }
    Ok(())
}

/// Trains the demo pair `cfg` into `study` (cached encoders are kept), measures it with `mcfg`,
/// and with `assets` replaces the shipped copies.
pub fn rebuild_demo_ssl(
    study: &Study,
    cfg: &SslPairConfig,
    mcfg: &LayerMemConfig,
    assets: Option<&Path>,
    ctx: &JobCtx<'_>,
) -> CoreResult<()> {
    let cmd = "rote demo --rebuild --ssl --out STUDY";
    train_pair_into_study(cfg, &study.root, cmd, false, ctx)?;
    let [f, g] = pair_dirs(&study.root, &cfg.id);
    let (_, report) = layermem_into_study(&f, &g, mcfg, ctx)?;
    if let Some(assets) = assets {
        for dir in [&f, &g] {
            let dest = ssl_dir(assets).join(dir.file_name().unwrap_or_default());
            if dest.exists() {
                std::fs::remove_dir_all(&dest).map_err(|e| crate::CoreError::io(&dest, e))?;
            }
            copy_tree(dir, &dest)?;
        }
        let bytes = std::fs::read(&report).map_err(|e| crate::CoreError::io(&report, e))?;
        let name = report.file_name().unwrap_or_default();
        write_atomic(&assets.join("results").join("layermem").join(name), &bytes)?;
    }
    Ok(())
}

/// The demo pair's training and measurement configuration: the same as
/// `rote ssl-pair --data mnist10k --images 400 --plant-outliers 8 --widths 8,16,32 --epochs 150
/// --batch-size 128 --half --id ssl-demo` then `rote layermem --norm none` (raw differences of
/// alignment losses: the reference code's division by each layer's range makes layers with a
/// narrow spread look memorized, so layers are compared on the raw scale; the report says which).
/// A small training set seen for many epochs, so f can fit each of its images.
pub fn demo_ssl_config() -> (SslPairConfig, LayerMemConfig) {
    (
        SslPairConfig {
            data: "mnist10k".into(),
            split: SplitConfig {
                images: 400,
                candidate_frac: 0.1,
                plant_outliers: 8,
                outlier_data: "fashion-mnist".into(),
                seed: 0,
            },
            widths: vec![8, 16, 32],
            recipe: SslRecipe {
                epochs: 150,
                batch_size: 128,
                lr: 1e-3,
                weight_decay: 1e-6,
                temperature: 0.5,
                aug: AugConfig::default(),
                seed: 0,
            },
            device: "cpu".into(),
            id: DEMO_SSL_PAIR.into(),
            half: true,
        },
        LayerMemConfig {
            norm: Norm::None,
            ..LayerMemConfig::default()
        },
    )
}

/// Id of the demo encoder pair (`<id>-f`, `<id>-g`).
pub const DEMO_SSL_PAIR: &str = "ssl-demo";
