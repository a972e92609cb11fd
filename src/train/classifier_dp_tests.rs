#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};

use super::*;
use crate::defence::dp_sgd::DpSettings;
use crate::model::{Family, ModelSpec, seeded_init};
use crate::study::Study;
use crate::train::zoo::{Shard, Zoo, ZooConfig, rows_per_model, train_zoo, zoo_dir};

/// A model of `family` for `input` images with 3 classes, normalised inputs, seeded; its
/// parameters sorted by name.
fn tiny(family: Family, input: [usize; 3], widths: Vec<usize>) -> (Classifier, Vec<Var>) {
    let spec = ModelSpec {
        widths,
        input_mean: vec![0.3; input[0]],
        input_std: vec![0.4; input[0]],
        ..ModelSpec::default_for(family, input, 3)
    };
    let varmap = VarMap::new();
    let model = Classifier::new(&spec, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    seeded_init(&varmap, 12).unwrap();
    let data = varmap.data().lock().unwrap();
    let mut named: Vec<(&String, &Var)> = data.iter().collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    let vars = named.into_iter().map(|(_, v)| v.clone()).collect();
    drop(data);
    (model, vars)
}

/// Every row's gradient alone, by autograd: one backward pass per row, flattened per parameter.
fn per_row_grads(model: &Classifier, vars: &[Var], x: &Tensor, y: &[u32]) -> Vec<Vec<Vec<f32>>> {
    (0..y.len())
        .map(|r| {
            let logits = model.forward(&x.narrow(0, r, 1).unwrap()).unwrap();
            let yr = Tensor::new(&[y[r]], &Device::Cpu).unwrap();
            let loss = candle_nn::loss::cross_entropy(&logits, &yr).unwrap();
            let store = loss.backward().unwrap();
            vars.iter()
                .map(|v| {
                    let g = store.get(v.as_tensor()).unwrap();
                    g.flatten_all().unwrap().to_vec1::<f32>().unwrap()
                })
                .collect()
        })
        .collect()
}

fn norm(g: &[Vec<f32>]) -> f64 {
    g.iter()
        .flatten()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum::<f64>()
        .sqrt()
}

/// Σ_i c_i g_i with c_i from the norm of row i's gradient over each group of `group`
/// consecutive parameters: all of them (flat clipping), or 2 (per layer: the parameters are
/// sorted by name, so a layer's bias and weight are neighbours; a wrong alternative).
fn reference(rows: &[Vec<Vec<f32>>], clip: f64, group: usize) -> Vec<Vec<f32>> {
    let mut out: Vec<Vec<f32>> = rows[0].iter().map(|g| vec![0f32; g.len()]).collect();
    for g in rows {
        for (o, p) in out.chunks_mut(group).zip(g.chunks(group)) {
            let c = (clip / (norm(p) + 1e-6)).min(1.0) as f32;
            for (o, p) in o.iter_mut().zip(p) {
                o.iter_mut().zip(p).for_each(|(a, &b)| *a += c * b);
            }
        }
    }
    out
}

/// The largest difference between `got` and `want` relative to each parameter's largest value.
fn rel_diff(got: &[Vec<f32>], want: &[Vec<f32>]) -> f32 {
    got.iter()
        .zip(want)
        .map(|(g, w)| {
            let scale = w.iter().fold(0f32, |a, v| a.max(v.abs())).max(1e-12);
            g.iter().zip(w).fold(0f32, |a, (p, q)| a.max((p - q).abs())) / scale
        })
        .fold(0f32, f32::max)
}

/// The batched clipped sum equals the per-sample loop it stands in for (each row's autograd
/// gradient clipped to norm C over all parameters, summed) for a CNN (odd and non-square sides,
/// padded before its stride-2 convolutions), softmax regression and an MLP; clipping per
/// parameter or clipping the summed gradient would be far off.
#[test]
fn clipped_sum_equals_a_per_sample_autograd_loop() {
    for (family, input, widths) in [
        (Family::Cnn, [1, 7, 7], vec![3, 4, 5, 6]),
        (Family::Cnn, [3, 6, 5], vec![4, 3, 4, 5]),
        (Family::Softmax, [2, 5, 4], vec![]),
        (Family::Mlp, [1, 6, 6], vec![7, 5]),
    ] {
        let (model, vars) = tiny(family, input, widths);
        let b = 6;
        let d: usize = input.iter().product();
        // Pseudo-random pixels in [0, 1], brighter rows later (gradient norms spread out).
        let xv: Vec<f32> = (0..b * d)
            .map(|i| (((i * 7919 + 13) % 101) as f32 / 100.0) * (0.4 + 0.12 * (i / d) as f32))
            .collect();
        let x = Tensor::from_vec(xv, (b, input[0], input[1], input[2]), &Device::Cpu).unwrap();
        let labels: Vec<u32> = (0..b).map(|i| (i * 5 % 3) as u32).collect();
        let rows = per_row_grads(&model, &vars, &x, &labels);
        // No dead layer: every parameter has a gradient (the test exercises every layer).
        for (p, v) in vars.iter().enumerate() {
            let most = rows.iter().map(|g| norm(&g[p..=p])).fold(0.0, f64::max);
            assert!(
                most > 1e-4,
                "{family:?}: parameter {p} {:?} has no gradient",
                v.dims()
            );
        }
        // A clip between the rows' norms: some rows are clipped and some are not.
        let mut norms: Vec<f64> = rows.iter().map(|g| norm(g)).collect();
        norms.sort_by(f64::total_cmp);
        let clip = 0.5 * (norms[2] + norms[3]);
        let y = Tensor::new(labels.as_slice(), &Device::Cpu).unwrap();
        let got = clipped_grad_sum(&model, &vars, &x, &y, clip).unwrap();
        assert_eq!((got.rows, got.clipped), (b, 3), "{family:?}");
        let got: Vec<Vec<f32>> = got
            .grads
            .iter()
            .map(|g| g.flatten_all().unwrap().to_vec1::<f32>().unwrap())
            .collect();
        let want = reference(&rows, clip, vars.len());
        let diff = rel_diff(&got, &want);
        assert!(diff <= 1e-5, "{family:?} {input:?}: relative difference {diff}");
        // The test tells flat clipping from per-layer clipping (with more than one layer) and
        // from clipping the summed gradient.
        let per_layer = if vars.len() > 2 {
            rel_diff(&got, &reference(&rows, clip, 2))
        } else {
            1.0
        };
        let summed: Vec<Vec<f32>> = reference(&rows, f64::INFINITY, vars.len());
        let c = (clip / (norm(&summed) + 1e-6)).min(1.0) as f32;
        let summed: Vec<Vec<f32>> = summed.iter().map(|g| g.iter().map(|v| v * c).collect()).collect();
        let sum_clip = rel_diff(&got, &summed);
        assert!(
            per_layer > 1e-2 && sum_clip > 1e-2,
            "{family:?}: {per_layer} {sum_clip}"
        );
    }
}

/// An empty batch gives zero gradients of the parameters' shapes.
#[test]
fn an_empty_batch_is_zero_gradients() {
    let (model, vars) = tiny(Family::Cnn, [1, 7, 7], vec![3, 4, 5, 6]);
    let x = Tensor::zeros((0, 1, 7, 7), DType::F32, &Device::Cpu).unwrap();
    let y = Tensor::zeros(0, DType::U32, &Device::Cpu).unwrap();
    let got = clipped_grad_sum(&model, &vars, &x, &y, 1.0).unwrap();
    assert_eq!((got.rows, got.clipped, got.grads.len()), (0, 0, vars.len()));
    for (g, v) in got.grads.iter().zip(&vars) {
        assert_eq!(g.dims(), v.dims());
        assert_eq!(
            g.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(),
            0.0
        );
    }
}

/// Test accuracy of every model of zoo `cfg` (2 models) trained into `study`.
fn zoo_test_acc(cfg: &ZooConfig, ds: &Dataset, study: &Study, shard: Option<Shard>) -> Vec<f64> {
    let cancel = Default::default();
    let ctx = JobCtx::new(&cancel, &crate::job::NullSink);
    train_zoo(cfg, ds, study, 2, shard, 2, &ctx).unwrap();
    let test = ds.test_indices();
    Zoo::open(&zoo_dir(study, &cfg.id))
        .unwrap()
        .load_models()
        .unwrap()
        .iter()
        .map(|m| test.iter().filter(|&&i| m.correct[i]).count() as f64 / test.len() as f64)
        .collect()
}

/// CNN zoos train with DP-SGD, and its noise is what it says: on digits, CNNs trained without DP
/// or with σ = 1 learn, while σ = 50 (ε far below 1) leaves them near chance (10 classes);
/// a model trained alone (another shard) is the same record as in the whole zoo.
#[test]
fn cnn_zoos_train_with_dp_and_huge_noise_leaves_them_near_chance() {
    let dir = tempfile::tempdir().unwrap();
    let study = Study::open_or_create(dir.path()).unwrap();
    let ds = crate::data::load("digits8x8").unwrap();
    let plain = ZooConfig {
        id: "plain".into(),
        train: TrainConfig {
            family: Family::Cnn,
            data: "digits8x8".into(),
            epochs: 5,
            batch_size: 32,
            lr: 0.05,
            subset_ratio: 0.25,
            seed: 3,
            ..ZooConfig::default().train
        },
        // The MLP's initialisation option does not apply to CNNs.
        init: crate::train::zoo::MlpInit::default(),
        ..ZooConfig::default()
    };
    let m = rows_per_model(&ds, None, 0.25, 3).unwrap();
    let dp = |noise: f64| {
        let settings = DpSettings {
            clip: 1.0,
            epsilon: None,
            noise_multiplier: Some(noise),
            delta: 1e-5,
        };
        ZooConfig {
            id: format!("dp{noise}"),
            dp: Some(crate::train::dp_record(&settings, 32, 5, m).unwrap()),
            ..plain.clone()
        }
    };
    let t0 = std::time::Instant::now();
    let acc = [
        zoo_test_acc(&plain, &ds, &study, None),
        zoo_test_acc(&dp(1.0), &ds, &study, None),
        zoo_test_acc(&dp(50.0), &ds, &study, None),
    ];
    eprintln!(
        "test accuracy: plain, σ = 1, σ = 50: {acc:?} ({:?})",
        t0.elapsed()
    );
    assert!(acc[0].iter().all(|&a| a >= 0.7), "{acc:?}");
    assert!(acc[1].iter().all(|&a| a >= 0.5), "{acc:?}");
    assert!(acc[2].iter().all(|&a| a <= 0.25), "{acc:?}");
    let record = dp(50.0).dp.unwrap();
    assert!(
        record.epsilon < 0.1 && record.steps == 5 * m.div_ceil(32) as u64,
        "{record:?}"
    );
    // Model 1 trained alone, in a shard of its own, is byte-identical.
    let shard = ZooConfig {
        id: "dp1-shard".into(),
        ..dp(1.0)
    };
    zoo_test_acc(&shard, &ds, &study, Some(Shard { index: 1, count: 2 }));
    let read = |id: &str| std::fs::read(super::super::zoo::model_file(&zoo_dir(&study, id), 1)).unwrap();
    assert_eq!(read("dp1"), read("dp1-shard"));
}
