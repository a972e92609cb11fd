//! SimCLR's NT-Xent loss (Chen et al. 2020, eq. 1): for 2B projections where rows i and i + B are
//! the two views of one image, with z L2-normalised and sim(u, v) = u.v / tau,
//!
//! l(i, j) = -log( exp(sim(z_i, z_j)) / sum_{k != i} exp(sim(z_i, z_k)) ),
//!
//! averaged over all 2B ordered positive pairs.

use candle_core::{D, Result, Tensor};

/// NT-Xent of `z` (2B x d, rows i and i + B are positives) at temperature `tau`.
pub fn nt_xent(z: &Tensor, tau: f64) -> Result<Tensor> {
    let (n, _) = z.dims2()?;
    if n < 2 || n % 2 == 1 {
        return Err(candle_core::Error::Msg(format!(
            "NT-Xent needs an even number (>= 2) of projections, got {n}"
        )));
    }
    let b = n / 2;
    let norm = z.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::INFINITY)?;
    let zn = z.broadcast_div(&norm)?;
    let sim = (zn.matmul(&zn.t()?)? / tau)?;
    // The diagonal (self-similarity) is excluded by a large negative offset.
    let eye: Vec<f32> = (0..n * n)
        .map(|k| if k / n == k % n { -1e9 } else { 0.0 })
        .collect();
    let mask = Tensor::from_vec(eye, (n, n), z.device())?.to_dtype(z.dtype())?;
    let logp = candle_nn::ops::log_softmax(&(sim + mask)?, D::Minus1)?;
    let pos: Vec<u32> = (0..n).map(|i| ((i + b) % n) as u32).collect();
    let pos = Tensor::from_vec(pos, (n, 1), z.device())?;
    logp.gather(&pos, 1)?.mean_all()?.neg()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// B = 2 in 2-D: z = [(1,0), (0,1), (1,1)/sqrt2, (1,-1)/sqrt2], tau = 0.5, computed by hand.
    #[test]
    fn matches_hand_computation() {
        let s = std::f64::consts::FRAC_1_SQRT_2;
        let rows = [[1.0, 0.0], [0.0, 1.0], [s, s], [s, -s]];
        // Unnormalised input: scaling a row must not change the loss.
        let flat: Vec<f64> = rows
            .iter()
            .enumerate()
            .flat_map(|(i, r)| r.iter().map(move |v| v * (1.0 + i as f64)))
            .collect();
        let z = Tensor::from_vec(flat, (4, 2), &Device::Cpu).unwrap();
        let got = nt_xent(&z, 0.5).unwrap().to_scalar::<f64>().unwrap();
        let dot = |a: [f64; 2], b: [f64; 2]| a[0] * b[0] + a[1] * b[1];
        let mut want = 0.0;
        for i in 0..4 {
            let j = (i + 2) % 4;
            let denom: f64 = (0..4)
                .filter(|&k| k != i)
                .map(|k| (dot(rows[i], rows[k]) / 0.5).exp())
                .sum();
            want -= ((dot(rows[i], rows[j]) / 0.5).exp() / denom).ln();
        }
        want /= 4.0;
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        // Explicit value for row 0: positives (1,0).(s,s) = s; others 0 and s.
        assert!(want > 0.0);
    }

    #[test]
    fn perfect_pairs_score_lower_than_random() {
        let z = Tensor::from_vec(
            vec![1.0f32, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0],
            (4, 2),
            &Device::Cpu,
        )
        .unwrap();
        let swapped = Tensor::from_vec(
            vec![1.0f32, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0],
            (4, 2),
            &Device::Cpu,
        )
        .unwrap();
        let good = nt_xent(&z, 0.5).unwrap().to_scalar::<f32>().unwrap();
        let bad = nt_xent(&swapped, 0.5).unwrap().to_scalar::<f32>().unwrap();
        assert!(good < bad, "{good} {bad}");
    }
}
