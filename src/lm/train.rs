//! Training a small GPT-2 (`rote train-lm --arch gpt`) on a slice of the bundled Austen text with
//! planted passages and canaries (`plant.rs`), saved in the Hugging Face layout so that
//! transformers' `GPT2LMHeadModel.from_pretrained` and rote's own [`super::HfLm::load`] read it:
//! `config.json`, `model.safetensors` (`transformer.`-prefixed names, Conv1D `[in, out]` weights,
//! head tied to `wte`), `tokenizer.json` (byte-level BPE, `bpe.rs`) and rote's `card.json`
//! ([`GptCard`]: what was planted, the recipe, per-epoch losses).
//!
//! The network is `gpt2.rs`'s [`Gpt2`] built on a seeded [`VarMap`] (GPT-2's initialisation:
//! N(0, 0.02), residual projections scaled by 1/sqrt(2 n_layer)), so training and loading share
//! the forward pass; training goes through [`Gpt2::forward_train`] (the same function with
//! differentiable LayerNorm and softmax). AdamW with linear warmup and cosine decay to a tenth of
//! the peak rate, on shuffled non-overlapping windows from a seeded offset per epoch, so every
//! planted copy is seen once per epoch. The planted-duplicates design is Carlini et al. (2022),
//! "Quantifying Memorization Across Neural Language Models" (arXiv:2202.07646).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Optimizer as _, ParamsAdamW, VarBuilder, VarMap};
use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};

use super::bpe::{eot_id, save_tokenizer, train_bpe};
use super::card::{CARD_FILE, GPT_KIND, GptCard, GptEpoch, GptRecipe};
use super::gpt2::{Gpt2, Gpt2Config};
use super::plant::{PlantSpec, plant};
use super::{CausalLm, LmTokenizer};
use crate::canary::card::{CorpusRef, lm_dir};
use crate::canary::secrets::seeded_slice;
use crate::data::TextCorpus;
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;

/// How to build a GPT with planted content.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GptConfig {
    /// Corpus: a bundled text set name (`austen`) or a path.
    pub data: String,
    /// Characters of corpus to train on (before insertion).
    pub chars: usize,
    /// Validation characters (the text after the slice).
    pub val_chars: usize,
    /// Passages and canaries to plant.
    pub plant: PlantSpec,
    /// Sizes and optimisation.
    pub recipe: GptRecipe,
    /// `cpu` or `cuda`.
    pub device: String,
    /// Model id (folder name under `STUDY/lm/`).
    pub id: String,
}

/// A trained GPT in memory.
pub struct TrainedGpt {
    /// The network (its tensors are the `varmap`'s variables).
    pub model: Gpt2,
    /// The weights, `transformer.`-prefixed HF names.
    pub varmap: VarMap,
    /// Its configuration.
    pub config: Gpt2Config,
    /// The BPE tokenizer.
    pub tokenizer: LmTokenizer,
    /// The card.
    pub card: GptCard,
}

fn has_prefix(name: &str) -> bool {
    name == "transformer.wte.weight"
}

/// Seeded standard normals (Box-Muller on ChaCha8).
fn normals(rng: &mut rand_chacha::ChaCha8Rng, n: usize, std: f64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let u1: f64 = 1.0 - rng.random::<f64>();
            let u2: f64 = rng.random::<f64>();
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos() * std) as f32
        })
        .collect()
}

/// GPT-2's initialisation of every tensor of `cfg`, from `seed`, into a new [`VarMap`].
fn init_varmap(cfg: &Gpt2Config, seed: u64, device: &Device) -> CoreResult<VarMap> {
    let vm = VarMap::new();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(7800);
    let resid = 0.02 / (2.0 * cfg.n_layer as f64).sqrt();
    let mut vars = Vec::new();
    for (name, shape) in cfg.expected(&has_prefix) {
        let n: usize = shape.iter().product();
        let data = if name.ends_with(".bias") {
            vec![0.0; n]
        } else if name.contains("ln_") {
            vec![1.0; n]
        } else if name.ends_with("c_proj.weight") {
            normals(&mut rng, n, resid)
        } else if name.ends_with("wpe.weight") {
            normals(&mut rng, n, 0.01)
        } else {
            normals(&mut rng, n, 0.02)
        };
        let t = Tensor::from_vec(data, shape, device)?;
        vars.push((name, Var::from_tensor(&t)?));
    }
    let mut map = vm
        .data()
        .lock()
        .map_err(|_| CoreError::Invalid("the weight map's lock is poisoned".into()))?;
    map.extend(vars);
    drop(map);
    Ok(vm)
}

/// Builds the network on `vm`'s variables.
fn build(cfg: &Gpt2Config, vm: &VarMap, device: &Device) -> CoreResult<Gpt2> {
    let vb = VarBuilder::from_varmap(vm, DType::F32, device);
    Ok(Gpt2::new(cfg, vb, &has_prefix)?)
}

/// The learning rate at `step` of `total`: linear warmup, then cosine to a tenth of `lr`.
pub fn lr_at(lr: f64, warmup: usize, step: usize, total: usize) -> f64 {
    if step < warmup {
        return lr * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1);
    let progress = ((step - warmup) as f64 / span as f64).min(1.0);
    let min = 0.1 * lr;
    min + 0.5 * (lr - min) * (1.0 + (std::f64::consts::PI * progress).cos())
}

fn batch(windows: &[&[u32]], t: usize, device: &Device) -> CoreResult<(Tensor, Tensor)> {
    let mut x = Vec::with_capacity(windows.len() * t);
    let mut y = Vec::with_capacity(windows.len() * t);
    for w in windows {
        x.extend_from_slice(&w[..t]);
        y.extend_from_slice(&w[1..=t]);
    }
    Ok((
        Tensor::from_vec(x, (windows.len(), t), device)?,
        Tensor::from_vec(y, (windows.len(), t), device)?,
    ))
}

/// Mean cross-entropy (nats per token) of `ids` in non-overlapping windows (at most 32).
fn eval_loss(model: &Gpt2, ids: &[u32], t: usize, device: &Device) -> CoreResult<f64> {
    let windows: Vec<&[u32]> = ids.chunks_exact(t + 1).take(32).collect();
    if windows.is_empty() {
        return Ok(f64::NAN);
    }
    let mut sum = 0.0;
    for chunk in windows.chunks(8) {
        let (x, y) = batch(chunk, t, device)?;
        let logits = model.logits(&x)?;
        let loss = candle_nn::loss::cross_entropy(&logits.flatten(0, 1)?, &y.flatten_all()?)?;
        sum += f64::from(loss.to_scalar::<f32>()?) * chunk.len() as f64;
    }
    Ok(sum / windows.len() as f64)
}

/// Trains a GPT on `corpus` as `cfg` says. Progress per step; cancellable between steps.
pub fn train_gpt_on(
    cfg: &GptConfig,
    corpus: &TextCorpus,
    command: &str,
    ctx: &JobCtx<'_>,
) -> CoreResult<TrainedGpt> {
    let r = &cfg.recipe;
    if r.epochs == 0 || r.batch_size == 0 || r.n_ctx < 2 || cfg.chars == 0 {
        return Err(CoreError::Invalid(
            "--epochs, --batch-size and --chars must be positive and --ctx at least 2".into(),
        ));
    }
    if r.n_head == 0 || !r.n_embd.is_multiple_of(r.n_head) || r.n_layer == 0 {
        return Err(CoreError::Invalid(format!(
            "--width {} must be a positive multiple of --heads {} and --layers positive",
            r.n_embd, r.n_head
        )));
    }
    let device = crate::model::device(&cfg.device)?;
    let start = std::time::Instant::now();
    ctx.progress("tokenizer", 0, 1);
    let (slice, val, offset) = seeded_slice(&corpus.text, cfg.chars, cfg.val_chars, r.seed)
        .map_err(|e| CoreError::Invalid(format!("{}: {e}", corpus.source)))?;
    let tok_path = PathBuf::from(&cfg.id).join("tokenizer.json");
    let tokenizer = train_bpe(slice.split("\n\n"), r.vocab_size, &tok_path)?;
    ctx.checkpoint()?;
    let planted = plant(&corpus.text, (slice, val, offset), &cfg.plant, &tokenizer, r.seed)?;
    let ids = tokenizer.encode(&planted.text)?;
    let val_ids = tokenizer.encode(&planted.val)?;
    let t = r.n_ctx;
    if ids.len() <= (t + 1) * r.batch_size {
        return Err(CoreError::Invalid(format!(
            "{} training tokens are fewer than one batch of {} windows of {t}",
            ids.len(),
            r.batch_size
        )));
    }
    let config = Gpt2Config::for_training(tokenizer.vocab_size(), t, r.n_embd, r.n_layer, r.n_head);
    let varmap = init_varmap(&config, r.seed, &device)?;
    let model = build(&config, &varmap, &device)?;
    let n_params = varmap.all_vars().iter().map(|v| v.elem_count()).sum();
    let mut opt = crate::train::AdamWCpu::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: r.lr,
            weight_decay: r.weight_decay,
            ..Default::default()
        },
    )?;
    let per_epoch = ((ids.len() - 1 - t) / t).div_ceil(r.batch_size);
    let total = r.epochs * per_epoch;
    let stage = format!("training {}", cfg.id);
    ctx.log(&format!(
        "{}: {} training tokens, {} validation tokens, {n_params} parameters, {per_epoch} steps per epoch",
        cfg.id,
        ids.len(),
        val_ids.len()
    ));
    let log_every = (total / 20).max(1);
    let mut epochs = Vec::with_capacity(r.epochs);
    let mut step = 0;
    for epoch in 0..r.epochs {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(r.seed);
        rng.set_stream(7900 + epoch as u64);
        let off = rng.random_range(0..t);
        let mut starts: Vec<usize> = (off..ids.len() - t).step_by(t).collect();
        starts.shuffle(&mut rng);
        let mut sum = 0.0;
        let mut n = 0usize;
        for chunk in starts.chunks(r.batch_size) {
            ctx.checkpoint()?;
            let windows: Vec<&[u32]> = chunk.iter().map(|&s| &ids[s..=s + t]).collect();
            let (x, y) = batch(&windows, t, &device)?;
            opt.set_learning_rate(lr_at(r.lr, r.warmup_steps, step, total));
            let logits = model.forward_train(&x)?;
            let loss = candle_nn::loss::cross_entropy(&logits.flatten(0, 1)?, &y.flatten_all()?)?;
            opt.backward_step(&loss)?;
            let l = f64::from(loss.to_scalar::<f32>()?);
            if !l.is_finite() {
                return Err(CoreError::Invalid(format!(
                    "training diverged in epoch {} (loss {l}); lower --lr",
                    epoch + 1
                )));
            }
            sum += l;
            n += 1;
            step += 1;
            if step % 10 == 0 {
                ctx.metric("train loss (step)", step as f64, l);
            }
            if step.is_multiple_of(log_every) {
                ctx.log(&format!(
                    "{} step {step}/{total}: loss {l:.3} ({:.2}s per step)",
                    cfg.id,
                    start.elapsed().as_secs_f64() / step as f64
                ));
            }
            ctx.progress(&stage, step as u64, total as u64);
        }
        let train_loss = sum / n.max(1) as f64;
        let val_loss = eval_loss(&model, &val_ids, t, &device)?;
        ctx.metric("train loss", (epoch + 1) as f64, train_loss);
        ctx.metric("validation loss", (epoch + 1) as f64, val_loss);
        ctx.log(&format!(
            "{} epoch {}: train {train_loss:.3} val {val_loss:.3} nats/token ({:.0}s)",
            cfg.id,
            epoch + 1,
            start.elapsed().as_secs_f64()
        ));
        epochs.push(GptEpoch {
            epoch: epoch + 1,
            train_loss,
            val_loss,
        });
    }
    let card = GptCard {
        kind: GPT_KIND.into(),
        id: cfg.id.clone(),
        corpus: CorpusRef {
            source: corpus.source.clone(),
            hash: corpus.hash.clone(),
            offset: planted.offset,
            chars: cfg.chars,
            val_chars: cfg.val_chars,
        },
        formats: cfg.plant.formats.clone(),
        canaries: planted.canaries,
        passages: planted.passages,
        recipe: GptRecipe {
            vocab_size: config.vocab_size,
            ..r.clone()
        },
        epochs,
        seconds: start.elapsed().as_secs_f64(),
        n_params,
        command: command.to_string(),
        rote_version: crate::VERSION.to_string(),
    };
    Ok(TrainedGpt {
        model,
        varmap,
        config,
        tokenizer,
        card,
    })
}

/// Writes the Hugging Face folder and the card into `dir` (created; files written atomically).
pub fn save_gpt(gpt: &TrainedGpt, dir: &Path) -> CoreResult<()> {
    std::fs::create_dir_all(dir).map_err(|e| CoreError::io(dir, e))?;
    let eot = eot_id(&gpt.tokenizer)?;
    crate::study::write_json_atomic(&dir.join("config.json"), &gpt.config.to_hf_json(eot))?;
    let weights = dir.join("model.safetensors");
    let tensors: std::collections::HashMap<String, Tensor> = gpt
        .varmap
        .data()
        .lock()
        .map_err(|_| CoreError::Invalid("the weight map's lock is poisoned".into()))?
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    let meta = Some(std::collections::HashMap::from([(
        "format".to_string(),
        "pt".to_string(),
    )]));
    let bytes = safetensors::tensor::serialize(
        tensors
            .iter()
            .map(|(k, v)| Ok((k.clone(), SafeView::new(v)?)))
            .collect::<CoreResult<Vec<_>>>()?,
        meta,
    )
    .map_err(|e| CoreError::format(&weights, format!("cannot serialise: {e}")))?;
    crate::study::write_atomic(&weights, &bytes)?;
    save_tokenizer(&gpt.tokenizer, &dir.join("tokenizer.json"))?;
    crate::study::write_json_atomic(&dir.join(CARD_FILE), &gpt.card)
}

/// A tensor's f32 bytes as a safetensors view.
struct SafeView {
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl SafeView {
    fn new(t: &Tensor) -> CoreResult<Self> {
        let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
        Ok(Self {
            shape: t.dims().to_vec(),
            data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        })
    }
}

impl safetensors::View for SafeView {
    fn dtype(&self) -> safetensors::Dtype {
        safetensors::Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// Whether the model in `dir` was trained with exactly this configuration.
fn is_cached(dir: &Path, cfg: &GptConfig) -> bool {
    let Ok(Some(card)) = GptCard::read(dir) else {
        return false;
    };
    card.recipe == cfg.recipe
        && card.formats == cfg.plant.formats
        && card.corpus.chars == cfg.chars
        && card.corpus.val_chars == cfg.val_chars
        && card.epochs.len() == cfg.recipe.epochs
        && dir.join("model.safetensors").is_file()
        && dir.join("tokenizer.json").is_file()
}

/// Trains into `STUDY/lm/<id>/` (staged, then swapped in), unless a model with this
/// configuration is already there (and not `force`). Returns the folder and whether it was
/// trained now.
pub fn train_gpt_into_study(
    cfg: &GptConfig,
    study_root: &Path,
    command: &str,
    force: bool,
    ctx: &JobCtx<'_>,
) -> CoreResult<(PathBuf, bool)> {
    let dir = lm_dir(study_root).join(&cfg.id);
    if !force && is_cached(&dir, cfg) {
        return Ok((dir, false));
    }
    let corpus = crate::canary::train::load_corpus(&cfg.data)?;
    let gpt = train_gpt_on(cfg, &corpus, command, ctx)?;
    let staging = lm_dir(study_root).join(crate::study::staging_name(&cfg.id));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| CoreError::io(&staging, e))?;
    }
    save_gpt(&gpt, &staging)?;
    crate::study::replace_dir(&staging, &dir)?;
    Ok((dir, true))
}

#[cfg(test)]
#[path = "train_tests.rs"]
mod tests;
