//! Membership inference on diffusion models from the loss at a fixed timestep (Carlini et al.,
//! USENIX Security 2023, section 3 of spec 02):
//! L_t(x) = E_eps || eps - eps_theta(sqrt(abar_t) x + sqrt(1 - abar_t) eps, t) ||^2, with the same
//! seeded noise draws for every model (per image and timestep), averaged over a few draws. The
//! family's cards say which model trained on which image; every model is attacked in turn with
//! the zoo attacks of `measure::mia` (LOSS always; LiRA online/offline with four or more models),
//! and the key figure is TPR at low FPR as a function of t.

use candle_core::Tensor;

use super::denoiser::Denoiser;
use super::model::{Ddpm, NormalStream, to_model_range};
use crate::data::Dataset;
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
use crate::measure::mia::{Attack, MiaConfig, MiaResult, ZooView, run_attack};

/// Settings of the diffusion MIA.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct DiffusionMiaConfig {
    /// Timesteps to evaluate (of T = 1000).
    pub timesteps: Vec<usize>,
    /// Noise draws averaged per image and timestep.
    pub draws: usize,
    /// Seed of the noise draws (the same for every model).
    pub seed: u64,
}

impl Default for DiffusionMiaConfig {
    fn default() -> Self {
        Self {
            timesteps: vec![10, 50, 100, 200, 300, 500, 800],
            draws: 4,
            seed: 0,
        }
    }
}

/// One timestep's figures.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TimestepResult {
    /// Timestep.
    pub t: usize,
    /// Attacks run at this t.
    pub attacks: Vec<MiaResult>,
}

/// The report.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct DiffusionMiaReport {
    /// Model ids, in order.
    pub models: Vec<String>,
    /// Data-set indices evaluated (the union of the models' training sets).
    pub pool: Vec<usize>,
    /// Settings.
    pub config: DiffusionMiaConfig,
    /// Per timestep.
    pub per_t: Vec<TimestepResult>,
}

impl DiffusionMiaReport {
    /// (t, AUC, TPR at 1% FPR) of `attack` per timestep.
    pub fn curve(&self, attack: Attack) -> Vec<(usize, f64, f64)> {
        self.per_t
            .iter()
            .filter_map(|r| {
                r.attacks
                    .iter()
                    .find(|a| a.attack == attack)
                    .map(|a| (r.t, a.auc, a.tpr_at_1pct_fpr))
            })
            .collect()
    }
}

/// L_t of model `m` on images `x0` (model range), the noise of image j and draw d from stream
/// (seed + t, j * draws + d) of `ids[j]`.
pub fn loss_at_t(
    m: &dyn Denoiser,
    x0: &Tensor,
    ids: &[usize],
    t: usize,
    cfg: &DiffusionMiaConfig,
) -> CoreResult<Vec<f32>> {
    let b = x0.dim(0)?;
    let shape = m.shape();
    let ab = m.schedule().alpha_bar[t.min(m.schedule().len() - 1)];
    let mut acc = vec![0f32; b];
    let len: usize = shape.iter().product();
    for d in 0..cfg.draws.max(1) {
        let mut v = vec![0f32; b * len];
        for (j, chunk) in v.chunks_mut(len).enumerate() {
            NormalStream::new(
                cfg.seed.wrapping_add(t as u64),
                (ids[j] * cfg.draws.max(1) + d) as u64,
            )
            .fill(chunk);
        }
        let eps = Tensor::from_vec(v, (b, shape[0], shape[1], shape[2]), m.device())?;
        let xt = ((x0 * ab.sqrt())? + (&eps * (1.0 - ab).sqrt())?)?;
        let pred = m.eps(&xt, &vec![t as u32; b])?.detach();
        let l = (pred - eps)?.sqr()?.flatten_from(1)?.mean(1)?.to_vec1::<f32>()?;
        for (a, v) in acc.iter_mut().zip(l) {
            *a += v;
        }
    }
    Ok(acc.into_iter().map(|v| v / cfg.draws.max(1) as f32).collect())
}

/// Runs the attack over a family of rote's models trained on subsets of one pool (their cards
/// say which).
pub fn diffusion_mia(
    models: &[Ddpm],
    ds: &Dataset,
    cfg: &DiffusionMiaConfig,
    ctx: &JobCtx<'_>,
) -> CoreResult<DiffusionMiaReport> {
    let family: Vec<&dyn Denoiser> = models.iter().map(|m| m as &dyn Denoiser).collect();
    diffusion_mia_family(&family, ds, cfg, ctx)
}

/// [`diffusion_mia`] for any models with cards (rote's, or diffusers models imported into a
/// study with their training sets); the pool is the union of their training sets.
pub fn diffusion_mia_family(
    models: &[&dyn Denoiser],
    ds: &Dataset,
    cfg: &DiffusionMiaConfig,
    ctx: &JobCtx<'_>,
) -> CoreResult<DiffusionMiaReport> {
    if models.len() < 2 {
        return Err(CoreError::Invalid(
            "the diffusion MIA needs at least two models".into(),
        ));
    }
    let mut family = Vec::with_capacity(models.len());
    for &m in models {
        let card = m.card().ok_or_else(|| {
            CoreError::Invalid(format!(
                "{}: no card says which images it trained on; attack it alone with --train-data and \
                 --heldout-data",
                m.id()
            ))
        })?;
        family.push((m, card.train_indices.as_slice()));
    }
    let mut pool: Vec<usize> = family
        .iter()
        .flat_map(|(_, t)| t.iter().map(|&i| i as usize))
        .collect();
    pool.sort_unstable();
    pool.dedup();
    diffusion_mia_on(&family, &pool, ds, cfg, ctx)
}

/// Runs the attack on any models (each with the sorted data-set indices it trained on) over the
/// images `pool` of `ds`: one model with members and held-out images gives the LOSS attack,
/// four or more give LiRA too.
pub fn diffusion_mia_on(
    models: &[(&dyn Denoiser, &[u32])],
    pool: &[usize],
    ds: &Dataset,
    cfg: &DiffusionMiaConfig,
    ctx: &JobCtx<'_>,
) -> CoreResult<DiffusionMiaReport> {
    let (k, n) = (models.len(), pool.len());
    let member: Vec<bool> = models
        .iter()
        .flat_map(|(_, train)| {
            pool.iter()
                .map(move |&i| train.binary_search(&(i as u32)).is_ok())
        })
        .collect();
    for (m, _) in models {
        if m.shape() != [ds.c, ds.h, ds.w] {
            return Err(CoreError::Mismatch(format!(
                "{} takes {:?} images, the data set '{}' has {}x{}x{}",
                m.id(),
                m.shape(),
                ds.name,
                ds.c,
                ds.h,
                ds.w
            )));
        }
    }
    let (ins, outs) = (
        member.iter().filter(|&&m| m).count(),
        member.iter().filter(|&&m| !m).count(),
    );
    if ins == 0 || outs == 0 {
        return Err(CoreError::Invalid(format!(
            "the membership attack needs members and non-members; this has {ins} and {outs}"
        )));
    }
    let attacks: &[Attack] = if k >= 4 {
        &[Attack::Loss, Attack::LiraOnline, Attack::LiraOffline]
    } else {
        &[Attack::Loss]
    };
    let total = (cfg.timesteps.len() * k) as u64;
    let mut done = 0;
    let mut per_t = Vec::new();
    for &t in &cfg.timesteps {
        let mut loss = Vec::with_capacity(k * n);
        for (m, _) in models {
            ctx.checkpoint()?;
            for chunk in pool.chunks(256) {
                let x0 = to_model_range(ds, chunk, m.device())?;
                loss.extend(loss_at_t(*m, &x0, chunk, t, cfg)?);
            }
            done += 1;
            ctx.progress("diffusion MIA", done, total);
        }
        let view = ZooView {
            k,
            n,
            member: &member,
            loss: &loss,
        };
        let eval: Vec<usize> = (0..n).collect();
        let mut results = Vec::new();
        if k == 1 {
            results.push(single_model_loss(&loss, &member)?);
        } else {
            for &a in attacks {
                results.push(run_attack(&view, a, &eval, &[], &MiaConfig::default())?);
            }
        }
        per_t.push(TimestepResult { t, attacks: results });
    }
    Ok(DiffusionMiaReport {
        models: models.iter().map(|(m, _)| m.id().to_string()).collect(),
        pool: pool.to_vec(),
        config: cfg.clone(),
        per_t,
    })
}

/// The LOSS attack on one model (Yeom et al.): score -L_t, members positive. There is no pair of
/// models to score a per-sample vulnerability with, so it is NaN.
fn single_model_loss(loss: &[f32], member: &[bool]) -> CoreResult<MiaResult> {
    let scores: Vec<f64> = loss.iter().map(|&l| -f64::from(l)).collect();
    let curve = crate::measure::roc::roc(&scores, member)?;
    Ok(MiaResult {
        attack: Attack::Loss,
        auc: curve.auc,
        tpr_at_0_1pct_fpr: crate::measure::roc::tpr_at_fpr(&curve, 0.001),
        tpr_at_1pct_fpr: crate::measure::roc::tpr_at_fpr(&curve, 0.01),
        roc: curve,
        n_scores: scores.len(),
        n_targets: 1,
        vulnerability: vec![f32::NAN; loss.len()],
        epsilon_lower_bound: crate::measure::audit::pooled_bound(&scores, member),
        epsilon_one_run: crate::measure::audit::one_run_if_half(&scores, member),
    })
}
