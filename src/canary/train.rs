//! Training the character LM on a corpus slice with canaries inserted (Secret Sharer's setup; the
//! TF Privacy notebook trains a char-LSTM with Adam on windows of the text). After every epoch the
//! exposure of every canary is measured (exact for slots of up to 6 digits, else the skew-normal
//! estimate from 2,000 references), which gives the exposure-vs-epoch curves next to the training
//! and validation loss ("memorized before over-fitting").

use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use candle_nn::{AdamW, Optimizer as _, ParamsAdamW};
use rand::{Rng as _, SeedableRng as _};

use super::card::{CanaryLm, CorpusRef, LmCard, LmEpoch, LmRecipe, build_vocab, lm_dir};
use super::lm::LmArch;
use super::report::{Estimate, ExposureOptions, measure_exposure};
use super::secrets::{CanaryFormat, draw_canaries, insert_canaries, seeded_slice};
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;

/// How to build a canary LM.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LmConfig {
    /// Corpus: a bundled text set name (`austen`) or a path.
    pub data: String,
    /// Characters of corpus to train on.
    pub chars: usize,
    /// Validation characters (the text after the slice).
    pub val_chars: usize,
    /// Canary formats.
    pub formats: Vec<CanaryFormat>,
    /// Embedding width.
    pub embed: usize,
    /// LSTM units.
    pub hidden: usize,
    /// Recipe.
    pub recipe: LmRecipe,
    /// `cpu` or `cuda`.
    pub device: String,
    /// Model id (folder name under `STUDY/lm/`).
    pub id: String,
}

impl LmConfig {
    /// The demo's formats: a 6-digit PIN (exact ranks) at insertion counts 0..32, and a 9-digit
    /// account number (skew-normal estimates).
    pub fn demo_formats() -> Vec<CanaryFormat> {
        vec![
            CanaryFormat {
                prefix: "my pin number is ".into(),
                digits: 6,
                insertions: vec![0, 1, 2, 4, 8, 16, 32],
                secrets: Vec::new(),
            },
            CanaryFormat {
                prefix: "my account number is ".into(),
                digits: 9,
                insertions: vec![0, 4, 32],
                secrets: Vec::new(),
            },
        ]
    }
}

pub(crate) fn load_corpus(data: &str) -> CoreResult<crate::data::TextCorpus> {
    let (path, source) = match crate::data::bundled(data) {
        Some(b) if b.kind == crate::data::BundledKind::Text => (
            crate::paths::assets_dir().join(b.file),
            Some(format!("bundled: assets/{}", b.file)),
        ),
        _ => (PathBuf::from(data), None),
    };
    if !path.is_file() {
        return Err(CoreError::Invalid(format!(
            "text corpus '{data}' is neither a bundled text set nor a file"
        )));
    }
    let mut corpus = crate::data::load_text(&path)?;
    if corpus.text.is_empty() {
        return Err(CoreError::format(&path, "the text corpus is empty"));
    }
    if let Some(s) = source {
        corpus.source = s;
    }
    Ok(corpus)
}

/// Mean cross-entropy (nats per character) of `ids` in non-overlapping windows (at most 64).
fn eval_loss(lm: &CanaryLm, ids: &[u32], seq_len: usize) -> CoreResult<f64> {
    let windows: Vec<&[u32]> = ids.chunks_exact(seq_len + 1).take(64).collect();
    if windows.is_empty() {
        return Ok(f64::NAN);
    }
    let (x, y) = batch_tensors(&windows, seq_len, &lm.device)?;
    let logits = lm.net.forward_seq(&x)?;
    let loss = candle_nn::loss::cross_entropy(&logits.flatten(0, 1)?, &y.flatten_all()?)?;
    Ok(f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?))
}

fn batch_tensors(
    windows: &[&[u32]],
    seq_len: usize,
    dev: &candle_core::Device,
) -> CoreResult<(Tensor, Tensor)> {
    let b = windows.len();
    let mut x = Vec::with_capacity(b * seq_len);
    let mut y = Vec::with_capacity(b * seq_len);
    for w in windows {
        x.extend_from_slice(&w[..seq_len]);
        y.extend_from_slice(&w[1..=seq_len]);
    }
    Ok((
        Tensor::from_vec(x, (b, seq_len), dev)?,
        Tensor::from_vec(y, (b, seq_len), dev)?,
    ))
}

/// Trains a canary LM. Progress per batch; cancellable between batches.
pub fn train_lm(cfg: &LmConfig, command: &str, ctx: &JobCtx<'_>) -> CoreResult<CanaryLm> {
    let r = &cfg.recipe;
    if r.epochs == 0 || r.batch_size == 0 || r.seq_len < 2 || cfg.chars == 0 {
        return Err(CoreError::Invalid(
            "--epochs, --batch-size and --chars must be positive and --seq-len at least 2".into(),
        ));
    }
    if cfg.formats.is_empty() {
        return Err(CoreError::Invalid("no canary formats".into()));
    }
    let device = crate::model::device(&cfg.device)?;
    let corpus = load_corpus(&cfg.data)?;
    let (slice, val, offset) = seeded_slice(&corpus.text, cfg.chars, cfg.val_chars, r.seed)
        .map_err(|e| CoreError::Invalid(format!("{}: {e}", corpus.source)))?;
    let canaries = draw_canaries(&cfg.formats, r.seed)?;
    let (text, _) = insert_canaries(&slice, &cfg.formats, &canaries, r.seed)?;
    let vocab = build_vocab(
        [slice.as_str(), val.as_str()]
            .into_iter()
            .chain(cfg.formats.iter().map(|f| f.prefix.as_str())),
    );
    let card = LmCard {
        id: cfg.id.clone(),
        arch: LmArch {
            vocab: vocab.chars().count(),
            embed: cfg.embed,
            hidden: cfg.hidden,
        },
        vocab,
        corpus: CorpusRef {
            source: corpus.source.clone(),
            hash: corpus.hash.clone(),
            offset,
            chars: cfg.chars,
            val_chars: cfg.val_chars,
        },
        formats: cfg.formats.clone(),
        canaries,
        recipe: r.clone(),
        epochs: Vec::new(),
        seconds: 0.0,
        n_params: 0,
        command: command.to_string(),
        rote_version: crate::VERSION.to_string(),
    };
    let ids = card.encode(&text)?;
    let val_ids = card.encode(&val)?;
    if ids.len() <= r.seq_len + 1 {
        return Err(CoreError::Invalid("--chars is shorter than one window".into()));
    }
    let mut lm = CanaryLm::fresh(card, &device)?;
    lm.card.n_params = lm.varmap.all_vars().iter().map(|v| v.elem_count()).sum();
    let mut opt = AdamW::new(
        lm.varmap.all_vars(),
        ParamsAdamW {
            lr: r.lr,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let per_epoch = (ids.len() / r.seq_len).div_ceil(r.batch_size).max(1);
    let total = (r.epochs * per_epoch) as u64;
    let start = std::time::Instant::now();
    let stage = format!("training {}", lm.card.id);
    let quick = ExposureOptions {
        estimate: Estimate::Both,
        references: 2_000,
        seed: r.seed,
        max_exact_digits: 6,
    };
    for epoch in 0..r.epochs {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(r.seed);
        rng.set_stream(7400 + epoch as u64);
        let mut sum = 0.0;
        for bi in 0..per_epoch {
            ctx.checkpoint()?;
            let windows: Vec<&[u32]> = (0..r.batch_size)
                .map(|_| {
                    let s = rng.random_range(0..ids.len() - r.seq_len);
                    &ids[s..=s + r.seq_len]
                })
                .collect();
            let (x, y) = batch_tensors(&windows, r.seq_len, &device)?;
            let logits = lm.net.forward_seq(&x)?;
            let loss = candle_nn::loss::cross_entropy(&logits.flatten(0, 1)?, &y.flatten_all()?)?;
            opt.backward_step(&loss)?;
            let l = f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?);
            if !l.is_finite() {
                return Err(CoreError::Invalid(format!(
                    "training diverged in epoch {} (loss {l}); lower --lr",
                    epoch + 1
                )));
            }
            sum += l;
            ctx.progress(&stage, (epoch * per_epoch + bi + 1) as u64, total);
        }
        let train_loss = sum / per_epoch as f64;
        let val_loss = eval_loss(&lm, &val_ids, r.seq_len)?;
        let rep = measure_exposure(&lm, &quick, ctx)?;
        let exposure: Vec<f64> = rep.canaries.iter().map(|c| c.best()).collect();
        ctx.metric("train loss", (epoch + 1) as f64, train_loss);
        ctx.metric("validation loss", (epoch + 1) as f64, val_loss);
        for (c, e) in lm.card.canaries.iter().zip(&exposure) {
            ctx.metric(
                &format!("exposure x{} {}", c.insertions, c.secret),
                (epoch + 1) as f64,
                *e,
            );
        }
        let top = exposure.iter().copied().fold(f64::NAN, f64::max);
        ctx.log(&format!(
            "{} epoch {}: train {train_loss:.3} val {val_loss:.3} nats/char, highest exposure {top:.1} bits",
            lm.card.id,
            epoch + 1
        ));
        lm.card.epochs.push(LmEpoch {
            epoch: epoch + 1,
            train_loss,
            val_loss,
            exposure,
        });
    }
    lm.card.seconds = start.elapsed().as_secs_f64();
    Ok(lm)
}

/// Whether the model in `dir` was trained with exactly this configuration.
fn is_cached(dir: &Path, cfg: &LmConfig) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join("card.json")) else {
        return false;
    };
    let Ok(card) = serde_json::from_str::<LmCard>(&text) else {
        return false;
    };
    card.recipe == cfg.recipe
        && card.formats == cfg.formats
        && card.corpus.chars == cfg.chars
        && card.corpus.val_chars == cfg.val_chars
        && card.arch.embed == cfg.embed
        && card.arch.hidden == cfg.hidden
        && card.epochs.len() == cfg.recipe.epochs
        && dir.join("weights.safetensors").is_file()
}

/// Trains into `STUDY/lm/<id>/` (staged, then renamed), unless a model with this configuration is
/// already there (and not `force`). Returns the folder and whether it was trained now.
pub fn train_lm_into_study(
    cfg: &LmConfig,
    study_root: &Path,
    command: &str,
    force: bool,
    ctx: &JobCtx<'_>,
) -> CoreResult<(PathBuf, bool)> {
    let dir = lm_dir(study_root).join(&cfg.id);
    if !force && is_cached(&dir, cfg) {
        return Ok((dir, false));
    }
    let lm = train_lm(cfg, command, ctx)?;
    let staging = lm_dir(study_root).join(crate::study::staging_name(&cfg.id));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| CoreError::io(&staging, e))?;
    }
    lm.save(&staging)?;
    crate::study::replace_dir(&staging, &dir)?;
    Ok((dir, true))
}
