//! The pure arithmetic of LayerMem and UnitMem (Wang et al., NeurIPS 2024), separate from the
//! tensors so it can be checked by hand.
//!
//! * LayerMem_l = mean_x normalised[ L_align(g_{<=l}, x) - L_align(f_{<=l}, x) ] (SSLMem, Wang
//!   et al. ICLR 2024, applied to layer l's output); ΔLayerMem_l = LayerMem_l - LayerMem_{l-1}.
//! * UnitMem(u) = (μ_max,u - μ_-max,u) / (μ_max,u + μ_-max,u), μ_max the largest per-sample mean
//!   activation of unit u and μ_-max the median (reference code) or mean of the others.

/// How the per-candidate differences are normalised before averaging.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// Divide by the range (max - min) over the candidates: the reference code (`layer_mem.py`).
    /// No shift, so values can be negative.
    Range,
    /// (d - min) / (max - min): in [0, 1], the paper text's reporting scale.
    Minmax,
    /// Raw differences of alignment losses.
    None,
}

/// μ_-max: what "the other points" are summarised by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MuMinus {
    /// Median of the other points (reference code, `UnitMem.py`).
    Median,
    /// Mean of the other points.
    Mean,
}

/// Normalises one layer's per-candidate differences.
pub fn normalise(diff: &[f64], norm: Norm) -> Vec<f64> {
    let min = diff.iter().copied().fold(f64::INFINITY, f64::min);
    let max = diff.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let range = max - min;
    match norm {
        Norm::None => diff.to_vec(),
        _ if range.is_nan() || range <= 0.0 => vec![0.0; diff.len()],
        Norm::Range => diff.iter().map(|d| d / range).collect(),
        Norm::Minmax => diff.iter().map(|d| (d - min) / range).collect(),
    }
}

/// Mean of a slice (NaN when empty).
pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// UnitMem of one unit from its per-sample mean activations, and the sample with μ_max. `None`
/// when the unit is dead (μ_max + μ_-max = 0) or there are fewer than two samples.
pub fn unit_mem(mu: &[f32], mu_minus: MuMinus) -> (Option<f32>, usize) {
    let Some((arg, &max)) = mu
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
    else {
        return (None, 0);
    };
    let mut rest: Vec<f32> = mu
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != arg)
        .map(|(_, &v)| v)
        .collect();
    if rest.is_empty() {
        return (None, arg);
    }
    let other = match mu_minus {
        MuMinus::Mean => rest.iter().sum::<f32>() / rest.len() as f32,
        MuMinus::Median => {
            rest.sort_by(f32::total_cmp);
            let n = rest.len();
            if n % 2 == 1 {
                rest[n / 2]
            } else {
                0.5 * (rest[n / 2 - 1] + rest[n / 2])
            }
        }
    };
    let denom = max + other;
    if denom.is_nan() || denom <= 0.0 {
        return (None, arg);
    }
    (Some((max - other) / denom), arg)
}

/// Mean LayerMem of the planted candidates over the mean of the rest (NaN without planted ones
/// or rest).
pub fn outlier_ratio(values: &[f64], planted: &[usize]) -> f64 {
    let (mut inside, mut rest) = (Vec::new(), Vec::new());
    for (i, &v) in values.iter().enumerate() {
        if planted.contains(&i) {
            inside.push(v);
        } else {
            rest.push(v);
        }
    }
    mean(&inside) / mean(&rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_firing_for_one_sample_scores_one() {
        let mu = [0.0, 0.0, 3.0, 0.0, 0.0];
        assert_eq!(unit_mem(&mu, MuMinus::Median), (Some(1.0), 2));
        assert_eq!(unit_mem(&mu, MuMinus::Mean), (Some(1.0), 2));
        // A uniform unit scores 0; a dead one has no score.
        assert_eq!(unit_mem(&[2.0; 4], MuMinus::Median).0, Some(0.0));
        assert_eq!(unit_mem(&[0.0; 4], MuMinus::Median).0, None);
        // max 4, others [1, 2, 3]: median 2 -> (4-2)/(4+2) = 1/3; mean 2 too.
        let (u, arg) = unit_mem(&[1.0, 4.0, 2.0, 3.0], MuMinus::Median);
        assert_eq!(arg, 1);
        assert!((u.unwrap() - 1.0 / 3.0).abs() < 1e-6);
        // Median vs mean differ on skewed rest: [0, 0, 3] median 0 -> 1, mean 1 -> (6-1)/(6+1).
        assert_eq!(unit_mem(&[0.0, 6.0, 0.0, 3.0], MuMinus::Median).0, Some(1.0));
        let m = unit_mem(&[0.0, 6.0, 0.0, 3.0], MuMinus::Mean).0.unwrap();
        assert!((m - 5.0 / 7.0).abs() < 1e-6);
    }

    #[test]
    fn normalisations() {
        let d = [-1.0, 0.0, 3.0];
        assert_eq!(normalise(&d, Norm::Range), vec![-0.25, 0.0, 0.75]);
        assert_eq!(normalise(&d, Norm::Minmax), vec![0.0, 0.25, 1.0]);
        assert_eq!(normalise(&d, Norm::None), d.to_vec());
        assert_eq!(normalise(&[2.0, 2.0], Norm::Range), vec![0.0, 0.0]);
        assert!((outlier_ratio(&[4.0, 1.0, 1.0], &[0]) - 4.0).abs() < 1e-12);
    }
}
