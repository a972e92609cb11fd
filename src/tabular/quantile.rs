//! Quantile normalisation of numeric columns to a standard normal, as TabDDPM does
//! (`normalization = "quantile"`: scikit-learn's `QuantileTransformer(output_distribution =
//! "normal", n_quantiles = max(min(N / 30, 1000), 10))`): the empirical CDF at `n_quantiles`
//! evenly spaced references, linear interpolation in between (ties resolve to the middle of their
//! reference range, as scikit-learn's two-sided interpolation does), then the normal quantile
//! function, clipped at the `1e-7` bounds. The inverse maps back through the normal CDF.

/// scikit-learn's `BOUNDS_THRESHOLD`.
const BOUNDS: f64 = 1e-7;

/// A fitted transform for one column.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QuantileNormal {
    /// The column's values at the references `linspace(0, 1, n)`.
    pub quantiles: Vec<f64>,
}

impl QuantileNormal {
    /// Fits to `values` (at least one).
    pub fn fit(values: &[f64]) -> Self {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        sorted.sort_by(f64::total_cmp);
        if sorted.is_empty() {
            return Self {
                quantiles: vec![0.0, 0.0],
            };
        }
        let n_q = (sorted.len() / 30).clamp(10, 1000);
        let last = (sorted.len() - 1) as f64;
        let quantiles = (0..n_q)
            .map(|k| {
                let pos = k as f64 / (n_q - 1) as f64 * last;
                let lo = pos.floor() as usize;
                let hi = (lo + 1).min(sorted.len() - 1);
                sorted[lo] + (pos - lo as f64) * (sorted[hi] - sorted[lo])
            })
            .collect();
        Self { quantiles }
    }

    fn reference(&self, k: usize) -> f64 {
        k as f64 / (self.quantiles.len() - 1) as f64
    }

    /// Maps a value to the standard normal scale.
    pub fn forward(&self, x: f64) -> f64 {
        let q = &self.quantiles;
        let (lo, hi) = (q[0], q[q.len() - 1]);
        let u = if x - BOUNDS < lo {
            0.0
        } else if x + BOUNDS > hi {
            1.0
        } else {
            // Rightmost index with q <= x, and leftmost with q >= x.
            let right = q.partition_point(|&v| v <= x).saturating_sub(1);
            let left = q.partition_point(|&v| v < x).min(q.len() - 1);
            let up = self.interp_at(right, x);
            let down = if left > 0 && q[left] > x {
                self.interp_at(left - 1, x)
            } else {
                self.reference(left)
            };
            0.5 * (up + down)
        };
        let clip = BOUNDS - f64::EPSILON;
        normal_quantile(u.clamp(clip, 1.0 - clip))
    }

    /// Linear interpolation of the reference between `q[j]` and `q[j + 1]`.
    fn interp_at(&self, j: usize, x: f64) -> f64 {
        let q = &self.quantiles;
        if j + 1 >= q.len() || q[j + 1] <= q[j] {
            return self.reference(j);
        }
        let f = (x - q[j]) / (q[j + 1] - q[j]);
        self.reference(j) + f * (self.reference(j + 1) - self.reference(j))
    }

    /// Maps a standard-normal value back to the column's scale.
    pub fn inverse(&self, z: f64) -> f64 {
        let q = &self.quantiles;
        let u = normal_cdf(z);
        let pos = u.clamp(0.0, 1.0) * (q.len() - 1) as f64;
        let j = (pos.floor() as usize).min(q.len() - 1);
        let k = (j + 1).min(q.len() - 1);
        q[j] + (pos - j as f64) * (q[k] - q[j])
    }
}

/// The standard normal CDF.
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * puruspe::erfc(-z / std::f64::consts::SQRT_2)
}

/// The standard normal quantile function (Acklam's rational approximation, refined by one
/// Halley step on [`normal_cdf`]; relative error below 1e-13 on (0, 1)).
pub fn normal_quantile(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let x = if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    };
    // One Halley step.
    let e = normal_cdf(x) - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (x * x / 2.0).exp();
    x - u / (1.0 + x * u / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_quantile_inverts_the_cdf() {
        for &p in &[1e-9, 1e-5, 0.01, 0.02425, 0.1, 0.3, 0.5, 0.77, 0.975, 0.999_99] {
            let z = normal_quantile(p);
            assert!((normal_cdf(z) - p).abs() < 1e-12 * p.max(1e-3), "p {p} z {z}");
        }
        assert!((normal_quantile(0.975) - 1.959_963_984_540_054).abs() < 1e-12);
    }

    #[test]
    fn continuous_column_round_trips_and_is_normal() {
        let xs: Vec<f64> = (0..3000)
            .map(|i| ((i * 7919) % 3000) as f64 * 0.37 + 5.0)
            .collect();
        let t = QuantileNormal::fit(&xs);
        assert_eq!(t.quantiles.len(), 100);
        let zs: Vec<f64> = xs.iter().map(|&x| t.forward(x)).collect();
        let mean = zs.iter().sum::<f64>() / zs.len() as f64;
        let var = zs.iter().map(|z| (z - mean) * (z - mean)).sum::<f64>() / zs.len() as f64;
        assert!(mean.abs() < 0.01 && (var - 1.0).abs() < 0.1, "{mean} {var}");
        for &x in &xs[..50] {
            assert!((t.inverse(t.forward(x)) - x).abs() < 1e-3, "{x}");
        }
    }

    #[test]
    fn ties_map_to_the_middle_of_their_range() {
        // 70% zeros, as in capital-gain: the zero sits at the middle of [0, 0.7].
        let xs: Vec<f64> = (0..1000).map(|i| if i < 700 { 0.0 } else { i as f64 }).collect();
        let t = QuantileNormal::fit(&xs);
        let z = t.forward(0.0);
        // Zero is the column minimum, so scikit-learn's lower bound rule maps it to u = 0.
        assert!(z < -5.0, "{z}");
        let xs: Vec<f64> = (0..1000).map(|i| if i < 700 { 5.0 } else { i as f64 }).collect();
        let mut with_low = xs.clone();
        with_low[0] = -1.0;
        let t = QuantileNormal::fit(&with_low);
        let u = normal_cdf(t.forward(5.0));
        assert!((u - 0.35).abs() < 0.02, "{u}");
    }
}
