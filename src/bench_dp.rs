//! `rote bench dp-zoo`: what DP-SGD costs a zoo. The same zoo (`rote zoo`'s recipe: stacked MLPs,
//! r = 0.7, batch 128, SGD lr 0.1 momentum 0.9) is trained twice in one run, each into its own
//! temporary study folder: plainly, then with DP-SGD at a fixed noise multiplier and clipping
//! norm (Poisson batches of expected size 128, per-sample clipping, Gaussian noise; the same
//! number of steps). Both figures are model-epochs per second; their ratio is the DP cost.
//! Peer: `benches/peers/opacus_zoo.py` (Opacus, and the same loop without it). Nothing is
//! asserted about times.

use crate::bench::{time_zoo, zoo_bench_config};
use crate::data::Dataset;
use crate::defence::dp_sgd::DpSettings;
use crate::error::CoreResult;
use crate::job::JobCtx;

/// δ of the benchmark's DP record (only reported: σ is fixed, so ε does not change the work).
const DELTA: f64 = 1e-5;

/// Figures from the DP-SGD zoo benchmark.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DpZooBench {
    /// Data set.
    pub data: String,
    /// Layer widths, input to classes.
    pub dims: Vec<usize>,
    /// Models.
    pub models: u32,
    /// Epochs per model (DP: the same number of steps, epochs x ⌈m / 128⌉).
    pub epochs: usize,
    /// Training rows per model (m).
    pub n_per_model: usize,
    /// Device (DP-SGD zoos train on the CPU, so both runs do).
    pub device: String,
    /// Noise multiplier σ.
    pub noise_multiplier: f64,
    /// Clipping norm C.
    pub clip: f64,
    /// Poisson sampling rate q = 128 / m.
    pub sample_rate: f64,
    /// DP-SGD steps.
    pub steps: u64,
    /// ε of the DP run at `delta` (rote's RDP accountant).
    pub epsilon: f64,
    /// δ.
    pub delta: f64,
    /// Seconds, plain training (training, scoring pass, records written).
    pub plain_secs: f64,
    /// models x epochs per second, plain.
    pub plain_model_epochs_per_sec: f64,
    /// Seconds, DP-SGD (the same phases).
    pub dp_secs: f64,
    /// models x epochs per second, DP-SGD.
    pub dp_model_epochs_per_sec: f64,
    /// What DP costs: DP seconds / plain seconds (above 1 DP is slower).
    pub dp_cost: f64,
}

impl DpZooBench {
    /// The figures as text lines.
    pub fn lines(&self) -> Vec<String> {
        let dims: Vec<String> = self.dims.iter().map(ToString::to_string).collect();
        vec![
            format!(
                "zoo of {} MLPs {} x {} epochs on {} samples each of {} ({}):",
                self.models,
                dims.join("-"),
                self.epochs,
                self.n_per_model,
                self.data,
                self.device
            ),
            format!(
                "  plain   : {:>8.2} s, {:.2} model-epochs/s",
                self.plain_secs, self.plain_model_epochs_per_sec
            ),
            format!(
                "  DP-SGD  : {:>8.2} s, {:.2} model-epochs/s (σ = {}, C = {}, q = {:.4}, {} steps, ε = {:.2} at δ = {:.0e})",
                self.dp_secs,
                self.dp_model_epochs_per_sec,
                self.noise_multiplier,
                self.clip,
                self.sample_rate,
                self.steps,
                self.epsilon,
                self.delta
            ),
            format!("  DP cost : {:.2}x the plain zoo's time", self.dp_cost),
        ]
    }
}

/// Trains `models` zoo MLPs on `ds` for `epochs` plainly, then with DP-SGD at noise multiplier
/// `noise` and clipping norm `clip`, on the CPU.
pub fn bench_dp_zoo(
    ds: &Dataset,
    models: u32,
    epochs: usize,
    noise: f64,
    clip: f64,
    ctx: &JobCtx<'_>,
) -> CoreResult<DpZooBench> {
    let plain = zoo_bench_config(epochs, "cpu");
    let m = crate::train::zoo::rows_per_model(ds, None, plain.train.subset_ratio, plain.train.seed)?;
    let settings = DpSettings {
        clip,
        epsilon: None,
        noise_multiplier: Some(noise),
        delta: DELTA,
    };
    let record = crate::train::dp_record(&settings, plain.train.batch_size, epochs, m)?;
    let private = crate::train::zoo::ZooConfig {
        dp: Some(record.clone()),
        ..plain.clone()
    };
    let plain_secs = time_zoo(&plain, ds, models, "dp-zoo-plain", ctx)?;
    let dp_secs = time_zoo(&private, ds, models, "dp-zoo-dp", ctx)?;
    let me = f64::from(models) * epochs as f64;
    let mut dims = vec![ds.image_len()];
    dims.extend(&plain.hidden);
    dims.push(ds.n_classes());
    Ok(DpZooBench {
        data: ds.name.clone(),
        dims,
        models,
        epochs,
        n_per_model: m,
        device: "cpu".into(),
        noise_multiplier: record.noise_multiplier,
        clip: record.clip,
        sample_rate: record.sample_rate,
        steps: record.steps,
        epsilon: record.epsilon,
        delta: record.delta,
        plain_secs,
        plain_model_epochs_per_sec: me / plain_secs,
        dp_secs,
        dp_model_epochs_per_sec: me / dp_secs,
        dp_cost: dp_secs / plain_secs,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests unwrap freely")]
    use super::*;
    use crate::job::{CancelToken, NullSink};

    /// Both runs happen, on the recipe's DP record, and leave no temporary folder (figures only;
    /// nothing about how long they took).
    #[test]
    fn both_zoos_train_on_the_dp_record_of_the_recipe() {
        let ds = crate::data::load("digits8x8").unwrap();
        let cancel = CancelToken::new();
        let ctx = JobCtx::new(&cancel, &NullSink);
        let r = bench_dp_zoo(&ds, 2, 1, 1.0, 1.0, &ctx).unwrap();
        assert_eq!(r.dims, vec![64, 512, 256, 10]);
        assert_eq!(r.steps, r.n_per_model.div_ceil(128) as u64);
        assert!((r.sample_rate - 128.0 / r.n_per_model as f64).abs() < 1e-12);
        assert!(r.epsilon.is_finite() && r.epsilon > 0.0);
        for v in [
            r.plain_secs,
            r.dp_secs,
            r.dp_cost,
            r.plain_model_epochs_per_sec,
            r.dp_model_epochs_per_sec,
        ] {
            assert!(v.is_finite() && v > 0.0, "{r:?}");
        }
        for tag in ["dp-zoo-plain", "dp-zoo-dp"] {
            let tmp = std::env::temp_dir().join(format!("rote-bench-{tag}-{}", std::process::id()));
            assert!(!tmp.exists(), "{}", tmp.display());
        }
    }
}
