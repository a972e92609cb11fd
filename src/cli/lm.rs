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

/// Options of `rote lm-generate`.
#[derive(Debug, clap::Args)]
pub struct LmGenerateArgs {
    /// Hugging Face model folder (config.json, model.safetensors, tokenizer.json).
    pub model: PathBuf,
    /// The prompt (e.g. the first words of a passage you suspect was memorized).
    #[arg(long)]
    pub prompt: String,
    /// Tokens to generate.
    #[arg(long, default_value_t = 32)]
    pub tokens: usize,
    /// Draw tokens (softmax at --temperature, --top-k) instead of greedy decoding.
    #[arg(long)]
    pub sample: bool,
    /// Continuations to draw with --sample.
    #[arg(long, default_value_t = 5)]
    pub n: usize,
    /// Softmax temperature with --sample.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// Draw only from the k most likely tokens with --sample.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Seed of --sample.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// `rote lm-generate`: greedy or sampled continuations of a prompt, with each one's ln p.
pub fn lm_generate(args: LmGenerateArgs, json: bool) -> CoreResult<()> {
    let device = crate::model::device(&args.device)?;
    let lm = HfLm::load(&args.model, &device)?;
    let prompt = lm.tokenizer.encode(&args.prompt)?;
    let outs = if args.sample {
        let sampling = crate::lm::Sampling {
            temperature: args.temperature,
            top_k: args.top_k,
            seed: args.seed,
        };
        let prompts = vec![prompt.as_slice(); args.n.max(1)];
        lm.model
            .generate_sampled_batch(&prompts, args.tokens, &sampling)?
    } else {
        vec![lm.model.generate_greedy(&prompt, args.tokens)?]
    };
    let mut rows = Vec::new();
    for ids in &outs {
        let full: Vec<u32> = prompt.iter().chain(ids).copied().collect();
        let lp = lm.model.token_logprobs(&full)?;
        let ln_p: f64 = lp[prompt.len().saturating_sub(1)..]
            .iter()
            .map(|&x| f64::from(x))
            .sum();
        rows.push(json!({"tokens": ids, "text": lm.tokenizer.decode(ids)?, "ln_p": ln_p}));
    }
    let value = json!({
        "model": args.model, "prompt": args.prompt, "prompt_tokens": prompt,
        "mode": if args.sample { "sample" } else { "greedy" }, "continuations": rows,
    });
    print(json, &value, || {
        let mut s = format!(
            "{} ({}), {} after {} prompt tokens:\n",
            args.model.display(),
            lm.model.model_type(),
            if args.sample {
                "sampled continuations"
            } else {
                "greedy continuation"
            },
            prompt.len()
        );
        for r in &rows {
            s.push_str(&format!(
                "  [ln p {:>8.2}] {}\n",
                r["ln_p"].as_f64().unwrap_or(f64::NAN),
                r["text"].as_str().unwrap_or_default()
            ));
        }
        s.pop();
        s
    });
    Ok(())
}
