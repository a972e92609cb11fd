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

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, CoreResult};
use crate::gpu::{
    Backend, PackedImages, TiledImages, pairwise_sq_l2, tile_geometry, tiled_sq_l2_packed, tiled_sq_l2_pair,
    top_k_rows,
};
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

/// Normalised ℓ2 of an exact squared distance over `dim` pixels.
fn norm(sq: u32, dim: usize) -> f64 {
    (f64::from(sq) / dim as f64).sqrt() / 255.0
}

fn sq_diff_sum(x: &[u8], y: &[u8]) -> u32 {
    x.iter()
        .zip(y)
        .map(|(&p, &q)| {
            let d = i32::from(p) - i32::from(q);
            (d * d) as u32
        })
        .sum()
}

/// Rows per query block: at most 1024 and about 32M matrix entries.
fn block_rows(refs: usize) -> usize {
    ((1usize << 25) / refs.max(1)).clamp(16, 1024)
}

fn count_rows(pixels: &[u8], dim: usize, what: &str, shape: [usize; 3]) -> CoreResult<usize> {
    if !pixels.len().is_multiple_of(dim) {
        return Err(CoreError::Mismatch(format!(
            "{what}: {} bytes are not a whole number of {}x{}x{} images",
            pixels.len(),
            shape[0],
            shape[1],
            shape[2]
        )));
    }
    Ok(pixels.len() / dim)
}

/// Training rows with byte-identical rows merged.
struct Dedup {
    /// Flat pixels of the distinct images, in order of first appearance.
    pixels: Vec<u8>,
    /// First training row of each distinct image.
    first: Vec<usize>,
    /// Copies of each distinct image.
    copies: Vec<usize>,
    /// Distinct image of each training row.
    of_row: Vec<usize>,
}

fn dedupe(train: &[u8], dim: usize) -> Dedup {
    let mut seen: HashMap<&[u8], usize> = HashMap::new();
    let mut d = Dedup {
        pixels: Vec::new(),
        first: Vec::new(),
        copies: Vec::new(),
        of_row: Vec::with_capacity(train.len() / dim),
    };
    for (i, row) in train.chunks_exact(dim).enumerate() {
        let u = *seen.entry(row).or_insert_with(|| {
            d.pixels.extend_from_slice(row);
            d.first.push(i);
            d.copies.push(0);
            d.first.len() - 1
        });
        d.copies[u] += 1;
        d.of_row.push(u);
    }
    d
}

/// The reference side of a distance, packed once.
enum Refs {
    L2(PackedImages),
    Tiled(TiledImages),
}

/// A distance on flat rows of one shape.
struct Metric {
    distance: Distance,
    shape: [usize; 3],
    grid: usize,
    dim: usize,
    tile_pixels: usize,
}

impl Metric {
    fn new(distance: Distance, shape: [usize; 3], grid: usize) -> CoreResult<Self> {
        let (_, _, tile_pixels) = tile_geometry(shape, grid)?;
        Ok(Self {
            distance,
            shape,
            grid,
            dim: shape.iter().product(),
            tile_pixels,
        })
    }

    fn pack(&self, flat: &[u8]) -> CoreResult<Refs> {
        Ok(match self.distance {
            Distance::L2 => {
                let rows: Vec<&[u8]> = flat.chunks_exact(self.dim).collect();
                Refs::L2(PackedImages::from_rows(&rows))
            }
            Distance::Tiled => Refs::Tiled(TiledImages::from_flat(flat, self.shape, self.grid)?),
        })
    }

    /// Exact squared distances (per the metric) between `queries` (flat rows) and `refs`.
    fn matrix(&self, queries: &[u8], refs: &Refs, prefer_gpu: bool) -> CoreResult<(Vec<u32>, Backend)> {
        match (self.pack(queries)?, refs) {
            (Refs::L2(q), Refs::L2(r)) => pairwise_sq_l2(&q, r, prefer_gpu),
            (Refs::Tiled(q), Refs::Tiled(r)) => tiled_sq_l2_packed(&q, r, prefer_gpu),
            _ => Err(CoreError::Mismatch("query and reference packings differ".into())),
        }
    }

    /// Normalised distance of an exact squared distance under this metric.
    fn norm(&self, sq: u32) -> f64 {
        match self.distance {
            Distance::L2 => norm(sq, self.dim),
            Distance::Tiled => norm(sq, self.tile_pixels),
        }
    }
}

fn validate(cfg: &ExtractionConfig) -> CoreResult<()> {
    if cfg.n_neighbours == 0 {
        return Err(CoreError::Invalid("n_neighbours must be at least 1".into()));
    }
    if !(cfg.alpha.is_finite() && cfg.alpha > 0.0) {
        return Err(CoreError::Invalid(format!(
            "alpha must be positive, not {}",
            cfg.alpha
        )));
    }
    if !(cfg.delta.is_finite() && cfg.delta >= 0.0) {
        return Err(CoreError::Invalid(format!(
            "delta must be ≥ 0, not {}",
            cfg.delta
        )));
    }
    Ok(())
}

/// Scores every generation against the training set (both N x C x H x W u8 pixels back to back,
/// `shape` = [C, H, W]): nearest training image, plain and tiled ℓ2 to it, ℓ_rel, the criterion's
/// verdict and, for extractions, eidetic k. Byte-identical training rows are merged first (see the
/// module docs). Reports progress and honours cancellation through `ctx`.
pub fn score_generations(
    generations: &[u8],
    train: &[u8],
    shape: [usize; 3],
    cfg: &ExtractionConfig,
    prefer_gpu: bool,
    ctx: Option<&JobCtx<'_>>,
) -> CoreResult<(Vec<GenerationScore>, Backend)> {
    validate(cfg)?;
    let metric = Metric::new(cfg.distance, shape, cfg.grid)?;
    let dim = metric.dim;
    let n_gen = count_rows(generations, dim, "generations", shape)?;
    count_rows(train, dim, "training images", shape)?;
    let dd = dedupe(train, dim);
    let n_unique = dd.first.len();
    if n_unique == 0 {
        return Err(CoreError::Invalid("no training images to compare with".into()));
    }
    let refs = metric.pack(&dd.pixels)?;
    let n_eff = cfg.n_neighbours.min(n_unique);
    let block = block_rows(n_unique);
    let mut backend = Backend::Cpu;
    let mut rows = Vec::with_capacity(n_gen);
    // Per generation: distinct nearest image and extraction radius.
    let mut hit: Vec<(usize, f64)> = Vec::with_capacity(n_gen);
    for (bi, chunk) in generations.chunks(block * dim).enumerate() {
        if let Some(ctx) = ctx {
            ctx.checkpoint()?;
            ctx.progress(
                "extraction: nearest training images",
                (bi * block) as u64,
                n_gen as u64,
            );
        }
        let q = chunk.len() / dim;
        let (mat, used) = metric.matrix(chunk, &refs, prefer_gpu)?;
        backend = used;
        let top = top_k_rows(&mat, q, n_unique, n_eff, &|_, _| false);
        drop(mat);
        for (r, nb) in top.iter().enumerate() {
            let gi = bi * block + r;
            let Some(&(u1, v1)) = nb.first() else {
                return Err(CoreError::Invalid("no neighbours found".into()));
            };
            let x = &chunk[r * dim..(r + 1) * dim];
            let y = &dd.pixels[u1 * dim..(u1 + 1) * dim];
            let d1 = metric.norm(v1);
            let mean = nb.iter().map(|&(_, v)| metric.norm(v)).sum::<f64>() / nb.len() as f64;
            // d1 ≤ every neighbour distance, so a zero mean means an exact copy with no other image
            // around: score it 0.
            let rel = if mean > 0.0 { d1 / (cfg.alpha * mean) } else { 0.0 };
            let plain_sq = match cfg.distance {
                Distance::L2 => v1,
                Distance::Tiled => sq_diff_sum(x, y),
            };
            let tiled_sq = match cfg.distance {
                Distance::L2 => tiled_sq_l2_pair(x, y, shape, cfg.grid)?,
                Distance::Tiled => v1,
            };
            let (score, radius) = match cfg.criterion {
                Criterion::Relative => (rel, cfg.delta * cfg.alpha * mean),
                Criterion::Absolute => (d1, cfg.delta),
            };
            let extracted = score <= cfg.delta;
            hit.push((u1, radius));
            rows.push(GenerationScore {
                generation: gi,
                nearest: dd.first[u1],
                nearest_copies: dd.copies[u1],
                l2: norm(plain_sq, dim) as f32,
                tiled_l2: norm(tiled_sq, metric.tile_pixels) as f32,
                rel_l2: rel as f32,
                score: score as f32,
                extracted,
                eidetic_k: None,
            });
        }
    }

    // Eidetic k: distances from each extracted distinct image to all distinct images.
    let mut by_image: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.extracted) {
        by_image
            .entry(hit[row.generation].0)
            .or_default()
            .push(row.generation);
    }
    let images: Vec<usize> = by_image.keys().copied().collect();
    for (bi, ids) in images.chunks(block).enumerate() {
        if let Some(ctx) = ctx {
            ctx.checkpoint()?;
            ctx.progress("extraction: eidetic k", (bi * block) as u64, images.len() as u64);
        }
        let mut flat = Vec::with_capacity(ids.len() * dim);
        for &u in ids {
            flat.extend_from_slice(&dd.pixels[u * dim..(u + 1) * dim]);
        }
        let (mat, used) = metric.matrix(&flat, &refs, prefer_gpu)?;
        backend = used;
        for (r, u) in ids.iter().enumerate() {
            let drow: Vec<f64> = mat[r * n_unique..(r + 1) * n_unique]
                .iter()
                .map(|&v| metric.norm(v))
                .collect();
            for &gi in by_image.get(u).map_or(&[][..], Vec::as_slice) {
                let radius = hit[gi].1;
                let k = drow
                    .iter()
                    .zip(&dd.copies)
                    .filter(|(d, _)| **d <= radius)
                    .map(|(_, c)| c)
                    .sum();
                rows[gi].eidetic_k = Some(k);
            }
        }
    }
    Ok((rows, backend))
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

/// Components up to this size get an exact maximum clique.
const BK_MAX_VERTICES: usize = 500;
/// Recursive calls allowed per Bron–Kerbosch search before falling back to greedy.
const BK_MAX_STEPS: usize = 200_000;
/// Seeds tried by the greedy expansion.
const GREEDY_SEEDS: usize = 64;

/// The generation graph: sorted (neighbour, exact tiled squared distance) lists.
struct Graph {
    adj: Vec<Vec<(usize, u32)>>,
}

impl Graph {
    fn weight(&self, u: usize, v: usize) -> Option<u32> {
        let a = &self.adj[u];
        a.binary_search_by_key(&v, |&(j, _)| j).ok().map(|i| a[i].1)
    }

    fn adjacent(&self, u: usize, v: usize) -> bool {
        self.weight(u, v).is_some()
    }
}

fn bron_kerbosch(
    r: &mut Vec<usize>,
    p: Vec<usize>,
    x: Vec<usize>,
    adj: &[Vec<bool>],
    best: &mut Vec<usize>,
    steps: &mut usize,
) -> bool {
    *steps += 1;
    if *steps > BK_MAX_STEPS {
        return false;
    }
    if p.is_empty() {
        if x.is_empty() && r.len() > best.len() {
            best.clone_from(r);
        }
        return true;
    }
    if r.len() + p.len() <= best.len() {
        return true;
    }
    let pivot = p
        .iter()
        .chain(&x)
        .copied()
        .max_by_key(|&u| (p.iter().filter(|&&v| adj[u][v]).count(), std::cmp::Reverse(u)))
        .unwrap_or(p[0]);
    let mut p = p;
    let mut x = x;
    let cands: Vec<usize> = p.iter().copied().filter(|&v| !adj[pivot][v]).collect();
    for v in cands {
        r.push(v);
        let np: Vec<usize> = p.iter().copied().filter(|&w| adj[v][w]).collect();
        let nx: Vec<usize> = x.iter().copied().filter(|&w| adj[v][w]).collect();
        let ok = bron_kerbosch(r, np, nx, adj, best, steps);
        r.pop();
        if !ok {
            return false;
        }
        p.retain(|&w| w != v);
        x.push(v);
    }
    true
}

/// Exact maximum clique among `vs` (global ids), or `None` when the step budget ran out.
fn max_clique_exact(g: &Graph, vs: &[usize]) -> Option<Vec<usize>> {
    let adj: Vec<Vec<bool>> = vs
        .iter()
        .map(|&u| vs.iter().map(|&v| u != v && g.adjacent(u, v)).collect())
        .collect();
    let mut best = Vec::new();
    let mut steps = 0;
    let ok = bron_kerbosch(
        &mut Vec::new(),
        (0..vs.len()).collect(),
        Vec::new(),
        &adj,
        &mut best,
        &mut steps,
    );
    ok.then(|| best.into_iter().map(|i| vs[i]).collect())
}

/// Greedy clique expansion among `vs`: from each of the best-connected seeds, add vertices in
/// order of degree while they stay adjacent to all; keep the largest.
fn max_clique_greedy(g: &Graph, vs: &[usize]) -> Vec<usize> {
    let inside: BTreeSet<usize> = vs.iter().copied().collect();
    let deg = |u: usize| g.adj[u].iter().filter(|(v, _)| inside.contains(v)).count();
    let mut order: Vec<(usize, usize)> = vs.iter().map(|&u| (deg(u), u)).collect();
    order.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut best: Vec<usize> = Vec::new();
    for &(d, seed) in order.iter().take(GREEDY_SEEDS) {
        if d < best.len() {
            break;
        }
        let mut clique = vec![seed];
        for &(_, v) in &order {
            if v != seed && clique.iter().all(|&c| g.adjacent(c, v)) {
                clique.push(v);
            }
        }
        if clique.len() > best.len() {
            best = clique;
        }
    }
    best
}

/// Disjoint cliques of at least `k_min` vertices (see the module docs), with how each was found.
fn find_cliques(g: &Graph, k_min: usize, bk_max: usize) -> Vec<(Vec<usize>, CliqueMethod)> {
    let n = g.adj.len();
    // k-core pruning: a vertex in a k_min-clique has at least k_min - 1 neighbours.
    let mut alive = vec![true; n];
    let mut deg: Vec<usize> = g.adj.iter().map(Vec::len).collect();
    let mut stack: Vec<usize> = (0..n).filter(|&u| deg[u] + 1 < k_min).collect();
    while let Some(u) = stack.pop() {
        if !alive[u] {
            continue;
        }
        alive[u] = false;
        for &(v, _) in &g.adj[u] {
            if alive[v] {
                deg[v] -= 1;
                if deg[v] + 1 < k_min {
                    stack.push(v);
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut seen = vec![false; n];
    for s in 0..n {
        if !alive[s] || seen[s] {
            continue;
        }
        let mut comp = vec![s];
        seen[s] = true;
        let mut i = 0;
        while i < comp.len() {
            for &(v, _) in &g.adj[comp[i]] {
                if alive[v] && !seen[v] {
                    seen[v] = true;
                    comp.push(v);
                }
            }
            i += 1;
        }
        comp.sort_unstable();
        while comp.len() >= k_min {
            let exact = if comp.len() <= bk_max {
                max_clique_exact(g, &comp)
            } else {
                None
            };
            let (mut clique, method) = match exact {
                Some(c) => (c, CliqueMethod::BronKerbosch),
                None => (max_clique_greedy(g, &comp), CliqueMethod::Greedy),
            };
            if clique.len() < k_min {
                break;
            }
            clique.sort_unstable();
            comp.retain(|v| clique.binary_search(v).is_err());
            out.push((clique, method));
        }
    }
    out.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
    out
}

/// Groups of near-identical generations (N x C x H x W u8 pixels back to back): disjoint cliques
/// of at least `cfg.k_min` generations whose pairwise normalised tiled distances are all ≤
/// `cfg.delta_gen` (see the module docs). With `scores` (from [`score_generations`] on the same
/// generations) each clique names the training image most of its members are nearest to.
pub fn cliques(
    generations: &[u8],
    shape: [usize; 3],
    cfg: &CliqueConfig,
    scores: Option<&[GenerationScore]>,
    prefer_gpu: bool,
    ctx: Option<&JobCtx<'_>>,
) -> CoreResult<(Vec<Clique>, Backend)> {
    if cfg.k_min < 2 {
        return Err(CoreError::Invalid(format!(
            "k_min must be at least 2, not {}",
            cfg.k_min
        )));
    }
    if !(cfg.delta_gen.is_finite() && cfg.delta_gen >= 0.0) {
        return Err(CoreError::Invalid(format!(
            "delta_gen must be ≥ 0, not {}",
            cfg.delta_gen
        )));
    }
    let metric = Metric::new(Distance::Tiled, shape, cfg.grid)?;
    let dim = metric.dim;
    let n = count_rows(generations, dim, "generations", shape)?;
    if let Some(s) = scores
        && s.len() != n
    {
        return Err(CoreError::Mismatch(format!(
            "{} scores for {n} generations",
            s.len()
        )));
    }
    let mut backend = Backend::Cpu;
    let mut adj: Vec<Vec<(usize, u32)>> = vec![Vec::new(); n];
    if n > 0 {
        let all = metric.pack(generations)?;
        let block = block_rows(n);
        for (bi, chunk) in generations.chunks(block * dim).enumerate() {
            if let Some(ctx) = ctx {
                ctx.checkpoint()?;
                ctx.progress("extraction: generation cliques", (bi * block) as u64, n as u64);
            }
            let (mat, used) = metric.matrix(chunk, &all, prefer_gpu)?;
            backend = used;
            for (r, drow) in mat.chunks_exact(n).enumerate() {
                let i = bi * block + r;
                adj[i] = drow
                    .iter()
                    .enumerate()
                    .filter(|&(j, &v)| j != i && metric.norm(v) <= cfg.delta_gen)
                    .map(|(j, &v)| (j, v))
                    .collect();
            }
        }
    }
    let g = Graph { adj };
    let out = find_cliques(&g, cfg.k_min, BK_MAX_VERTICES)
        .into_iter()
        .map(|(members, method)| clique_summary(&g, &metric, members, method, scores))
        .collect();
    Ok((out, backend))
}

fn clique_summary(
    g: &Graph,
    metric: &Metric,
    members: Vec<usize>,
    method: CliqueMethod,
    scores: Option<&[GenerationScore]>,
) -> Clique {
    let mut max_sq = 0u32;
    for (a, &u) in members.iter().enumerate() {
        for &v in &members[a + 1..] {
            max_sq = max_sq.max(g.weight(u, v).unwrap_or(0));
        }
    }
    let mut c = Clique {
        size: members.len(),
        max_tiled_l2: metric.norm(max_sq) as f32,
        method,
        nearest_train: None,
        nearest_copies: None,
        nearest_rel_l2: None,
        nearest_l2: None,
        members_extracted: None,
        members,
    };
    if let Some(scores) = scores {
        let mut votes: BTreeMap<usize, usize> = BTreeMap::new();
        for &m in &c.members {
            *votes.entry(scores[m].nearest).or_default() += 1;
        }
        // Most votes; the BTreeMap order makes ties go to the smaller index.
        let top = votes
            .iter()
            .fold(None::<(usize, usize)>, |best, (&t, &k)| match best {
                Some((_, bk)) if bk >= k => best,
                _ => Some((t, k)),
            })
            .map(|(t, _)| t);
        if let Some(t) = top {
            let hits: Vec<&GenerationScore> = c
                .members
                .iter()
                .map(|&m| &scores[m])
                .filter(|s| s.nearest == t)
                .collect();
            c.nearest_train = Some(t);
            c.nearest_copies = hits.first().map(|s| s.nearest_copies);
            c.nearest_rel_l2 = hits.iter().map(|s| s.rel_l2).reduce(f32::min);
            c.nearest_l2 = hits.iter().map(|s| s.l2).reduce(f32::min);
        }
        c.members_extracted = Some(c.members.iter().filter(|&&m| scores[m].extracted).count());
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: [usize; 3] = [3, 16, 16];
    const DIM: usize = 3 * 16 * 16;

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }

        fn image(&mut self) -> Vec<u8> {
            (0..DIM).map(|_| (self.next() >> 23) as u8).collect()
        }

        /// `img` with every pixel moved by up to ±`amp` levels.
        fn noisy(&mut self, img: &[u8], amp: i32) -> Vec<u8> {
            img.iter()
                .map(|&p| {
                    let e = (self.next() % (2 * amp as u64 + 1)) as i32 - amp;
                    (i32::from(p) + e).clamp(0, 255) as u8
                })
                .collect()
        }
    }

    /// 115 training rows: images 0..5 planted 4 times each (rows 0..5 and 100..115 hold copies),
    /// all others unique.
    fn planted_train(rng: &mut Rng) -> (Vec<Vec<u8>>, Vec<usize>, Vec<usize>) {
        let mut train: Vec<Vec<u8>> = (0..100).map(|_| rng.image()).collect();
        let mut dup_rows: Vec<usize> = (0..5).collect();
        for _ in 0..3 {
            for i in 0..5 {
                dup_rows.push(train.len());
                train.push(train[i].clone());
            }
        }
        let singles: Vec<usize> = (5..100).collect();
        (train, dup_rows, singles)
    }

    #[test]
    fn planted_copies_are_extracted_and_fresh_images_are_not() {
        let mut rng = Rng(42);
        let (train, dup_rows, singles) = planted_train(&mut rng);
        let mut gens: Vec<Vec<u8>> = vec![
            train[0].clone(),         // 0: exact copy of duplicated image 0
            train[100].clone(),       // 1: exact copy of another copy of image 0
            rng.noisy(&train[1], 4),  // 2: noisy copy of duplicated image 1
            rng.noisy(&train[50], 3), // 3: noisy copy of singleton 50
            train[60].clone(),        // 4: exact copy of singleton 60
        ];
        for _ in 0..25 {
            gens.push(rng.image()); // 5..30: fresh images
        }
        let flat_train = train.concat();
        let flat_gens = gens.concat();
        let truth = PlantedTruth {
            duplicated: Some(&dup_rows),
            singletons: Some(&singles),
        };
        for distance in [Distance::L2, Distance::Tiled] {
            let cfg = ExtractionConfig {
                distance,
                cliques: None,
                ..ExtractionConfig::default()
            };
            let rep = extraction_report(&flat_gens, &flat_train, SHAPE, &cfg, &truth, false, None).unwrap();
            let extracted: Vec<usize> = rep
                .rows
                .iter()
                .filter(|r| r.extracted)
                .map(|r| r.generation)
                .collect();
            assert_eq!(extracted, vec![0, 1, 2, 3, 4], "{distance:?}");
            for r in &rep.rows[..5] {
                assert!(r.rel_l2 < 1.0 / 3.0, "{r:?}");
            }
            for r in &rep.rows[5..] {
                assert!(r.rel_l2 > 1.0 / 3.0, "{r:?}");
                assert!(r.eidetic_k.is_none());
            }
            let nearest: Vec<usize> = rep.rows[..5].iter().map(|r| r.nearest).collect();
            assert_eq!(nearest, vec![0, 0, 1, 50, 60]);
            assert_eq!(rep.rows[0].rel_l2, 0.0);
            assert_eq!(rep.rows[0].l2, 0.0);
            assert_eq!(rep.rows[0].nearest_copies, 4);
            assert_eq!(rep.rows[3].nearest_copies, 1);
            // Eidetic k counts the copies of the extracted image.
            assert_eq!(rep.rows[0].eidetic_k, Some(4));
            assert_eq!(rep.rows[2].eidetic_k, Some(4));
            assert_eq!(rep.rows[3].eidetic_k, Some(1));
            let s = &rep.summary;
            assert_eq!(s.n_samples, 30);
            assert_eq!(s.n_train, 115);
            assert_eq!(s.n_train_unique, 100);
            assert_eq!(s.n_extracted, 5);
            assert_eq!(s.unique_train_extracted, 4);
            assert_eq!(s.n_planted_dup_images, Some(5));
            assert_eq!(s.planted_dup_extracted_frac, Some(2.0 / 5.0));
            assert_eq!(s.n_singletons, Some(95));
            assert_eq!(s.singleton_extracted_frac, Some(2.0 / 95.0));
            let img0 = &rep.extracted[0];
            assert_eq!(
                (img0.train_index, img0.copies, img0.generations.clone()),
                (0, 4, vec![0, 1])
            );
            assert_eq!(img0.best_generation, 0);
            assert_eq!(
                rep.extracted.iter().map(|e| e.train_index).collect::<Vec<_>>(),
                vec![0, 1, 50, 60]
            );
            // The report round-trips through JSON.
            let json = serde_json::to_string(&rep).unwrap();
            let back: ExtractionReport = serde_json::from_str(&json).unwrap();
            assert_eq!(back, rep);
        }
    }

    #[test]
    fn absolute_criterion_and_normalisation() {
        let mut rng = Rng(7);
        let train: Vec<Vec<u8>> = (0..20).map(|_| rng.image()).collect();
        // A generation that differs from train[3] by exactly 51 levels (0.2) in every pixel.
        let shifted: Vec<u8> = train[3]
            .iter()
            .map(|&p| if p < 128 { p + 51 } else { p - 51 })
            .collect();
        let gens = [shifted, rng.image()].concat();
        let cfg = ExtractionConfig {
            criterion: Criterion::Absolute,
            delta: 0.25,
            cliques: None,
            ..ExtractionConfig::default()
        };
        let (rows, backend) = score_generations(&gens, &train.concat(), SHAPE, &cfg, false, None).unwrap();
        assert_eq!(backend, Backend::Cpu);
        assert_eq!(rows[0].nearest, 3);
        assert!((rows[0].l2 - 0.2).abs() < 1e-6, "{}", rows[0].l2);
        assert!((rows[0].tiled_l2 - 0.2).abs() < 1e-6, "{}", rows[0].tiled_l2);
        assert_eq!(rows[0].score, rows[0].l2);
        assert!(rows[0].extracted && !rows[1].extracted);
        // Eidetic radius is δ: only train[3] itself lies within 0.25 of train[3].
        assert_eq!(rows[0].eidetic_k, Some(1));
        // The denominator uses at most the distinct images there are.
        let cfg = ExtractionConfig {
            n_neighbours: 1000,
            cliques: None,
            ..ExtractionConfig::default()
        };
        assert_eq!(
            score_generations(&gens, &train.concat(), SHAPE, &cfg, false, None)
                .unwrap()
                .0
                .len(),
            2
        );
    }

    #[test]
    fn tiled_distance_sees_a_local_difference_plain_l2_dilutes() {
        let mut rng = Rng(3);
        let base = rng.image();
        let mut gen_img = base.clone();
        // Change one 4x4 tile of channel 0 completely: plain l2 stays small, tiled l2 does not.
        for y in 0..4 {
            for x in 0..4 {
                gen_img[y * 16 + x] = 255 - base[y * 16 + x];
            }
        }
        let (rows, _) = score_generations(
            &gen_img,
            &base,
            SHAPE,
            &ExtractionConfig {
                criterion: Criterion::Absolute,
                delta: 0.2,
                ..ExtractionConfig::default()
            },
            false,
            None,
        )
        .unwrap();
        assert!(rows[0].l2 < 0.2 && rows[0].extracted, "{:?}", rows[0]);
        assert!(rows[0].tiled_l2 > 2.0 * rows[0].l2, "{:?}", rows[0]);
    }

    #[test]
    fn bad_inputs_are_clear_errors() {
        let img = vec![0u8; DIM];
        let cfg = ExtractionConfig::default();
        assert!(matches!(
            score_generations(&img[..DIM - 1], &img, SHAPE, &cfg, false, None),
            Err(CoreError::Mismatch(_))
        ));
        assert!(matches!(
            score_generations(&img, &[], SHAPE, &cfg, false, None),
            Err(CoreError::Invalid(_))
        ));
        let bad_grid = ExtractionConfig {
            grid: 5,
            ..ExtractionConfig::default()
        };
        let err = score_generations(&img, &img, SHAPE, &bad_grid, false, None).unwrap_err();
        assert!(err.to_string().contains("divisible by 5"), "{err}");
        let truth_rows = [7usize];
        let truth = PlantedTruth {
            duplicated: Some(&truth_rows),
            singletons: None,
        };
        assert!(extraction_report(&img, &img, SHAPE, &cfg, &truth, false, None).is_err());
    }

    #[test]
    fn cancellation_stops_scoring() {
        let cancel = crate::job::CancelToken::new();
        cancel.cancel();
        let sink = crate::job::NullSink;
        let ctx = JobCtx::new(&cancel, &sink);
        let img = vec![0u8; DIM];
        let err = score_generations(&img, &img, SHAPE, &ExtractionConfig::default(), false, Some(&ctx))
            .unwrap_err();
        assert!(err.is_cancelled());
    }

    #[test]
    fn cliques_find_the_planted_group_and_nothing_else() {
        let mut rng = Rng(11);
        let train: Vec<Vec<u8>> = (0..30).map(|_| rng.image()).collect();
        let base = rng.image(); // not in the training set
        let small = rng.image();
        let mut gens: Vec<Vec<u8>> = (0..20).map(|_| rng.image()).collect();
        let mut planted = Vec::new();
        for k in 0..12usize {
            planted.push(gens.len());
            gens.push(rng.noisy(&base, 3));
            if k.is_multiple_of(3) {
                gens.push(rng.image());
            }
        }
        // A near-identical group below k_min, and copies of a training image below k_min.
        for _ in 0..5 {
            gens.push(rng.noisy(&small, 3));
        }
        for _ in 0..3 {
            gens.push(rng.noisy(&train[4], 2));
        }
        let flat = gens.concat();
        let cc = CliqueConfig::default();
        let (found, _) = cliques(&flat, SHAPE, &cc, None, false, None).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].members, planted);
        assert_eq!(found[0].size, 12);
        assert_eq!(found[0].method, CliqueMethod::BronKerbosch);
        assert!(found[0].max_tiled_l2 <= cc.delta_gen as f32 && found[0].max_tiled_l2 > 0.0);
        assert!(found[0].nearest_train.is_none());
        // With scores: the clique is not an extraction (its image is not in the training set).
        let cfg = ExtractionConfig {
            cliques: Some(CliqueConfig { k_min: 3, ..cc }),
            ..ExtractionConfig::default()
        };
        let rep = extraction_report(
            &flat,
            &train.concat(),
            SHAPE,
            &cfg,
            &PlantedTruth::default(),
            false,
            None,
        )
        .unwrap();
        assert_eq!(rep.summary.n_extracted, 3);
        assert_eq!(
            rep.cliques.iter().map(|c| c.size).collect::<Vec<_>>(),
            vec![12, 5, 3]
        );
        assert_eq!(rep.cliques[0].members_extracted, Some(0));
        let copies = &rep.cliques[2];
        assert_eq!(copies.nearest_train, Some(4));
        assert_eq!(copies.members_extracted, Some(3));
        assert!(copies.nearest_rel_l2.unwrap() < 1.0 / 3.0);
    }

    fn graph_from_edges(n: usize, edges: &[(usize, usize)]) -> Graph {
        let mut adj = vec![Vec::new(); n];
        for &(a, b) in edges {
            adj[a].push((b, 1));
            adj[b].push((a, 1));
        }
        for a in &mut adj {
            a.sort_unstable();
            a.dedup();
        }
        Graph { adj }
    }

    #[test]
    fn exact_and_greedy_cliques_on_a_known_graph() {
        // Vertices 0..6 form a 6-clique, 6..10 a 4-clique; a path 10-11-12-13 and bridge 5-6.
        let mut edges = Vec::new();
        for a in 0..6 {
            for b in a + 1..6 {
                edges.push((a, b));
            }
        }
        for a in 6..10 {
            for b in a + 1..10 {
                edges.push((a, b));
            }
        }
        edges.extend([(5, 6), (10, 11), (11, 12), (12, 13), (0, 7)]);
        let g = graph_from_edges(14, &edges);
        let exact = find_cliques(&g, 4, BK_MAX_VERTICES);
        assert_eq!(
            exact,
            vec![
                ((0..6).collect::<Vec<_>>(), CliqueMethod::BronKerbosch),
                ((6..10).collect(), CliqueMethod::BronKerbosch)
            ]
        );
        let greedy = find_cliques(&g, 4, 0);
        assert_eq!(
            greedy,
            vec![
                ((0..6).collect::<Vec<_>>(), CliqueMethod::Greedy),
                ((6..10).collect(), CliqueMethod::Greedy)
            ]
        );
        // A 5-cycle has no triangle.
        let cycle = graph_from_edges(5, &[(0, 1), (1, 2), (2, 3), (3, 4), (4, 0)]);
        assert!(find_cliques(&cycle, 3, BK_MAX_VERTICES).is_empty());
    }
}
