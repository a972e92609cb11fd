//! `rote bench lm`: tokens scored per second by a causal LM (logits at every position,
//! log-softmax, the next token's log-probability gathered and read back), the work of
//! [`CausalLm::token_logprobs_batch`] and of every membership score. The peer is
//! `benches/peers/lm_score.py` (transformers, same sizes); figures in `docs/performance.md`.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};
use rand::{Rng as _, SeedableRng as _};

use super::hf::{HfConfig, build};
use super::{CausalLm, HfLm};
use crate::error::{CoreError, CoreResult};

/// One benchmark run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LmBenchResult {
    /// The model folder, or the random-weight shape.
    pub model: String,
    /// Its family.
    pub model_type: String,
    /// Parameters.
    pub params: usize,
    /// Sequences per pass.
    pub batch: usize,
    /// Tokens per sequence.
    pub seq: usize,
    /// Timed passes.
    pub reps: usize,
    /// Where it ran.
    pub device: String,
    /// Seconds of the timed passes.
    pub seconds: f64,
    /// Tokens scored per second (`batch * seq * reps / seconds`).
    pub tokens_per_sec: f64,
    /// Mean ln p of the scored tokens (a check that both sides compute the same thing on the
    /// same model).
    pub mean_logprob: f64,
}

/// A GPT-2-small-shaped model (transformers' default `GPT2Config`: 12 layers, 768 wide, 12
/// heads, vocabulary 50,257, 1,024 positions) with N(0, 0.02) weights and unit LayerNorm gains:
/// speed does not depend on the values.
pub fn random_gpt2_small(device: &Device) -> CoreResult<(Box<dyn CausalLm>, usize)> {
    let cfg = HfConfig::from_value(
        &serde_json::json!({"model_type": "gpt2"}),
        Path::new("gpt2-small config"),
    )?;
    let mut tensors = HashMap::new();
    let mut params = 0;
    for (name, shape) in cfg.expected(&|_| false) {
        params += shape.iter().product::<usize>();
        let t = if name.contains("ln_") && name.ends_with(".weight") {
            Tensor::ones(shape.as_slice(), candle_core::DType::F32, device)?
        } else {
            (Tensor::randn(0f32, 1f32, shape.as_slice(), device)? * 0.02)?
        };
        tensors.insert(name, t);
    }
    let model = build(&cfg, tensors, &|_| false, device)?;
    Ok((model, params))
}

/// Scores `batch` sequences of `seq` seeded uniform token ids `reps` times after one untimed
/// pass, with the model in `model_dir` or, without one, [`random_gpt2_small`].
pub fn bench_lm(
    model_dir: Option<&Path>,
    batch: usize,
    seq: usize,
    reps: usize,
    device: &str,
) -> CoreResult<LmBenchResult> {
    if batch == 0 || seq < 2 || reps == 0 {
        return Err(CoreError::Invalid(
            "bench lm needs --batch >= 1, --seq >= 2 and --reps >= 1".into(),
        ));
    }
    let dev = crate::model::device(device)?;
    let (model, params, name) = match model_dir {
        Some(dir) => {
            let lm = HfLm::load(dir, &dev)?;
            let params = super::hf::HfConfig::read(dir)?
                .expected(&|_| false)
                .iter()
                .map(|(_, s)| s.iter().product::<usize>())
                .sum();
            (lm.model, params, dir.display().to_string())
        }
        None => {
            let (m, p) = random_gpt2_small(&dev)?;
            (m, p, "gpt2-small-shaped (random weights)".to_string())
        }
    };
    let vocab = model.vocab_size() as u32;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let seqs: Vec<Vec<u32>> = (0..batch)
        .map(|_| (0..seq).map(|_| rng.random_range(0..vocab)).collect())
        .collect();
    let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
    model.token_logprobs_batch(&refs)?;
    let t0 = Instant::now();
    let mut out = Vec::new();
    for _ in 0..reps {
        out = model.token_logprobs_batch(&refs)?;
    }
    let seconds = t0.elapsed().as_secs_f64();
    let n: usize = out.iter().map(Vec::len).sum();
    let mean_logprob = out.iter().flatten().map(|&x| f64::from(x)).sum::<f64>() / n.max(1) as f64;
    Ok(LmBenchResult {
        model: name,
        model_type: model.model_type().to_string(),
        params,
        batch,
        seq,
        reps,
        device: device.to_string(),
        seconds,
        tokens_per_sec: (batch * seq * reps) as f64 / seconds,
        mean_logprob,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_empty_workloads() {
        assert!(bench_lm(None, 0, 8, 1, "cpu").is_err());
        assert!(bench_lm(None, 1, 1, 1, "cpu").is_err());
    }

    #[test]
    fn scores_a_fixture_model() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lm/gpt2");
        let r = bench_lm(Some(&dir), 2, 8, 1, "cpu").unwrap();
        assert_eq!(r.model_type, "gpt2");
        assert!(r.params > 0 && r.tokens_per_sec > 0.0);
        // Random weights over a small vocabulary: mean ln p near -ln V, and finite.
        assert!(r.mean_logprob.is_finite() && r.mean_logprob < 0.0, "{r:?}");
    }
}
