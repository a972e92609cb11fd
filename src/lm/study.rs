//! What the study-level LLM measurements share ([`super::extract_report`],
//! [`super::mia_report`]): the model under test with its tokenizer, the documents with what is
//! known of their membership (a card's planted passages or user texts), where a result is cached
//! in a study (`STUDY/results/lm/<model>/`, written atomically) and how it is read back.
//!
//! The GUI and `rote report` read the cached reports with [`list_results`],
//! [`load_extract_report`] and [`load_mia_report`]; they never rerun a model to draw them.

use std::path::{Path, PathBuf};

use super::card::GptCard;
use super::texts::TextDoc;
use super::{CausalLm, HfLm, LmTokenizer};
use crate::error::{CoreError, CoreResult};
use crate::study::write_json_atomic;

/// Turns text into a model's token ids and back (a Hugging Face tokenizer, or a test's own).
pub trait TextCodec: Send + Sync {
    /// Token ids of `text`, as the model was trained to read it.
    fn encode(&self, text: &str) -> CoreResult<Vec<u32>>;
    /// The text one token stands for (`None` outside the vocabulary).
    fn token_text(&self, id: u32) -> Option<String>;
}

impl TextCodec for LmTokenizer {
    fn encode(&self, text: &str) -> CoreResult<Vec<u32>> {
        LmTokenizer::encode(self, text)
    }
    fn token_text(&self, id: u32) -> Option<String> {
        LmTokenizer::token_text(self, id)
    }
}

/// A model to measure: the network, its tokenizer and the id results are filed under.
#[derive(Clone, Copy)]
pub struct LmUnderTest<'a> {
    /// The network.
    pub model: &'a dyn CausalLm,
    /// Its tokenizer.
    pub codec: &'a dyn TextCodec,
    /// Its name (the model folder's name).
    pub id: &'a str,
}

impl HfLm {
    /// The model's folder name (`STUDY/lm/<id>` gives `<id>`).
    pub fn id(&self) -> String {
        self.dir
            .file_name()
            .map_or_else(|| "model".to_string(), |n| n.to_string_lossy().to_string())
    }
}

/// One document to measure and what is known of its membership.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LmDoc {
    /// The text.
    pub text: String,
    /// Where it came from (`file:line`, or `card passage <i>`).
    pub source: String,
    /// Times it was planted in the training text (a card's passages; 0 = held out), `None` for
    /// user texts.
    pub insertions: Option<u32>,
}

/// A card's planted and held-out passages as documents, in card order.
pub fn card_docs(card: &GptCard) -> Vec<LmDoc> {
    card.passages
        .iter()
        .enumerate()
        .map(|(i, p)| LmDoc {
            text: p.text.clone(),
            source: format!("card passage {i}"),
            insertions: Some(p.insertions),
        })
        .collect()
}

/// User documents (membership unknown).
pub fn text_docs(docs: Vec<TextDoc>) -> Vec<LmDoc> {
    docs.into_iter()
        .map(|d| LmDoc {
            text: d.text,
            source: d.source,
            insertions: None,
        })
        .collect()
}

/// Where the documents of a report came from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LmSource {
    /// The model card's passages (planted 1, 4, 16, 64 times; held out = 0).
    Card,
    /// A user text file or folder (`--texts`).
    Texts {
        /// The path as given.
        path: String,
    },
    /// User member and non-member files (`--members`, `--nonmembers`).
    Files {
        /// Members' path as given.
        members: String,
        /// Non-members' path as given.
        nonmembers: String,
    },
}

impl LmSource {
    /// A file-name-safe tag for the cache file: `card`, `texts-<stem>`, `<stem>-vs-<stem>`.
    pub fn tag(&self) -> String {
        let stem = |p: &str| {
            let s = Path::new(p)
                .file_stem()
                .map_or_else(|| "texts".to_string(), |s| s.to_string_lossy().to_string());
            crate::report::slug(&s)
        };
        match self {
            Self::Card => "card".into(),
            Self::Texts { path } => format!("texts-{}", stem(path)),
            Self::Files { members, nonmembers } => format!("{}-vs-{}", stem(members), stem(nonmembers)),
        }
    }

    /// How a reader should name it.
    pub fn describe(&self) -> String {
        match self {
            Self::Card => "the card's planted and held-out passages".into(),
            Self::Texts { path } => format!("the texts of {path}"),
            Self::Files { members, nonmembers } => format!("members {members} vs non-members {nonmembers}"),
        }
    }
}

/// `STUDY/results/lm/<model>/`: every cached LLM memorization report of one model.
pub fn results_dir(study_root: &Path, model: &str) -> PathBuf {
    study_root.join("results").join("lm").join(model)
}

/// `extract-<source>-k<k>-m<m>.json` in [`results_dir`].
pub fn extract_path(study_root: &Path, model: &str, source: &LmSource, k: usize, m: usize) -> PathBuf {
    results_dir(study_root, model).join(format!("extract-{}-k{k}-m{m}.json", source.tag()))
}

/// `mia-<source>[-ref-<reference>].json` in [`results_dir`].
pub fn mia_path(study_root: &Path, model: &str, source: &LmSource, reference: Option<&str>) -> PathBuf {
    let r = reference.map_or(String::new(), |r| format!("-ref-{}", crate::report::slug(r)));
    results_dir(study_root, model).join(format!("mia-{}{r}.json", source.tag()))
}

/// The study holding a model folder `STUDY/lm/<id>` (one with `study.json`), if any.
pub fn study_of_model(dir: &Path) -> Option<PathBuf> {
    let parent = dir.parent()?;
    if parent.file_name()? != "lm" {
        return None;
    }
    let root = parent.parent()?;
    root.join("study.json").is_file().then(|| root.to_path_buf())
}

/// Logits held at once by one batch, at most: 2^25 floats (128 MiB), so a large vocabulary or
/// context lowers the batch instead of exhausting memory.
const MAX_BATCH_LOGITS: usize = 1 << 25;

/// The rows of `t` tokens per forward pass: `batch`, lowered so that `rows · t · vocab` logits
/// stay within 128 MiB of f32, and at least 1.
pub fn rows_per_batch(batch: usize, t: usize, vocab: usize) -> usize {
    let cap = MAX_BATCH_LOGITS / t.saturating_mul(vocab).max(1);
    batch.min(cap).max(1)
}

/// Writes a report atomically (creating its folder).
pub fn save_report<T: serde::Serialize>(path: &Path, report: &T) -> CoreResult<()> {
    write_json_atomic(path, report)
}

fn load<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> CoreResult<T> {
    let text = std::fs::read_to_string(path).map_err(|e| CoreError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| CoreError::format(path, format!("not {what}: {e}")))
}

/// Where `rote lm-dataset-test` keeps its report: `dataset-<source>-<score>.json`.
pub fn dataset_path(study_root: &Path, model: &str, source: &LmSource, score: &str) -> PathBuf {
    results_dir(study_root, model).join(format!("dataset-{}-{score}.json", source.tag()))
}

/// Reads a cached dataset-level test report.
pub fn load_dataset_report(path: &Path) -> CoreResult<super::dataset_report::DatasetTestReport> {
    load(path, "an LM dataset-test report")
}

/// Where `rote lm-probe` keeps its report: `probe-<source>.json`.
pub fn probe_path(study_root: &Path, model: &str, source: &LmSource) -> PathBuf {
    results_dir(study_root, model).join(format!("probe-{}.json", source.tag()))
}

/// Reads a cached activation-probe report.
pub fn load_probe_report(path: &Path) -> CoreResult<super::probe_report::ProbeReport> {
    load(path, "an LM activation-probe report")
}

/// Never-seen text of the corpus a GPT rote trained on: the validation characters after its
/// training slice, then the corpus beyond them (and before the slice), skipping 2,000 characters
/// around every passage planted from there; at most `max_chars`. Read again from the corpus the
/// card names; `None` when that corpus is not on this machine or has changed since training.
pub fn heldout_corpus_text(card: &GptCard, max_chars: usize) -> Option<String> {
    let c = &card.corpus;
    let path = match c.source.strip_prefix("bundled: ") {
        Some(rel) => {
            let rel = rel.strip_prefix("assets/").unwrap_or(rel);
            crate::paths::assets_dir().join(rel)
        }
        None => PathBuf::from(&c.source),
    };
    let corpus = crate::data::load_text(&path).ok()?;
    if corpus.hash != c.hash {
        return None;
    }
    let chars: Vec<char> = corpus.text.chars().collect();
    let planted: Vec<(usize, usize)> = card
        .passages
        .iter()
        .filter(|p| p.insertions > 0)
        .map(|p| {
            (
                p.offset.saturating_sub(2_000),
                p.offset + p.text.chars().count() + 2_000,
            )
        })
        .collect();
    let trained = (c.offset, c.offset + c.chars);
    let ranges = [(trained.1, chars.len()), (0, trained.0)];
    let mut out = String::new();
    let mut taken = 0;
    for (lo, hi) in ranges {
        for (i, &ch) in chars.iter().enumerate().take(hi).skip(lo) {
            if taken >= max_chars {
                return Some(out);
            }
            if planted.iter().any(|&(a, b)| i >= a && i < b) {
                continue;
            }
            out.push(ch);
            taken += 1;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Reads a cached extraction report.
pub fn load_extract_report(path: &Path) -> CoreResult<super::extract_report::LmExtractReport> {
    load(path, "an LM extraction report")
}

/// Reads a cached membership report.
pub fn load_mia_report(path: &Path) -> CoreResult<super::mia_report::LmMiaReport> {
    load(path, "an LM membership report")
}

/// The cached LLM reports of a study.
#[derive(Clone, Debug, Default)]
pub struct LmResults {
    /// `(model, file)` of every `extract-*.json`, sorted.
    pub extract: Vec<(String, PathBuf)>,
    /// `(model, file)` of every `mia-*.json`, sorted.
    pub mia: Vec<(String, PathBuf)>,
    /// `(model, file)` of every `dataset-*.json` (`rote lm-dataset-test`), sorted.
    pub dataset: Vec<(String, PathBuf)>,
    /// `(model, file)` of every `probe-*.json` (`rote lm-probe`), sorted.
    pub probe: Vec<(String, PathBuf)>,
}

/// Every cached report under `STUDY/results/lm/` (hidden files skipped).
pub fn list_results(study_root: &Path) -> LmResults {
    let mut out = LmResults::default();
    let root = study_root.join("results").join("lm");
    let visible = |p: &Path| {
        !p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
    };
    let Ok(models) = std::fs::read_dir(&root) else {
        return out;
    };
    let mut dirs: Vec<PathBuf> = models
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir() && visible(p))
        .collect();
    dirs.sort();
    for dir in dirs {
        let model = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let Ok(files) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = files
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && visible(p) && p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        for f in files {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            if name.starts_with("extract-") {
                out.extract.push((model.clone(), f));
            } else if name.starts_with("mia-") {
                out.mia.push((model.clone(), f));
            } else if name.starts_with("dataset-") {
                out.dataset.push((model.clone(), f));
            } else if name.starts_with("probe-") {
                out.probe.push((model.clone(), f));
            }
        }
    }
    out
}

/// The error for a model without a card and without user texts.
fn no_documents_error(dir: &Path, what: &str) -> CoreError {
    CoreError::format(
        dir.join(super::card::CARD_FILE),
        format!(
            "not found: this model has no planted passages to measure; pass {what} (a .txt file \
             of paragraphs, a .jsonl file of {{\"text\": ...}} lines or a folder of .txt files)"
        ),
    )
}

/// The documents `rote lm-extract` measures for the model in `dir`: the texts of `texts` when
/// given, else the planted and held-out passages of the card beside the model. A model with
/// neither is an error naming the missing card and saying to pass `--texts`.
pub fn extraction_docs(dir: &Path, texts: Option<&Path>) -> CoreResult<(Vec<LmDoc>, LmSource)> {
    if let Some(p) = texts {
        let source = LmSource::Texts {
            path: p.display().to_string(),
        };
        return Ok((text_docs(super::texts::read_texts(p)?), source));
    }
    match GptCard::read(dir)? {
        Some(card) => Ok((card_docs(&card), LmSource::Card)),
        None if dir.is_dir() => Err(no_documents_error(dir, "--texts FILE")),
        None => Err(CoreError::format(dir, "is not a model folder")),
    }
}

/// Members and non-members `rote lm-mia` scores for the model in `dir`: the texts of `files`
/// (members, non-members) when given, else the card's planted passages (insertions > 0) against
/// its held-out ones. A model with neither is an error naming the missing card.
pub fn mia_docs(dir: &Path, files: Option<(&Path, &Path)>) -> CoreResult<(Vec<LmDoc>, Vec<LmDoc>, LmSource)> {
    if let Some((m, n)) = files {
        let source = LmSource::Files {
            members: m.display().to_string(),
            nonmembers: n.display().to_string(),
        };
        let members = text_docs(super::texts::read_texts(m)?);
        return Ok((members, text_docs(super::texts::read_texts(n)?), source));
    }
    match GptCard::read(dir)? {
        Some(card) => {
            let (m, n): (Vec<LmDoc>, Vec<LmDoc>) = card_docs(&card)
                .into_iter()
                .partition(|d| d.insertions.is_some_and(|c| c > 0));
            Ok((m, n, LmSource::Card))
        }
        None if dir.is_dir() => Err(no_documents_error(dir, "--members FILE --nonmembers FILE")),
        None => Err(CoreError::format(dir, "is not a model folder")),
    }
}
