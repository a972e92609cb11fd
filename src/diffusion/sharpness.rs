//! Sharpness of the learned probability landscape (Jeon, Kim & No, "Understanding Memorization in
//! Generative Models via Sharpness in Probability Landscapes", arXiv:2412.04140; spec 07 A).
//!
//! The score is s(x, t) = -eps(x, t) / sigma_t, so the Hessian of log p_t is
//! H = ds/dx = -(1 / sigma_t) J with J = d eps / dx (never formed). A memorized image sits at an
//! isolated sharp peak: the model contracts every direction back to it, so H has many large
//! negative eigenvalues; a generalised one sits on a broad ridge, flat along the data.
//!
//! rote works with the dimensionless sigma_t^2 H = -sigma_t J, whose eigenvalues lie near -1 in a
//! direction the model pulls fully back to the image and near 0 along the data. The learned J is
//! not exactly symmetric, so the operator is symmetrised, A v = -sigma_t (J v + J^T v) / 2 (the
//! spec's pitfall): J v is a central difference of two forward passes along v (step `fd_step`),
//! J^T v a reverse-mode gradient of <eps(x), v>. Lanczos with full reorthogonalisation from a
//! seeded Rademacher start vector gives Ritz values and weights; as stochastic Lanczos
//! quadrature (Ubaru, Chen & Saad 2017) they estimate the spectrum, from which come
//! - `sharpness`, the fraction of eigenvalues below -`tau` (the spec's "count of eigenvalues
//!   below -tau", over D): 1 for a point mass, lower the more directions are flat; this is the
//!   score shown everywhere;
//! - `lambda_min`, the most negative eigenvalue (the paper's sharpest direction);
//! - `mean_eig`, tr(sigma^2 H) / D, the mean curvature (Hutchinson's trace along the start vector).
//!
//! On the demo DDPMs with planted duplicates (t = 50 of 1000, tau 0.5, 12 iterations) the
//! fraction separates duplicated from single training images with AUC 0.998 (8x8 digits) and
//! 0.999 (28x28 MNIST); -mean_eig gives 0.999 and 0.958, lambda_min only 0.88 and 0.60: every
//! training image has some direction the model pulls back fully, a memorized one has almost
//! only such directions. Every image is evaluated at x_t = sqrt(abar_t) x + sigma_t eps with its
//! own seeded noise.

use candle_core::{Tensor, Var};

use super::denoiser::Denoiser;
use super::model::NormalStream;
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;

/// Settings (the paper leaves thresholds and k open; these are rote's, exposed).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SharpnessConfig {
    /// Timestep of T at which the landscape is probed (small: spec 07 suggests t/T in 0.02-0.1).
    pub t: usize,
    /// Lanczos iterations (Ritz values per image).
    pub iterations: usize,
    /// Threshold of `sharpness` on the dimensionless eigenvalues.
    pub tau: f64,
    /// Central-difference step of J v, relative to |v| = 1.
    pub fd_step: f64,
    /// Seed of the perturbation noise and the start vectors.
    pub seed: u64,
    /// Images per batch.
    pub batch: usize,
}

impl Default for SharpnessConfig {
    fn default() -> Self {
        Self {
            t: 50,
            iterations: 12,
            tau: 0.5,
            fd_step: 1e-2,
            seed: 0,
            batch: 32,
        }
    }
}

/// One image's figures (eigenvalues of the dimensionless sigma_t^2 H).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SharpnessRow {
    /// The memorization score: the estimated fraction of eigenvalues below -tau (higher =
    /// sharper).
    pub sharpness: f64,
    /// Most negative Ritz value.
    pub lambda_min: f64,
    /// Mean eigenvalue (estimated).
    pub mean_eig: f64,
    /// Ritz values, ascending.
    pub ritz: Vec<f64>,
}

/// Which eigen-solver and operator, stamped on results (spec 07's pitfall).
pub const SOLVER: &str = "Lanczos (full reorthogonalisation) on the symmetrised Hessian \
                          -sigma_t (J + J^T) / 2, J v by central differences, J^T v by reverse mode";

/// The symmetrised, dimensionless Hessian applied to one direction per image: rows of `v`
/// (B x D) give rows of the result.
pub struct HessianOp<'a> {
    model: &'a dyn Denoiser,
    x: Tensor,
    t: Vec<u32>,
    sigma: f64,
    h: f64,
}

impl<'a> HessianOp<'a> {
    /// The operator at `x` (B x C x H x W, already noised to timestep `t`).
    pub fn new(model: &'a dyn Denoiser, x: Tensor, t: usize, fd_step: f64) -> CoreResult<Self> {
        let b = x.dim(0)?;
        let ab = model.schedule().alpha_bar[t.min(model.schedule().len().saturating_sub(1))];
        Ok(Self {
            model,
            x,
            t: vec![t as u32; b],
            sigma: (1.0 - ab).sqrt(),
            h: fd_step,
        })
    }

    /// J v by central differences (B x D in, B x D out).
    pub fn jvp(&self, v: &Tensor) -> CoreResult<Tensor> {
        let v = v.reshape(self.x.shape())?;
        let step = (&v * self.h)?;
        let plus = self.model.eps_inference(&(&self.x + &step)?, &self.t)?;
        let minus = self.model.eps_inference(&(&self.x - &step)?, &self.t)?;
        Ok(((plus - minus)? / (2.0 * self.h))?.flatten_from(1)?.detach())
    }

    /// J^T v by reverse mode (B x D in, B x D out).
    pub fn vjp(&self, v: &Tensor) -> CoreResult<Tensor> {
        let x = Var::from_tensor(&self.x)?;
        let out = self.model.eps(x.as_tensor(), &self.t)?;
        let dot = (out.flatten_from(1)? * v)?.sum_all()?;
        let grads = dot.backward()?;
        let g = grads
            .get(x.as_tensor())
            .ok_or_else(|| CoreError::Invalid("the model's output does not depend on its input".into()))?;
        Ok(g.flatten_from(1)?.detach())
    }

    /// A v = -sigma_t (J v + J^T v) / 2.
    pub fn apply(&self, v: &Tensor) -> CoreResult<Tensor> {
        let sym = (self.jvp(v)? + self.vjp(v)?)?;
        Ok((sym * (-self.sigma / 2.0))?)
    }
}

/// Seeded x_t of each image: sqrt(abar_t) x0 + sigma_t eps, eps from stream (seed, id).
pub fn noised(model: &dyn Denoiser, x0: &Tensor, ids: &[usize], cfg: &SharpnessConfig) -> CoreResult<Tensor> {
    let ab = model.schedule().alpha_bar[cfg.t.min(model.schedule().len().saturating_sub(1))];
    let len = x0.elem_count() / x0.dim(0)?.max(1);
    let mut v = vec![0f32; x0.elem_count()];
    for (j, chunk) in v.chunks_mut(len).enumerate() {
        NormalStream::new(cfg.seed ^ 0x5a4a_5053, ids[j] as u64).fill(chunk);
    }
    let eps = Tensor::from_vec(v, x0.shape(), x0.device())?;
    Ok(((x0 * ab.sqrt())? + (eps * (1.0 - ab).sqrt())?)?)
}

/// Sharpness of images `x0` (B x C x H x W, model range) with data-set ids `ids` (their noise
/// and start vectors), in batches; progress counts Lanczos iterations.
pub fn sharpness(
    model: &dyn Denoiser,
    x0: &Tensor,
    ids: &[usize],
    cfg: &SharpnessConfig,
    ctx: &JobCtx<'_>,
) -> CoreResult<Vec<SharpnessRow>> {
    let n = x0.dim(0)?;
    if ids.len() != n {
        return Err(CoreError::Invalid(format!("{} ids for {n} images", ids.len())));
    }
    let batch = cfg.batch.max(1);
    let total = (n.div_ceil(batch) * cfg.iterations.max(1)) as u64;
    let mut done = 0u64;
    let mut rows = Vec::with_capacity(n);
    for start in (0..n).step_by(batch) {
        let b = batch.min(n - start);
        let chunk = x0.narrow(0, start, b)?;
        let xt = noised(model, &chunk, &ids[start..start + b], cfg)?.detach();
        let op = HessianOp::new(model, xt, cfg.t, cfg.fd_step)?;
        let starts = start_vectors(&ids[start..start + b], chunk.elem_count() / b, cfg.seed);
        let (alphas, betas) = lanczos(&op, &starts, cfg.iterations.max(1), &mut |_| {
            ctx.checkpoint()?;
            done += 1;
            ctx.progress("sharpness", done, total);
            Ok(())
        })?;
        for (a, bt) in alphas.iter().zip(&betas) {
            rows.push(summarise(a, bt, cfg.tau));
        }
    }
    Ok(rows)
}

/// Seeded Rademacher start vectors, unit length, one per image.
fn start_vectors(ids: &[usize], d: usize, seed: u64) -> Vec<Vec<f64>> {
    use rand::Rng as _;
    use rand::SeedableRng as _;
    ids.iter()
        .map(|&id| {
            let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9) ^ id as u64);
            let s = 1.0 / (d as f64).sqrt();
            (0..d).map(|_| if r.random::<bool>() { s } else { -s }).collect()
        })
        .collect()
}

/// The Lanczos tridiagonals of a batch: (alphas, betas), one vector each per image.
type Tridiagonals = (Vec<Vec<f64>>, Vec<Vec<f64>>);

/// Batched Lanczos with full reorthogonalisation: the tridiagonal (alpha, beta) of each image.
/// `tick` runs after every operator application (progress, cancel).
fn lanczos(
    op: &HessianOp<'_>,
    starts: &[Vec<f64>],
    m: usize,
    tick: &mut dyn FnMut(usize) -> CoreResult<()>,
) -> CoreResult<Tridiagonals> {
    let b = starts.len();
    let d = starts.first().map_or(0, Vec::len);
    let m = m.min(d.max(1));
    let mut basis: Vec<Vec<Vec<f64>>> = starts.iter().map(|s| vec![s.clone()]).collect();
    let mut alphas = vec![Vec::with_capacity(m); b];
    let mut betas = vec![Vec::with_capacity(m); b];
    let mut live = vec![true; b];
    let zeros = vec![0.0; d];
    for k in 0..m {
        let cur: Vec<f32> = basis
            .iter()
            .flat_map(|q| q.get(k).unwrap_or(&zeros).iter().map(|&v| v as f32))
            .collect();
        let w = op
            .apply(&Tensor::from_vec(cur, (b, d), op.model.device())?)?
            .to_dtype(candle_core::DType::F32)?
            .to_vec2::<f32>()?;
        tick(k)?;
        for i in 0..b {
            if !live[i] {
                continue;
            }
            let mut w: Vec<f64> = w[i].iter().map(|&v| f64::from(v)).collect();
            let q = &basis[i];
            alphas[i].push(dot(&w, &q[k]));
            // Full reorthogonalisation (twice is enough) keeps the Ritz values honest in f32.
            for _ in 0..2 {
                for qj in q {
                    let c = dot(&w, qj);
                    w.iter_mut().zip(qj).for_each(|(a, b)| *a -= c * b);
                }
            }
            let beta = dot(&w, &w).sqrt();
            // An invariant subspace is found (beta ~ 0): this image's spectrum is exact.
            if k + 1 == m || beta < 1e-10 {
                live[i] = false;
                continue;
            }
            betas[i].push(beta);
            w.iter_mut().for_each(|v| *v /= beta);
            basis[i].push(w);
        }
        if !live.iter().any(|&l| l) {
            break;
        }
    }
    Ok((alphas, betas))
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Ritz values and quadrature weights of the tridiagonal, summarised.
fn summarise(alpha: &[f64], beta: &[f64], tau: f64) -> SharpnessRow {
    let k = alpha.len();
    let mut t = vec![vec![0.0; k]; k];
    for i in 0..k {
        t[i][i] = alpha[i];
        if i + 1 < k {
            let b = beta.get(i).copied().unwrap_or(0.0);
            t[i][i + 1] = b;
            t[i + 1][i] = b;
        }
    }
    let (vals, vecs) = jacobi_eigen(t);
    let mut pairs: Vec<(f64, f64)> = vals
        .iter()
        .enumerate()
        .map(|(j, &v)| (v, vecs[0][j] * vecs[0][j]))
        .collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mean_eig: f64 = pairs.iter().map(|(v, w)| v * w).sum();
    let frac_sharp: f64 = pairs.iter().filter(|(v, _)| *v < -tau).map(|(_, w)| w).sum();
    SharpnessRow {
        sharpness: frac_sharp,
        lambda_min: pairs.first().map_or(0.0, |p| p.0),
        mean_eig,
        ritz: pairs.iter().map(|p| p.0).collect(),
    }
}

/// Eigenvalues and eigenvectors (columns) of a small symmetric matrix by cyclic Jacobi rotations.
pub fn jacobi_eigen(mut a: Vec<Vec<f64>>) -> (Vec<f64>, Vec<Vec<f64>>) {
    let n = a.len();
    let mut v: Vec<Vec<f64>> = (0..n)
        .map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
        .collect();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        if off < 1e-24 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                if a[p][q].abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for row in a.iter_mut() {
                    let (akp, akq) = (row[p], row[q]);
                    row[p] = c * akp - s * akq;
                    row[q] = s * akp + c * akq;
                }
                let (rp, rq) = (a[p].clone(), a[q].clone());
                for (k, (apk, aqk)) in rp.iter().zip(&rq).enumerate() {
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                for row in v.iter_mut() {
                    let (vp, vq) = (row[p], row[q]);
                    row[p] = c * vp - s * vq;
                    row[q] = s * vp + c * vq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i][i]).collect(), v)
}

/// Sharpness of a model's training images.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SharpnessReport {
    /// Model id.
    pub model: String,
    /// Settings.
    pub config: SharpnessConfig,
    /// Eigen-solver and operator.
    pub solver: String,
    /// Data-set index of each row.
    pub indices: Vec<usize>,
    /// Per image.
    pub rows: Vec<SharpnessRow>,
    /// Data-set indices of the duplicated training images (planted, or found byte for byte).
    pub duplicated: Vec<usize>,
    /// AUC of `sharpness` separating duplicated from single training images.
    pub auc_duplicated: Option<f64>,
    /// Mean sharpness of the duplicated images.
    pub mean_duplicated: Option<f64>,
    /// Mean sharpness of the single images.
    pub mean_single: Option<f64>,
}

impl SharpnessReport {
    /// Sharpness of data-set image `index`, when it was evaluated.
    pub fn of(&self, index: usize) -> Option<&SharpnessRow> {
        self.indices
            .iter()
            .position(|&i| i == index)
            .map(|k| &self.rows[k])
    }
}

/// Sharpness of the training images of `model` (rote's card, or every image of a user's `ds`):
/// every duplicated image and up to `max_images` in all, the rest a seeded choice of singles.
pub fn training_sharpness(
    model: &dyn Denoiser,
    model_dir: &std::path::Path,
    ds: &crate::data::Dataset,
    cfg: &SharpnessConfig,
    max_images: usize,
    ctx: &JobCtx<'_>,
) -> CoreResult<SharpnessReport> {
    use rand::SeedableRng as _;
    use rand::seq::SliceRandom as _;
    let (rows, duplicated) = super::extract::training_rows(model, model_dir, ds)?;
    let mut singles: Vec<usize> = rows
        .iter()
        .copied()
        .filter(|i| duplicated.binary_search(i).is_err())
        .collect();
    singles.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed));
    singles.truncate(max_images.saturating_sub(duplicated.len()).max(1));
    let mut indices: Vec<usize> = duplicated.iter().copied().chain(singles).collect();
    indices.sort_unstable();
    indices.dedup();
    let mut out = Vec::with_capacity(indices.len());
    for chunk in indices.chunks(256) {
        let x0 = super::model::to_model_range(ds, chunk, model.device())?;
        out.extend(sharpness(model, &x0, chunk, cfg, ctx)?);
    }
    let (mut dup, mut single) = (Vec::new(), Vec::new());
    for (i, r) in indices.iter().zip(&out) {
        if duplicated.binary_search(i).is_ok() {
            dup.push(r.sharpness);
        } else {
            single.push(r.sharpness);
        }
    }
    let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    let auc_duplicated = if dup.is_empty() || single.is_empty() {
        None
    } else {
        let labels: Vec<bool> = dup
            .iter()
            .map(|_| true)
            .chain(single.iter().map(|_| false))
            .collect();
        let scores: Vec<f64> = dup.iter().chain(&single).copied().collect();
        Some(crate::measure::roc::roc(&scores, &labels)?.auc)
    };
    Ok(SharpnessReport {
        model: model.id().to_string(),
        config: cfg.clone(),
        solver: SOLVER.to_string(),
        indices,
        rows: out,
        mean_duplicated: mean(&dup),
        mean_single: mean(&single),
        duplicated,
        auc_duplicated,
    })
}

/// Sharpness of an extraction's generations, stored with the run.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GenerationSharpness {
    /// Settings.
    pub config: SharpnessConfig,
    /// `sharpness` of each generation, in generation order.
    pub values: Vec<f64>,
    /// AUC of sharpness separating the extracted generations from the others (at the run's
    /// threshold), when there are both.
    pub auc_extracted: Option<f64>,
    /// Mean sharpness of the extracted generations.
    pub mean_extracted: Option<f64>,
    /// Mean sharpness of the others.
    pub mean_other: Option<f64>,
}

/// Sharpness of generations given as bytes (N x C x H x W on `max_value`'s scale); `extracted`
/// marks the ones the extraction attack counted.
pub fn generation_sharpness(
    model: &dyn Denoiser,
    gens: &[u8],
    max_value: u8,
    extracted: &[bool],
    cfg: &SharpnessConfig,
    ctx: &JobCtx<'_>,
) -> CoreResult<GenerationSharpness> {
    let [c, h, w] = model.shape();
    let len = c * h * w;
    let n = gens.len() / len.max(1);
    let max = f32::from(max_value.max(1));
    let mut values = Vec::with_capacity(n);
    for start in (0..n).step_by(256) {
        let end = (start + 256).min(n);
        let px: Vec<f32> = gens[start * len..end * len]
            .iter()
            .map(|&p| f32::from(p) / max * 2.0 - 1.0)
            .collect();
        let x0 = Tensor::from_vec(px, (end - start, c, h, w), model.device())?;
        let ids: Vec<usize> = (start..end).collect();
        values.extend(
            sharpness(model, &x0, &ids, cfg, ctx)?
                .into_iter()
                .map(|r| r.sharpness),
        );
    }
    let split = |flag: bool| -> Vec<f64> {
        values
            .iter()
            .zip(extracted)
            .filter(|(_, e)| **e == flag)
            .map(|(v, _)| *v)
            .collect()
    };
    let (ext, other) = (split(true), split(false));
    let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    let auc_extracted = if ext.is_empty() || other.is_empty() {
        None
    } else {
        let labels: Vec<bool> = extracted.iter().take(values.len()).copied().collect();
        Some(crate::measure::roc::roc(&values, &labels)?.auc)
    };
    Ok(GenerationSharpness {
        config: cfg.clone(),
        mean_extracted: mean(&ext),
        mean_other: mean(&other),
        values,
        auc_extracted,
    })
}

/// Data-view columns of a study's training-image sharpness (`rote sharpness` results): (data-set
/// hash, column name, one value per data-set image, NaN where not measured). Unreadable files
/// are skipped.
pub fn study_columns(study_root: &std::path::Path) -> Vec<(String, String, Vec<f32>)> {
    let mut out = Vec::new();
    let results = study_root.join("results").join("diffusion");
    let Ok(dirs) = std::fs::read_dir(&results) else {
        return out;
    };
    let mut dirs: Vec<_> = dirs.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    for dir in dirs {
        let id = dir
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        let Ok(card) = super::DiffusionCard::check_folder(&super::diffusion_dir(study_root).join(&id)) else {
            continue;
        };
        let Ok(files) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = files.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let name = f
                .file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into_owned());
            if !(name.starts_with("sharpness-") && name.ends_with(".json")) {
                continue;
            }
            let Some(rep) = std::fs::read_to_string(&f)
                .ok()
                .and_then(|t| serde_json::from_str::<SharpnessReport>(&t).ok())
            else {
                continue;
            };
            let mut col = vec![f32::NAN; card.dataset.n];
            for (&i, r) in rep.indices.iter().zip(&rep.rows) {
                if let Some(c) = col.get_mut(i) {
                    *c = r.sharpness as f32;
                }
            }
            out.push((
                card.dataset.hash.clone(),
                format!("sharpness t={} · {id}", rep.config.t),
                col,
            ));
        }
    }
    out
}

#[cfg(test)]
#[path = "sharpness_tests.rs"]
mod tests;
