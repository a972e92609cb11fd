//! Every long job (training, a zoo, DDPM training, extraction, LM training, exposure, an SSL
//! encoder pair, inversion) cancelled through its token at its 1st, 3rd, 9th... event: each
//! cancelled run returns `Cancelled` and leaves the study as it was, apart from the complete
//! results the job keeps by design, with no partial file.

use std::collections::BTreeMap;
use std::path::Path;

use rote::study::Study;

use super::{hex, leftovers, walk};

/// A sink that requests cancellation at its `at`-th event (progress, metric or log line): the job
/// stops at its next checkpoint, wherever that falls.
struct CancelAt {
    at: usize,
    seen: std::sync::atomic::AtomicUsize,
    token: rote::job::CancelToken,
}

impl CancelAt {
    fn event(&self) {
        let n = self.seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if n >= self.at {
            self.token.cancel();
        }
    }
}

impl rote::job::JobSink for CancelAt {
    fn progress(&self, _: &rote::job::Progress) {
        self.event();
    }
    fn metric(&self, _: &str, _: f64, _: f64) {
        self.event();
    }
    fn log(&self, _: &str) {
        self.event();
    }
}

/// Every entry under `root`, folders included (as `None`), dot names included.
fn tree(root: &Path) -> BTreeMap<String, Option<String>> {
    let (mut list, mut dirs) = (Vec::new(), Vec::new());
    walk(root, "", &mut list, Some(&mut dirs));
    let mut out: BTreeMap<String, Option<String>> = dirs.into_iter().map(|d| (d, None)).collect();
    for (r, path) in list {
        out.insert(r, Some(hex(&std::fs::read(path).unwrap())));
    }
    out
}

type Job<'a> = Box<dyn Fn(&rote::job::JobCtx<'_>) -> rote::CoreResult<()> + 'a>;

/// Runs `job` cancelled at its 1st, 3rd, 9th, ... event until a run gets to the end. Every
/// cancelled run must return `Cancelled` and leave the study exactly as it was, except for the
/// new entries `kept` accepts (complete results the job keeps by design, checked by the caller).
/// Returns the number of cancelled runs.
fn cancel_everywhere(label: &str, root: &Path, job: &Job<'_>, kept: &dyn Fn(&str) -> bool) -> usize {
    let mut at = 1usize;
    let mut cancelled = 0;
    loop {
        let before = tree(root);
        let sink = CancelAt {
            at,
            seen: std::sync::atomic::AtomicUsize::new(0),
            token: rote::job::CancelToken::new(),
        };
        let token = sink.token.clone();
        let ctx = rote::job::JobCtx::new(&token, &sink);
        match job(&ctx) {
            Ok(()) => {
                assert!(cancelled > 0, "{label}: finished before its first event");
                return cancelled;
            }
            Err(e) => assert!(e.is_cancelled(), "{label}: cancelled at event {at}: {e}"),
        }
        cancelled += 1;
        let after = tree(root);
        for (p, h) in &before {
            assert_eq!(
                after.get(p),
                Some(h),
                "{label} (event {at}): {p} changed or vanished"
            );
        }
        for p in after.keys().filter(|p| !before.contains_key(*p)) {
            let name = p.rsplit('/').next().unwrap_or(p);
            assert!(!name.starts_with('.'), "{label} (event {at}): leftover {p}");
            assert!(kept(p), "{label} (event {at}): new entry {p}");
        }
        at *= 3;
    }
}

#[test]
fn cancelling_any_job_at_any_checkpoint_leaves_no_partial_file() {
    use rote::canary::report::{ExposureOptions, measure_exposure};
    use rote::canary::secrets::CanaryFormat;
    use rote::canary::train::{LmConfig, train_lm_into_study};
    use rote::diffusion::extract::{GenSpec, run_extraction};
    use rote::diffusion::sample::Sampler;
    use rote::diffusion::{DdpmTrainConfig, diffusion_dir};
    use rote::model::Family;
    use rote::train::TrainConfig;
    use rote::train::zoo::{ZooConfig, train_zoo};

    let home = tempfile::tempdir().unwrap();
    let root = home.path().join("s");
    let study = Study::open_or_create(&root).unwrap();
    let digits = rote::data::load("digits8x8").unwrap();
    let faces = rote::data::load("orl-faces").unwrap();
    let none = |_: &str| false;
    let mut runs = BTreeMap::new();

    // Training into the study: nothing until the model folder is renamed into place.
    let face_model = TrainConfig {
        family: Family::Softmax,
        data: "orl-faces".into(),
        epochs: 2,
        batch_size: 32,
        id: "faces".into(),
        ..TrainConfig::default()
    };
    let train: Job<'_> = Box::new(|ctx| {
        let mut s = Study::open(&root)?;
        rote::train::train_into_study(&face_model, &faces, &mut s, ctx).map(|_| ())
    });
    runs.insert("train", cancel_everywhere("train", &root, &train, &none));

    // A zoo keeps the records of the models it finished (resume skips them); nothing else.
    let zcfg = ZooConfig {
        id: "z".into(),
        train: TrainConfig {
            data: "digits8x8".into(),
            epochs: 2,
            batch_size: 64,
            subset_ratio: 0.5,
            ..ZooConfig::default().train
        },
        hidden: vec![32],
        ..ZooConfig::default()
    };
    train_zoo(
        &zcfg,
        &digits,
        &study,
        2,
        None,
        2,
        &rote::job::JobCtx::new(&Default::default(), &rote::job::NullSink),
    )
    .unwrap();
    let zoo: Job<'_> = Box::new(|ctx| train_zoo(&zcfg, &digits, &study, 8, None, 2, ctx).map(|_| ()));
    let record = |p: &str| p.starts_with("zoos/z/models/m") && p.ends_with(".bin");
    runs.insert("zoo", cancel_everywhere("zoo", &root, &zoo, &record));
    let z = rote::train::zoo::Zoo::open(&rote::train::zoo::zoo_dir(&study, "z")).unwrap();
    assert_eq!(z.load_models().unwrap().len(), 8);

    // Diffusion training (staged), then extraction, which keeps its complete generations cache.
    let dcfg = DdpmTrainConfig {
        data: "digits8x8".into(),
        images: 8,
        base: 8,
        steps: 30,
        batch_size: 4,
        models: 1,
        ..Default::default()
    };
    let ddpm: Job<'_> =
        Box::new(|ctx| rote::diffusion::train_into_study(&dcfg, &root, "test", false, ctx).map(|_| ()));
    runs.insert("diffusion", cancel_everywhere("diffusion", &root, &ddpm, &none));
    let (cards, bad) = rote::diffusion::list_models(&root);
    assert!(bad.is_empty() && cards.len() == 1, "{bad:?}");
    let ddir = diffusion_dir(&root).join(&cards[0].id);
    let spec = GenSpec {
        n: 8,
        seed: 0,
        sampler: Sampler::Ddim { steps: 5, eta: 0.0 },
    };
    let ecfg = rote::measure::extraction::ExtractionConfig {
        cliques: None,
        ..Default::default()
    };
    let extract: Job<'_> =
        Box::new(|ctx| run_extraction(&ddir, &digits, &spec, &ecfg, false, ctx).map(|_| ()));
    let generations =
        |p: &str| p.contains("/generations") && !p.rsplit('/').next().unwrap_or(p).starts_with('.');
    runs.insert(
        "extraction",
        cancel_everywhere("extraction", &root, &extract, &generations),
    );

    // Language model with canaries (staged), then exposure.
    let lcfg = LmConfig {
        data: "austen".into(),
        chars: 2_000,
        val_chars: 300,
        formats: vec![CanaryFormat::parse("my pin is :3:1,4").unwrap()],
        embed: 8,
        hidden: 16,
        recipe: rote::canary::card::LmRecipe {
            epochs: 2,
            batch_size: 8,
            seq_len: 16,
            lr: 2e-3,
            seed: 0,
        },
        device: "cpu".into(),
        id: "lm".into(),
    };
    let lm: Job<'_> = Box::new(|ctx| train_lm_into_study(&lcfg, &root, "test", false, ctx).map(|_| ()));
    runs.insert("lm", cancel_everywhere("lm", &root, &lm, &none));
    let lm =
        rote::canary::card::CanaryLm::load(&root.join("lm").join("lm"), &candle_core::Device::Cpu).unwrap();
    let exposure: Job<'_> = Box::new(|ctx| {
        let opts = ExposureOptions {
            references: 200,
            ..ExposureOptions::default()
        };
        let report = measure_exposure(&lm, &opts, ctx)?;
        let path = root.join("results").join("exposure").join("lm.json");
        rote::study::write_json_atomic(&path, &report)
    });
    runs.insert("exposure", cancel_everywhere("exposure", &root, &exposure, &none));

    // An SSL encoder pair, each staged and swapped in whole.
    let scfg = rote::ssl::SslPairConfig {
        data: "mnist10k".into(),
        split: rote::ssl::SplitConfig {
            images: 50,
            candidate_frac: 0.4,
            plant_outliers: 0,
            outlier_data: "fashion-mnist".into(),
            seed: 1,
        },
        widths: vec![4, 8, 8],
        recipe: rote::ssl::SslRecipe {
            epochs: 2,
            batch_size: 25,
            lr: 3e-3,
            weight_decay: 1e-6,
            temperature: 0.5,
            aug: rote::ssl::augment::AugConfig::default(),
            seed: 1,
        },
        device: "cpu".into(),
        id: "pair".into(),
        half: false,
    };
    let ssl: Job<'_> =
        Box::new(|ctx| rote::ssl::train_pair_into_study(&scfg, &root, "test", false, ctx).map(|_| ()));
    // f is complete (and kept) once g starts; cancelling g must leave f as it was.
    let encoder_f = |p: &str| p == "ssl" || p.starts_with("ssl/pair-f");
    runs.insert("ssl", cancel_everywhere("ssl", &root, &ssl, &encoder_f));

    // Inversion: keeps its complete evaluation classifier (a cache), writes the report last.
    let opts = rote::invert::run::InvertOptions {
        config: rote::invert::InvertConfig {
            alpha: 20,
            ..Default::default()
        },
        classes: Some(vec![0, 1]),
        eval: rote::invert::EvalConfig {
            widths: vec![16],
            copies: 1,
            epochs: 2,
            ..Default::default()
        },
        ..Default::default()
    };
    let mdir = study.models_dir().join("faces");
    let invert: Job<'_> = Box::new(|ctx| rote::invert::run::invert_model(&mdir, &opts, ctx).map(|_| ()));
    let eval_cache = |p: &str| p.starts_with("results/inversion") && !p.contains("/.");
    runs.insert(
        "inversion",
        cancel_everywhere("inversion", &root, &invert, &eval_cache),
    );

    eprintln!("cancelled runs per job: {runs:?}");
    assert!(Study::open(&root).unwrap().models().1.is_empty());
    assert!(leftovers(&root).is_empty(), "{:?}", leftovers(&root));
}
