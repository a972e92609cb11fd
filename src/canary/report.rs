//! Exposure of every canary of a trained LM (Secret Sharer, sections 2-3 of the spec), written to
//! `STUDY/results/exposure/<model>.json`:
//!
//! * **exact**: the canary's rank among all 10^digits candidates scored through the digit tree,
//!   `exposure = log2|R| - log2 rank` with ties counted against the canary;
//! * **skew-normal**: `-log2 CDF(Px)` of a skew-normal fitted by maximum likelihood to the
//!   log-perplexities of sampled references (never an inserted secret), with the fit's
//!   Kolmogorov-Smirnov distance;
//! * **interpolation**: the empirical CDF over the same references (capped at log2 #refs);
//! * **TF Privacy**: `compute_exposure_interpolation` / `_extrapolation` on TF Privacy's
//!   perplexity, the mean cross-entropy in nats over the canary's characters, with 2^16
//!   references by default (its notebook's count), so its interpolation is capped at 16 bits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::SeedableRng as _;

use super::card::CanaryLm;
use super::exposure::{SkewNormal, exposure_from_rank, exposure_interpolation};
use super::model::{CanarySet, SlotModel};
use super::score::{MAX_EXACT_DIGITS, exact_space, score_secrets, tf_mean_nats};
use super::secrets::random_digits;
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;

/// Which estimates to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Estimate {
    /// The exact rank (formats of at most [`MAX_EXACT_DIGITS`] digits).
    Exact,
    /// Skew-normal extrapolation and interpolation from sampled references.
    SkewNormal,
    /// Both, where the exact rank applies.
    Both,
    /// TF Privacy's two functions on its mean-nats perplexity.
    TfPrivacy,
}

impl Estimate {
    /// CLI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::SkewNormal => "skew-normal",
            Self::Both => "both",
            Self::TfPrivacy => "tf-privacy",
        }
    }
}

/// How to measure.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExposureOptions {
    /// Which estimates.
    pub estimate: Estimate,
    /// Sampled references for the skew-normal fit and interpolation.
    pub references: usize,
    /// Seed of the reference sample.
    pub seed: u64,
    /// Formats with more digits than this get no exact rank under `Both` (at most
    /// [`MAX_EXACT_DIGITS`]).
    #[serde(default = "default_max_exact")]
    pub max_exact_digits: usize,
}

fn default_max_exact() -> usize {
    MAX_EXACT_DIGITS
}

impl Default for ExposureOptions {
    fn default() -> Self {
        Self {
            estimate: Estimate::Both,
            references: 10_000,
            seed: 0,
            max_exact_digits: MAX_EXACT_DIGITS,
        }
    }
}

/// One canary's exposures.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CanaryExposure {
    /// Index into the card's canaries.
    pub canary: usize,
    /// Its format.
    pub format: usize,
    /// The secret.
    pub secret: String,
    /// Times inserted.
    pub insertions: u32,
    /// Log-perplexity of the slot in bits.
    pub px_bits: f64,
    /// Exact rank (1 = the model's favourite).
    pub exact_rank: Option<u64>,
    /// Exact exposure in bits.
    pub exact: Option<f64>,
    /// Skew-normal estimate in bits.
    pub skew_normal: Option<f64>,
    /// Empirical-CDF estimate over the references (capped at log2 #refs).
    pub interpolation: Option<f64>,
    /// TF Privacy's perplexity (mean nats per character of the whole canary).
    pub tf_mean_nats: Option<f64>,
    /// TF Privacy's `compute_exposure_interpolation`.
    pub tf_interpolation: Option<f64>,
    /// TF Privacy's `compute_exposure_extrapolation`.
    pub tf_extrapolation: Option<f64>,
}

impl CanaryExposure {
    /// The best available figure: exact, else skew-normal, else TF's extrapolation.
    pub fn best(&self) -> f64 {
        self.exact
            .or(self.skew_normal)
            .or(self.tf_extrapolation)
            .unwrap_or(f64::NAN)
    }
}

/// A histogram with equal-width bins.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Histogram {
    /// Left edge of the first bin.
    pub lo: f64,
    /// Bin width.
    pub width: f64,
    /// Counts.
    pub counts: Vec<u64>,
    /// What was counted.
    pub source: String,
}

impl Histogram {
    /// `bins` equal bins over the values' range.
    pub fn of(values: impl Iterator<Item = f64> + Clone, bins: usize, source: &str) -> Self {
        let (lo, hi) = values
            .clone()
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
        let (lo, hi) = if lo.is_finite() {
            (lo, hi.max(lo + 1e-9))
        } else {
            (0.0, 1.0)
        };
        let width = (hi - lo) / bins as f64;
        let mut counts = vec![0u64; bins];
        for v in values.filter(|v| v.is_finite()) {
            let k = (((v - lo) / width) as usize).min(bins - 1);
            counts[k] += 1;
        }
        Self {
            lo,
            width,
            counts,
            source: source.into(),
        }
    }
}

/// Per-format figures.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FormatExposure {
    /// Index into the card's formats.
    pub format: usize,
    /// The prefix.
    pub prefix: String,
    /// Slot digits.
    pub digits: usize,
    /// log2 |R| (the exact exposure's ceiling).
    pub log2_space: f64,
    /// References sampled (0 for exact only).
    pub references: usize,
    /// log2 #references (the interpolation's ceiling).
    pub log2_references: f64,
    /// Skew-normal fit to the references' Px in bits.
    pub fit: Option<SkewNormal>,
    /// Kolmogorov-Smirnov distance between the references and the fit.
    pub ks: Option<f64>,
    /// Histogram of Px in bits (the whole space when enumerated, else the references).
    pub histogram: Histogram,
    /// Seconds spent scoring the whole space.
    pub exact_seconds: Option<f64>,
    /// Candidates scored per second by the exact rank.
    pub candidates_per_sec: Option<f64>,
}

/// The report.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExposureReport {
    /// Model id.
    pub model: String,
    /// Options used.
    pub options: ExposureOptions,
    /// Per canary.
    pub canaries: Vec<CanaryExposure>,
    /// Per format.
    pub formats: Vec<FormatExposure>,
    /// Total seconds.
    pub seconds: f64,
}

/// Kolmogorov-Smirnov distance between a sample and a distribution.
pub fn ks_distance(xs: &[f64], fit: &SkewNormal) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len() as f64;
    v.iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = fit.cdf(x);
            (f - i as f64 / n).abs().max(((i + 1) as f64 / n - f).abs())
        })
        .fold(0.0, f64::max)
}

/// `n` distinct references of format `f`, none equal to one of its canaries.
pub fn draw_references(set: &CanarySet, f: usize, n: usize, seed: u64) -> CoreResult<Vec<String>> {
    let fmt = set
        .formats
        .get(f)
        .ok_or_else(|| CoreError::Invalid(format!("no canary format {f}")))?;
    let taken: std::collections::BTreeSet<&str> = set
        .canaries
        .iter()
        .filter(|c| c.format == f)
        .map(|c| c.secret.as_str())
        .collect();
    let available = fmt.space().saturating_sub(taken.len() as u64);
    if (n as u64) > available {
        return Err(CoreError::Invalid(format!(
            "{n} references asked for, but the space of format {f} holds only {available} other candidates"
        )));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(7300 + f as u64);
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let s = random_digits(&mut rng, fmt.digits);
        if !taken.contains(s.as_str()) && seen.insert(s.clone()) {
            out.push(s);
        }
    }
    Ok(out)
}

/// Measures every canary of the character LSTM's card. Progress per block; cancellable.
pub fn measure_exposure(
    lm: &CanaryLm,
    opts: &ExposureOptions,
    ctx: &JobCtx<'_>,
) -> CoreResult<ExposureReport> {
    measure_exposure_of(lm, &lm.canary_set(), opts, ctx)
}

/// Measures every canary of `set` on any [`SlotModel`] (the LSTM or a transformer). Progress per
/// block; cancellable.
pub fn measure_exposure_of<M: SlotModel>(
    model: &M,
    set: &CanarySet,
    opts: &ExposureOptions,
    ctx: &JobCtx<'_>,
) -> CoreResult<ExposureReport> {
    set.validate()?;
    let t0 = std::time::Instant::now();
    let card = set;
    let mut canaries: Vec<CanaryExposure> = Vec::new();
    let mut formats = Vec::new();
    for (fi, fmt) in card.formats.iter().enumerate() {
        let members: Vec<usize> = (0..card.canaries.len())
            .filter(|&k| card.canaries[k].format == fi)
            .collect();
        let secrets: Vec<String> = members.iter().map(|&k| card.canaries[k].secret.clone()).collect();
        let px = score_secrets(model, fmt, &secrets, ctx)?;
        let mut rows: Vec<CanaryExposure> = members
            .iter()
            .zip(&px)
            .map(|(&k, &p)| CanaryExposure {
                canary: k,
                format: fi,
                secret: card.canaries[k].secret.clone(),
                insertions: card.canaries[k].insertions,
                px_bits: p,
                exact_rank: None,
                exact: None,
                skew_normal: None,
                interpolation: None,
                tf_mean_nats: None,
                tf_interpolation: None,
                tf_extrapolation: None,
            })
            .collect();
        let log2_space = (fmt.space() as f64).log2();
        let exact_wanted = matches!(opts.estimate, Estimate::Exact | Estimate::Both);
        let exact_ok = fmt.digits <= opts.max_exact_digits.min(MAX_EXACT_DIGITS);
        if opts.estimate == Estimate::Exact && !exact_ok {
            return Err(CoreError::Invalid(format!(
                "format '{}' has {} digits; the exact rank enumerates at most {MAX_EXACT_DIGITS} (use --estimate skew-normal)",
                fmt.prefix, fmt.digits
            )));
        }
        let mut histogram = None;
        let (mut exact_seconds, mut candidates_per_sec) = (None, None);
        if exact_wanted && exact_ok {
            let te = std::time::Instant::now();
            let space = exact_space(model, fmt, ctx)?;
            let secs = te.elapsed().as_secs_f64();
            exact_seconds = Some(secs);
            candidates_per_sec = Some(space.len() as f64 / secs.max(1e-9));
            for row in &mut rows {
                let idx: usize = row
                    .secret
                    .parse()
                    .map_err(|_| CoreError::Invalid("bad secret".into()))?;
                let own = space[idx];
                let rank = space.iter().filter(|&&c| c <= own).count() as u64;
                row.exact_rank = Some(rank);
                row.exact = Some(exposure_from_rank(rank, fmt.space())?);
            }
            histogram = Some(Histogram::of(
                space.iter().map(|&c| f64::from(c)),
                80,
                "all candidates",
            ));
        }
        let refs_wanted = opts.estimate != Estimate::Exact;
        let (mut fit, mut ks, mut n_refs) = (None, None, 0);
        if refs_wanted {
            let n = if opts.estimate == Estimate::TfPrivacy {
                opts.references.max(2)
            } else {
                opts.references.max(16)
            };
            let n = n.min(fmt.space().saturating_sub(members.len() as u64) as usize);
            let refs = draw_references(set, fi, n, opts.seed)?;
            let ref_px = score_secrets(model, fmt, &refs, ctx)?;
            n_refs = ref_px.len();
            let mut by_canary: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
            for (i, r) in rows.iter().enumerate() {
                by_canary.insert(i, vec![r.px_bits]);
            }
            if opts.estimate == Estimate::TfPrivacy {
                let pre = model.prefix_nats(&fmt.prefix)?;
                let nats: Vec<f64> = ref_px.iter().map(|&b| tf_mean_nats(b, pre, fmt.digits)).collect();
                let mut tf_by: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
                for (i, r) in rows.iter_mut().enumerate() {
                    let v = tf_mean_nats(r.px_bits, pre, fmt.digits);
                    r.tf_mean_nats = Some(v);
                    tf_by.insert(i, vec![v]);
                }
                let interp = exposure_interpolation(&tf_by, &nats)?;
                let (extra, _) = super::exposure::exposure_extrapolation(&tf_by, &nats)?;
                for (i, r) in rows.iter_mut().enumerate() {
                    r.tf_interpolation = interp.get(&i).and_then(|v| v.first().copied());
                    r.tf_extrapolation = extra.get(&i).and_then(|v| v.first().copied());
                }
            }
            let f = SkewNormal::fit_mle(&ref_px)?;
            let interp = exposure_interpolation(&by_canary, &ref_px)?;
            for (i, r) in rows.iter_mut().enumerate() {
                r.skew_normal = Some(f.exposure(r.px_bits));
                r.interpolation = interp.get(&i).and_then(|v| v.first().copied());
            }
            ks = Some(ks_distance(&ref_px, &f));
            fit = Some(f);
            if histogram.is_none() {
                histogram = Some(Histogram::of(ref_px.iter().copied(), 60, "sampled references"));
            }
        }
        formats.push(FormatExposure {
            format: fi,
            prefix: fmt.prefix.clone(),
            digits: fmt.digits,
            log2_space,
            references: n_refs,
            log2_references: if n_refs > 0 { (n_refs as f64).log2() } else { 0.0 },
            fit,
            ks,
            histogram: histogram.unwrap_or_else(|| Histogram::of(std::iter::empty(), 1, "none")),
            exact_seconds,
            candidates_per_sec,
        });
        canaries.extend(rows);
    }
    canaries.sort_by_key(|c| c.canary);
    Ok(ExposureReport {
        model: card.id.clone(),
        options: opts.clone(),
        canaries,
        formats,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// `STUDY/results/exposure/<model>-<estimate>.json`.
pub fn report_path(study_root: &Path, model: &str, estimate: Estimate) -> PathBuf {
    study_root
        .join("results")
        .join("exposure")
        .join(format!("{model}-{}.json", estimate.as_str()))
}

/// Reads a saved report.
pub fn load_report(path: &Path) -> CoreResult<ExposureReport> {
    let text = std::fs::read_to_string(path).map_err(|e| CoreError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| CoreError::format(path, format!("not an exposure report: {e}")))
}
