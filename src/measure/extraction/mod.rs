//! Training-data extraction from generative models by generate-and-filter (Carlini, Hayes, Nasr,
//! Jagielski, Sehwag, Tramèr, Balle, Ippolito, Wallace, "Extracting Training Data from Diffusion
//! Models", USENIX Security 2023, arXiv:2301.13188), section 2b/2c of
//! `specs/02-carlini-diffusion-extraction.md`.
//!
//! Distances are taken on pixels scaled to [0, 1] and normalised by dimension:
//!
//! ```text
//! ℓ2(a, b)     = sqrt( Σ_d (a_d − b_d)² / D ) / 255            (u8 pixels, D = C·H·W)
//! d_tile(a, b) = max_{t = 1..g²} ℓ2(a_t, b_t)                  (tile t: (H/g)x(W/g) x C pixels,
//!                                                               normalised by its own dimension)
//! ℓ_rel(x̂)     = d(x̂, x_(1)) / ( α · mean_{y ∈ S_n(x̂)} d(x̂, y) )
//! ```
//!
//! with x_(1) the nearest training image and S_n(x̂) the n nearest (x_(1) included); defaults
//! n = 50, α = 0.5, and d = ℓ2 (or d_tile, the "patched" variant, with [`Distance::Tiled`]). A
//! generation x̂ is an extraction of x_(1) when its score is ≤ δ: ℓ_rel ≤ δ ([`Criterion::Relative`],
//! default δ = 1/3) or d(x̂, x_(1)) ≤ δ ([`Criterion::Absolute`]; with [`Distance::L2`] this is the
//! plain "ℓ2 ≤ δ" rule, the paper's Stable Diffusion filter used δ ≈ 0.15).
//!
//! **Duplicated training images.** Byte-identical training rows are merged before the neighbour
//! search: they are one image. Otherwise the n nearest neighbours of a copy of a duplicated image
//! would all be its copies at distance 0 and the ℓ_rel denominator would collapse. An extraction of
//! a merged image therefore counts as an extraction of every copy; `nearest` names its first copy
//! and `nearest_copies` how many there are. Only exact copies are merged: near-duplicates (other
//! crops, re-encodings) stay separate images and do lower the denominator, as in the paper.
//!
//! **Eidetic k** ((k, ℓ, δ)-eidetic memorization) is reported per extraction as the number of
//! training rows (copies included) within the extraction radius of the extracted image x: δ for the
//! absolute criterion, and δ · α · mean_{S_n(x̂)} d(x̂, ·) for the relative one (the absolute
//! radius that ℓ_rel ≤ δ stands for around that generation).
//!
//! **Cliques** (section 2c): near-identical generations are found in the graph with an edge when
//! d_tile(x̂_a, x̂_b) ≤ δ_gen. After pruning vertices of degree < k_min − 1, each connected
//! component gets an exact maximum clique by Bron–Kerbosch with pivoting (components of ≤ 500
//! vertices, within a step budget) or greedy clique expansion otherwise; the clique is removed and
//! the search repeated until no clique of ≥ k_min generations is left, so cliques are disjoint.
//!
//! Queries are processed in blocks (≤ 1024 rows, fewer for large training sets), so a 10k x 10k
//! distance matrix never sits in memory; distances run on the GPU kernels of [`crate::gpu`] when
//! asked and available, else on their CPU twins (same integers).

mod cliques;
mod score;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use self::cliques::cliques;
use self::score::dedupe;
pub use self::score::score_generations;
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;

/// Which distance a score uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Distance {
    /// Plain normalised ℓ2 over the whole image.
    #[default]
    L2,
    /// Max over a g x g grid of tiles of the per-tile normalised ℓ2 (the "patched" distance).
    Tiled,
}

/// Which rule declares a generation extracted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Criterion {
    /// ℓ_rel(x̂) ≤ δ (neighbourhood-normalised distance).
    #[default]
    Relative,
    /// d(x̂, x_(1)) ≤ δ (absolute distance to the nearest training image).
    Absolute,
}

/// Near-identical generation groups (cliques of the d_tile ≤ δ_gen graph).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CliqueConfig {
    /// Tiles per side for d_tile.
    pub grid: usize,
    /// Edge threshold on the normalised tiled distance between two generations.
    pub delta_gen: f64,
    /// Smallest clique reported (the paper's Stable Diffusion filter used 10).
    pub k_min: usize,
}

impl Default for CliqueConfig {
    fn default() -> Self {
        Self {
            grid: 4,
            delta_gen: 0.1,
            k_min: 10,
        }
    }
}

/// Parameters of the extraction scorer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExtractionConfig {
    /// Distance used for the nearest neighbours and the score.
    pub distance: Distance,
    /// Rule that declares an extraction.
    pub criterion: Criterion,
    /// Threshold δ on the criterion's score.
    pub delta: f64,
    /// n, the neighbours in the ℓ_rel denominator (capped at the number of distinct training
    /// images).
    pub n_neighbours: usize,
    /// α in the ℓ_rel denominator.
    pub alpha: f64,
    /// Tiles per side for d_tile (H and W must be divisible by it).
    pub grid: usize,
    /// Clique search among the generations, or `None` to skip it.
    pub cliques: Option<CliqueConfig>,
}

impl Default for ExtractionConfig {
    fn default() -> Self {
        Self {
            distance: Distance::L2,
            criterion: Criterion::Relative,
            delta: 1.0 / 3.0,
            n_neighbours: 50,
            alpha: 0.5,
            grid: 4,
            cliques: Some(CliqueConfig::default()),
        }
    }
}

/// The scores of one generation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerationScore {
    /// Index of the generation.
    pub generation: usize,
    /// x_(1): the nearest training row under the configured distance (the first of its copies).
    pub nearest: usize,
    /// Byte-identical copies of `nearest` in the training set (1 for a unique image).
    pub nearest_copies: usize,
    /// Plain normalised ℓ2 to `nearest`.
    pub l2: f32,
    /// Normalised tiled distance to `nearest`.
    pub tiled_l2: f32,
    /// ℓ_rel under the configured distance.
    pub rel_l2: f32,
    /// The value the criterion compares with δ (`rel_l2`, or the configured distance to
    /// `nearest`).
    pub score: f32,
    /// Whether `score` ≤ δ.
    pub extracted: bool,
    /// For extractions: training rows (copies included) within the extraction radius of
    /// `nearest`.
    pub eidetic_k: Option<usize>,
}

/// One training image extracted at least once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExtractedImage {
    /// Training row (the first of its copies).
    pub train_index: usize,
    /// Byte-identical copies of it in the training set.
    pub copies: usize,
    /// Generations that extract it, ascending.
    pub generations: Vec<usize>,
    /// The generation with the lowest score (ties: the smaller index).
    pub best_generation: usize,
    /// That generation's score.
    pub best_score: f32,
    /// That generation's eidetic k.
    pub eidetic_k: usize,
}

/// Counts over all generations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExtractionSummary {
    /// Generations scored.
    pub n_samples: usize,
    /// Training rows.
    pub n_train: usize,
    /// Distinct training images (byte-identical rows merged).
    pub n_train_unique: usize,
    /// Generations declared extractions.
    pub n_extracted: usize,
    /// Distinct training images extracted at least once.
    pub unique_train_extracted: usize,
    /// Distinct planted duplicated images, when given.
    pub n_planted_dup_images: Option<usize>,
    /// Fraction of the planted duplicated images extracted at least once.
    pub planted_dup_extracted_frac: Option<f64>,
    /// Distinct singleton images, when given.
    pub n_singletons: Option<usize>,
    /// Fraction of the singleton images extracted at least once.
    pub singleton_extracted_frac: Option<f64>,
}

/// How a clique was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CliqueMethod {
    /// Exact maximum clique of its component (Bron–Kerbosch with pivoting).
    BronKerbosch,
    /// Greedy clique expansion (large component or step budget exhausted).
    Greedy,
}

/// A group of near-identical generations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Clique {
    /// Generation indices, ascending.
    pub members: Vec<usize>,
    /// Number of members.
    pub size: usize,
    /// Largest normalised tiled distance between two members (≤ δ_gen).
    pub max_tiled_l2: f32,
    /// How it was found.
    pub method: CliqueMethod,
    /// The training image most members have as x_(1) (ties: the smaller index), when the
    /// generations were scored.
    pub nearest_train: Option<usize>,
    /// Byte-identical copies of `nearest_train`.
    pub nearest_copies: Option<usize>,
    /// Smallest ℓ_rel of a member to `nearest_train`.
    pub nearest_rel_l2: Option<f32>,
    /// Smallest plain ℓ2 of a member to `nearest_train`.
    pub nearest_l2: Option<f32>,
    /// Members declared extractions.
    pub members_extracted: Option<usize>,
}

/// Ground truth of a planted experiment: training row indices (any or all copies) of the images
/// that were deliberately duplicated, and of the images that appear once.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlantedTruth<'a> {
    /// Rows of planted duplicated images.
    pub duplicated: Option<&'a [usize]>,
    /// Rows of singleton images.
    pub singletons: Option<&'a [usize]>,
}

/// Everything the extraction view and the CLI show.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExtractionReport {
    /// Parameters used.
    pub config: ExtractionConfig,
    /// Image shape [C, H, W].
    pub shape: [usize; 3],
    /// Where the distances ran ("cpu", "wgpu (adapter)").
    pub backend: String,
    /// Counts.
    pub summary: ExtractionSummary,
    /// One row per generation, in order.
    pub rows: Vec<GenerationScore>,
    /// Extracted training images, by training index.
    pub extracted: Vec<ExtractedImage>,
    /// Near-identical generation groups, largest first (empty when not asked for).
    pub cliques: Vec<Clique>,
}

fn planted_fraction(
    indices: Option<&[usize]>,
    of_row: &[usize],
    extracted: &BTreeSet<usize>,
    what: &str,
) -> CoreResult<(Option<usize>, Option<f64>)> {
    let Some(indices) = indices else {
        return Ok((None, None));
    };
    let mut images = BTreeSet::new();
    for &i in indices {
        let Some(&u) = of_row.get(i) else {
            return Err(CoreError::Invalid(format!(
                "{what} index {i} is out of range for {} training rows",
                of_row.len()
            )));
        };
        images.insert(u);
    }
    if images.is_empty() {
        return Ok((Some(0), None));
    }
    let hit = images.iter().filter(|u| extracted.contains(u)).count();
    Ok((Some(images.len()), Some(hit as f64 / images.len() as f64)))
}

/// The full report: [`score_generations`], the extracted training images (each counted once,
/// whichever copy and however many generations hit it), the planted-truth fractions when `truth`
/// names them, and the cliques among the generations when `cfg.cliques` asks for them.
pub fn extraction_report(
    generations: &[u8],
    train: &[u8],
    shape: [usize; 3],
    cfg: &ExtractionConfig,
    truth: &PlantedTruth<'_>,
    prefer_gpu: bool,
    ctx: Option<&JobCtx<'_>>,
) -> CoreResult<ExtractionReport> {
    let (rows, mut backend) = score_generations(generations, train, shape, cfg, prefer_gpu, ctx)?;
    let dim = shape.iter().product::<usize>();
    let dd = dedupe(train, dim);
    let n_train = dd.of_row.len();

    let mut by_train: BTreeMap<usize, ExtractedImage> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.extracted) {
        let e = by_train.entry(row.nearest).or_insert_with(|| ExtractedImage {
            train_index: row.nearest,
            copies: row.nearest_copies,
            generations: Vec::new(),
            best_generation: row.generation,
            best_score: row.score,
            eidetic_k: row.eidetic_k.unwrap_or(0),
        });
        e.generations.push(row.generation);
        if row.score < e.best_score {
            e.best_generation = row.generation;
            e.best_score = row.score;
            e.eidetic_k = row.eidetic_k.unwrap_or(0);
        }
    }
    let extracted_images: BTreeSet<usize> = by_train.keys().map(|&i| dd.of_row[i]).collect();
    let (n_planted_dup_images, planted_dup_extracted_frac) = planted_fraction(
        truth.duplicated,
        &dd.of_row,
        &extracted_images,
        "planted duplicate",
    )?;
    let (n_singletons, singleton_extracted_frac) =
        planted_fraction(truth.singletons, &dd.of_row, &extracted_images, "singleton")?;

    let cliques = match &cfg.cliques {
        Some(cc) => {
            let (c, used) = cliques(generations, shape, cc, Some(&rows), prefer_gpu, ctx)?;
            backend = used;
            c
        }
        None => Vec::new(),
    };
    Ok(ExtractionReport {
        config: cfg.clone(),
        shape,
        backend: backend.to_string(),
        summary: ExtractionSummary {
            n_samples: rows.len(),
            n_train,
            n_train_unique: dd.first.len(),
            n_extracted: rows.iter().filter(|r| r.extracted).count(),
            unique_train_extracted: by_train.len(),
            n_planted_dup_images,
            planted_dup_extracted_frac,
            n_singletons,
            singleton_extracted_frac,
        },
        rows,
        extracted: by_train.into_values().collect(),
        cliques,
    })
}
