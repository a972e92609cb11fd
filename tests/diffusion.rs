//! End to end on a tiny configuration (two 8-image DDPMs on complementary halves of 16 digits,
//! CPU, about a minute): the model that trained on an image generates near copies of it and
//! restores its hidden half; the model that did not, does neither. Planted ground truth: the
//! cards record exactly which images each model saw.

#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use rote::diffusion::attack::{AttackSpec, inpaint_attack, pick_images};
use rote::diffusion::extract::{GenSpec, run_extraction};
use rote::diffusion::inpaint::{InpaintConfig, InpaintMethod, MaskKind};
use rote::diffusion::sample::{Sampler, generate};
use rote::diffusion::{Ddpm, DdpmTrainConfig, diffusion_dir, train_into_study};
use rote::job::{CancelToken, JobCtx, NullSink};
use rote::measure::extraction::{Criterion, ExtractionConfig, PlantedTruth, extraction_report};

#[test]
fn tiny_ddpm_pair_memorizes_its_own_images_only() {
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancelToken::new();
    let ctx = JobCtx::new(&cancel, &NullSink);
    let cfg = DdpmTrainConfig {
        data: "digits8x8".into(),
        images: 16,
        base: 16,
        steps: 1500,
        batch_size: 8,
        lr: 2e-3,
        models: 2,
        subset_ratio: 0.5,
        ..Default::default()
    };
    let ids = train_into_study(&cfg, dir.path(), "test", false, &ctx).unwrap();
    assert_eq!(ids.len(), 2);
    // A second call finds both models and trains nothing (the demo opens instantly).
    let again = train_into_study(&cfg, dir.path(), "test", false, &ctx).unwrap();
    assert!(again.iter().all(|(_, trained)| !trained));

    let dev = candle_core::Device::Cpu;
    let a_dir = diffusion_dir(dir.path()).join(&ids[0].0);
    let a = Ddpm::load(&a_dir, &dev).unwrap();
    let b = Ddpm::load(&diffusion_dir(dir.path()).join(&ids[1].0), &dev).unwrap();
    let ds = rote::data::load("digits8x8").unwrap();

    // Extraction: A's generations land on A's training images (absolute l2 <= 0.12 in [0, 1]
    // pixels); B's generations, scored against A's training set, do not.
    let ecfg = ExtractionConfig {
        criterion: Criterion::Absolute,
        delta: 0.12,
        cliques: None,
        ..ExtractionConfig::default()
    };
    let sampler = Sampler::Ddim { steps: 25, eta: 0.0 };
    let spec = GenSpec {
        n: 32,
        seed: 0,
        sampler,
    };
    let run = run_extraction(&a_dir, &ds, &spec, &ecfg, false, &ctx).unwrap();
    let s = &run.report.summary;
    assert!(s.n_extracted >= 12, "A extracted only {} of 32", s.n_extracted);
    assert!(s.unique_train_extracted >= 3, "{s:?}");
    let gens_b = generate(&b, 32, 0, sampler, 32, ds.max_value, &ctx)
        .unwrap()
        .concat();
    let to255 = |v: &[u8]| {
        v.iter()
            .map(|&p| (f32::from(p) / 16.0 * 255.0).round() as u8)
            .collect::<Vec<_>>()
    };
    let train_a: Vec<u8> = a
        .card
        .train_indices
        .iter()
        .flat_map(|&i| ds.image(i as usize).unwrap().to_vec())
        .collect();
    let cross = extraction_report(
        &to255(&gens_b),
        &to255(&train_a),
        a.shape(),
        &ecfg,
        &PlantedTruth::default(),
        false,
        None,
    )
    .unwrap();
    assert!(
        cross.summary.n_extracted * 3 <= s.n_extracted,
        "B's generations hit A's images {} times vs A's own {}",
        cross.summary.n_extracted,
        s.n_extracted
    );
    // Cached generations: the second run samples nothing.
    assert!(
        run_extraction(&a_dir, &ds, &spec, &ecfg, false, &ctx)
            .unwrap()
            .cached
    );

    // Inpainting attack: the IN model restores the hidden half far better than the OUT model.
    let images = pick_images(&a.card, &b.card, 16, 0);
    assert_eq!(images.len(), 16);
    let icfg = InpaintConfig {
        method: InpaintMethod::Replace,
        steps: 25,
        ..InpaintConfig::default()
    };
    let spec = AttackSpec {
        mask: MaskKind::Right,
        config: icfg,
        samples: 2,
        seed: 0,
    };
    let rep = inpaint_attack(&a, &b, &ds, &images, &spec, &ctx).unwrap();
    assert!(rep.auc >= 0.9, "inpainting AUC {}", rep.auc);
    assert!(
        rep.mean_err_in * 2.0 < rep.mean_err_out,
        "{} vs {}",
        rep.mean_err_in,
        rep.mean_err_out
    );
    // Roles follow the cards: each image's IN model trained on it.
    for r in &rep.rows {
        let m = if r.in_model == a.card.id { &a } else { &b };
        assert!(m.card.train_indices.contains(&(r.index as u32)));
    }

    // Loss-at-t membership inference: at t = 100 the loss separates members, near T it does not.
    let mia_cfg = rote::diffusion::mia::DiffusionMiaConfig {
        timesteps: vec![100, 950],
        draws: 2,
        seed: 0,
    };
    let models = vec![a, b];
    let mia = rote::diffusion::mia::diffusion_mia(&models, &ds, &mia_cfg, &ctx).unwrap();
    let curve = mia.curve(rote::measure::mia::Attack::Loss);
    assert_eq!(curve.len(), 2);
    assert!(curve[0].1 >= 0.9, "AUC at t=100: {}", curve[0].1);
    assert!(
        curve[1].1 < curve[0].1 - 0.2,
        "AUC at t=950 {} vs t=100 {}",
        curve[1].1,
        curve[0].1
    );
}
