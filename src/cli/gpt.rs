//! `rote train-lm --arch gpt`: a GPT-2 with planted passages and canaries, saved as a Hugging
//! Face folder with rote's card (`lm::train`).

use serde_json::json;

use super::CliSink;
use super::canary::{TrainLmArgs, command_line, parse_formats};
use super::commands::print;
use crate::error::CoreResult;
use crate::job::{CancelToken, JobCtx};
use crate::lm::card::GptCard;
use crate::lm::train::train_gpt_into_study;

/// The GPT-only options of `rote train-lm` (defaults: the demo GPT's).
#[derive(Debug, clap::Args)]
pub struct GptArgs {
    /// Transformer blocks (gpt).
    #[arg(long)]
    pub layers: Option<usize>,
    /// Width (gpt).
    #[arg(long)]
    pub width: Option<usize>,
    /// Attention heads (gpt).
    #[arg(long)]
    pub heads: Option<usize>,
    /// BPE vocabulary size, end-of-text token included (gpt).
    #[arg(long)]
    pub vocab: Option<usize>,
    /// Learning-rate warmup steps, then cosine decay (gpt).
    #[arg(long)]
    pub warmup: Option<usize>,
    /// AdamW weight decay (gpt).
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Insertion counts of the planted passages, comma separated (gpt).
    #[arg(long, value_delimiter = ',')]
    pub passage_counts: Option<Vec<u32>>,
    /// Passages per insertion count (gpt).
    #[arg(long)]
    pub passages: Option<usize>,
    /// Held-out passages from the same books, never trained on (gpt).
    #[arg(long)]
    pub held_out: Option<usize>,
    /// Least tokens per passage (gpt).
    #[arg(long)]
    pub passage_tokens: Option<usize>,
}

/// `rote train-lm --arch gpt`.
pub fn train_gpt(args: TrainLmArgs, json: bool) -> CoreResult<()> {
    let mut cfg = crate::demo::gpt::demo_gpt_config();
    let g = &args.gpt;
    cfg.id = args
        .id
        .clone()
        .unwrap_or_else(|| format!("gpt-{}-s{}", args.data, args.seed));
    cfg.data = args.data.clone();
    cfg.chars = args.chars.unwrap_or(cfg.chars);
    cfg.val_chars = args.val_chars.unwrap_or(cfg.val_chars);
    cfg.plant.formats = parse_formats(&args.formats)?;
    cfg.plant.counts = g.passage_counts.clone().unwrap_or(cfg.plant.counts);
    cfg.plant.per_count = g.passages.unwrap_or(cfg.plant.per_count);
    cfg.plant.held_out = g.held_out.unwrap_or(cfg.plant.held_out);
    cfg.plant.min_tokens = g.passage_tokens.unwrap_or(cfg.plant.min_tokens);
    let r = &mut cfg.recipe;
    r.n_layer = g.layers.unwrap_or(r.n_layer);
    r.n_embd = g.width.unwrap_or(r.n_embd);
    r.n_head = g.heads.unwrap_or(r.n_head);
    r.vocab_size = g.vocab.unwrap_or(r.vocab_size);
    r.warmup_steps = g.warmup.unwrap_or(r.warmup_steps);
    r.weight_decay = g.weight_decay.unwrap_or(r.weight_decay);
    r.n_ctx = args.seq_len.unwrap_or(r.n_ctx);
    r.epochs = args.epochs.unwrap_or(r.epochs);
    r.batch_size = args.batch_size.unwrap_or(r.batch_size);
    r.lr = args.lr.unwrap_or(r.lr);
    r.seed = args.seed;
    cfg.device = args.device.clone();
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let ctx = JobCtx::new(&cancel, &sink);
    let done = train_gpt_into_study(&cfg, &args.out, &command_line(), args.force, &ctx);
    sink.finish();
    let (dir, trained) = done?;
    let c = GptCard::read(&dir)?
        .ok_or_else(|| crate::CoreError::format(&dir, "has no card.json after training"))?;
    let last = c.epochs.last();
    let groups: Vec<_> = c
        .insertion_groups()
        .into_iter()
        .map(
            |g| json!({"insertions": g, "passages": c.passages.iter().filter(|p| p.insertions == g).count()}),
        )
        .collect();
    let value = json!({
        "id": c.id, "path": dir, "trained_now": trained, "n_params": c.n_params,
        "vocab": c.recipe.vocab_size, "seconds": c.seconds, "epochs": c.epochs,
        "train_loss": last.map(|e| e.train_loss), "val_loss": last.map(|e| e.val_loss),
        "passage_groups": groups, "canaries": c.canaries,
    });
    print(json, &value, || {
        let mut s = format!(
            "{} ({}): GPT-2 {} layers x {} wide, {} parameters, vocabulary {}, {} epochs in {:.0}s; train {:.3} / validation {:.3} nats per token\n",
            c.id,
            if trained { "trained" } else { "already there" },
            c.recipe.n_layer,
            c.recipe.n_embd,
            c.n_params,
            c.recipe.vocab_size,
            c.epochs.len(),
            c.seconds,
            last.map_or(f64::NAN, |e| e.train_loss),
            last.map_or(f64::NAN, |e| e.val_loss),
        );
        for g in c.insertion_groups() {
            let n = c.passages.iter().filter(|p| p.insertions == g).count();
            s.push_str(&format!("  {n} passages inserted {g} times\n"));
        }
        for can in &c.canaries {
            s.push_str(&format!(
                "  {}{}  x{}\n",
                c.formats[can.format].prefix, can.secret, can.insertions
            ));
        }
        s.push_str(&format!("-> {}", dir.display()));
        s
    });
    Ok(())
}
