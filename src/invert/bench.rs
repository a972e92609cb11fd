//! `rote bench invert`: MI-FACE gradient steps per second on a softmax-regression model of
//! orl-faces (every step inverts all 40 people at once). Prints figures, never asserts times.

use std::time::Instant;

use super::{InvertConfig, Method};
use crate::error::CoreResult;
use crate::job::JobCtx;
use crate::model::Family;
use crate::train::{TrainConfig, train};

/// Figures of one benchmark run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct InvertBench {
    /// Device name.
    pub device: String,
    /// Classes inverted together.
    pub classes: usize,
    /// Image shape.
    pub shape: [usize; 3],
    /// Gradient steps timed.
    pub steps: usize,
    /// Seconds for them.
    pub seconds: f64,
    /// Batched steps per second.
    pub steps_per_s: f64,
    /// Per-image steps per second (steps x classes / seconds).
    pub image_steps_per_s: f64,
    /// Seconds to train the softmax model first.
    pub train_seconds: f64,
}

/// Trains a softmax regression on orl-faces and times `steps` MI-FACE steps on all its classes.
pub fn bench_miface(steps: usize, device: &str, ctx: &JobCtx<'_>) -> CoreResult<InvertBench> {
    let ds = crate::data::load("orl-faces")?;
    let cfg = TrainConfig {
        family: Family::Softmax,
        data: "orl-faces".into(),
        epochs: 20,
        batch_size: 32,
        device: device.into(),
        ..TrainConfig::default()
    };
    let t0 = Instant::now();
    let out = train(&cfg, &ds, ctx)?;
    let train_seconds = t0.elapsed().as_secs_f64();
    let dev = crate::model::device(device)?;
    let classes: Vec<usize> = (0..ds.n_classes()).collect();
    let inv = InvertConfig {
        method: Method::MiFace,
        alpha: steps.max(1),
        beta: 0,
        gamma: -1.0,
        ..InvertConfig::default()
    };
    let shape = [ds.c, ds.h, ds.w];
    let t1 = Instant::now();
    let frozen = crate::model::Classifier::frozen(&out.card.spec, &out.varmap, &dev)?;
    super::miface::mi_face(&frozen, &dev, shape, &classes, &inv, ctx)?;
    let seconds = t1.elapsed().as_secs_f64();
    Ok(InvertBench {
        device: device.into(),
        classes: classes.len(),
        shape,
        steps: inv.alpha,
        seconds,
        steps_per_s: inv.alpha as f64 / seconds,
        image_steps_per_s: (inv.alpha * classes.len()) as f64 / seconds,
        train_seconds,
    })
}
