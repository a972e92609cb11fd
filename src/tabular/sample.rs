//! Drawing synthetic rows from a [`TabDdpm`]: ancestral sampling from T − 1 down to 0, the numerics
//! by the DDPM posterior mean with the predicted noise and TabDDPM's fixed-large variance β_t (no
//! noise at the last step), each categorical column from the model posterior p(x_{t−1} | x_t).

use rand::{Rng as _, SeedableRng as _};
use rand_distr::Distribution as _;

use super::ddpm::TabDdpm;
use super::table::MixedTable;
use crate::error::CoreResult;
use crate::job::JobCtx;

/// Rows per forward pass while sampling.
const BATCH: usize = 2048;

/// Draws `n` synthetic rows (seeded).
pub fn sample_rows(model: &TabDdpm, n: usize, seed: u64, ctx: &JobCtx<'_>) -> CoreResult<MixedTable> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let schema = model.codec.schema.clone();
    let mut out = MixedTable::empty(schema.clone());
    let steps = model.arch.timesteps;
    let total = (n.div_ceil(BATCH) * steps) as u64;
    let mut done = 0u64;
    let mut start = 0;
    while start < n {
        let rows = BATCH.min(n - start);
        let (num, cat) = sample_batch(model, rows, &mut rng, |_| {
            done += 1;
            ctx.progress("sampling rows", done, total);
            ctx.checkpoint()
        })?;
        let decoded = model.codec.decode_num(&num);
        let (n_num, n_cat) = (schema.n_num(), schema.n_cat());
        for r in 0..rows {
            out.push(
                &decoded[r * n_num..(r + 1) * n_num],
                &cat[r * n_cat..(r + 1) * n_cat],
            );
        }
        start += rows;
    }
    Ok(out)
}

/// One batch of `rows` rows: normalised numerics and codes. `step` is called after every
/// denoising step (progress and cancellation).
fn sample_batch(
    model: &TabDdpm,
    rows: usize,
    rng: &mut rand_chacha::ChaCha8Rng,
    mut step: impl FnMut(usize) -> CoreResult<()>,
) -> CoreResult<(Vec<f32>, Vec<u32>)> {
    let n_num = model.codec.schema.n_num();
    let sizes = model.codec.sizes();
    let n_cat = sizes.len();
    let mut x: Vec<f32> = (0..rows * n_num)
        .map(|_| rand_distr::StandardNormal.sample(rng))
        .collect();
    let mut c: Vec<u32> = (0..rows * n_cat)
        .map(|i| rng.random_range(0..sizes[i % n_cat]) as u32)
        .collect();
    for ti in (0..model.arch.timesteps).rev() {
        let t = vec![ti as u32; rows];
        let input = model.input(&x, &c, rows)?;
        let out = model.net.forward(&input, &t)?;
        if n_num > 0 {
            let eps = out.narrow(1, 0, n_num)?.flatten_all()?.to_vec1::<f32>()?;
            let ab = model.abar(ti as i64);
            let prev = model.abar(ti as i64 - 1);
            let beta = model.schedule.betas[ti];
            let alpha = 1.0 - beta;
            let coef0 = beta * prev.sqrt() / (1.0 - ab);
            let coeft = (1.0 - prev) * alpha.sqrt() / (1.0 - ab);
            let sigma = if ti > 0 { beta.sqrt() } else { 0.0 };
            for (xi, &e) in x.iter_mut().zip(&eps) {
                let xv = f64::from(*xi);
                let x0 = (xv - (1.0 - ab).sqrt() * f64::from(e)) / ab.sqrt();
                let z: f64 = if sigma > 0.0 {
                    rand_distr::StandardNormal.sample(rng)
                } else {
                    0.0
                };
                *xi = (coef0 * x0 + coeft * xv + sigma * z) as f32;
            }
        }
        let mut at = n_num;
        for (j, &k) in sizes.iter().enumerate() {
            let ct: Vec<u32> = (0..rows).map(|r| c[r * n_cat + j]).collect();
            let logp = model.log_model_posterior(&out.narrow(1, at, k)?, &ct, &t, k)?;
            let p = logp.exp()?.flatten_all()?.to_vec1::<f32>()?;
            for r in 0..rows {
                let u: f32 = rng.random();
                let mut acc = 0.0;
                let mut pick = k - 1;
                for (level, &pv) in p[r * k..(r + 1) * k].iter().enumerate() {
                    acc += pv;
                    if u < acc {
                        pick = level;
                        break;
                    }
                }
                c[r * n_cat + j] = pick as u32;
            }
            at += k;
        }
        step(ti)?;
    }
    Ok((x, c))
}
