//! Job bodies behind the Text view: list a study's Hugging Face language models, open one with
//! its documents (the card's planted passages or a user text file) and its cached extraction and
//! membership reports, run either measurement and cache it (`lm::study`), and score the tokens of
//! one document (ln p and rank of every token) for the token strip.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{D, DType, Tensor};

use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
use crate::lm::HfLm;
use crate::lm::card::{GptCard, is_hf_folder};
use crate::lm::extract_report::{LmExtractOptions, LmExtractReport, extract_into_study};
use crate::lm::mia_report::{LmMiaOptions, LmMiaReport, mia_into_study};
use crate::lm::probe_report::{HELDOUT_CHARS, ProbeOptions, ProbeReport, ProbeTexts, probe_into_study};
use crate::lm::study::{
    LmDoc, LmSource, card_docs, extract_path, heldout_corpus_text, load_extract_report, load_mia_report,
    load_probe_report, mia_path, probe_path, results_dir, text_docs,
};
use crate::lm::texts::read_texts;

/// Prefix and suffix tokens of an extraction when the model's context allows (Pythia: 32 + 32).
pub const DEFAULT_K_M: usize = 32;

/// The Hugging Face model folders under `STUDY/lm/` (those with `config.json`), sorted.
pub fn list_hf_models(study: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(study.join("lm"))
        .map(|it| {
            it.flatten()
                .map(|e| e.path())
                .filter(|p| is_hf_folder(p))
                .filter(|p| {
                    !p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The id results of the model in `dir` are filed under (its folder name).
pub fn model_id(dir: &Path) -> String {
    dir.file_name()
        .map_or_else(|| "model".to_string(), |n| n.to_string_lossy().to_string())
}

/// A model opened in the Text view: its documents and cached reports.
#[derive(Clone, Debug)]
pub struct LoadedText {
    /// Model folder.
    pub dir: PathBuf,
    /// Its id.
    pub id: String,
    /// Its card (models rote trained).
    pub card: Option<GptCard>,
    /// Where the documents come from (`None`: no card and no text file chosen yet).
    pub source: Option<LmSource>,
    /// The documents.
    pub docs: Vec<LmDoc>,
    /// The cached extraction report of these documents.
    pub extract: Option<LmExtractReport>,
    /// The cached membership report of these documents.
    pub mia: Option<LmMiaReport>,
    /// The cached activation-probe report (`rote lm-probe`).
    pub probe: Option<ProbeReport>,
}

/// The cached extraction report of `source`: k = m = 32 if cached, else any other k/m.
fn cached_extract(study: &Path, id: &str, source: &LmSource) -> CoreResult<Option<LmExtractReport>> {
    let default = extract_path(study, id, source, DEFAULT_K_M, DEFAULT_K_M);
    if default.is_file() {
        return load_extract_report(&default).map(Some);
    }
    let prefix = format!("extract-{}-k", source.tag());
    let mut other: Vec<PathBuf> = std::fs::read_dir(results_dir(study, id))
        .map(|it| {
            it.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
                })
                .collect()
        })
        .unwrap_or_default();
    other.sort();
    other.first().map(|p| load_extract_report(p)).transpose()
}

/// Reads a model's card, the documents of `source` (default: the card's passages when there is a
/// card) and the reports cached for them. Every problem is an error naming the file.
pub fn open(study: &Path, dir: &Path, source: Option<LmSource>) -> CoreResult<LoadedText> {
    let card = GptCard::read(dir)?;
    let source = source.or_else(|| card.as_ref().map(|_| LmSource::Card));
    let docs = match (&source, &card) {
        (Some(LmSource::Card), Some(c)) => card_docs(c),
        (Some(LmSource::Texts { path }), _) => text_docs(read_texts(Path::new(path))?),
        _ => Vec::new(),
    };
    let id = model_id(dir);
    let (extract, mia) = match &source {
        Some(s) => {
            let m = mia_path(study, &id, s, None);
            let mia = if m.is_file() {
                Some(load_mia_report(&m)?)
            } else {
                None
            };
            (cached_extract(study, &id, s)?, mia)
        }
        None => (None, None),
    };
    let p = probe_path(study, &id, source.as_ref().unwrap_or(&LmSource::Card));
    let probe = if p.is_file() {
        Some(load_probe_report(&p)?)
    } else {
        None
    };
    Ok(LoadedText {
        dir: dir.to_path_buf(),
        id,
        card,
        source,
        docs,
        extract,
        mia,
        probe,
    })
}

/// The activation probes (`rote lm-probe` with its defaults) on the card's passages and the
/// corpus text the model never saw, cached where [`open`] finds it. User texts: refused.
pub fn run_probe(
    study: &Path,
    lm: &HfLm,
    source: &LmSource,
    docs: &[LmDoc],
    ctx: &JobCtx<'_>,
) -> CoreResult<ProbeReport> {
    if *source != LmSource::Card {
        return Err(CoreError::Invalid(
            "the probes need known memorized passages: use the card's passages, or `rote lm-probe \
             MODEL --members FILE --nonmembers FILE`"
                .into(),
        ));
    }
    let card = GptCard::read(&lm.dir)?;
    let heldout = card.as_ref().and_then(|c| heldout_corpus_text(c, HELDOUT_CHARS));
    let (members, nonmembers): (Vec<LmDoc>, Vec<LmDoc>) = docs
        .iter()
        .cloned()
        .partition(|d| d.insertions.is_some_and(|c| c > 0));
    let texts = ProbeTexts {
        members: &members,
        nonmembers: &nonmembers,
        heldout_text: heldout.as_deref(),
    };
    Ok(probe_into_study(
        lm,
        source.clone(),
        &texts,
        &ProbeOptions::default(),
        Some(study),
        false,
        ctx,
    )?
    .0)
}

/// The model of `dir`: `cached` when it is that folder's, else read now.
pub fn model(dir: &Path, cached: Option<Arc<HfLm>>, device: &str) -> CoreResult<Arc<HfLm>> {
    match cached {
        Some(m) if m.dir == dir => Ok(m),
        _ => Ok(Arc::new(HfLm::load(dir, &crate::model::device(device)?)?)),
    }
}

/// Greedy extraction of `docs` (k = m = 32, or half the context each when it is shorter),
/// through the CLI's entry point, cached where [`open`] finds it.
pub fn run_extraction(
    study: &Path,
    lm: &HfLm,
    source: &LmSource,
    docs: &[LmDoc],
    ctx: &JobCtx<'_>,
) -> CoreResult<LmExtractReport> {
    let k = DEFAULT_K_M.min(lm.model.max_positions() / 2).max(1);
    let opts = LmExtractOptions {
        prefix_tokens: k,
        suffix_tokens: k,
        ..LmExtractOptions::default()
    };
    Ok(extract_into_study(lm, source.clone(), docs, &opts, Some(study), ctx)?.0)
}

/// MIMIR's membership attacks on the card's planted passages (members) against the held-out
/// ones, through the CLI's entry point, cached where [`open`] finds it. User texts have no known
/// membership: refused.
pub fn run_mia(
    study: &Path,
    lm: &HfLm,
    source: &LmSource,
    docs: &[LmDoc],
    ctx: &JobCtx<'_>,
) -> CoreResult<LmMiaReport> {
    if *source != LmSource::Card {
        return Err(CoreError::Invalid(
            "membership inference needs known members and non-members: use the card's passages, \
             or `rote lm-mia MODEL --members FILE --nonmembers FILE`"
                .into(),
        ));
    }
    let (members, nonmembers): (Vec<LmDoc>, Vec<LmDoc>) = docs
        .iter()
        .cloned()
        .partition(|d| d.insertions.is_some_and(|c| c > 0));
    let opts = LmMiaOptions::default();
    Ok(mia_into_study(
        lm,
        None,
        source.clone(),
        &members,
        &nonmembers,
        &opts,
        Some(study),
        ctx,
    )?
    .0)
}

/// Every token of one document with how the model scored it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TokenStrip {
    /// Each token as text.
    pub tokens: Vec<String>,
    /// ln p(token | the tokens before it); `None` for the first token.
    pub logp: Vec<Option<f32>>,
    /// 1-based rank of the token among the vocabulary at its position (1 = the model's top
    /// guess); `None` for the first token.
    pub rank: Vec<Option<u32>>,
    /// Tokens cut off beyond the model's context.
    pub cut: usize,
}

/// ln p and rank of every token of `text` (cut to the model's context) in one forward pass.
pub fn token_strip(lm: &HfLm, text: &str, ctx: &JobCtx<'_>) -> CoreResult<TokenStrip> {
    ctx.checkpoint()?;
    let mut ids = lm.tokenizer.encode(text)?;
    let max = lm.model.max_positions();
    let cut = ids.len().saturating_sub(max);
    ids.truncate(max);
    let tokens: Vec<String> = ids
        .iter()
        .map(|&t| lm.tokenizer.token_text(t).unwrap_or_else(|| format!("<{t}>")))
        .collect();
    let t = ids.len();
    if t < 2 {
        return Ok(TokenStrip {
            logp: vec![None; t],
            rank: vec![None; t],
            tokens,
            cut,
        });
    }
    ctx.progress("score tokens", 0, 1);
    let input = Tensor::from_vec(ids, (1, t), lm.model.device())?;
    let logits = lm.model.logits(&input)?.narrow(1, 0, t - 1)?;
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let next = input.narrow(1, 1, t - 1)?.contiguous()?.unsqueeze(2)?;
    let tok = logp.gather(&next, 2)?;
    // Rank = 1 + tokens the model scored strictly higher.
    let higher = logp
        .broadcast_gt(&tok)?
        .to_dtype(DType::F32)?
        .sum(D::Minus1)?
        .squeeze(0)?
        .to_vec1::<f32>()?;
    let tok = tok.squeeze(2)?.squeeze(0)?.to_vec1::<f32>()?;
    ctx.progress("score tokens", 1, 1);
    Ok(TokenStrip {
        tokens,
        logp: std::iter::once(None).chain(tok.into_iter().map(Some)).collect(),
        rank: std::iter::once(None)
            .chain(higher.into_iter().map(|h| Some(h.max(0.0) as u32 + 1)))
            .collect(),
        cut,
    })
}

/// What a Text job asks for.
#[derive(Clone, Debug)]
pub enum TextTask {
    /// Open the model with these documents.
    Open,
    /// Run greedy extraction.
    Extract,
    /// Run the membership attacks.
    Mia,
    /// Run the activation probes.
    Probe,
    /// Score the tokens of document (index into the documents).
    Tokens(usize),
}

/// A Text job's request.
#[derive(Clone, Debug)]
pub struct TextRequest {
    /// Model folder.
    pub dir: PathBuf,
    /// Documents (`None`: the card's, if any).
    pub source: Option<LmSource>,
    /// What to do.
    pub task: TextTask,
}

/// What a finished Text job returns.
pub enum TextOutcome {
    /// An opened model.
    Opened(Box<LoadedText>),
    /// A fresh extraction report.
    Extracted(Box<LmExtractReport>),
    /// A fresh membership report.
    Mia(Box<LmMiaReport>),
    /// A fresh activation-probe report.
    Probe(Box<ProbeReport>),
    /// The token strip of document (index).
    Tokens(usize, TokenStrip),
}

/// A finished Text job: the model folder and source it was for, the model if it was read.
pub struct TextDone {
    /// Model folder.
    pub dir: PathBuf,
    /// Its documents' source.
    pub source: Option<LmSource>,
    /// The model, if the job read it (kept for the next job).
    pub model: Option<Arc<HfLm>>,
    /// The result.
    pub outcome: TextOutcome,
}
