//! `rote lm-score`: per-token log-probabilities of a text under a Hugging Face causal LM.

use std::path::PathBuf;

use serde_json::json;

use super::commands::print;
use crate::error::CoreResult;
use crate::lm::HfLm;

/// Options of `rote lm-score`.
#[derive(Debug, clap::Args)]
pub struct LmScoreArgs {
    /// Hugging Face model folder (config.json, model.safetensors, tokenizer.json).
    pub model: PathBuf,
    /// Text to score.
    #[arg(long)]
    pub text: String,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// `rote lm-score`.
pub fn lm_score(args: LmScoreArgs, json: bool) -> CoreResult<()> {
    let device = crate::model::device(&args.device)?;
    let lm = HfLm::load(&args.model, &device)?;
    let ids = lm.tokenizer.encode(&args.text)?;
    let lp = lm.model.token_logprobs(&ids)?;
    let logprobs: Vec<Option<f32>> = std::iter::once(None)
        .chain(lp.iter().copied().map(Some))
        .collect();
    let total: f64 = lp.iter().map(|&x| f64::from(x)).sum();
    let value = json!({
        "model": args.model, "model_type": lm.model.model_type(), "tokens": ids, "logprobs": logprobs,
        "total_logprob": total,
    });
    print(json, &value, || {
        let mut s = format!(
            "{} ({}): {} tokens, total ln p {:.3}, mean {:.3} nats per scored token\n",
            args.model.display(),
            lm.model.model_type(),
            ids.len(),
            total,
            if lp.is_empty() {
                f64::NAN
            } else {
                total / lp.len() as f64
            },
        );
        s.push_str(&format!("{:>5}  {:>7}  {:>9}  token\n", "#", "id", "ln p"));
        for (k, (&id, p)) in ids.iter().zip(&logprobs).enumerate() {
            let text = lm.tokenizer.token_text(id).unwrap_or_default();
            let p = p.map_or("-".to_string(), |p| format!("{p:.4}"));
            s.push_str(&format!("{k:>5}  {id:>7}  {p:>9}  {text:?}\n"));
        }
        s.pop();
        s
    });
    Ok(())
}
