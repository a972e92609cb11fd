//! SSL memorization end to end on a tiny scale: a SimCLR encoder pair on 50 MNIST images (10
//! shared, 20 candidates with 3 Fashion-MNIST items planted, 20 independent), trained long enough
//! to overfit. f trained on the candidates and g never saw them, so f must align the candidates'
//! views better than g in the last layer (positive mean SSLMem / LayerMem); the pair check
//! refuses swapped roles.

use rote::job::{CancelToken, JobCtx, NullSink};
use rote::ssl::augment::AugConfig;
use rote::ssl::measure::{AlignForm, Probe, align_losses};
use rote::ssl::split::images01;
use rote::ssl::{
    LayerMemConfig, SplitConfig, SslEncoder, SslPairConfig, SslRecipe, layermem_into_study, pair_dirs,
    train_pair_into_study,
};

#[test]
fn f_aligns_its_candidates_better_than_g_in_the_last_layer() {
    let study = tempfile::tempdir().unwrap();
    let cfg = SslPairConfig {
        data: "mnist10k".into(),
        split: SplitConfig {
            images: 50,
            candidate_frac: 0.4,
            plant_outliers: 3,
            outlier_data: "fashion-mnist".into(),
            seed: 1,
        },
        widths: vec![4, 8, 8],
        recipe: SslRecipe {
            epochs: 80,
            batch_size: 30,
            lr: 3e-3,
            weight_decay: 1e-6,
            temperature: 0.5,
            aug: AugConfig::default(),
            seed: 1,
        },
        device: "cpu".into(),
        id: "tiny".into(),
        half: false,
    };
    let cancel = CancelToken::new();
    let ctx = JobCtx::new(&cancel, &NullSink);
    let t0 = std::time::Instant::now();
    let done = train_pair_into_study(&cfg, study.path(), "test", false, &ctx).unwrap();
    assert!(done.iter().all(|(_, trained)| *trained));
    eprintln!("training: {:.1}s", t0.elapsed().as_secs_f64());
    // A second call finds both encoders and trains nothing.
    let again = train_pair_into_study(&cfg, study.path(), "test", false, &ctx).unwrap();
    assert!(again.iter().all(|(_, trained)| !*trained));

    let [f_dir, g_dir] = pair_dirs(study.path(), "tiny");
    let mcfg = LayerMemConfig {
        augmentations: 5,
        unit_augmentations: 4,
        ..LayerMemConfig::default()
    };
    let (r, path) = layermem_into_study(&f_dir, &g_dir, &mcfg, &ctx).unwrap();
    assert!(path.is_file());
    assert_eq!(r.layers.len(), 9);
    assert_eq!(r.layermem.len(), 9);
    assert_eq!(r.layermem[0].len(), 20);
    assert_eq!(r.outliers.planted.len(), 3);
    let last = r.layers.len() - 1;
    eprintln!(
        "raw {:?}\nLayerMem {:?}\nplanted {:?}\nrest {:?}\nratio {:?} raw {:?} minmax {:?}",
        r.raw_mean,
        r.layermem_mean,
        r.layermem_mean_planted,
        r.layermem_mean_rest,
        r.outliers.ratio,
        r.outliers.ratio_raw,
        r.outliers.ratio_minmax
    );
    assert!(
        r.raw_mean[last] > 0.0,
        "f should align its own training images better than g: {:?}",
        r.raw_mean
    );
    // UnitMem lies in [0, 1] for the post-ReLU layers.
    for layer in &r.unitmem_f {
        assert!(layer.unitmem.iter().flatten().all(|u| (0.0..=1.0).contains(u)));
    }
    // The report reads back.
    let text = std::fs::read_to_string(&path).unwrap();
    let back: rote::ssl::LayerMemReport = serde_json::from_str(&text).unwrap();
    assert_eq!(back.layers, r.layers);

    // Swapping f and g is refused as a pair.
    let err = layermem_into_study(&g_dir, &f_dir, &mcfg, &ctx).unwrap_err();
    assert!(err.to_string().contains("candidate (f)"), "{err}");
    let dev = candle_core::Device::Cpu;
    let f = SslEncoder::load(&f_dir, &dev).unwrap();
    let main = rote::data::load("mnist10k").unwrap();
    let fashion = rote::data::load("fashion-mnist").unwrap();
    let refs = f.card.split.candidate_refs();
    let pixels = images01(&refs, &main, Some(&fashion)).unwrap();
    let probe = Probe {
        pixels: &pixels,
        refs: &refs,
        shape: [1, 28, 28],
        aug: &f.card.recipe.aug,
        seed: 0,
        chunk: 16,
    };
    // The draws depend on (candidate, draw) only: f measured twice in one pass gives identical
    // losses, so f and g are compared on the same views.
    let ff = align_losses(&[&f, &f], &probe, 2, AlignForm::TwoView, &dev, &ctx).unwrap();
    assert!(
        ff[0]
            .iter()
            .flatten()
            .zip(ff[1].iter().flatten())
            .all(|(a, b)| a == b)
    );
    eprintln!("total: {:.1}s", t0.elapsed().as_secs_f64());
}
