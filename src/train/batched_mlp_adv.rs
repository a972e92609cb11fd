//! PGD on one model of the stacked MLPs (`defence::demem` has the algorithm): the gradient of
//! each row's own loss at the input by the hand-written backward pass of `batched_mlp_grad`
//! (held to candle's autograd in the tests below), signed steps, projection onto the ε-ball and
//! [0, 1].

use super::batched_mlp_grad::{backprop, cross_entropy_grad, forward_rows};
use crate::error::{CoreError, CoreResult};

/// The gradient of each row's own cross-entropy with respect to its input pixels `x`
/// (b x dims[0], in [0, 1]) for one model's `layers`.
pub(super) fn input_grads(
    x: &[f32],
    labels: &[u32],
    layers: &[(&[f32], &[f32])],
    dims: &[usize],
    (mean, inv_std): (f32, f32),
) -> CoreResult<Vec<f32>> {
    let b = labels.len();
    let mut h = forward_rows(x, b, layers, dims, (mean, inv_std))?;
    let mut dz = h
        .pop()
        .ok_or_else(|| CoreError::Invalid("an MLP without layers".into()))?;
    cross_entropy_grad(&mut dz, labels, dims[layers.len()], 1.0)?;
    let (_, dh0) = backprop(&h, dz, b, layers, dims, true)?;
    let mut g = dh0.ok_or_else(|| CoreError::Invalid("no input gradient".into()))?;
    // h_0 = (x - mean) * inv_std.
    g.iter_mut().for_each(|v| *v *= inv_std);
    Ok(g)
}

/// PGD settings of one attack.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pgd {
    /// L∞ radius.
    pub epsilon: f32,
    /// Step size α.
    pub step_size: f32,
    /// Steps.
    pub steps: usize,
}

/// Adversarial versions of the rows `x` (b x dims[0], in [0, 1]) for one model: a uniform start
/// in the ε-ball, then `steps` signed-gradient ascent steps, each projected onto the ball and
/// [0, 1].
pub(super) fn pgd(
    x: &[f32],
    labels: &[u32],
    layers: &[(&[f32], &[f32])],
    dims: &[usize],
    scaling: (f32, f32),
    attack: Pgd,
    rng: &mut impl rand::Rng,
) -> CoreResult<Vec<f32>> {
    let eps = attack.epsilon;
    let mut adv: Vec<f32> = x
        .iter()
        .map(|&v| (v + rng.random_range(-eps..=eps)).clamp(0.0, 1.0))
        .collect();
    for _ in 0..attack.steps {
        let g = input_grads(&adv, labels, layers, dims, scaling)?;
        for ((a, &x0), &gv) in adv.iter_mut().zip(x).zip(&g) {
            let step = if gv > 0.0 {
                attack.step_size
            } else if gv < 0.0 {
                -attack.step_size
            } else {
                0.0
            };
            *a = (*a + step).clamp(x0 - eps, x0 + eps).clamp(0.0, 1.0);
        }
    }
    Ok(adv)
}

/// How many of the rows `x` one model classifies correctly (argmax, first on ties).
pub(super) fn count_correct(
    x: &[f32],
    labels: &[u32],
    layers: &[(&[f32], &[f32])],
    dims: &[usize],
    scaling: (f32, f32),
) -> CoreResult<usize> {
    let b = labels.len();
    let mut h = forward_rows(x, b, layers, dims, scaling)?;
    let z = h
        .pop()
        .ok_or_else(|| CoreError::Invalid("an MLP without layers".into()))?;
    let c = dims[layers.len()];
    Ok(z.chunks_exact(c)
        .zip(labels)
        .filter(|&(row, &y)| {
            let best =
                row.iter().enumerate().fold(
                    (0, f32::NEG_INFINITY),
                    |acc, (j, &v)| if v > acc.1 { (j, v) } else { acc },
                );
            best.0 == y as usize
        })
        .count())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests unwrap freely")]
    use candle_core::{Device, Tensor, Var};
    use rand::{Rng as _, SeedableRng as _};

    use super::*;
    use crate::train::batched_mlp::{BatchedMlp, MlpInit, stacked_cross_entropy};

    /// A tiny stacked MLP (2 models) and rows with labels.
    fn tiny() -> (BatchedMlp, Vec<f32>, Vec<u32>, Vec<usize>) {
        let dims = vec![6, 5, 4, 3];
        let net = BatchedMlp::new(&[1, 2], &dims, MlpInit::Uniform, (0.3, 2.0), &Device::Cpu).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let x: Vec<f32> = (0..4 * 6).map(|_| rng.random_range(0.0..1.0)).collect();
        (net, x, vec![0, 2, 1, 2], dims)
    }

    #[test]
    fn input_gradient_matches_autograd() {
        let (net, x, y, dims) = tiny();
        let (_, grads) = net
            .per_model(2, 6, |_, layers, dims, scaling| {
                input_grads(&x, &y, layers, dims, scaling)
            })
            .unwrap();
        for (m, g) in grads.iter().enumerate() {
            // Autograd: the summed loss of model m's rows with respect to the input; the other
            // model sees the same rows (its loss does not depend on model m's input copy).
            let xv =
                Var::from_tensor(&Tensor::from_vec(x.clone(), (1, 4, 6), &Device::Cpu).unwrap()).unwrap();
            let other = Tensor::from_vec(x.clone(), (1, 4, 6), &Device::Cpu).unwrap();
            let xs = if m == 0 {
                Tensor::cat(&[xv.as_tensor(), &other], 0).unwrap()
            } else {
                Tensor::cat(&[&other, xv.as_tensor()], 0).unwrap()
            };
            let yt = Tensor::from_vec([y.clone(), y.clone()].concat(), (2, 4), &Device::Cpu).unwrap();
            // stacked_cross_entropy sums the models' mean losses: times 4 is the summed row loss.
            let loss = (stacked_cross_entropy(&net.forward(&xs).unwrap(), &yt).unwrap() * 4.0).unwrap();
            let store = loss.backward().unwrap();
            let want: Vec<f32> = store
                .get(xv.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            for (a, b) in g.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "model {m}: {a} vs {b}");
            }
            assert!(
                want.iter().any(|v| v.abs() > 1e-4),
                "a gradient that is all zero tests nothing"
            );
        }
        assert_ne!(grads[0], grads[1]);
        let _ = dims;
    }

    /// DeMem's step: adversarial rows at +1/B and penalised natural rows at -λ/B, against
    /// autograd of Σ w_i ℓ_i.
    #[test]
    fn weighted_step_matches_autograd_with_negative_weights() {
        use crate::train::batched_mlp_grad::weighted_step;
        let (net, x, y, _) = tiny();
        let w = [0.25f32, 0.25, -0.5, 0.25];
        let (_, out) = net
            .per_model(2, 6, |_, layers, dims, scaling| {
                weighted_step(&x, &y, |i, _| w[i], layers, dims, scaling)
            })
            .unwrap();
        let xs = Tensor::from_vec([x.clone(), x.clone()].concat(), (2, 4, 6), &Device::Cpu).unwrap();
        let logits = net.forward(&xs).unwrap();
        let logp = candle_nn::ops::log_softmax(&logits, 2).unwrap();
        let yt = Tensor::from_vec([y.clone(), y.clone()].concat(), (2, 4, 1), &Device::Cpu).unwrap();
        let nll = logp.gather(&yt, 2).unwrap().neg().unwrap().squeeze(2).unwrap();
        let wt = Tensor::from_vec([w, w].concat(), (2, 4), &Device::Cpu).unwrap();
        let loss = (nll * wt).unwrap().sum_all().unwrap();
        let store = loss.backward().unwrap();
        let vars = net.vars();
        for (m, (_, grads)) in out.iter().enumerate() {
            for (l, (dw, db)) in grads.iter().enumerate() {
                for (got, var) in [(dw, &vars[2 * l]), (db, &vars[2 * l + 1])] {
                    let want: Vec<f32> = store
                        .get(var.as_tensor())
                        .unwrap()
                        .get(m)
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1()
                        .unwrap();
                    for (a, b) in got.iter().zip(&want) {
                        assert!(
                            (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                            "model {m} layer {l}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn pgd_stays_in_the_ball_and_raises_the_loss() {
        let (net, x, y, _) = tiny();
        let attack = Pgd {
            epsilon: 0.2,
            step_size: 0.05,
            steps: 10,
        };
        let (_, out) = net
            .per_model(2, 6, |m, layers, dims, scaling| {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(m as u64);
                pgd(&x, &y, layers, dims, scaling, attack, &mut rng)
            })
            .unwrap();
        for adv in &out {
            for (a, b) in adv.iter().zip(&x) {
                assert!((a - b).abs() <= 0.2 + 1e-6 && (0.0..=1.0).contains(a));
            }
            assert!(adv.iter().zip(&x).any(|(a, b)| (a - b).abs() > 0.1));
        }
        // The attack raises every model's loss.
        let (_, raised) = net
            .per_model(2, 6, |m, layers, dims, scaling| {
                let loss = |v: &[f32]| -> CoreResult<f32> {
                    let mut h = forward_rows(v, 4, layers, dims, scaling)?;
                    let mut z = h.pop().unwrap();
                    cross_entropy_grad(&mut z, &y, 3, 1.0)
                };
                Ok(loss(&out[m])? > loss(&x)?)
            })
            .unwrap();
        assert_eq!(raised, vec![true, true]);
    }
}
