//! Any model folder whose canaries can be measured: the character LSTM (`card.json` +
//! `weights.safetensors`) or a Hugging Face causal LM (a folder with `config.json`: GPT-2,
//! GPT-NeoX, Llama, Qwen2), with rote's transformer card when rote trained it. One entry point
//! for the CLI (`rote exposure`, `rote extract-secret`) and the GUI's Exposure view, dispatching
//! to the generic [`measure_exposure_of`] and [`search_secret`] (Carlini et al. 2019).
//!
//! The canaries come from the card, or from the command line for a model without one
//! ([`canaries_from_args`]: `--format 'PREFIX:DIGITS'` plus `--secret DIGITS`).

use std::path::Path;

use candle_core::Device;

use super::card::{CanaryLm, LmEpoch};
use super::causal::CausalSlots;
use super::extract::{SearchEvent, SearchOptions, SearchResult, search_secret};
use super::model::CanarySet;
use super::report::{ExposureOptions, ExposureReport, measure_exposure_of};
use super::secrets::{Canary, CanaryFormat};
use super::whole::WholeStrings;
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
use crate::lm::HfLm;
use crate::lm::card::{GptCard, is_hf_folder};

/// A loaded model of either kind.
pub enum CanaryModel {
    /// rote's character LSTM.
    Lstm(Box<CanaryLm>),
    /// A Hugging Face causal LM, with rote's card when rote trained it.
    Hf(Box<HfLm>, Option<Box<GptCard>>),
}

/// What the views and reports show of a model's card, whatever its kind.
#[derive(Clone, Debug)]
pub struct CanaryCard {
    /// Model id (folder name).
    pub id: String,
    /// `character LSTM` or the transformer family.
    pub kind: String,
    /// Whether the canaries come from a card rote wrote (false: none known).
    pub has_card: bool,
    /// Canary formats.
    pub formats: Vec<CanaryFormat>,
    /// Canaries with their insertion counts.
    pub canaries: Vec<Canary>,
    /// Per-epoch losses (and, for the LSTM, exposures).
    pub epochs: Vec<LmEpoch>,
    /// Training characters and the corpus's name (None without a card).
    pub corpus: Option<(usize, String)>,
    /// The command that trained it.
    pub command: String,
}

fn folder_name(dir: &Path) -> String {
    dir.file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "model".into())
}

impl CanaryCard {
    /// Reads the card of `dir` (checked; nothing of the model's size is allocated).
    pub fn read(dir: &Path) -> CoreResult<Self> {
        if is_hf_folder(dir) {
            let config = crate::lm::HfConfig::read(dir)?;
            let kind = format!("{} transformer", config.model_type());
            return Ok(match GptCard::read(dir)? {
                Some(c) => Self {
                    id: c.id.clone(),
                    kind,
                    has_card: true,
                    formats: c.formats.clone(),
                    canaries: c.canaries.clone(),
                    epochs: c
                        .epochs
                        .iter()
                        .map(|e| LmEpoch {
                            epoch: e.epoch,
                            train_loss: e.train_loss,
                            val_loss: e.val_loss,
                            exposure: Vec::new(),
                        })
                        .collect(),
                    corpus: Some((c.corpus.chars, c.corpus.source.clone())),
                    command: c.command.clone(),
                },
                None => Self {
                    id: folder_name(dir),
                    kind,
                    has_card: false,
                    formats: Vec::new(),
                    canaries: Vec::new(),
                    epochs: Vec::new(),
                    corpus: None,
                    command: String::new(),
                },
            });
        }
        let c = super::card::LmCard::check_folder(dir)?;
        Ok(Self {
            id: c.id.clone(),
            kind: "character LSTM".into(),
            has_card: true,
            formats: c.formats.clone(),
            canaries: c.canaries.clone(),
            epochs: c.epochs.clone(),
            corpus: Some((c.corpus.chars, c.corpus.source.clone())),
            command: c.command.clone(),
        })
    }

    /// The formats and canaries to measure.
    pub fn set(&self) -> CanarySet {
        CanarySet {
            id: self.id.clone(),
            formats: self.formats.clone(),
            canaries: self.canaries.clone(),
        }
    }
}

impl CanaryModel {
    /// Loads `dir`: a Hugging Face folder when it has `config.json`, else the character LSTM.
    pub fn load(dir: &Path, device: &Device) -> CoreResult<Self> {
        if is_hf_folder(dir) {
            let card = GptCard::read(dir)?.map(Box::new);
            Ok(Self::Hf(Box::new(HfLm::load(dir, device)?), card))
        } else {
            Ok(Self::Lstm(Box::new(CanaryLm::load(dir, device)?)))
        }
    }

    /// The model's id: the card's, else the folder's name.
    pub fn id(&self) -> String {
        match self {
            Self::Lstm(lm) => lm.card.id.clone(),
            Self::Hf(_, Some(c)) => c.id.clone(),
            Self::Hf(lm, None) => folder_name(&lm.dir),
        }
    }

    /// The card's formats and canaries (None for a Hugging Face model without rote's card).
    pub fn card_set(&self) -> Option<CanarySet> {
        match self {
            Self::Lstm(lm) => Some(lm.canary_set()),
            Self::Hf(_, Some(c)) => Some(CanarySet {
                id: c.id.clone(),
                formats: c.formats.clone(),
                canaries: c.canaries.clone(),
            }),
            Self::Hf(_, None) => None,
        }
    }

    /// Measures every canary of `set`.
    pub fn measure(
        &self,
        set: &CanarySet,
        opts: &ExposureOptions,
        ctx: &JobCtx<'_>,
    ) -> CoreResult<ExposureReport> {
        match self {
            Self::Lstm(lm) => measure_exposure_of(lm.as_ref(), set, opts, ctx),
            Self::Hf(lm, card) => {
                let slots = CausalSlots::new(lm.model.as_ref(), &lm.tokenizer, card.is_some());
                for f in &set.formats {
                    if let Err(why) = slots.split_digits(&f.prefix)? {
                        // Digits merged: exact, but one forward pass per candidate.
                        log::warn!("{why}; scoring every candidate as a whole string instead");
                        let whole = WholeStrings::new(lm.model.as_ref(), &lm.tokenizer, card.is_some(), set)?;
                        return measure_exposure_of(&whole, set, opts, ctx);
                    }
                }
                measure_exposure_of(&slots, set, opts, ctx)
            }
        }
    }

    /// The shortest-path (or beam) search for the `digits` after `prefix`.
    pub fn search(
        &self,
        prefix: &str,
        digits: usize,
        opts: &SearchOptions,
        on_event: &mut dyn FnMut(&SearchEvent<'_>),
        ctx: &JobCtx<'_>,
    ) -> CoreResult<SearchResult> {
        match self {
            Self::Lstm(lm) => search_secret(lm.as_ref(), prefix, digits, opts, on_event, ctx),
            Self::Hf(lm, card) => {
                let slots = CausalSlots::new(lm.model.as_ref(), &lm.tokenizer, card.is_some());
                search_secret(&slots, prefix, digits, opts, on_event, ctx)
            }
        }
    }
}

/// Canaries from the command line: every `--format` is `PREFIX:DIGITS` (the secrets then come
/// from `--secret`) or `PREFIX:DIGITS:COUNTS:SECRETS` as in `rote train-lm`; every `--secret` is
/// tested in each format with as many digits, with 0 insertions (unknown).
pub fn canaries_from_args(id: &str, formats: &[String], secrets: &[String]) -> CoreResult<CanarySet> {
    let mut fs: Vec<CanaryFormat> = Vec::new();
    let mut canaries: Vec<Canary> = Vec::new();
    for spec in formats {
        let f = match CanaryFormat::parse(spec) {
            Ok(f) if f.secrets.is_empty() => {
                return Err(CoreError::Invalid(format!(
                    "--format '{spec}': give the secrets to test (PREFIX:DIGITS:COUNTS:SECRETS, or PREFIX:DIGITS with --secret)"
                )));
            }
            Ok(f) => f,
            Err(e) => match spec.rsplit_once(':') {
                Some((p, d)) if !p.is_empty() && !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) => {
                    CanaryFormat {
                        prefix: p.to_string(),
                        digits: d.parse().map_err(|_| e)?,
                        insertions: Vec::new(),
                        secrets: Vec::new(),
                    }
                }
                _ => return Err(e),
            },
        };
        let fi = fs.len();
        canaries.extend(f.secrets.iter().zip(&f.insertions).map(|(s, &n)| Canary {
            format: fi,
            secret: s.clone(),
            insertions: n,
        }));
        fs.push(f);
    }
    if fs.is_empty() {
        return Err(CoreError::Invalid(
            "this model has no card with canaries: give --format 'PREFIX:DIGITS' and --secret DIGITS".into(),
        ));
    }
    for s in secrets {
        let hits: Vec<usize> = (0..fs.len()).filter(|&i| fs[i].digits == s.len()).collect();
        if hits.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CoreError::Invalid(format!(
                "--secret '{s}': no --format has a slot of {} digits",
                s.len()
            )));
        }
        for fi in hits {
            if !canaries.iter().any(|c| c.format == fi && &c.secret == s) {
                canaries.push(Canary {
                    format: fi,
                    secret: s.clone(),
                    insertions: 0,
                });
            }
        }
    }
    for (fi, f) in fs.iter_mut().enumerate() {
        let mine: Vec<&Canary> = canaries.iter().filter(|c| c.format == fi).collect();
        if mine.is_empty() {
            return Err(CoreError::Invalid(format!(
                "--format '{}:{}' has no secret to test: add --secret with {} digits",
                f.prefix, f.digits, f.digits
            )));
        }
        f.secrets = mine.iter().map(|c| c.secret.clone()).collect();
        f.insertions = mine.iter().map(|c| c.insertions).collect();
    }
    let set = CanarySet {
        id: id.to_string(),
        formats: fs,
        canaries,
    };
    set.validate()?;
    Ok(set)
}
