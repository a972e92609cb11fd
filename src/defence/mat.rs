//! Memorization-aware training (MAT): Bayat, Pezeshki, Dohmatob, Lopez-Paz, Vincent, "The
//! Pitfalls of Memorization: When Memorization Hurts Generalization", ICLR 2025
//! (arXiv:2412.07684; code `facebookresearch/Pitfalls-of-Memorization`, phase 1 from
//! `facebookresearch/XRM`). Spec 13 §A.
//!
//! A network trained by plain cross-entropy (ERM) on data with a spurious correlation fits the
//! majority with the spurious rule and memorizes the exceptions; the minority groups then fail at
//! test time. MAT keeps the loss on the examples a *held-out* model gets wrong:
//!
//! * **Phase 1, XRM twins.** Two networks A and B; every training example i has a fixed coin
//!   a_i ~ Bernoulli(½) that holds it in for A (a_i = 1) or B. Held-in logits
//!   hi_i = a_i·A(x_i) + (1 − a_i)·B(x_i) are trained with the class-balanced loss
//!   Σ_c mean_{i: ỹ_i = c} CE(hi_i, ỹ_i) on dynamic labels ỹ; held-out logits
//!   ho_i = (1 − a_i)·A(x_i) + a_i·B(x_i) come from the twin that never trains on i. After every
//!   step each batch example's dynamic label becomes the held-out prediction ŷ_i with probability
//!   (p̂_i − 1/C)·C/(C − 1), p̂_i = max softmax(ho_i). The output is ho_i for every training
//!   example; the flip rate (fraction of ỹ ≠ y) is reported.
//! * **Phase 2, the logit shift.** For a batch B with labels y_i and temperature T:
//!   p_T(ŷ|x_i) = softmax(ho_i / T); P̂(ŷ, y) = (1/|B|) Σ_{i: y_i = y} p_T(ŷ|x_i);
//!   P̂(y|ŷ) = P̂(ŷ, y) / Σ_{y'} P̂(ŷ, y');
//!   **shift_i(y) = log(Σ_ŷ p_T(ŷ|x_i)·P̂(y|ŷ) + 10⁻⁶)** (a constant, no gradient);
//!   **loss = CE(f(x_i) + shift_i, y_i)**. Prediction uses f(x) without the shift.
//!
//! Where rote differs from the reference code: the P̂(y|ŷ) matrix is always the full C × C (a
//! class missing from the batch gets a zero column, not a shifted column order: spec pitfall
//! A.6); the optimiser is AdamW with decoupled weight decay (the reference's MLP uses Adam with
//! L2); there is no hyperparameter search or early stopping on a validation set: one fixed recipe
//! (`MatConfig::default`) and the last iterate. ERM and MAT's phase-2 network share the
//! initialisation and batch order, so only the loss differs. Everything is seeded: the same
//! config gives the same report.
//!
//! The data set is the coloured digits of [`super::spurious`]; worst-group accuracy is the minimum
//! over the four groups g = 2·y + m. The default recipe: MNIST-10k at 14×14 with 10 % of the
//! training labels flipped (so the digit predicts the training label no better than the colour,
//! 90 % each, and the colour is the simpler rule), an MLP 392-128-128-2, 1,000 AdamW steps of 64
//! per phase, T = 0.1; about 5 s in release on two cores. ERM leans on the colour and fits part of
//! the minority by memorization (training minority groups 85 % and 68 %, test 45 % and 38 %): test
//! worst-group accuracy 37.7 %, MAT 69.8 % (`docs/fidelity.md`, "MAT"). Without label noise the
//! gap is smaller (77 % → 85 %).

use candle_core::{D, Device, Module, Tensor, Var};
use candle_nn::{AdamW, Optimizer as _, ParamsAdamW};
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

use super::spurious::{GROUPS, SpuriousConfig, SpuriousDescription, SpuriousPart, SpuriousSet, build};
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;

#[path = "mat_net.rs"]
mod net;
pub use net::Net;
use net::{Batches, TrainTensors};

/// Classes of the coloured digits (y = digit < 5).
const CLASSES: usize = 2;
/// Added inside the logarithm of the shift (the reference's 1e-6).
const SHIFT_EPS: f64 = 1e-6;

/// The recipe: data, network, optimiser, steps, temperature, seed.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct MatConfig {
    /// The coloured-digit set.
    pub data: SpuriousConfig,
    /// Hidden layer widths of the MLP (ReLU; Xavier-uniform weights, zero biases, as XRM's).
    pub hidden: Vec<usize>,
    /// Mini-batch size of every phase.
    pub batch_size: usize,
    /// AdamW learning rate of every phase.
    pub lr: f64,
    /// AdamW (decoupled) weight decay.
    pub weight_decay: f64,
    /// Steps of the ERM baseline.
    pub erm_steps: usize,
    /// Steps of the XRM twins (phase 1).
    pub xrm_steps: usize,
    /// Steps of the MAT network (phase 2).
    pub mat_steps: usize,
    /// Temperature T of the held-out softmax in the shift (the paper searches 0.001, 0.01, 0.1).
    pub temperature: f64,
    /// Seed of the initialisations, batch orders, coins and flips.
    pub seed: u64,
}

impl Default for MatConfig {
    fn default() -> Self {
        Self {
            data: SpuriousConfig::default(),
            hidden: vec![128, 128],
            batch_size: 64,
            lr: 1e-3,
            weight_decay: 0.0,
            erm_steps: 1000,
            xrm_steps: 1000,
            mat_steps: 1000,
            temperature: 0.1,
            seed: 0,
        }
    }
}

impl MatConfig {
    /// One clear error per bad value.
    pub fn validate(&self) -> CoreResult<()> {
        let bad = |msg: String| Err(CoreError::Invalid(msg));
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return bad(format!("the temperature must be > 0, got {}", self.temperature));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("the learning rate must be > 0, got {}", self.lr));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(format!(
                "the weight decay must be >= 0, got {}",
                self.weight_decay
            ));
        }
        if self.batch_size == 0 || self.batch_size > 65_536 {
            return bad(format!(
                "the batch size must be 1..=65536, got {}",
                self.batch_size
            ));
        }
        if self.hidden.iter().any(|&w| w == 0 || w > 4096) || self.hidden.len() > 8 {
            return bad(format!(
                "hidden widths must be 1..=4096, at most 8 layers: {:?}",
                self.hidden
            ));
        }
        for (name, steps) in [
            ("ERM", self.erm_steps),
            ("XRM", self.xrm_steps),
            ("MAT", self.mat_steps),
        ] {
            if steps == 0 || steps > 1_000_000 {
                return bad(format!("{name} steps must be 1..=1000000, got {steps}"));
            }
        }
        Ok(())
    }
}

/// Accuracy on one group g = 2·y + m.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GroupAccuracy {
    /// g.
    pub group: u32,
    /// Its label y.
    pub label: u32,
    /// Its spurious attribute m (the colour).
    pub attribute: u32,
    /// Examples in the group.
    pub n: usize,
    /// Fraction predicted right (None for an empty group).
    pub accuracy: Option<f64>,
}

/// Average and worst-group accuracy of one model on one split.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Figures {
    /// Accuracy over all examples.
    pub average: f64,
    /// Minimum accuracy over the non-empty groups (0 when every group is empty).
    pub worst_group: f64,
    /// The group with that minimum.
    pub worst: u32,
    /// Every group.
    pub groups: Vec<GroupAccuracy>,
}

/// A trained model's figures on train (against the labels it trained on) and test (clean labels).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MethodFigures {
    /// Training split.
    pub train: Figures,
    /// Test split.
    pub test: Figures,
}

/// What phase 1 produced.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct XrmFigures {
    /// Fraction of training examples whose dynamic label ends different from their label.
    pub flip_rate: f64,
    /// Held-out predictions against the training labels, per group (the minority should be low).
    pub held_out: Figures,
    /// Held-in predictions against the training labels, per group.
    pub held_in: Figures,
}

/// `rote mat`'s report: the recipe, the data set, and ERM against MAT.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MatReport {
    /// The paper.
    pub method: String,
    /// The recipe.
    pub settings: MatConfig,
    /// The data set.
    pub data: SpuriousDescription,
    /// Plain cross-entropy.
    pub erm: MethodFigures,
    /// Phase 1.
    pub xrm: XrmFigures,
    /// Phase 2 (predictions without the shift).
    pub mat: MethodFigures,
    /// MAT's test worst-group accuracy minus ERM's.
    pub worst_group_gain: f64,
}

fn adamw(vars: Vec<Var>, cfg: &MatConfig) -> CoreResult<AdamW> {
    Ok(AdamW::new(
        vars,
        ParamsAdamW {
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            ..ParamsAdamW::default()
        },
    )?)
}

/// Seed of one purpose (network init, batch order, coins, flips) of the run's seed.
fn seed_for(seed: u64, purpose: u64) -> u64 {
    seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(purpose)
}

fn report_step(ctx: &JobCtx<'_>, stage: &str, step: usize, total: usize, loss: &Tensor) -> CoreResult<()> {
    ctx.checkpoint()?;
    if step.is_multiple_of(50) || step + 1 == total {
        ctx.progress(stage, step as u64 + 1, total as u64);
        ctx.metric(
            &format!("{stage} loss"),
            step as f64,
            f64::from(loss.to_scalar::<f32>()?),
        );
    }
    Ok(())
}

/// The shared network of ERM and MAT's phase 2 (same initialisation).
fn fresh_net(part: &SpuriousPart, cfg: &MatConfig) -> CoreResult<Net> {
    Net::new(part.dim, &cfg.hidden, CLASSES, seed_for(cfg.seed, 1))
}

/// The ERM baseline: plain cross-entropy.
pub fn train_erm(part: &SpuriousPart, cfg: &MatConfig, ctx: &JobCtx<'_>) -> CoreResult<Net> {
    let data = TrainTensors::new(part)?;
    let net = fresh_net(part, cfg)?;
    let mut opt = adamw(net.vars(), cfg)?;
    let mut batches = Batches::new(part.n, cfg.batch_size, seed_for(cfg.seed, 2));
    for step in 0..cfg.erm_steps {
        let (x, y) = data.batch(&batches.next_batch())?;
        let loss = candle_nn::loss::cross_entropy(&net.forward(&x)?, &y)?;
        opt.backward_step(&loss)?;
        report_step(ctx, "ERM", step, cfg.erm_steps, &loss)?;
    }
    Ok(net)
}

/// Phase 1's result.
pub struct XrmOutput {
    /// Twin A (trained on the examples with `held_in_a`).
    pub net_a: Net,
    /// Twin B (trained on the others).
    pub net_b: Net,
    /// The coin of every training example: true = held in for A.
    pub held_in_a: Vec<bool>,
    /// Held-out logits of every training example (from the twin that did not train on it).
    pub held_out: Vec<Vec<f32>>,
    /// Held-in logits of every training example.
    pub held_in: Vec<Vec<f32>>,
    /// The dynamic labels at the end.
    pub dynamic_labels: Vec<u32>,
    /// Fraction of dynamic labels that differ from the training labels.
    pub flip_rate: f64,
}

/// Softmax of a row of logits divided by `t`, in f64.
fn softmax(row: &[f32], t: f64) -> Vec<f64> {
    let max = row
        .iter()
        .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v) / t));
    let e: Vec<f64> = row.iter().map(|&v| (f64::from(v) / t - max).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// Phase 1: the XRM twins with class-balanced loss and label flipping; held-out logits of every
/// training example.
pub fn xrm_held_out(part: &SpuriousPart, cfg: &MatConfig, ctx: &JobCtx<'_>) -> CoreResult<XrmOutput> {
    let data = TrainTensors::new(part)?;
    let net_a = Net::new(part.dim, &cfg.hidden, CLASSES, seed_for(cfg.seed, 3))?;
    let net_b = Net::new(part.dim, &cfg.hidden, CLASSES, seed_for(cfg.seed, 4))?;
    let mut vars = net_a.vars();
    vars.extend(net_b.vars());
    let mut opt = adamw(vars, cfg)?;
    let mut coins = ChaCha8Rng::seed_from_u64(seed_for(cfg.seed, 5));
    let held_in_a: Vec<bool> = (0..part.n).map(|_| coins.random_bool(0.5)).collect();
    let mut flips = ChaCha8Rng::seed_from_u64(seed_for(cfg.seed, 6));
    let mut dynamic = part.labels.clone();
    let mut batches = Batches::new(part.n, cfg.batch_size, seed_for(cfg.seed, 7));
    let c = CLASSES as f64;
    for step in 0..cfg.xrm_steps {
        let idx = batches.next_batch();
        let (x, _) = data.batch(&idx)?;
        let y: Vec<u32> = idx.iter().map(|&i| dynamic[i as usize]).collect();
        let a: Vec<f32> = idx
            .iter()
            .map(|&i| f32::from(u8::from(held_in_a[i as usize])))
            .collect();
        let a = Tensor::from_vec(a, (idx.len(), 1), &Device::Cpu)?;
        let not_a = (1.0 - &a)?;
        let (la, lb) = (net_a.forward(&x)?, net_b.forward(&x)?);
        let hi = (la.broadcast_mul(&a)? + lb.broadcast_mul(&not_a)?)?;
        let ho = (la.broadcast_mul(&not_a)? + lb.broadcast_mul(&a)?)?
            .detach()
            .to_vec2::<f32>()?;
        // Σ_c mean over the batch examples of class c: weight 1 / count(class of i).
        let mut counts = [0usize; CLASSES];
        for &yi in &y {
            counts[yi as usize] += 1;
        }
        let w: Vec<f32> = y.iter().map(|&yi| 1.0 / counts[yi as usize] as f32).collect();
        let w = Tensor::from_vec(w, idx.len(), &Device::Cpu)?;
        let yt = Tensor::from_slice(&y, (idx.len(), 1), &Device::Cpu)?;
        let picked = candle_nn::ops::log_softmax(&hi, D::Minus1)?
            .gather(&yt, 1)?
            .squeeze(1)?;
        let loss = (picked * w)?.sum_all()?.neg()?;
        opt.backward_step(&loss)?;
        // Flip to the held-out prediction with probability (p̂ − 1/C)·C/(C − 1).
        for (&i, row) in idx.iter().zip(&ho) {
            let p = softmax(row, 1.0);
            let (pred, p_max) =
                p.iter().enumerate().fold(
                    (0, f64::NEG_INFINITY),
                    |best, (k, &v)| if v > best.1 { (k, v) } else { best },
                );
            let prob = ((p_max - 1.0 / c) * c / (c - 1.0)).clamp(0.0, 1.0);
            if flips.random_bool(prob) {
                dynamic[i as usize] = pred as u32;
            }
        }
        report_step(ctx, "XRM", step, cfg.xrm_steps, &loss)?;
    }
    let (all_a, all_b) = (net_a.logits(&data.x)?, net_b.logits(&data.x)?);
    let mut held_out = Vec::with_capacity(part.n);
    let mut held_in = Vec::with_capacity(part.n);
    for ((ra, rb), &in_a) in all_a.into_iter().zip(all_b).zip(&held_in_a) {
        let (inn, out) = if in_a { (ra, rb) } else { (rb, ra) };
        held_in.push(inn);
        held_out.push(out);
    }
    let flipped = dynamic.iter().zip(&part.labels).filter(|(a, b)| a != b).count();
    Ok(XrmOutput {
        net_a,
        net_b,
        held_in_a,
        held_out,
        held_in,
        dynamic_labels: dynamic,
        flip_rate: flipped as f64 / part.n.max(1) as f64,
    })
}

/// MAT's logit shift of a batch (spec 13 §A.3), row-major |B| × C: for every example i and class
/// y, log(Σ_ŷ p_T(ŷ|x_i)·P̂(y|ŷ) + 1e-6) with p_T = softmax(ho_i / T) and P̂(y|ŷ) the batch's
/// conditional. The C × C matrix is built whole: a class absent from the batch has a zero column
/// (its shift is log 1e-6), and a row ŷ without mass gives zeros instead of 0/0.
pub fn mat_shift(held_out: &[Vec<f32>], labels: &[u32], classes: usize, temperature: f64) -> Vec<f32> {
    let b = labels.len().max(1) as f64;
    let p: Vec<Vec<f64>> = held_out.iter().map(|row| softmax(row, temperature)).collect();
    // joint[ŷ][y] = (1/|B|) Σ_{i: y_i = y} p_T(ŷ|x_i)
    let mut joint = vec![vec![0.0f64; classes]; classes];
    for (pi, &y) in p.iter().zip(labels) {
        for (row, &v) in joint.iter_mut().zip(pi) {
            if let Some(cell) = row.get_mut(y as usize) {
                *cell += v / b;
            }
        }
    }
    for row in &mut joint {
        let total: f64 = row.iter().sum();
        for v in row.iter_mut() {
            *v = if total > 0.0 { *v / total } else { 0.0 };
        }
    }
    let mut shift = Vec::with_capacity(p.len() * classes);
    for pi in &p {
        for y in 0..classes {
            let s: f64 = pi.iter().zip(&joint).map(|(&v, row)| v * row[y]).sum();
            shift.push((s + SHIFT_EPS).ln() as f32);
        }
    }
    shift
}

/// Phase 2: a fresh network on CE(f(x) + shift, y), the shift from the held-out logits.
pub fn train_mat(
    part: &SpuriousPart,
    held_out: &[Vec<f32>],
    cfg: &MatConfig,
    ctx: &JobCtx<'_>,
) -> CoreResult<Net> {
    if held_out.len() != part.n {
        return Err(CoreError::Mismatch(format!(
            "{} held-out rows for {} training examples",
            held_out.len(),
            part.n
        )));
    }
    let data = TrainTensors::new(part)?;
    let net = fresh_net(part, cfg)?;
    let mut opt = adamw(net.vars(), cfg)?;
    let mut batches = Batches::new(part.n, cfg.batch_size, seed_for(cfg.seed, 2));
    for step in 0..cfg.mat_steps {
        let idx = batches.next_batch();
        let (x, y) = data.batch(&idx)?;
        let ho: Vec<Vec<f32>> = idx.iter().map(|&i| held_out[i as usize].clone()).collect();
        let labels: Vec<u32> = idx.iter().map(|&i| part.labels[i as usize]).collect();
        let shift = mat_shift(&ho, &labels, CLASSES, cfg.temperature);
        let shift = Tensor::from_vec(shift, (idx.len(), CLASSES), &Device::Cpu)?;
        let loss = candle_nn::loss::cross_entropy(&(net.forward(&x)? + shift)?, &y)?;
        opt.backward_step(&loss)?;
        report_step(ctx, "MAT", step, cfg.mat_steps, &loss)?;
    }
    Ok(net)
}

/// Average, per-group and worst-group accuracy of predicted classes against `labels`.
pub fn figures(pred: &[u32], labels: &[u32], groups: &[u32]) -> Figures {
    let mut right = [0usize; GROUPS];
    let mut total = [0usize; GROUPS];
    for ((&p, &y), &g) in pred.iter().zip(labels).zip(groups) {
        if let (Some(t), Some(r)) = (total.get_mut(g as usize), right.get_mut(g as usize)) {
            *t += 1;
            *r += usize::from(p == y);
        }
    }
    let groups: Vec<GroupAccuracy> = (0..GROUPS)
        .map(|g| GroupAccuracy {
            group: g as u32,
            label: g as u32 / 2,
            attribute: g as u32 % 2,
            n: total[g],
            accuracy: (total[g] > 0).then(|| right[g] as f64 / total[g] as f64),
        })
        .collect();
    let (worst, worst_group) = groups
        .iter()
        .filter_map(|g| g.accuracy.map(|a| (g.group, a)))
        .fold((0, f64::INFINITY), |best, g| if g.1 < best.1 { g } else { best });
    let n: usize = total.iter().sum();
    Figures {
        average: right.iter().sum::<usize>() as f64 / n.max(1) as f64,
        worst_group: if worst_group.is_finite() { worst_group } else { 0.0 },
        worst,
        groups,
    }
}

fn argmax_rows(logits: &[Vec<f32>]) -> Vec<u32> {
    logits
        .iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |best, (k, &v)| if v > best.1 { (k, v) } else { best },
                )
                .0 as u32
        })
        .collect()
}

/// A network's figures on one side of the set.
pub fn evaluate(net: &Net, part: &SpuriousPart) -> CoreResult<Figures> {
    let x = Tensor::from_slice(&part.features, (part.n, part.dim), &Device::Cpu)?;
    let pred = argmax_rows(&net.logits(&x)?);
    Ok(figures(&pred, &part.labels, &part.groups))
}

fn method_figures(net: &Net, set: &SpuriousSet) -> CoreResult<MethodFigures> {
    Ok(MethodFigures {
        train: evaluate(net, &set.train)?,
        test: evaluate(net, &set.test)?,
    })
}

/// Builds the set, trains ERM, the XRM twins and MAT, and compares ERM with MAT.
pub fn run(cfg: &MatConfig, ctx: &JobCtx<'_>) -> CoreResult<MatReport> {
    cfg.validate()?;
    ctx.progress("building the coloured digits", 0, 1);
    let set = build(&cfg.data)?;
    let erm_net = train_erm(&set.train, cfg, ctx)?;
    let erm = method_figures(&erm_net, &set)?;
    drop(erm_net);
    let xrm = xrm_held_out(&set.train, cfg, ctx)?;
    let xrm_figures = XrmFigures {
        flip_rate: xrm.flip_rate,
        held_out: figures(&argmax_rows(&xrm.held_out), &set.train.labels, &set.train.groups),
        held_in: figures(&argmax_rows(&xrm.held_in), &set.train.labels, &set.train.groups),
    };
    let mat_net = train_mat(&set.train, &xrm.held_out, cfg, ctx)?;
    let mat = method_figures(&mat_net, &set)?;
    Ok(MatReport {
        method: "MAT: Bayat et al., The Pitfalls of Memorization: When Memorization Hurts \
                 Generalization (ICLR 2025)"
            .into(),
        settings: cfg.clone(),
        data: set.description,
        worst_group_gain: mat.test.worst_group - erm.test.worst_group,
        erm,
        xrm: xrm_figures,
        mat,
    })
}

/// Where a study keeps the report: `results/defences/mat.json`.
pub fn report_path(study: &crate::study::Study) -> std::path::PathBuf {
    study.results_dir().join("defences").join("mat.json")
}

/// Saves the report atomically and returns its path.
pub fn save(study: &crate::study::Study, report: &MatReport) -> CoreResult<std::path::PathBuf> {
    let path = report_path(study);
    crate::study::write_json_atomic(&path, report)?;
    Ok(path)
}

#[cfg(test)]
#[path = "mat_tests.rs"]
mod tests;
