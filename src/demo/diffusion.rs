//! The demo study's diffusion models and results: a DDPM on 400 MNIST digits (28x28) with 10 of
//! them planted 32 times (the extraction and presentation default), the same recipe on the 8x8
//! digits (the test model), and an IN/OUT pair on complementary halves of 64 8x8 digits
//! (inpainting demo). Shipped in `assets/demo/diffusion/` with f16 weights and their cached
//! generations; `rote demo --rebuild --diffusion` retrains them with the commands in their cards.

use std::path::Path;

use candle_core::DType;

use crate::diffusion::attack::{AttackSpec, inpaint_attack, pick_images};
use crate::diffusion::extract::{GenSpec, run_extraction};
use crate::diffusion::inpaint::{InpaintConfig, MaskKind};
use crate::diffusion::sample::Sampler;
use crate::diffusion::{Ddpm, DdpmTrainConfig, ScheduleKind, diffusion_dir, train_into_study};
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
use crate::measure::extraction::ExtractionConfig;
use crate::study::{Study, copy_tree, write_json_atomic};

/// Id of the extraction demo model (MNIST 28x28): the Extraction view's and the presentation's
/// default.
pub const DUP_MODEL: &str = "ddpm-mnist-dup32";
/// Id of the 8x8 extraction model (same recipe; the tests' model).
pub const DIGITS_DUP_MODEL: &str = "ddpm-digits-dup32";
/// The same recipe trained on the deduplicated list (`--dedup`, a defence): its planted
/// duplicates are no longer extracted.
pub const DIGITS_DEDUP_MODEL: &str = "ddpm-digits-dup32-dedup";
/// Id stem of the inpainting pair (`-k00`, `-k01`).
pub const PAIR_STEM: &str = "ddpm-digits-pair";
/// Generations scored by the demo extraction.
pub const DEMO_SAMPLES: usize = 1024;

/// The demo training configurations: the two extraction models (MNIST 28x28 and 8x8 digits,
/// one recipe) and the inpainting pair.
pub fn demo_diffusion_configs() -> Vec<DdpmTrainConfig> {
    let dup = |data: &str, id: &str| DdpmTrainConfig {
        data: data.into(),
        images: 400,
        plant_duplicates: 10,
        dup_factor: 32,
        base: 32,
        schedule: ScheduleKind::Linear,
        t_max: 1000,
        steps: 4000,
        batch_size: 32,
        lr: 1e-3,
        seed: 0,
        device: "cpu".into(),
        models: 1,
        subset_ratio: 0.5,
        id: id.into(),
        dedup: None,
    };
    vec![
        dup("mnist10k", DUP_MODEL),
        dup("digits8x8", DIGITS_DUP_MODEL),
        DdpmTrainConfig {
            dedup: Some(crate::defence::dedup::DEFAULT_THRESHOLD),
            ..dup("digits8x8", DIGITS_DEDUP_MODEL)
        },
        DdpmTrainConfig {
            data: "digits8x8".into(),
            images: 64,
            base: 32,
            steps: 3000,
            batch_size: 16,
            lr: 1e-3,
            models: 2,
            subset_ratio: 0.5,
            id: PAIR_STEM.into(),
            ..DdpmTrainConfig::default()
        },
    ]
}

/// The `rote train` command equivalent to `cfg`.
pub fn train_command(cfg: &DdpmTrainConfig) -> String {
    format!(
        "rote train --family ddpm --data {} --images {} --plant-duplicates {} --dup-factor {} --base {} \
         --steps {} --batch-size {} --lr {} --seed {} --models {} --subset-ratio {} --id {}{} --out STUDY",
        cfg.data,
        cfg.images,
        cfg.plant_duplicates,
        cfg.dup_factor,
        cfg.base,
        cfg.steps,
        cfg.batch_size,
        cfg.lr,
        cfg.seed,
        cfg.models,
        cfg.subset_ratio,
        cfg.id,
        cfg.dedup
            .map_or_else(String::new, |t| format!(" --dedup --dedup-threshold {t}"))
    )
}

/// Copies the shipped diffusion models and results into `study` (what is already there is kept).
pub fn copy_demo_diffusion(study: &Study, assets: &Path) -> CoreResult<()> {
    for (src, dest) in [
        (assets.join("diffusion"), diffusion_dir(&study.root)),
        (
            assets.join("results").join("diffusion"),
            study.root.join("results").join("diffusion"),
        ),
    ] {
        let Ok(entries) = std::fs::read_dir(&src) else {
            continue;
        };
        for e in entries.flatten() {
            let to = dest.join(e.file_name());
            if e.path().is_dir() && !to.exists() {
                copy_tree(&e.path(), &to)?;
            }
        }
    }
    Ok(())
}

/// Trains the demo diffusion models into `study` (models already there with the same id are
/// kept: rebuild into a fresh folder to retrain), rounds their weights to f16 as shipped (so the
/// study's results are those of the shipped weights), runs the extraction and inpainting
/// attacks, and with `update_assets` replaces the shipped copies.
pub fn rebuild_demo_diffusion(study: &Study, assets: Option<&Path>, ctx: &JobCtx<'_>) -> CoreResult<()> {
    let cfgs = demo_diffusion_configs();
    for cfg in &cfgs {
        let cmd = format!(
            "rote demo --rebuild --diffusion --out STUDY  (trains: {})",
            train_command(cfg)
        );
        train_into_study(cfg, &study.root, &cmd, false, ctx)?;
    }
    let dir = diffusion_dir(&study.root);
    let dev = crate::model::device("cpu")?;
    let ids = [
        DUP_MODEL.to_string(),
        DIGITS_DUP_MODEL.to_string(),
        DIGITS_DEDUP_MODEL.to_string(),
        format!("{PAIR_STEM}-k00"),
        format!("{PAIR_STEM}-k01"),
    ];
    for id in &ids {
        Ddpm::load(&dir.join(id), &dev)?.save(&dir.join(id), DType::F16)?;
        // Cached generations are keyed by sampler, seed and count, not by the weights.
        let gens = dir.join(id).join("generations");
        if gens.exists() {
            std::fs::remove_dir_all(&gens).map_err(|e| CoreError::io(&gens, e))?;
        }
    }
    let results = study.root.join("results").join("diffusion");
    for (id, data) in [
        (DUP_MODEL, "mnist10k"),
        (DIGITS_DUP_MODEL, "digits8x8"),
        (DIGITS_DEDUP_MODEL, "digits8x8"),
    ] {
        let ds = crate::data::load(data)?;
        let mut run = run_extraction(
            &dir.join(id),
            &ds,
            &GenSpec {
                n: DEMO_SAMPLES,
                seed: 0,
                sampler: Sampler::Ddim { steps: 50, eta: 0.0 },
            },
            &ExtractionConfig::default(),
            true,
            ctx,
        )?;
        // Sharpness (Jeon et al.) of the generations and of the training images, as
        // `rote extract --sharpness` and `rote sharpness` compute them.
        let model = Ddpm::load(&dir.join(id), &dev)?;
        let scfg = crate::diffusion::sharpness::SharpnessConfig::default();
        run.measure_sharpness(&model, &dir.join(id), ds.max_value, &scfg, ctx)?;
        let sharp =
            crate::diffusion::sharpness::training_sharpness(&model, &dir.join(id), &ds, &scfg, 512, ctx)?;
        write_json_atomic(
            &results.join(id).join(format!("sharpness-t{}.json", scfg.t)),
            &sharp,
        )?;
        write_json_atomic(
            &results
                .join(id)
                .join(format!("extraction-s0-n{DEMO_SAMPLES}.json")),
            &run,
        )?;
    }
    let ds = crate::data::load("digits8x8")?;
    let a = Ddpm::load(&dir.join(format!("{PAIR_STEM}-k00")), &dev)?;
    let b = Ddpm::load(&dir.join(format!("{PAIR_STEM}-k01")), &dev)?;
    let images = pick_images(&a.card, &b.card, 32, 0);
    let spec = AttackSpec {
        mask: MaskKind::Right,
        config: InpaintConfig::default(),
        samples: 4,
        seed: 0,
    };
    let rep = inpaint_attack(&a, &b, &ds, &images, &spec, ctx)?;
    write_json_atomic(
        &results
            .join(&a.card.id)
            .join(format!("inpaint-{}.json", b.card.id)),
        &rep,
    )?;
    let a_id = a.card.id.clone();
    let mia = crate::diffusion::mia::diffusion_mia(
        &[a, b],
        &ds,
        &crate::diffusion::mia::DiffusionMiaConfig::default(),
        ctx,
    )?;
    write_json_atomic(&results.join(&a_id).join("mia-diffusion.json"), &mia)?;
    if let Some(assets) = assets {
        for id in &ids {
            let m = Ddpm::load(&dir.join(id), &dev)?;
            let dest = assets.join("diffusion").join(id);
            m.save(&dest, DType::F16)?;
            let gens = dir.join(id).join("generations");
            if gens.is_dir() {
                copy_tree(&gens, &dest.join("generations"))?;
            }
        }
        let dest = assets.join("results").join("diffusion");
        if dest.exists() {
            std::fs::remove_dir_all(&dest).map_err(|e| CoreError::io(&dest, e))?;
        }
        copy_tree(&results, &dest)?;
    }
    Ok(())
}
