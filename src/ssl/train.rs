//! SimCLR training of an encoder pair (Chen et al. 2020; the reference recipe of Wang et al.:
//! Adam lr 1e-3, weight decay 1e-6, temperature 0.5): each batch gives two seeded augmented
//! views of every image, the projection head maps them to z, and NT-Xent pulls the two views of
//! an image together. f and g share the recipe, the initialisation seed and the per-sample
//! augmentation streams; only their data differs (S_C vs S_I).

use std::path::{Path, PathBuf};

use candle_core::DType;
use candle_nn::{AdamW, Optimizer as _, ParamsAdamW};
use rand::SeedableRng as _;
use rand::seq::SliceRandom as _;
use rayon::prelude::*;

use super::augment::{AugPurpose, aug_rng, augment_into};
use super::card::{SslCard, SslEncoder, SslRecipe, ssl_dir};
use super::encoder::{EncoderConfig, to_input};
use super::ntxent::nt_xent;
use super::split::{Role, SplitConfig, SslSplit, check_split, draw_split, images01};
use crate::data::Dataset;
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
use crate::model::DatasetRef;

/// How to train a pair of encoders.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SslPairConfig {
    /// Main data set (bundled name or path).
    pub data: String,
    /// The split (and planted outliers).
    pub split: SplitConfig,
    /// Block widths (the stem takes the first).
    pub widths: Vec<usize>,
    /// The recipe.
    pub recipe: SslRecipe,
    /// `cpu` or `cuda`.
    pub device: String,
    /// Pair id (encoders are `<id>-f` and `<id>-g`).
    pub id: String,
    /// Store weights as f16 (half the size; measurements run on what is stored).
    pub half: bool,
}

/// What the data of a pair is: the loaded sets and the split.
pub struct PairData {
    /// Main data set.
    pub main: Dataset,
    /// Outlier data set (when outliers are planted).
    pub outliers: Option<Dataset>,
    /// The split.
    pub split: SslSplit,
}

fn dataset_ref(ds: &Dataset) -> DatasetRef {
    DatasetRef {
        name: ds.name.clone(),
        source: ds.source.clone(),
        hash: ds.hash.clone(),
        n: ds.n,
    }
}

/// Loads the data sets of `cfg` and draws its split.
pub fn pair_data(cfg: &SslPairConfig) -> CoreResult<PairData> {
    let main = crate::data::load(&cfg.data)?;
    let outliers = if cfg.split.plant_outliers > 0 {
        Some(crate::data::load(&cfg.split.outlier_data)?)
    } else {
        None
    };
    let split = draw_split(&cfg.split, &main, outliers.as_ref())?;
    Ok(PairData {
        main,
        outliers,
        split,
    })
}

/// Trains encoder `role` of the pair. Progress per batch; cancellable between batches.
pub fn train_encoder(
    cfg: &SslPairConfig,
    data: &PairData,
    role: Role,
    command: &str,
    ctx: &JobCtx<'_>,
) -> CoreResult<SslEncoder> {
    check_split(&data.split)?;
    let device = crate::model::device(&cfg.device)?;
    let ds = &data.main;
    let arch = EncoderConfig::for_image(ds.c, ds.h, ds.w, cfg.widths.clone());
    arch.validate()
        .map_err(|why| CoreError::Invalid(format!("data set '{}': {why}", ds.name)))?;
    let r = &cfg.recipe;
    if r.epochs == 0 || r.batch_size < 2 {
        return Err(CoreError::Invalid(
            "--epochs must be positive and --batch-size at least 2".into(),
        ));
    }
    let refs = data.split.train_refs(role);
    let pixels = images01(&refs, ds, data.outliers.as_ref())?;
    let card = SslCard {
        id: format!("{}-{}", cfg.id, role.as_str()),
        role,
        pair: cfg.id.clone(),
        layers: arch.layer_names(),
        arch,
        dataset: dataset_ref(ds),
        outlier_dataset: data.outliers.as_ref().map(dataset_ref),
        split: data.split.clone(),
        recipe: r.clone(),
        n_train: refs.len(),
        final_loss: f64::NAN,
        loss_curve: Vec::new(),
        seconds: 0.0,
        n_params: 0,
        weights_dtype: if cfg.half { "f16" } else { "f32" }.into(),
        command: command.to_string(),
        rote_version: crate::VERSION.to_string(),
    };
    let mut enc = SslEncoder::fresh(card, &device)?;
    enc.card.n_params = enc.varmap.all_vars().iter().map(|v| v.elem_count()).sum();
    let mut opt = AdamW::new(
        enc.varmap.all_vars(),
        ParamsAdamW {
            lr: r.lr,
            weight_decay: r.weight_decay,
            ..Default::default()
        },
    )?;
    let shape = [ds.c, ds.h, ds.w];
    let len = ds.image_len();
    let per_epoch = refs.len().div_ceil(r.batch_size);
    let total = (r.epochs * per_epoch) as u64;
    let start = std::time::Instant::now();
    let stage = format!("training {}", enc.card.id);
    for epoch in 0..r.epochs {
        let mut order: Vec<usize> = (0..refs.len()).collect();
        let mut orng = rand_chacha::ChaCha8Rng::seed_from_u64(r.seed);
        orng.set_stream(1000 + epoch as u64);
        order.shuffle(&mut orng);
        let mut sum = 0.0;
        for (bi, batch) in order.chunks(r.batch_size).enumerate() {
            ctx.checkpoint()?;
            let b = batch.len();
            let mut views = vec![0f32; 2 * b * len];
            let (first, second) = views.split_at_mut(b * len);
            for (half, view) in [(first, 0u64), (second, 1u64)] {
                half.par_chunks_mut(len)
                    .zip(batch.par_iter())
                    .for_each(|(out, &k)| {
                        let mut rng = aug_rng(r.seed, AugPurpose::Train, refs[k].id(), epoch as u64, view);
                        augment_into(&pixels[k * len..(k + 1) * len], shape, &r.aug, &mut rng, out);
                    });
            }
            let x = to_input(views, 2 * b, shape, &device)?;
            let loss = nt_xent(&enc.net.project(&x)?, r.temperature)?;
            opt.backward_step(&loss)?;
            let l = f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?);
            if !l.is_finite() {
                return Err(CoreError::Invalid(format!(
                    "training diverged in epoch {epoch} (loss {l}); lower --lr"
                )));
            }
            sum += l;
            ctx.progress(&stage, (epoch * per_epoch + bi + 1) as u64, total);
        }
        let mean = sum / per_epoch as f64;
        enc.card.loss_curve.push([(epoch + 1) as f64, mean]);
        ctx.metric(&format!("ssl loss {}", role.as_str()), (epoch + 1) as f64, mean);
        ctx.log(&format!("{} epoch {}: NT-Xent {mean:.4}", enc.card.id, epoch + 1));
        enc.card.final_loss = mean;
    }
    enc.card.seconds = start.elapsed().as_secs_f64();
    Ok(enc)
}

/// The folders of a pair's encoders: `STUDY/ssl/<id>-f` and `STUDY/ssl/<id>-g`.
pub fn pair_dirs(study_root: &Path, id: &str) -> [PathBuf; 2] {
    let dir = ssl_dir(study_root);
    [dir.join(format!("{id}-f")), dir.join(format!("{id}-g"))]
}

/// Whether the encoder in `dir` was trained with exactly this split, recipe and architecture.
fn is_cached(dir: &Path, cfg: &SslPairConfig, split: &SslSplit) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join("card.json")) else {
        return false;
    };
    let Ok(card) = serde_json::from_str::<SslCard>(&text) else {
        return false;
    };
    card.split == *split
        && card.recipe == cfg.recipe
        && card.arch.widths == cfg.widths
        && dir.join("weights.safetensors").is_file()
}

/// Trains f then g into `STUDY/ssl/` (each staged, then renamed). An encoder already there with
/// the same split, recipe and architecture is kept (so an interrupted pair resumes at g) unless
/// `force`. Returns the two folders and whether each was trained now.
pub fn train_pair_into_study(
    cfg: &SslPairConfig,
    study_root: &Path,
    command: &str,
    force: bool,
    ctx: &JobCtx<'_>,
) -> CoreResult<Vec<(PathBuf, bool)>> {
    let data = pair_data(cfg)?;
    let dirs = pair_dirs(study_root, &cfg.id);
    let mut out = Vec::new();
    for (role, dir) in [Role::F, Role::G].into_iter().zip(dirs) {
        if !force && is_cached(&dir, cfg, &data.split) {
            out.push((dir, false));
            continue;
        }
        let enc = train_encoder(cfg, &data, role, command, ctx)?;
        let parent = ssl_dir(study_root);
        let staging = parent.join(crate::study::staging_name(&enc.card.id));
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|e| CoreError::io(&staging, e))?;
        }
        enc.save(&staging, if cfg.half { DType::F16 } else { DType::F32 })?;
        crate::study::replace_dir(&staging, &dir)?;
        out.push((dir, true));
    }
    Ok(out)
}
