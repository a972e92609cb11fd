//! The inpainting membership attack over many images (Carlini et al. 2023, section 4 of spec 02):
//! each image is completed by a model that trained on it (IN) and one that did not (OUT), best of
//! N samples by the error on the hidden region; the ROC of -error (IN completions positive)
//! gives AUC and TPR at low FPR.

use candle_core::Tensor;

use super::denoiser::Denoiser;
use super::inpaint::{InpaintConfig, MaskKind, hidden_error, inpaint, keep_mask};
use super::model::{DiffusionCard, to_bytes, to_model_range};
use crate::data::Dataset;
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
use crate::measure::roc::{roc, tpr_at_fpr};

/// How to attack: hidden region, inpainting method, best of `samples` completions, seed.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AttackSpec {
    /// Hidden region.
    pub mask: MaskKind,
    /// Inpainting method and schedule.
    pub config: InpaintConfig,
    /// Completions per image and model.
    pub samples: usize,
    /// Seed.
    pub seed: u64,
}

/// One attacked image.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct InpaintRow {
    /// Data-set index.
    pub index: usize,
    /// Model that trained on it.
    pub in_model: String,
    /// Model that did not.
    pub out_model: String,
    /// Best-of-N hidden-region l2 of the IN model.
    pub err_in: f64,
    /// Best-of-N hidden-region l2 of the OUT model.
    pub err_out: f64,
    /// Best IN completion (data-set bytes).
    pub completion_in: Vec<u8>,
    /// Best OUT completion.
    pub completion_out: Vec<u8>,
}

/// The attack's result.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct InpaintReport {
    /// Hidden region.
    pub mask: MaskKind,
    /// Keep mask (1 = known), H x W.
    pub keep: Vec<f32>,
    /// Method and schedule (stamped on every result, spec 06).
    pub config: InpaintConfig,
    /// Samples per image and model (best of N).
    pub samples: usize,
    /// Seed.
    pub seed: u64,
    /// Per image.
    pub rows: Vec<InpaintRow>,
    /// ROC AUC of -error, IN vs OUT.
    pub auc: f64,
    /// TPR at 1% FPR.
    pub tpr_at_1pct_fpr: f64,
    /// TPR at 0.1% FPR.
    pub tpr_at_0_1pct_fpr: f64,
    /// log-log ROC points.
    pub roc_points: Vec<[f64; 2]>,
    /// Mean IN error.
    pub mean_err_in: f64,
    /// Mean OUT error.
    pub mean_err_out: f64,
}

/// Best-of-`samples` completion of image `index` by `m`: (error, completion bytes).
fn best_completion(
    m: &dyn Denoiser,
    ds: &Dataset,
    index: usize,
    keep: &[f32],
    spec: &AttackSpec,
    ctx: &JobCtx<'_>,
) -> CoreResult<(f64, Vec<u8>)> {
    let x0 = to_model_range(ds, &vec![index; spec.samples.max(1)], m.device())?;
    let noise = (spec.seed, (index as u64) << 16);
    let out = inpaint(m, &x0, keep, &spec.config, noise, ctx, &mut |_, _, _| {})?;
    let errs = hidden_error(&out, &x0, keep)?;
    let best = errs
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i);
    let img: Tensor = out.narrow(0, best, 1)?;
    let bytes = to_bytes(&img, ds.max_value)?.remove(0);
    Ok((errs[best], bytes))
}

/// Runs the attack on `images` with models `a` and `b`: for each image the one whose card lists
/// it is IN, the other OUT (images both or neither trained on are refused, naming them).
pub fn inpaint_attack(
    a: &dyn Denoiser,
    b: &dyn Denoiser,
    ds: &Dataset,
    images: &[usize],
    spec: &AttackSpec,
    ctx: &JobCtx<'_>,
) -> CoreResult<InpaintReport> {
    let AttackSpec {
        mask,
        config: ref cfg,
        samples,
        seed,
    } = *spec;
    let [_, h, w] = a.shape();
    if a.shape() != b.shape() {
        return Err(CoreError::Mismatch(
            "the two models take different image shapes".into(),
        ));
    }
    let keep = keep_mask(mask, h, w, seed);
    let (ca, cb) = (card_of(a)?, card_of(b)?);
    let in_a = |i: usize| ca.train_indices.binary_search(&(i as u32)).is_ok();
    let in_b = |i: usize| cb.train_indices.binary_search(&(i as u32)).is_ok();
    let bad: Vec<usize> = images.iter().copied().filter(|&i| in_a(i) == in_b(i)).collect();
    if !bad.is_empty() {
        return Err(CoreError::Invalid(format!(
            "images {bad:?} are in the training sets of both models or of neither; pick images one of \
             '{}' and '{}' trained on",
            ca.id, cb.id
        )));
    }
    let mut rows = Vec::with_capacity(images.len());
    for (k, &i) in images.iter().enumerate() {
        ctx.log(&format!("image {i} ({}/{})", k + 1, images.len()));
        let (mi, mo) = if in_a(i) { (a, b) } else { (b, a) };
        let (err_in, completion_in) = best_completion(mi, ds, i, &keep, spec, ctx)?;
        let (err_out, completion_out) = best_completion(mo, ds, i, &keep, spec, ctx)?;
        rows.push(InpaintRow {
            index: i,
            in_model: mi.id().to_string(),
            out_model: mo.id().to_string(),
            err_in,
            err_out,
            completion_in,
            completion_out,
        });
    }
    let mut scores = Vec::with_capacity(2 * rows.len());
    let mut labels = Vec::with_capacity(2 * rows.len());
    for r in &rows {
        scores.extend([-r.err_in, -r.err_out]);
        labels.extend([true, false]);
    }
    let curve = roc(&scores, &labels)?;
    let n = rows.len().max(1) as f64;
    Ok(InpaintReport {
        mask,
        keep,
        config: cfg.clone(),
        samples,
        seed,
        auc: curve.auc,
        tpr_at_1pct_fpr: tpr_at_fpr(&curve, 0.01),
        tpr_at_0_1pct_fpr: tpr_at_fpr(&curve, 0.001),
        roc_points: crate::measure::roc::log_roc_points(&curve, 1e-3, 200),
        mean_err_in: rows.iter().map(|r| r.err_in).sum::<f64>() / n,
        mean_err_out: rows.iter().map(|r| r.err_out).sum::<f64>() / n,
        rows,
    })
}

/// One image completed by a single model (a diffusers model with the user's members and
/// held-out images).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct MemberRow {
    /// Data-set index (members first, then held-out images).
    pub index: usize,
    /// Whether the model trained on it.
    pub member: bool,
    /// Best-of-N hidden-region l2.
    pub err: f64,
    /// Best completion (data-set bytes).
    pub completion: Vec<u8>,
}

/// The inpainting attack on one model: members against held-out images.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct MemberInpaintReport {
    /// Model id.
    pub model: String,
    /// Image shape C x H x W of the completions.
    pub shape: [usize; 3],
    /// Pixel value of full intensity in the completions.
    pub max_value: u8,
    /// Hidden region.
    pub mask: MaskKind,
    /// Keep mask (1 = known), H x W.
    pub keep: Vec<f32>,
    /// Method and schedule.
    pub config: InpaintConfig,
    /// Samples per image (best of N).
    pub samples: usize,
    /// Seed.
    pub seed: u64,
    /// Per image.
    pub rows: Vec<MemberRow>,
    /// ROC AUC of -error, members positive.
    pub auc: f64,
    /// TPR at 1% FPR.
    pub tpr_at_1pct_fpr: f64,
    /// Mean member error.
    pub mean_err_member: f64,
    /// Mean held-out error.
    pub mean_err_heldout: f64,
}

/// Completes `members` and `heldout` images of `ds` with one model; members completed closer
/// to the original than held-out images is the memorization the attack shows.
pub fn inpaint_members(
    m: &dyn Denoiser,
    ds: &Dataset,
    members: &[usize],
    heldout: &[usize],
    spec: &AttackSpec,
    ctx: &JobCtx<'_>,
) -> CoreResult<MemberInpaintReport> {
    super::extract::check_shape(m, ds)?;
    if members.is_empty() || heldout.is_empty() {
        return Err(CoreError::Invalid(format!(
            "the inpainting attack on one model needs members and held-out images; this has {} and {}",
            members.len(),
            heldout.len()
        )));
    }
    let [_, h, w] = m.shape();
    let keep = keep_mask(spec.mask, h, w, spec.seed);
    let mut rows = Vec::new();
    let all: Vec<(usize, bool)> = members
        .iter()
        .map(|&i| (i, true))
        .chain(heldout.iter().map(|&i| (i, false)))
        .collect();
    for (k, &(index, member)) in all.iter().enumerate() {
        ctx.log(&format!("image {index} ({}/{})", k + 1, all.len()));
        let (err, completion) = best_completion(m, ds, index, &keep, spec, ctx)?;
        rows.push(MemberRow {
            index,
            member,
            err,
            completion,
        });
    }
    let scores: Vec<f64> = rows.iter().map(|r| -r.err).collect();
    let labels: Vec<bool> = rows.iter().map(|r| r.member).collect();
    let curve = roc(&scores, &labels)?;
    let mean = |flag: bool| {
        let v: Vec<f64> = rows.iter().filter(|r| r.member == flag).map(|r| r.err).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    Ok(MemberInpaintReport {
        model: m.id().to_string(),
        shape: m.shape(),
        max_value: ds.max_value,
        mask: spec.mask,
        keep,
        config: spec.config.clone(),
        samples: spec.samples,
        seed: spec.seed,
        auc: curve.auc,
        tpr_at_1pct_fpr: tpr_at_fpr(&curve, 0.01),
        mean_err_member: mean(true),
        mean_err_heldout: mean(false),
        rows,
    })
}

/// The card saying which images a model trained on (IN/OUT pairs need it).
fn card_of(m: &dyn Denoiser) -> CoreResult<&DiffusionCard> {
    m.card().ok_or_else(|| {
        CoreError::Invalid(format!(
            "{}: a pair attack needs to know which images each model trained on; import the model \
             into a study with its training data (rote import-diffusers), or attack it alone with \
             --train-data and --heldout-data",
            m.id()
        ))
    })
}

/// Images for the attack: `count` images alternately from `a`'s and `b`'s exclusive training
/// images (seeded), so IN and OUT roles are balanced.
pub fn pick_images(a: &DiffusionCard, b: &DiffusionCard, count: usize, seed: u64) -> Vec<usize> {
    use rand::SeedableRng as _;
    use rand::seq::SliceRandom as _;
    let only = |x: &DiffusionCard, y: &DiffusionCard| -> Vec<usize> {
        x.train_indices
            .iter()
            .filter(|i| y.train_indices.binary_search(i).is_err())
            .map(|&i| i as usize)
            .collect()
    };
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut oa = only(a, b);
    let mut ob = only(b, a);
    oa.shuffle(&mut r);
    ob.shuffle(&mut r);
    let mut out = Vec::with_capacity(count);
    let (mut ia, mut ib) = (oa.into_iter(), ob.into_iter());
    while out.len() < count {
        let before = out.len();
        if let Some(i) = ia.next() {
            out.push(i);
        }
        if out.len() < count
            && let Some(i) = ib.next()
        {
            out.push(i);
        }
        if out.len() == before {
            break;
        }
    }
    out
}
