//! Extraction over a set of documents: `rote lm-extract`, the report's LM section and the GUI's
//! Text view all read an [`LmExtractReport`].
//!
//! Each document's first `k + m` tokens are split into a `k`-token prefix and the `m`-token true
//! continuation; greedy decoding from the prefix gives the generated continuation
//! ([`super::extract::extract_greedy`], batched: every prefix has `k` tokens, so all documents go
//! through the model together, `batch` at a time). Per document and per group of documents:
//!
//! * **exact** (k-extractable, Carlini et al. 2022, "Quantifying Memorization Across Neural
//!   Language Models", Def. 3.1): the `m` generated tokens equal the true ones;
//! * **token match** (Biderman et al. 2023, "Emergent and Predictable Memorization in Large
//!   Language Models", §3; 32 + 32 in Pythia): the fraction of positions that agree;
//! * **longest verbatim span**: the longest run of consecutive agreeing positions (tokens);
//! * **(n, p)-extraction** (Hayes et al. 2024, "Measuring memorization in language models via
//!   probabilistic extraction", Eq. 1–2): the fraction with `1 − (1 − p_z)^n ≥ p`, `p_z` the
//!   teacher-forced probability of the true continuation, over a grid of n and p.
//!
//! With a card's passages the figures are also given per insertion count (`groups`; the
//! held-out passages are insertions 0), and an optional sweep repeats the measurement over
//! prefix lengths (suffix fixed) and suffix lengths (prefix fixed), the discoverability curve of
//! Carlini et al. 2022 (§4.3). Documents shorter than `k + m` tokens are left out of a point and
//! listed in `skipped`.

use super::extract::{ExtractionSummary, GreedyExtraction, NpRate, extract_greedy, summarize};
use super::study::{LmDoc, LmSource, LmUnderTest};
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;

/// What [`measure_extraction`] does.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LmExtractOptions {
    /// Prefix length k in tokens (Pythia: 32).
    pub prefix_tokens: usize,
    /// Suffix length m in tokens (Pythia: 32).
    pub suffix_tokens: usize,
    /// Documents per forward pass.
    pub batch: usize,
    /// The (n, p) pairs of the (n, p)-extraction rates.
    pub np: Vec<(f64, f64)>,
    /// Prefix lengths of the sweep (suffix = `suffix_tokens`); empty for no prefix sweep.
    pub sweep_prefix: Vec<usize>,
    /// Suffix lengths of the sweep (prefix = `prefix_tokens`); empty for no suffix sweep.
    pub sweep_suffix: Vec<usize>,
}

impl Default for LmExtractOptions {
    fn default() -> Self {
        let mut np = Vec::new();
        for p in [0.1, 0.5, 0.9, 0.99] {
            for n in [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6] {
                np.push((n, p));
            }
        }
        Self {
            prefix_tokens: 32,
            suffix_tokens: 32,
            batch: 16,
            np,
            sweep_prefix: Vec::new(),
            sweep_suffix: Vec::new(),
        }
    }
}

impl LmExtractOptions {
    /// Adds the default sweep: prefixes 8, 16, 32, 64, 128 and suffixes 8, 16, 32, 64 tokens.
    pub fn with_sweep(mut self) -> Self {
        self.sweep_prefix = vec![8, 16, 32, 64, 128];
        self.sweep_suffix = vec![8, 16, 32, 64];
        self
    }
}

/// Extraction figures over a set of documents.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExtractFigures {
    /// Documents measured.
    pub n: usize,
    /// Documents whose continuation greedy decoding reproduced exactly.
    pub exact: usize,
    /// `exact / n` (Carlini et al. 2022).
    pub exact_frac: f64,
    /// Mean fraction of continuation tokens reproduced at their position (Biderman et al. 2023).
    pub token_match: f64,
    /// Mean longest verbatim span (tokens).
    pub mean_longest_match: f64,
    /// Longest verbatim span of any document (tokens).
    pub longest_match: usize,
    /// Median ln p_z (natural log of the probability of sampling the true continuation).
    pub median_ln_p_z: f64,
    /// (n, p)-extraction rates (Hayes et al. 2024).
    pub np_rates: Vec<NpRate>,
}

impl ExtractFigures {
    fn of(rows: &[&GreedyExtraction], np: &[(f64, f64)]) -> Self {
        let owned: Vec<GreedyExtraction> = rows.iter().map(|r| (*r).clone()).collect();
        let s: ExtractionSummary = summarize(&owned, np);
        Self {
            n: s.n,
            exact: rows.iter().filter(|r| r.exact).count(),
            exact_frac: s.exact_rate,
            token_match: s.mean_match_fraction,
            mean_longest_match: s.mean_longest_match,
            longest_match: rows.iter().map(|r| r.longest_match).max().unwrap_or(0),
            median_ln_p_z: s.median_ln_p_z,
            np_rates: s.np_rates,
        }
    }
}

/// The figures of the documents planted `insertions` times.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExtractGroup {
    /// Insertions in the training text (0 = held out).
    pub insertions: u32,
    /// Their figures.
    #[serde(flatten)]
    pub figures: ExtractFigures,
}

/// One document side by side: prefix, true continuation, generated continuation.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExtractDoc {
    /// Where it came from.
    pub source: String,
    /// Insertions (card passages), `None` for user texts.
    pub insertions: Option<u32>,
    /// The k prefix token ids.
    pub prefix: Vec<u32>,
    /// The m true continuation token ids.
    pub truth: Vec<u32>,
    /// The m greedily generated token ids.
    pub generated: Vec<u32>,
    /// Per position: generated == truth.
    pub matches: Vec<bool>,
    /// The prefix as text.
    pub prefix_text: String,
    /// Each true continuation token as text (same length as `truth`).
    pub truth_tokens: Vec<String>,
    /// Each generated token as text (same length as `generated`).
    pub generated_tokens: Vec<String>,
    /// All m tokens reproduced.
    pub exact: bool,
    /// Fraction of positions reproduced.
    pub token_match: f64,
    /// Longest verbatim span (tokens).
    pub longest_match: usize,
    /// ln p_z of the true continuation.
    pub ln_p_z: f64,
}

/// One point of the k / m sweep.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SweepPoint {
    /// Prefix tokens.
    pub k: usize,
    /// Suffix tokens.
    pub m: usize,
    /// All documents long enough for k + m.
    pub overall: ExtractFigures,
    /// Per insertion count (card passages only).
    pub groups: Vec<ExtractGroup>,
}

/// The extraction report of one model on one document set.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LmExtractReport {
    /// Model id.
    pub model: String,
    /// Its family (`gpt2`, `gpt_neox`, `llama`, `qwen2`).
    pub model_type: String,
    /// Where the documents came from.
    pub source: LmSource,
    /// Options.
    pub options: LmExtractOptions,
    /// Figures over every document measured at (k, m).
    pub overall: ExtractFigures,
    /// Per insertion count, ascending (card passages only; empty for user texts).
    pub groups: Vec<ExtractGroup>,
    /// Every measured document at (k, m), in input order.
    pub documents: Vec<ExtractDoc>,
    /// Sources of documents shorter than k + m tokens (left out).
    pub skipped: Vec<String>,
    /// The sweep over k and m (empty without one).
    pub sweep: Vec<SweepPoint>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl LmExtractReport {
    /// The group planted `insertions` times.
    pub fn group(&self, insertions: u32) -> Option<&ExtractGroup> {
        self.groups.iter().find(|g| g.insertions == insertions)
    }
}

/// Per-document results with the document's index.
type Rows = Vec<(usize, GreedyExtraction)>;

/// Greedy extraction of every document's first k + m tokens, `batch` at a time, with progress
/// and cancellation between batches. Returns the per-document results of the long-enough ones
/// (with their index) and the indices of the short ones.
fn run_point(
    lm: LmUnderTest<'_>,
    ids: &[Vec<u32>],
    k: usize,
    m: usize,
    batch: usize,
    stage: &str,
    ctx: &JobCtx<'_>,
) -> CoreResult<(Rows, Vec<usize>)> {
    let (long, short): (Vec<usize>, Vec<usize>) = (0..ids.len()).partition(|&i| ids[i].len() >= k + m);
    let mut out = Vec::with_capacity(long.len());
    let total = long.len() as u64;
    let rows = super::study::rows_per_batch(batch, k + m, lm.model.vocab_size());
    for chunk in long.chunks(rows) {
        ctx.checkpoint()?;
        ctx.progress(stage, out.len() as u64, total);
        let seqs: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
        let res = extract_greedy(lm.model, &seqs, k, m, seqs.len())?;
        out.extend(chunk.iter().copied().zip(res));
    }
    ctx.progress(stage, total, total);
    Ok((out, short))
}

fn groups_of(docs: &[LmDoc], rows: &[(usize, GreedyExtraction)], np: &[(f64, f64)]) -> Vec<ExtractGroup> {
    let mut counts: Vec<u32> = rows.iter().filter_map(|(i, _)| docs[*i].insertions).collect();
    counts.sort_unstable();
    counts.dedup();
    counts
        .into_iter()
        .map(|c| {
            let sel: Vec<&GreedyExtraction> = rows
                .iter()
                .filter(|(i, _)| docs[*i].insertions == Some(c))
                .map(|(_, r)| r)
                .collect();
            ExtractGroup {
                insertions: c,
                figures: ExtractFigures::of(&sel, np),
            }
        })
        .collect()
}

/// Measures greedy and (n, p) extraction of `docs` under `lm` (see the module docs). Fails when
/// no document has `prefix_tokens + suffix_tokens` tokens, or when that is more than the model's
/// context.
pub fn measure_extraction(
    lm: LmUnderTest<'_>,
    source: LmSource,
    docs: &[LmDoc],
    opts: &LmExtractOptions,
    ctx: &JobCtx<'_>,
) -> CoreResult<LmExtractReport> {
    let t0 = std::time::Instant::now();
    let (k, m) = (opts.prefix_tokens, opts.suffix_tokens);
    let ctx_len = lm.model.max_positions();
    if k + m > ctx_len {
        return Err(CoreError::Invalid(format!(
            "prefix {k} + suffix {m} tokens are more than the model's context of {ctx_len} tokens \
             (lower --prefix-tokens / --suffix-tokens)"
        )));
    }
    let mut ids = Vec::with_capacity(docs.len());
    for (i, d) in docs.iter().enumerate() {
        if i % 64 == 0 {
            ctx.checkpoint()?;
            ctx.progress("tokenize", i as u64, docs.len() as u64);
        }
        ids.push(lm.codec.encode(&d.text)?);
    }
    let (rows, short) = run_point(lm, &ids, k, m, opts.batch, "extract", ctx)?;
    if rows.is_empty() {
        let (at, longest) = ids
            .iter()
            .enumerate()
            .max_by_key(|(_, s)| s.len())
            .map_or((0, 0), |(i, s)| (i, s.len()));
        return Err(CoreError::Invalid(format!(
            "no document has prefix {k} + suffix {m} = {} tokens (the longest of {}, {}, has \
             {longest}); lower --prefix-tokens / --suffix-tokens or give longer texts",
            k + m,
            docs.len(),
            docs.get(at).map_or("none", |d| d.source.as_str()),
        )));
    }
    let all: Vec<&GreedyExtraction> = rows.iter().map(|(_, r)| r).collect();
    let overall = ExtractFigures::of(&all, &opts.np);
    let groups = groups_of(docs, &rows, &opts.np);
    let text = |id: u32| lm.codec.token_text(id).unwrap_or_else(|| format!("<{id}>"));
    let documents = rows
        .iter()
        .map(|(i, r)| {
            let s = &ids[*i];
            let truth = s[k..k + m].to_vec();
            ExtractDoc {
                source: docs[*i].source.clone(),
                insertions: docs[*i].insertions,
                prefix: s[..k].to_vec(),
                matches: r.generated.iter().zip(&truth).map(|(a, b)| a == b).collect(),
                prefix_text: s[..k].iter().map(|&t| text(t)).collect(),
                truth_tokens: truth.iter().map(|&t| text(t)).collect(),
                generated_tokens: r.generated.iter().map(|&t| text(t)).collect(),
                truth,
                generated: r.generated.clone(),
                exact: r.exact,
                token_match: r.match_fraction,
                longest_match: r.longest_match,
                ln_p_z: r.ln_p_z,
            }
        })
        .collect();
    let mut sweep = Vec::new();
    let points: Vec<(usize, usize)> = opts
        .sweep_prefix
        .iter()
        .map(|&kk| (kk, m))
        .chain(opts.sweep_suffix.iter().map(|&mm| (k, mm)))
        .filter(|&(kk, mm)| kk > 0 && mm > 0 && kk + mm <= ctx_len)
        .collect();
    for (kk, mm) in points {
        if sweep.iter().any(|p: &SweepPoint| p.k == kk && p.m == mm) {
            continue;
        }
        let (rows, _) = run_point(lm, &ids, kk, mm, opts.batch, &format!("sweep k{kk} m{mm}"), ctx)?;
        if rows.is_empty() {
            continue;
        }
        let all: Vec<&GreedyExtraction> = rows.iter().map(|(_, r)| r).collect();
        sweep.push(SweepPoint {
            k: kk,
            m: mm,
            overall: ExtractFigures::of(&all, &[]),
            groups: groups_of(docs, &rows, &[]),
        });
    }
    Ok(LmExtractReport {
        model: lm.id.to_string(),
        model_type: lm.model.model_type().to_string(),
        source,
        options: opts.clone(),
        overall,
        groups,
        documents,
        skipped: short.iter().map(|&i| docs[i].source.clone()).collect(),
        sweep,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// One line per group stating the finding, e.g. "inserted 16 times: 19/20 reproduced verbatim
/// (mean token match 0.98)" and "held out: 0/20 ...".
pub fn finding_lines(report: &LmExtractReport) -> Vec<String> {
    let line = |label: String, f: &ExtractFigures| {
        format!(
            "{label}: {}/{} reproduced verbatim, mean token match {:.2}, longest span {} token{}",
            f.exact,
            f.n,
            f.token_match,
            f.longest_match,
            if f.longest_match == 1 { "" } else { "s" }
        )
    };
    if report.groups.is_empty() {
        return vec![line("all documents".into(), &report.overall)];
    }
    report
        .groups
        .iter()
        .rev()
        .map(|g| {
            let label = match g.insertions {
                0 => "held out (never trained on)".to_string(),
                1 => "passages seen once".to_string(),
                n => format!("passages seen {n} times"),
            };
            line(label, &g.figures)
        })
        .collect()
}

/// The finding in one sentence. With planted passages: the most-inserted passages (those seen at
/// least 16 times when there are such groups) against the held-out ones, e.g. "passages seen ≥16
/// times: 19/20 reproduced verbatim; held out: 0/20"; with user texts, the overall count.
pub fn headline(report: &LmExtractReport) -> String {
    let (k, m) = (report.options.prefix_tokens, report.options.suffix_tokens);
    let planted: Vec<&ExtractGroup> = report.groups.iter().filter(|g| g.insertions > 0).collect();
    let Some(top) = planted.iter().map(|g| g.insertions).max() else {
        let f = &report.overall;
        return format!(
            "{}/{} documents reproduced verbatim ({m} tokens after the {k}-token prefix), mean token match {:.2}",
            f.exact, f.n, f.token_match
        );
    };
    let floor = if top >= 16 { 16 } else { top };
    let (e, n) = planted
        .iter()
        .filter(|g| g.insertions >= floor)
        .fold((0, 0), |(e, n), g| (e + g.figures.exact, n + g.figures.n));
    let mut s = format!("passages seen ≥{floor} times: {e}/{n} reproduced verbatim");
    if let Some(h) = report.group(0) {
        s.push_str(&format!("; held out: {}/{}", h.figures.exact, h.figures.n));
    }
    s.push_str(&format!(" ({m} tokens after the {k}-token prefix)"));
    s
}

/// What `rote lm-extract` and the GUI run: [`measure_extraction`] of the loaded model on `docs`
/// (from [`super::study::extraction_docs`]), the report cached in the study at `cache` (its root)
/// when given. Returns the report and the file written.
pub fn extract_into_study(
    lm: &super::HfLm,
    source: LmSource,
    docs: &[LmDoc],
    opts: &LmExtractOptions,
    cache: Option<&std::path::Path>,
    ctx: &JobCtx<'_>,
) -> CoreResult<(LmExtractReport, Option<std::path::PathBuf>)> {
    let id = lm.id();
    let under = LmUnderTest {
        model: lm.model.as_ref(),
        codec: &lm.tokenizer,
        id: &id,
    };
    let report = measure_extraction(under, source, docs, opts, ctx)?;
    let path = cache.map(|root| {
        super::study::extract_path(root, &id, &report.source, opts.prefix_tokens, opts.suffix_tokens)
    });
    if let Some(p) = &path {
        super::study::save_report(p, &report)?;
    }
    Ok((report, path))
}
