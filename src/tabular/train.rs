//! Training a tabular DDPM with a recorded membership manifest and the memorization ratio at
//! evenly spaced epoch checkpoints (Fang et al. 2024 §4: memorization grows with epochs), writing
//! `STUDY/tabular/<id>/`: `card.json` (recipe, codec, members, per-checkpoint results, quality),
//! `weights.safetensors`, `samples.csv` (the final synthetic rows) and `samples-epoch-E.csv`.

use std::path::{Path, PathBuf};

use candle_core::Device;
use candle_nn::{Optimizer as _, ParamsAdamW};
use rand::SeedableRng as _;
use rand::seq::SliceRandom as _;

use super::augment::{Augment, NEW_ROW_FRACTION, augment};
use super::ddpm::{BatchDraw, Codec, TabDdpm, TabDdpmArch};
use super::memorization::{DistanceRule, MemorizationRatio, memorization_ratio};
use super::quality::{Quality, quality, tstr_accuracy};
use super::sample::sample_rows;
use super::table::MixedTable;
use crate::data::tabular::{TabularData, TabularSpec, load_adult, load_csv_tabular};
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;

/// How to train one tabular DDPM.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TabTrainConfig {
    /// `adult` or a CSV path.
    pub data: String,
    /// The target column of a CSV (Adult: `income`).
    pub target: Option<String>,
    /// Training rows drawn (seeded) from the train split; 0 = all of it.
    pub rows: usize,
    /// Epochs over the (augmented) training rows.
    pub epochs: usize,
    /// Evaluated checkpoints, evenly spaced over the epochs (the last is the final model).
    pub checkpoints: usize,
    /// Rows per optimiser step.
    pub batch_size: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Denoiser and diffusion settings.
    pub arch: TabDdpmArch,
    /// Training-set augmentation.
    pub augment: Augment,
    /// Mixed rows appended per training row (the reference's 0.3; cards written before the
    /// option existed read as 0.3).
    #[serde(default = "reference_share")]
    pub augment_share: f64,
    /// Synthetic rows drawn per checkpoint (0 = as many as training rows).
    pub samples: usize,
    /// Training rows planted as duplicates (ground truth for tests and demos).
    pub plant_duplicates: usize,
    /// Copies of each planted row in the training list.
    pub dup_factor: usize,
    /// Seed of rows, weights, batches and sampling.
    pub seed: u64,
    /// Model id (folder name under `STUDY/tabular/`).
    pub id: String,
}

impl Default for TabTrainConfig {
    fn default() -> Self {
        Self {
            data: "adult".into(),
            target: None,
            rows: 2000,
            epochs: 400,
            checkpoints: 4,
            batch_size: 256,
            lr: 1.8e-3,
            weight_decay: 5e-4,
            arch: TabDdpmArch {
                dim_t: 128,
                layers: vec![256, 512, 256],
                timesteps: 100,
            },
            augment: Augment::None,
            augment_share: NEW_ROW_FRACTION,
            samples: 0,
            plant_duplicates: 0,
            dup_factor: 20,
            seed: 0,
            id: String::new(),
        }
    }
}

impl TabTrainConfig {
    /// The id, or one derived from the recipe.
    pub fn id_or_default(&self) -> String {
        if !self.id.is_empty() {
            return self.id.clone();
        }
        let share = if self.augment == Augment::None || (self.augment_share - NEW_ROW_FRACTION).abs() < 1e-9 {
            String::new()
        } else {
            format!("-x{}", self.augment_share)
        };
        format!(
            "tabddpm-{}-{}{share}-e{}-s{}",
            data_label(&self.data),
            self.augment.label(),
            self.epochs,
            self.seed
        )
    }
}

fn reference_share() -> f64 {
    NEW_ROW_FRACTION
}

fn data_label(data: &str) -> String {
    Path::new(data)
        .file_stem()
        .map_or_else(|| data.to_string(), |s| s.to_string_lossy().replace(".csv", ""))
}

/// Results at one checkpoint.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochRecord {
    /// Epochs trained.
    pub epoch: usize,
    /// Mean training loss of the last epoch.
    pub loss: f64,
    /// The memorization ratio under the reference code's distance.
    pub code: MemorizationRatio,
    /// The memorization ratio under global min–max scaling.
    pub global: MemorizationRatio,
    /// The synthetic rows of this checkpoint (file name in the model folder).
    pub samples_csv: String,
}

/// `card.json` of a tabular DDPM.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TabularCard {
    /// Always `rote-tabular-ddpm`.
    pub format: String,
    /// The recipe.
    pub config: TabTrainConfig,
    /// Column transforms (and the schema).
    pub codec: Codec,
    /// Where the data came from.
    pub data_source: String,
    /// Content hash of the data set.
    pub data_hash: String,
    /// Membership manifest: source-table row indices the model trained on (distinct).
    pub members: Vec<usize>,
    /// The planted rows among `members` (source-table indices).
    pub planted: Vec<usize>,
    /// Rows the augmentation appended.
    pub augmented_rows: usize,
    /// Number of real test rows TSTR is measured on.
    pub test_rows: usize,
    /// One record per checkpoint.
    pub by_epoch: Vec<EpochRecord>,
    /// Quality of the final synthetic rows against the training rows.
    pub quality: Quality,
    /// Accuracy on real test rows of a classifier trained on the final synthetic rows.
    pub tstr_accuracy: f64,
    /// The same classifier trained on the real training rows (the reference TSTR is read against).
    pub trtr_accuracy: f64,
    /// Seconds spent training (not sampling or measuring).
    pub train_seconds: f64,
    /// Training rows per second.
    pub rows_per_second: f64,
}

/// `STUDY/tabular`.
pub fn tabular_dir(study: &Path) -> PathBuf {
    study.join("tabular")
}

/// Loads `adult` or a CSV with `target`.
pub fn load_table(data: &str, target: Option<&str>) -> CoreResult<TabularData> {
    if data == "adult" {
        return load_adult();
    }
    let target = target.ok_or_else(|| {
        CoreError::Invalid(format!(
            "{data}: a CSV needs --target COLUMN (the column to predict)"
        ))
    })?;
    load_csv_tabular(Path::new(data), &TabularSpec::new(target))
}

/// The real rows of a recipe: (members, planted, training list with planted copies, test rows).
fn plan_rows(cfg: &TabTrainConfig, data: &TabularData) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x7ab);
    let mut train = data.train_indices();
    train.shuffle(&mut rng);
    if cfg.rows > 0 && cfg.rows < train.len() {
        train.truncate(cfg.rows);
    }
    let planted: Vec<usize> = train.iter().take(cfg.plant_duplicates).copied().collect();
    let mut list = train.clone();
    for &p in &planted {
        list.extend(std::iter::repeat_n(p, cfg.dup_factor.saturating_sub(1)));
    }
    train.sort_unstable();
    (train, planted, list)
}

/// Trains one model into `STUDY/tabular/<id>/` and returns its card.
pub fn train_tabular(cfg: &TabTrainConfig, study: &Path, ctx: &JobCtx<'_>) -> CoreResult<TabularCard> {
    if cfg.epochs == 0 || cfg.batch_size == 0 || cfg.arch.timesteps < 2 {
        return Err(CoreError::Invalid(
            "epochs and batch size must be positive and timesteps at least 2".into(),
        ));
    }
    if !(0.0..=10.0).contains(&cfg.augment_share) {
        return Err(CoreError::Invalid(format!(
            "--augment-share {} is outside 0-10 (mixed rows per training row; the reference uses 0.3)",
            cfg.augment_share
        )));
    }
    let data = load_table(&cfg.data, cfg.target.as_deref())?;
    let (members, planted, list) = plan_rows(cfg, &data);
    let real = MixedTable::from_data(&data, &members);
    let listed = MixedTable::from_data(&data, &list);
    let training = augment(&listed, cfg.augment, cfg.augment_share, cfg.seed);
    let augmented_rows = training.n_rows() - listed.n_rows();
    let test_idx = data.test_indices();
    let test = MixedTable::from_data(&data, &test_idx);
    let codec = Codec::fit(&real);
    let model = TabDdpm::fresh(cfg.arch.clone(), codec.clone(), cfg.seed, &Device::Cpu)?;
    ctx.log(&format!(
        "{}: {} training rows ({} planted x{}, {} augmented by {}), {} columns, T = {}",
        cfg.id_or_default(),
        real.n_rows(),
        planted.len(),
        cfg.dup_factor,
        augmented_rows,
        cfg.augment.label(),
        codec.schema.order.len(),
        cfg.arch.timesteps
    ));

    let id = cfg.id_or_default();
    let root = tabular_dir(study);
    let staging = root.join(crate::study::staging_name(&id));
    std::fs::create_dir_all(&staging).map_err(|e| CoreError::io(&staging, e))?;
    let result = run(cfg, &model, &real, &training, &test, &staging, ctx).and_then(|run| {
        let card = TabularCard {
            format: "rote-tabular-ddpm".into(),
            config: cfg.clone(),
            codec,
            data_source: data.source.clone(),
            data_hash: data.hash.clone(),
            members,
            planted,
            augmented_rows,
            test_rows: test_idx.len(),
            by_epoch: run.by_epoch,
            quality: run.quality,
            tstr_accuracy: run.tstr,
            trtr_accuracy: run.trtr,
            train_seconds: run.train_seconds,
            rows_per_second: run.rows_per_second,
        };
        crate::model::save_weights(&model.varmap, &staging.join("weights.safetensors"))?;
        crate::study::write_json_atomic(&staging.join("card.json"), &card)?;
        crate::study::replace_dir(&staging, &root.join(&id))?;
        Ok(card)
    });
    if result.is_err() {
        std::fs::remove_dir_all(&staging).ok();
    }
    result
}

struct RunOutput {
    by_epoch: Vec<EpochRecord>,
    quality: Quality,
    tstr: f64,
    trtr: f64,
    train_seconds: f64,
    rows_per_second: f64,
}

fn run(
    cfg: &TabTrainConfig,
    model: &TabDdpm,
    real: &MixedTable,
    training: &MixedTable,
    test: &MixedTable,
    dir: &Path,
    ctx: &JobCtx<'_>,
) -> CoreResult<RunOutput> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(1));
    let x_num = model.codec.encode_num(training);
    let n_num = model.codec.schema.n_num();
    let n_cat = model.codec.schema.n_cat();
    let n = training.n_rows();
    let mut opt = crate::train::AdamWCpu::new(
        model.varmap.all_vars(),
        ParamsAdamW {
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            ..Default::default()
        },
    )?;
    let checkpoints: Vec<usize> = (1..=cfg.checkpoints.max(1))
        .map(|k| (cfg.epochs * k).div_ceil(cfg.checkpoints.max(1)))
        .collect();
    let steps_per_epoch = n.div_ceil(cfg.batch_size);
    let total = (cfg.epochs * steps_per_epoch) as u64;
    let samples = if cfg.samples == 0 {
        real.n_rows()
    } else {
        cfg.samples
    };
    // An exponential moving average of the weights samples (as TabDDPM's Trainer keeps one); its
    // horizon is 5% of training, at most TabDDPM's 1000 steps (decay 0.999).
    let vars = model.varmap.all_vars();
    let mut ema: Vec<candle_core::Tensor> = vars
        .iter()
        .map(|v| v.as_tensor().copy())
        .collect::<Result<_, _>>()?;
    let decay = ema_decay(cfg.epochs * steps_per_epoch);
    let mut order: Vec<usize> = (0..n).collect();
    let mut by_epoch = Vec::new();
    let mut last = None;
    let mut train_seconds = 0.0;
    for epoch in 1..=cfg.epochs {
        let started = std::time::Instant::now();
        order.shuffle(&mut rng);
        let (mut loss_sum, mut gauss_sum, mut multi_sum) = (0.0, 0.0, 0.0);
        for (b, chunk) in order.chunks(cfg.batch_size).enumerate() {
            let rows = chunk.len();
            let mut bn = Vec::with_capacity(rows * n_num);
            let mut bc = Vec::with_capacity(rows * n_cat);
            for &i in chunk {
                bn.extend_from_slice(&x_num[i * n_num..(i + 1) * n_num]);
                bc.extend_from_slice(training.cat_row(i));
            }
            let draw = BatchDraw::draw(model, &bc, rows, &mut rng);
            let (loss, gauss, multi) = model.loss(&bn, &bc, &draw)?;
            gauss_sum += gauss;
            multi_sum += multi;
            let value = f64::from(loss.to_scalar::<f32>()?);
            if !value.is_finite() {
                return Err(CoreError::Invalid(format!(
                    "the training loss became {value} at epoch {epoch}; lower --lr"
                )));
            }
            loss_sum += value;
            opt.backward_step(&loss)?;
            // Detached: built from a variable, the average would otherwise keep every earlier
            // step's tensors alive through its graph (memory grew 3 MB a step).
            for (e, v) in ema.iter_mut().zip(&vars) {
                *e = ((&*e * decay)? + (v.as_tensor().detach() * (1.0 - decay))?)?.detach();
            }
            ctx.progress("training", ((epoch - 1) * steps_per_epoch + b + 1) as u64, total);
            ctx.checkpoint()?;
        }
        train_seconds += started.elapsed().as_secs_f64();
        let loss = loss_sum / steps_per_epoch as f64;
        ctx.metric("train loss", epoch as f64, loss);
        let per_step = steps_per_epoch as f64;
        ctx.metric("gaussian loss", epoch as f64, gauss_sum / per_step);
        ctx.metric("multinomial loss", epoch as f64, multi_sum / per_step);
        if std::env::var_os("ROTE_TAB_DEBUG").is_some() {
            ctx.log(&format!(
                "epoch {epoch}: gaussian {:.4} multinomial {:.4}",
                gauss_sum / per_step,
                multi_sum / per_step
            ));
        }
        if checkpoints.contains(&epoch) {
            let live: Vec<candle_core::Tensor> = vars
                .iter()
                .map(|v| v.as_tensor().copy())
                .collect::<Result<_, _>>()?;
            for (v, e) in vars.iter().zip(&ema) {
                v.set(e)?;
            }
            let syn = sample_rows(model, samples, cfg.seed ^ ((epoch as u64) << 8), ctx);
            // The last checkpoint leaves the averaged weights in place: they are what is saved.
            if epoch < cfg.epochs {
                for (v, t) in vars.iter().zip(&live) {
                    v.set(t)?;
                }
            }
            let syn = syn?;
            let name = format!("samples-epoch-{epoch}.csv");
            syn.write_csv(&dir.join(&name))?;
            let code = memorization_ratio(real, &syn, DistanceRule::Code);
            let global = memorization_ratio(real, &syn, DistanceRule::Global);
            ctx.log(&format!(
                "epoch {epoch}: loss {loss:.4}, memorization ratio {:.1}% (code) / {:.1}% (global)",
                100.0 * code.ratio,
                100.0 * global.ratio
            ));
            ctx.metric("memorization ratio", epoch as f64, code.ratio);
            by_epoch.push(EpochRecord {
                epoch,
                loss,
                code,
                global,
                samples_csv: name,
            });
            last = Some(syn);
        }
    }
    let syn = last.ok_or_else(|| CoreError::Invalid("no checkpoint was evaluated".into()))?;
    syn.write_csv(&dir.join("samples.csv"))?;
    ctx.progress("quality", 0, 1);
    let quality = quality(real, &syn);
    let tstr = tstr_accuracy(&syn, test, cfg.seed);
    let trtr = tstr_accuracy(real, test, cfg.seed);
    ctx.progress("quality", 1, 1);
    Ok(RunOutput {
        by_epoch,
        quality,
        tstr,
        trtr,
        train_seconds,
        rows_per_second: (cfg.epochs * n) as f64 / train_seconds.max(1e-9),
    })
}

/// Decay of the weights' moving average for `steps` optimiser steps: a horizon of 5% of training,
/// between 10 and 1000 steps.
pub fn ema_decay(steps: usize) -> f64 {
    let horizon = (steps as f64 / 20.0).clamp(10.0, 1000.0);
    1.0 - 1.0 / horizon
}

/// Reads `card.json` of a tabular model folder.
pub fn load_card(dir: &Path) -> CoreResult<TabularCard> {
    let path = dir.join("card.json");
    let text = std::fs::read_to_string(&path).map_err(|e| CoreError::io(&path, e))?;
    let card: TabularCard = serde_json::from_str(&text)
        .map_err(|e| CoreError::format(&path, format!("not a tabular model card: {e}")))?;
    if card.format != "rote-tabular-ddpm" {
        return Err(CoreError::format(
            &path,
            format!("format '{}' is not rote-tabular-ddpm", card.format),
        ));
    }
    Ok(card)
}
