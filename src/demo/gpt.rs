//! The demo's GPT (`gpt-demo`): a 4-layer GPT-2 trained by rote on a slice of the Austen novels
//! with passages from the same books planted 1, 4, 16 and 64 times, held-out twins never trained
//! on, and the Secret Sharer canaries of the character LM. Shipped in the Hugging Face layout in
//! `assets/demo/lm/gpt-demo/` (copied with the LSTM by `canary::copy_demo_lm`), rebuilt by
//! `rote demo --rebuild --gpt`.

use std::path::Path;

use crate::canary::card::lm_dir;
use crate::canary::train::LmConfig;
use crate::error::CoreResult;
use crate::job::JobCtx;
use crate::lm::card::GptRecipe;
use crate::lm::plant::PlantSpec;
use crate::lm::train::{GptConfig, train_gpt_into_study};
use crate::study::{Study, copy_tree};

/// The demo GPT's id.
pub const DEMO_GPT: &str = "gpt-demo";

/// The demo GPT: the same as `rote train-lm --arch gpt --id gpt-demo` (whose defaults are these).
pub fn demo_gpt_config() -> GptConfig {
    GptConfig {
        data: "austen".into(),
        chars: 150_000,
        val_chars: 20_000,
        plant: PlantSpec {
            counts: vec![1, 4, 16, 64],
            per_count: 10,
            held_out: 20,
            min_tokens: 64,
            formats: LmConfig::demo_formats(),
        },
        recipe: GptRecipe {
            n_layer: 4,
            n_embd: 128,
            n_head: 4,
            n_ctx: 128,
            vocab_size: 2048,
            epochs: 9,
            batch_size: 16,
            lr: 4e-3,
            seed: 0,
            warmup_steps: 50,
            weight_decay: 0.0,
        },
        device: "cpu".into(),
        id: DEMO_GPT.into(),
    }
}

/// Trains the demo GPT into `study` (a cached one is kept) and with `assets` replaces the
/// shipped copy.
pub fn rebuild_demo_gpt(study: &Study, assets: Option<&Path>, ctx: &JobCtx<'_>) -> CoreResult<()> {
    let cfg = demo_gpt_config();
    let cmd = "rote demo --rebuild --gpt --out STUDY";
    let (dir, _) = train_gpt_into_study(&cfg, &study.root, cmd, false, ctx)?;
    if let Some(assets) = assets {
        let dest = lm_dir(assets).join(&cfg.id);
        if dest.exists() {
            std::fs::remove_dir_all(&dest).map_err(|e| crate::CoreError::io(&dest, e))?;
        }
        copy_tree(&dir, &dest)?;
    }
    Ok(())
}
