//! The demo's GPT (`gpt-demo`): a 4-layer GPT-2 trained by rote on a slice of the Austen novels
//! with passages from the same books planted 1, 4, 16 and 64 times, held-out twins never trained
//! on, and the Secret Sharer canaries of the character LM. Shipped in the Hugging Face layout in
//! `assets/demo/lm/gpt-demo/` (copied with the LSTM by `canary::copy_demo_lm`), rebuilt by
//! `rote demo --rebuild --gpt`.

use std::path::Path;

use crate::canary::card::lm_dir;
use crate::canary::open::CanaryModel;
use crate::canary::report::{Estimate, ExposureOptions, report_path};
use crate::canary::train::LmConfig;
use crate::error::CoreResult;
use crate::job::JobCtx;
use crate::lm::HfLm;
use crate::lm::card::GptRecipe;
use crate::lm::extract_report::{LmExtractOptions, extract_into_study};
use crate::lm::mia_report::{LmMiaOptions, mia_into_study};
use crate::lm::plant::PlantSpec;
use crate::lm::probe_report::{HELDOUT_CHARS, ProbeOptions, ProbeTexts, probe_into_study};
use crate::lm::study::{extraction_docs, heldout_corpus_text, mia_docs};
use crate::lm::train::{GptConfig, train_gpt_into_study};
use crate::study::{Study, copy_tree, write_atomic, write_json_atomic};

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
            epochs: 12,
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

/// Trains the demo GPT into `study` (a cached one is kept), measures it (extraction and
/// membership of the card's passages, exposure of its canaries, so the Text and Exposure views
/// open full) and with `assets` replaces the shipped copies.
pub fn rebuild_demo_gpt(study: &Study, assets: Option<&Path>, ctx: &JobCtx<'_>) -> CoreResult<()> {
    let cfg = demo_gpt_config();
    let cmd = "rote demo --rebuild --gpt --out STUDY";
    let (dir, _) = train_gpt_into_study(&cfg, &study.root, cmd, false, ctx)?;
    let reports = measure_demo_gpt(&dir, &study.root, ctx)?;
    if let Some(assets) = assets {
        let dest = lm_dir(assets).join(&cfg.id);
        if dest.exists() {
            std::fs::remove_dir_all(&dest).map_err(|e| crate::CoreError::io(&dest, e))?;
        }
        copy_tree(&dir, &dest)?;
        for path in reports {
            let rel = path
                .strip_prefix(&study.root)
                .map_err(|_| crate::CoreError::format(&path, "is outside the study"))?;
            let bytes = std::fs::read(&path).map_err(|e| crate::CoreError::io(&path, e))?;
            write_atomic(&assets.join(rel), &bytes)?;
        }
    }
    Ok(())
}

/// The demo GPT's reports with the commands' defaults: `rote lm-extract`, `rote lm-mia`,
/// `rote lm-probe` and `rote exposure` on the model in `dir`, cached in `study_root`; returns the files written.
pub fn measure_demo_gpt(
    dir: &Path,
    study_root: &Path,
    ctx: &JobCtx<'_>,
) -> CoreResult<Vec<std::path::PathBuf>> {
    let device = crate::model::device("cpu")?;
    let lm = HfLm::load(dir, &device)?;
    let mut written = Vec::new();
    let (docs, source) = extraction_docs(dir, None)?;
    let opts = LmExtractOptions::default().with_sweep();
    let (_, path) = extract_into_study(&lm, source, &docs, &opts, Some(study_root), ctx)?;
    written.extend(path);
    let (members, nonmembers, source) = mia_docs(dir, None)?;
    let opts = LmMiaOptions::default();
    let (_, path) = mia_into_study(
        &lm,
        None,
        source,
        &members,
        &nonmembers,
        &opts,
        Some(study_root),
        ctx,
    )?;
    written.extend(path);
    let (members, nonmembers, source) = mia_docs(dir, None)?;
    let card = crate::lm::card::GptCard::read(dir)?;
    let heldout = card.as_ref().and_then(|c| heldout_corpus_text(c, HELDOUT_CHARS));
    let texts = ProbeTexts {
        members: &members,
        nonmembers: &nonmembers,
        heldout_text: heldout.as_deref(),
    };
    probe_into_study(
        &lm,
        source.clone(),
        &texts,
        &ProbeOptions::default(),
        Some(study_root),
        true,
        ctx,
    )?;
    written.push(crate::lm::study::probe_path(study_root, &lm.id(), &source));
    let model = CanaryModel::load(dir, &device)?;
    let set = model
        .card_set()
        .ok_or_else(|| crate::CoreError::format(dir, "the demo GPT has no canaries in its card"))?;
    let report = model.measure(&set, &ExposureOptions::default(), ctx)?;
    let path = report_path(study_root, &report.model, Estimate::Both);
    write_json_atomic(&path, &report)?;
    written.push(path);
    Ok(written)
}
