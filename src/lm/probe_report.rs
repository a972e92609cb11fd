//! `rote lm-probe`'s report (spec 11 §B.3–5): per-layer linear probes of memorized vs
//! not-memorized tokens ([`super::probe`] labels them, [`super::probe_fit`] fits and scores), the
//! logit-only baseline they must beat, the per-neuron screen, a layer × position heatmap of probe
//! probabilities over a memorized and a fresh passage, and the intervention: the best probe's
//! direction projected out of the activations while the model extracts and is scored on held-out
//! text, beside a random direction of the same site as a control.

use rayon::prelude::*;

use super::probe::{
    LabelCounts, ProbeSeq, SeqActs, Token, features, label, record, site_name, sites, token_stats,
};
use super::probe_fit::{Logistic, Metrics, NeuronScore, Rows, cross_validate, metrics, screen_neurons};
use super::study::{LmDoc, LmSource, LmUnderTest};
use super::trace::Site;
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;

/// Characters of never-seen corpus text a card's model is probed on (about 600 windows).
pub const HELDOUT_CHARS: usize = 200_000;

/// What the probes run with (spec 11 §B defaults).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProbeOptions {
    /// Prefix tokens k of the greedy extraction.
    pub prefix: usize,
    /// Suffix tokens m (the positions labelled).
    pub suffix: usize,
    /// Members planted fewer times than this are not on the memorized side.
    pub min_insertions: u32,
    /// Tokens kept before a token when its context is replaced.
    pub keep: usize,
    /// The log-probability drop Δ (nats) that makes a token context-dependent.
    pub delta: f64,
    /// Confidence matching of the classes (spec: always; off only to show why it matters).
    pub confidence_matched: bool,
    /// Grouped cross-validation folds.
    pub folds: usize,
    /// Ablation strengths α of the intervention.
    pub alphas: Vec<f32>,
    /// Centre the ablation on the not-memorized tokens' mean component instead of 0 (a labelled
    /// departure from the spec's plain projection).
    pub clamp_to_class0: bool,
    /// Clamp this many top screened units of the best site to their not-memorized mean instead
    /// of projecting the probe direction out (0: the projection; spec 11 §B.4's second form).
    #[serde(default)]
    pub neurons: usize,
    /// Windows of validation text at most (negatives and held-out perplexity).
    pub max_windows: usize,
    /// Seed of the context replacement, the matching and the folds.
    pub seed: u64,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            prefix: 32,
            suffix: 32,
            min_insertions: 8,
            keep: 8,
            delta: 2.0,
            confidence_matched: true,
            folds: 5,
            alphas: vec![0.0, 0.5, 1.0],
            clamp_to_class0: false,
            neurons: 0,
            max_windows: 600,
            seed: 0,
        }
    }
}

/// One site's probe.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SiteProbe {
    /// `residual 2`, `mlp 1`.
    pub name: String,
    /// Residual or MLP.
    pub site: Site,
    /// Layer as [`Site`] counts.
    pub layer: usize,
    /// Activation width.
    pub width: usize,
    /// Held-out (out-of-fold) metrics.
    pub metrics: Metrics,
    /// The C each fold chose.
    pub c: Vec<f64>,
    /// The units that separate the classes best on their own.
    pub top_neurons: Vec<NeuronScore>,
}

/// The intervention at one strength.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlphaPoint {
    /// α.
    pub alpha: f32,
    /// Exact greedy extraction rate of the memorized-side members.
    pub extraction: f64,
    /// Their mean matching fraction.
    pub match_fraction: f64,
    /// Perplexity on held-out text.
    pub heldout_ppl: f64,
    /// Perplexity on member text planted too rarely to be memorized (none when there is none).
    pub rare_member_ppl: Option<f64>,
}

/// A member's extraction before and after the intervention.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AblatedExhibit {
    /// Where it came from.
    pub source: String,
    /// The prompt.
    pub prefix: String,
    /// The true continuation.
    pub truth: String,
    /// The unedited model's continuation.
    pub original: String,
    /// The edited model's (α = the largest).
    pub ablated: String,
}

/// The intervention (spec 11 §B.4–5).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Intervention {
    /// The site edited (the best probe's).
    pub site: String,
    /// `h − α ((h − c)·ŵ) ŵ` with c = 0 (`projection`) or the class-0 mean (`clamp`).
    pub form: String,
    /// Per α.
    pub points: Vec<AlphaPoint>,
    /// A random unit direction (with `neurons`, as many random units) of the same site at the
    /// largest α: what any edit of that size does.
    pub random_direction: AlphaPoint,
    /// Up to two memorized members, before and after.
    pub exhibits: Vec<AblatedExhibit>,
}

/// Probe probabilities over one passage: residual layers × token positions.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HeatmapPassage {
    /// Where it came from.
    pub source: String,
    /// Whether it is a memorized-side member.
    pub member: bool,
    /// Token texts (position 0 first).
    pub tokens: Vec<String>,
    /// `probs[l][p − 1]`: the residual-layer-l probe's P(memorized) for token p, from the fold
    /// probe that never saw this passage.
    pub probs: Vec<Vec<f64>>,
    /// The label of each token p ≥ 1 where it has one.
    pub labels: Vec<Option<bool>>,
}

/// The activation-probe report of one model.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProbeReport {
    /// Model id.
    pub model: String,
    /// Where the texts came from.
    pub source: LmSource,
    /// Options.
    pub options: ProbeOptions,
    /// How many tokens each labelling step kept.
    pub counts: LabelCounts,
    /// Site names in order (`residual 0` = embeddings … `mlp L−1`).
    pub layers: Vec<String>,
    /// Held-out probe accuracy per site, in `layers` order.
    pub probe_accuracy: Vec<f64>,
    /// The majority class's share (0.5 when confidence-matched).
    pub chance: f64,
    /// Every site's probe.
    pub probes: Vec<SiteProbe>,
    /// Index of the best site (accuracy, then AUC).
    pub best: usize,
    /// The logit-only baseline (max probability and entropy), grouped the same way.
    pub logit_baseline: Metrics,
    /// The intervention.
    pub intervention: Intervention,
    /// A memorized and a fresh passage under the residual probes.
    pub heatmap: Vec<HeatmapPassage>,
    /// Activation vectors recorded (sites × positions × sequences).
    pub activations: usize,
    /// Recording throughput (activation vectors per second).
    pub activations_per_second: f64,
    /// Wall time.
    pub seconds: f64,
}

impl ProbeReport {
    /// The finding in one sentence.
    pub fn finding(&self) -> String {
        let b = &self.probes[self.best];
        let embed = self.probes.first().map_or(f64::NAN, |p| p.metrics.accuracy);
        let i = &self.intervention;
        let effect = match (i.points.first(), i.points.last()) {
            (Some(f), Some(l)) if i.points.len() > 1 => {
                let moved = f.extraction - l.extraction;
                let units = self.options.neurons > 0;
                let why = if moved >= 0.1 {
                    ""
                } else if units {
                    " — these units are not what the model recalls through"
                } else {
                    " — the model does not rely on the direction the probe reads: memorized text is \
                     recalled through other directions, so a probe's direction locates \
                     memorization without being its cause (`--neurons 16` clamps the units that \
                     separate the classes best instead)"
                };
                let (what, control) = if units {
                    (
                        format!(
                            "clamping the {} units that separate the classes best",
                            self.options.neurons
                        ),
                        "as many random units",
                    )
                } else {
                    ("projecting its direction out".to_string(), "a random direction")
                };
                format!(
                    "; {what} (α = {}) moves exact extraction from {:.0} % to {:.0} % ({control}: \
                     {:.0} %) and held-out perplexity from {:.1} to {:.1}{why}",
                    l.alpha,
                    100.0 * f.extraction,
                    100.0 * l.extraction,
                    100.0 * i.random_direction.extraction,
                    f.heldout_ppl,
                    l.heldout_ppl
                )
            }
            _ => String::new(),
        };
        format!(
            "A linear probe on {} reads memorized tokens at {:.2} accuracy (AUC {:.2}; chance {:.2}, \
             the logit-only baseline {:.2}, the embeddings alone {:.2}) over {} confidence-matched \
             tokens per class{effect}.",
            b.name,
            b.metrics.accuracy,
            b.metrics.auc,
            self.chance,
            self.logit_baseline.accuracy,
            embed,
            self.counts.matched_per_class
        )
    }
}

/// The texts the probes read.
pub struct ProbeTexts<'a> {
    /// Member documents (their `insertions` decide the memorized side when known).
    pub members: &'a [LmDoc],
    /// Never-seen documents.
    pub nonmembers: &'a [LmDoc],
    /// Extra never-seen text (a card's validation text), cut into windows.
    pub heldout_text: Option<&'a str>,
}

/// Runs the probes and the intervention.
pub fn probe(
    lm: &LmUnderTest<'_>,
    source: LmSource,
    texts: &ProbeTexts<'_>,
    opts: &ProbeOptions,
    ctx: &JobCtx<'_>,
) -> CoreResult<ProbeReport> {
    let start = std::time::Instant::now();
    let (k, m) = (opts.prefix, opts.suffix);
    if opts.keep == 0 || opts.keep >= k || opts.folds < 2 {
        return Err(CoreError::Invalid(format!(
            "--keep must be in 1..{k} and --folds at least 2 (got {} and {})",
            opts.keep, opts.folds
        )));
    }
    let t = k + m;
    let cut = |text: &str| -> CoreResult<Option<Vec<u32>>> {
        let ids = lm.codec.encode(text)?;
        Ok((ids.len() >= t).then(|| ids[..t].to_vec()))
    };
    let mut seqs = Vec::new();
    let mut rare = Vec::new();
    for d in texts.members {
        let Some(ids) = cut(&d.text)? else { continue };
        if d.insertions.is_none_or(|c| c >= opts.min_insertions) {
            seqs.push(ProbeSeq {
                ids,
                source: d.source.clone(),
                member: true,
            });
        } else {
            rare.push(ids);
        }
    }
    for d in texts.nonmembers {
        if let Some(ids) = cut(&d.text)? {
            seqs.push(ProbeSeq {
                ids,
                source: d.source.clone(),
                member: false,
            });
        }
    }
    let mut windows = Vec::new();
    if let Some(text) = texts.heldout_text {
        let ids = lm.codec.encode(text)?;
        windows = ids
            .chunks_exact(t)
            .take(opts.max_windows)
            .map(<[u32]>::to_vec)
            .collect();
    }
    for (w, ids) in windows.iter().enumerate() {
        seqs.push(ProbeSeq {
            ids: ids.clone(),
            source: format!("validation text window {w}"),
            member: false,
        });
    }
    let n_members = seqs.iter().filter(|s| s.member).count();
    if n_members < opts.folds || seqs.len() - n_members < opts.folds {
        return Err(CoreError::Invalid(format!(
            "the probes need at least {} member and {} non-member texts of {t} tokens ({n_members} and {} given)",
            opts.folds,
            opts.folds,
            seqs.len() - n_members
        )));
    }
    let stats = token_stats(lm, &seqs, 16, ctx)?;
    // Ordinary text for the context test: the never-seen sequences.
    let filler: Vec<u32> = seqs
        .iter()
        .filter(|s| !s.member)
        .flat_map(|s| s.ids.iter().copied())
        .collect();
    let (tokens, counts) = label(
        lm,
        &seqs,
        &stats,
        &filler,
        (k, m, opts.keep),
        opts.delta,
        opts.confidence_matched,
        opts.seed,
        ctx,
    )?;
    let n_pos = tokens.iter().filter(|t| t.memorized).count();
    if n_pos < opts.folds || tokens.len() - n_pos < opts.folds {
        return Err(CoreError::Invalid(format!(
            "only {n_pos} memorized and {} other tokens survived the labelling ({counts:?}): the \
             model extracts too little of its members for probes (train longer or plant more often)",
            tokens.len() - n_pos
        )));
    }
    // The heatmap's passages: the member with the most memorized tokens, the first never-seen
    // passage (a card's held-out passage before any validation window).
    let positives = |i: usize| tokens.iter().filter(|tk| tk.seq == i && tk.memorized).count();
    let shown_member = (0..seqs.len())
        .filter(|&i| seqs[i].member)
        .max_by_key(|&i| positives(i));
    let shown_fresh = (0..seqs.len())
        .find(|&i| !seqs[i].member && !seqs[i].source.starts_with("validation"))
        .or_else(|| (0..seqs.len()).find(|&i| !seqs[i].member));
    let shown: Vec<usize> = [shown_member, shown_fresh].into_iter().flatten().collect();
    let mut wanted: Vec<Vec<usize>> = vec![Vec::new(); seqs.len()];
    for tk in &tokens {
        wanted[tk.seq].push(tk.pos - 1);
    }
    for &i in &shown {
        wanted[i] = (0..t - 1).collect();
    }
    for w in &mut wanted {
        w.sort_unstable();
        w.dedup();
    }
    let rec = std::time::Instant::now();
    let (acts, n_layers) = record(lm, &seqs, &wanted, 16, ctx)?;
    let n_sites = sites(n_layers).len();
    let activations = wanted.iter().map(Vec::len).sum::<usize>() * n_sites;
    let activations_per_second = activations as f64 / rec.elapsed().as_secs_f64().max(1e-9);
    let y: Vec<bool> = tokens.iter().map(|t| t.memorized).collect();
    let group: Vec<usize> = tokens.iter().map(|t| t.seq).collect();
    ctx.progress("fitting probes", 0, n_sites as u64);
    ctx.checkpoint()?;
    let fitted: Vec<Fitted> = sites(n_layers)
        .into_par_iter()
        .enumerate()
        .map(|(s, (site, layer))| {
            let (x, width) = features(&tokens, &acts, s)?;
            let rows = Rows {
                x: &x,
                d: width,
                y: &y,
                group: &group,
            };
            let cv = cross_validate(&rows, opts.folds, opts.seed);
            let probe = SiteProbe {
                name: site_name(site, layer),
                site,
                layer,
                width,
                metrics: metrics(&cv.oof, &y),
                c: cv.probes.iter().map(|p| p.c).collect(),
                top_neurons: screen_neurons(&rows, 5),
            };
            Ok((probe, cv.probes, cv.group_fold))
        })
        .collect::<CoreResult<_>>()?;
    let baseline_x: Vec<f32> = tokens
        .iter()
        .flat_map(|t| [stats[t.seq].max_p[t.pos - 1], stats[t.seq].entropy[t.pos - 1]])
        .collect();
    let base_rows = Rows {
        x: &baseline_x,
        d: 2,
        y: &y,
        group: &group,
    };
    let logit_baseline = metrics(&cross_validate(&base_rows, opts.folds, opts.seed).oof, &y);
    let best = (0..fitted.len())
        .max_by(|&a, &b| {
            let (ma, mb) = (&fitted[a].0.metrics, &fitted[b].0.metrics);
            ma.accuracy
                .total_cmp(&mb.accuracy)
                .then(ma.auc.total_cmp(&mb.auc))
        })
        .unwrap_or(0);
    let heatmap = heatmap(lm, &seqs, &shown, &tokens, &acts, &fitted, n_layers)?;
    let intervention = super::probe_intervene::intervene(
        lm, &seqs, &rare, &windows, &tokens, &acts, &fitted, best, opts, ctx,
    )?;
    let chance = (n_pos.max(tokens.len() - n_pos)) as f64 / tokens.len() as f64;
    let probes: Vec<SiteProbe> = fitted.into_iter().map(|f| f.0).collect();
    Ok(ProbeReport {
        model: lm.id.to_string(),
        source,
        options: opts.clone(),
        counts,
        layers: probes.iter().map(|p| p.name.clone()).collect(),
        probe_accuracy: probes.iter().map(|p| p.metrics.accuracy).collect(),
        chance,
        probes,
        best,
        logit_baseline,
        intervention,
        heatmap,
        activations,
        activations_per_second,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// A site's probe with its fold probes and the fold of every sequence.
pub(crate) type Fitted = (SiteProbe, Vec<Logistic>, Vec<usize>);

/// The residual probes' probabilities over the `shown` passages, each from the fold probe that did
/// not train on it.
fn heatmap(
    lm: &LmUnderTest<'_>,
    seqs: &[ProbeSeq],
    shown: &[usize],
    tokens: &[Token],
    acts: &[Option<SeqActs>],
    fitted: &[Fitted],
    n_layers: usize,
) -> CoreResult<Vec<HeatmapPassage>> {
    let mut out = Vec::new();
    for &i in shown {
        let Some(a) = acts[i].as_ref() else { continue };
        let t = seqs[i].ids.len();
        let probs = (0..=n_layers)
            .map(|s| {
                let (_, probes, group_fold) = &fitted[s];
                let fold = group_fold.get(i).copied().unwrap_or(0);
                (1..t)
                    .map(|p| a.at(s, p - 1).map_or(f64::NAN, |row| probes[fold].prob(row)))
                    .collect()
            })
            .collect();
        let labels = (1..t)
            .map(|p| {
                tokens
                    .iter()
                    .find(|tk| tk.seq == i && tk.pos == p)
                    .map(|tk| tk.memorized)
            })
            .collect();
        out.push(HeatmapPassage {
            source: seqs[i].source.clone(),
            member: seqs[i].member,
            tokens: seqs[i]
                .ids
                .iter()
                .map(|&id| lm.codec.token_text(id).unwrap_or_default())
                .collect(),
            probs,
            labels,
        });
    }
    Ok(out)
}

/// Runs the probes on a loaded model and caches the report in the study at `cache`; a cached
/// report with the same options is returned as it is unless `fresh` (the bool says it was).
pub fn probe_into_study(
    lm: &super::HfLm,
    source: LmSource,
    texts: &ProbeTexts<'_>,
    opts: &ProbeOptions,
    cache: Option<&std::path::Path>,
    fresh: bool,
    ctx: &JobCtx<'_>,
) -> CoreResult<(ProbeReport, bool)> {
    let id = lm.id();
    let path = cache.map(|root| super::study::probe_path(root, &id, &source));
    if let Some(p) = path.as_deref().filter(|p| !fresh && p.is_file()) {
        match super::study::load_probe_report(p) {
            Ok(r) if r.options == *opts => return Ok((r, true)),
            Ok(_) => {}
            Err(e) => ctx.log(&format!("recomputing: {e}")),
        }
    }
    let under = LmUnderTest {
        model: lm.model.as_ref(),
        codec: &lm.tokenizer,
        id: &id,
    };
    let report = probe(&under, source, texts, opts, ctx)?;
    if let Some(p) = &path {
        super::study::save_report(p, &report)?;
    }
    Ok((report, false))
}
