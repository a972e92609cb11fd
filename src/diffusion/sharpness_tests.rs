#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use std::path::Path;

use candle_core::{Device, Tensor};

use super::*;
use crate::diffusion::model::{Ddpm, to_model_range};

fn digits_model() -> Ddpm {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/diffusion/ddpm-digits-dup32");
    Ddpm::load(&dir, &Device::Cpu).unwrap()
}

fn random_unit(d: usize, seed: u64) -> Vec<f32> {
    let mut v = vec![0f32; d];
    NormalStream::new(seed, 7).fill(&mut v);
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

#[test]
fn jacobi_diagonalises_a_symmetric_matrix() {
    let a = vec![
        vec![4.0, 1.0, -2.0, 0.5],
        vec![1.0, 3.0, 0.0, 1.5],
        vec![-2.0, 0.0, -1.0, 2.0],
        vec![0.5, 1.5, 2.0, 0.0],
    ];
    let (vals, v) = jacobi_eigen(a.clone());
    for i in 0..4 {
        for j in 0..4 {
            let r: f64 = (0..4).map(|k| v[i][k] * vals[k] * v[j][k]).sum();
            assert!((r - a[i][j]).abs() < 1e-10, "({i},{j}) {r} vs {}", a[i][j]);
        }
    }
    let trace: f64 = vals.iter().sum();
    assert!((trace - 6.0).abs() < 1e-10);
}

/// The reverse-mode J^T v agrees with a finite difference: w . (J^T v) = v . (J w).
#[test]
fn vjp_matches_finite_differences() {
    let m = digits_model();
    let ds = crate::data::load("digits8x8").unwrap();
    let x0 = to_model_range(&ds, &[3, 40], &Device::Cpu).unwrap();
    let cfg = SharpnessConfig::default();
    let xt = noised(&m, &x0, &[3, 40], &cfg).unwrap();
    let op = HessianOp::new(&m, xt, cfg.t, 1e-3).unwrap();
    let d = 64;
    let v: Vec<f32> = [random_unit(d, 1), random_unit(d, 2)].concat();
    let w: Vec<f32> = [random_unit(d, 3), random_unit(d, 4)].concat();
    let v = Tensor::from_vec(v, (2, d), &Device::Cpu).unwrap();
    let w = Tensor::from_vec(w, (2, d), &Device::Cpu).unwrap();
    let jtv = op.vjp(&v).unwrap();
    let jw = op.jvp(&w).unwrap();
    let lhs = (&w * &jtv).unwrap().sum(1).unwrap().to_vec1::<f32>().unwrap();
    let rhs = (&v * &jw).unwrap().sum(1).unwrap().to_vec1::<f32>().unwrap();
    let scale = jw.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    for (l, r) in lhs.iter().zip(&rhs) {
        assert!(
            (l - r).abs() < 2e-3 * scale.max(1.0),
            "w.J^T v {l} vs v.J w {r} (scale {scale})"
        );
    }
}

/// Lanczos run to the full dimension finds the eigenvalues of the explicitly formed symmetrised
/// operator, and the quadrature's mean eigenvalue is its trace over D.
#[test]
fn full_lanczos_recovers_the_dense_spectrum() {
    let m = digits_model();
    let ds = crate::data::load("digits8x8").unwrap();
    let d = 64;
    let x0 = to_model_range(&ds, &[5], &Device::Cpu).unwrap();
    let cfg = SharpnessConfig::default();
    let xt = noised(&m, &x0, &[5], &cfg).unwrap();
    // Dense A: its rows are A e_i (A is symmetric by construction), all 64 in one batch.
    let xs = xt.repeat((d, 1, 1, 1)).unwrap();
    let dense_op = HessianOp::new(&m, xs, cfg.t, cfg.fd_step).unwrap();
    let eye = Tensor::eye(d, candle_core::DType::F32, &Device::Cpu).unwrap();
    let a = dense_op.apply(&eye).unwrap().to_vec2::<f32>().unwrap();
    let a: Vec<Vec<f64>> = (0..d)
        .map(|i| (0..d).map(|j| f64::from(a[i][j] + a[j][i]) / 2.0).collect())
        .collect();
    let trace: f64 = (0..d).map(|i| a[i][i]).sum();
    let (mut dense, _) = jacobi_eigen(a);
    dense.sort_by(f64::total_cmp);

    let op = HessianOp::new(&m, xt, cfg.t, cfg.fd_step).unwrap();
    let starts = start_vectors(&[5], d, 0);
    let (al, be) = lanczos(&op, &starts, d, &mut |_| Ok(())).unwrap();
    let row = summarise(&al[0], &be[0], 0.5);
    // The extremes converge first; compare the two ends of the spectrum.
    let spread = dense[d - 1] - dense[0];
    assert!(spread > 0.1, "a degenerate spectrum tests nothing: {dense:?}");
    assert!(
        (row.lambda_min - dense[0]).abs() < 1e-3 * spread.max(1.0),
        "{} vs {}",
        row.lambda_min,
        dense[0]
    );
    let top = row.ritz.last().copied().unwrap();
    assert!(
        (top - dense[d - 1]).abs() < 1e-3 * spread.max(1.0),
        "{top} vs {}",
        dense[d - 1]
    );
    // Full-dimension quadrature from a Rademacher start: the mean of q^T A q over... one
    // vector is not the trace, but with D steps the Ritz values are the eigenvalues.
    let ritz_sum: f64 = row.ritz.iter().sum();
    assert!(
        (ritz_sum - trace).abs() < 1e-2 * spread.max(1.0),
        "{ritz_sum} vs {trace}"
    );
}
