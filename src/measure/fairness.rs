//! Group fairness of a classifier's predictions, the metrics of Pepin, Igel and Selvan, "When
//! does memorization change fairness?" (arXiv:2412.09254; spec 14 §3): per component, the gap
//! between the first group listed (A = +) and the second (A = −), signed:
//!
//! ```text
//! statistical parity   Δ_sp(k)      = P(f = k | A = +) − P(f = k | A = −)
//! equal opportunity    Δ_eo(y)      = P(f = y | Y = y, A = +) − P(f = y | Y = y, A = −)
//! equalized odds       Δ_eodds(y,k) = P(f = k | Y = y, A = +) − P(f = k | Y = y, A = −)
//! ```
//!
//! Scalars (named, spec 14 §3): statistical parity difference = Δ_sp(positive class) for two
//! classes (the classical signed SPD), with max_k |Δ_sp(k)| and the total variation
//! ½ Σ_k |Δ_sp(k)| beside it; equal opportunity difference = Δ_eo(positive class) (the classical,
//! positive class only) with max_y |Δ_eo(y)| beside it; equalized odds difference =
//! max_{y,k} |Δ_eodds(y,k)|. The positive class is the last one (`>50K` on Adult). Cells with
//! fewer than 30 examples are flagged (spec 14 §8: noisy gaps).

use crate::error::{CoreError, CoreResult};

/// Fewer examples than this in a (group, class) cell make its rates noisy.
pub const SMALL_CELL: usize = 30;

/// One group's counts and rates.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct GroupStats {
    /// Group name.
    pub group: String,
    /// Examples.
    pub n: usize,
    /// P(f = k | A = a) per class k.
    pub predicted_rate: Vec<f64>,
    /// P(f = y | Y = y, A = a) per class y (None for an empty cell).
    pub true_positive_rate: Vec<Option<f64>>,
    /// Examples per true class.
    pub class_counts: Vec<usize>,
}

/// The fairness report of predictions split by a protected attribute.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct FairnessReport {
    /// Δ_sp(positive class): the first group's positive rate minus the second's.
    pub statistical_parity_difference: f64,
    /// max_k |Δ_sp(k)|.
    pub statistical_parity_max_abs: f64,
    /// ½ Σ_k |Δ_sp(k)|.
    pub statistical_parity_total_variation: f64,
    /// Δ_eo(positive class): the first group's TPR minus the second's.
    pub equal_opportunity_difference: f64,
    /// max_y |Δ_eo(y)| (all classes).
    pub equal_opportunity_max_abs: f64,
    /// max_{y,k} |Δ_eodds(y,k)|.
    pub equalized_odds_difference: f64,
    /// Δ_sp(k) per class.
    pub statistical_parity: Vec<f64>,
    /// Δ_eo(y) per class.
    pub equal_opportunity: Vec<f64>,
    /// Δ_eodds(y, k), row y.
    pub equalized_odds: Vec<Vec<f64>>,
    /// The two groups, first minus second.
    pub groups: Vec<GroupStats>,
    /// Index of the positive class.
    pub positive_class: usize,
    /// (group, class) cells with fewer than [`SMALL_CELL`] examples.
    pub small_cells: Vec<(String, usize)>,
}

/// Confusion counts c[y][k] of one group.
fn confusion(y_true: &[usize], y_pred: &[usize], rows: &[usize], k: usize) -> Vec<Vec<usize>> {
    let mut c = vec![vec![0usize; k]; k];
    for &i in rows {
        c[y_true[i]][y_pred[i]] += 1;
    }
    c
}

fn stats(name: &str, c: &[Vec<usize>]) -> GroupStats {
    let k = c.len();
    let n: usize = c.iter().flatten().sum();
    let class_counts: Vec<usize> = c.iter().map(|r| r.iter().sum()).collect();
    GroupStats {
        group: name.to_string(),
        n,
        predicted_rate: (0..k)
            .map(|j| c.iter().map(|r| r[j]).sum::<usize>() as f64 / n.max(1) as f64)
            .collect(),
        true_positive_rate: (0..k)
            .map(|y| (class_counts[y] > 0).then(|| c[y][y] as f64 / class_counts[y] as f64))
            .collect(),
        class_counts,
    }
}

/// The metrics of predictions `y_pred` against `y_true` (class indices below `classes`) for the
/// examples whose `group` is `first` (A = +) or `second` (A = −); other groups are left out.
pub fn fairness(
    y_true: &[usize],
    y_pred: &[usize],
    group: &[String],
    (first, second): (&str, &str),
    classes: usize,
) -> CoreResult<FairnessReport> {
    if y_true.len() != y_pred.len() || y_true.len() != group.len() {
        return Err(CoreError::Invalid(format!(
            "fairness: {} labels, {} predictions, {} groups",
            y_true.len(),
            y_pred.len(),
            group.len()
        )));
    }
    if classes < 2 {
        return Err(CoreError::Invalid("fairness needs at least two classes".into()));
    }
    if let Some(v) = y_true.iter().chain(y_pred).find(|&&v| v >= classes) {
        return Err(CoreError::Invalid(format!("class {v} outside {classes} classes")));
    }
    let rows = |g: &str| -> Vec<usize> { (0..group.len()).filter(|&i| group[i] == g).collect() };
    let (rp, rm) = (rows(first), rows(second));
    for (g, r) in [(first, &rp), (second, &rm)] {
        if r.is_empty() {
            let mut names: Vec<&String> = group.iter().collect();
            names.sort();
            names.dedup();
            return Err(CoreError::Invalid(format!(
                "no example in group '{g}'; the groups are {names:?}"
            )));
        }
    }
    let (cp, cm) = (
        confusion(y_true, y_pred, &rp, classes),
        confusion(y_true, y_pred, &rm, classes),
    );
    let (sp_, sm) = (stats(first, &cp), stats(second, &cm));
    let sp: Vec<f64> = (0..classes)
        .map(|j| sp_.predicted_rate[j] - sm.predicted_rate[j])
        .collect();
    let rate = |c: &[Vec<usize>], y: usize, j: usize| -> Option<f64> {
        let n: usize = c[y].iter().sum();
        (n > 0).then(|| c[y][j] as f64 / n as f64)
    };
    let eodds: Vec<Vec<f64>> = (0..classes)
        .map(|y| {
            (0..classes)
                .map(|j| match (rate(&cp, y, j), rate(&cm, y, j)) {
                    (Some(a), Some(b)) => a - b,
                    _ => f64::NAN,
                })
                .collect()
        })
        .collect();
    let eo: Vec<f64> = (0..classes).map(|y| eodds[y][y]).collect();
    let max_abs =
        |v: &mut dyn Iterator<Item = f64>| v.filter(|x| x.is_finite()).fold(0.0f64, |m, x| m.max(x.abs()));
    let positive = classes - 1;
    let mut small = Vec::new();
    for s in [&sp_, &sm] {
        for (y, &n) in s.class_counts.iter().enumerate() {
            if n < SMALL_CELL {
                small.push((s.group.clone(), y));
            }
        }
    }
    Ok(FairnessReport {
        statistical_parity_difference: sp[positive],
        statistical_parity_max_abs: max_abs(&mut sp.iter().copied()),
        statistical_parity_total_variation: 0.5 * sp.iter().map(|v| v.abs()).sum::<f64>(),
        equal_opportunity_difference: eo[positive],
        equal_opportunity_max_abs: max_abs(&mut eo.iter().copied()),
        equalized_odds_difference: max_abs(&mut eodds.iter().flatten().copied()),
        statistical_parity: sp,
        equal_opportunity: eo,
        equalized_odds: eodds,
        groups: vec![sp_, sm],
        positive_class: positive,
        small_cells: small,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests unwrap freely")]
    use super::*;

    /// Planted rates: group "a" (100 per class) predicted positive at TPR 0.8 / FPR 0.3, group
    /// "b" at TPR 0.5 / FPR 0.1, so every gap is known in closed form.
    fn planted() -> (Vec<usize>, Vec<usize>, Vec<String>) {
        let (mut t, mut p, mut g) = (Vec::new(), Vec::new(), Vec::new());
        for (name, tpr, fpr) in [("a", 80, 30), ("b", 50, 10)] {
            for i in 0..100 {
                t.push(1);
                p.push(usize::from(i < tpr));
                g.push(name.to_string());
                t.push(0);
                p.push(usize::from(i < fpr));
                g.push(name.to_string());
            }
        }
        // A third group is left out.
        t.push(1);
        p.push(0);
        g.push("c".into());
        (t, p, g)
    }

    #[test]
    fn planted_gaps_are_recovered_with_their_signs() {
        let (t, p, g) = planted();
        let r = fairness(&t, &p, &g, ("a", "b"), 2).unwrap();
        // P(f=1|a) = (80+30)/200 = 0.55, P(f=1|b) = 0.30.
        assert!((r.statistical_parity_difference - 0.25).abs() < 1e-12);
        assert!((r.statistical_parity_total_variation - 0.25).abs() < 1e-12);
        assert!((r.equal_opportunity_difference - 0.30).abs() < 1e-12);
        // Negative class: TNR 0.7 vs 0.9.
        assert!((r.equal_opportunity[0] + 0.20).abs() < 1e-12);
        // Equalized odds: the FPR gap 0.2 and the TPR gap 0.3.
        assert!((r.equalized_odds[0][1] - 0.20).abs() < 1e-12);
        assert!((r.equalized_odds_difference - 0.30).abs() < 1e-12);
        assert_eq!(r.groups[0].n, 200);
        assert!(r.small_cells.is_empty());
        // Swapping the groups flips every sign.
        let s = fairness(&t, &p, &g, ("b", "a"), 2).unwrap();
        assert!((s.statistical_parity_difference + 0.25).abs() < 1e-12);
        assert!((s.equal_opportunity_difference + 0.30).abs() < 1e-12);
    }

    #[test]
    fn equal_predictions_are_bias_free_and_bad_input_is_one_error() {
        let t = vec![0, 1, 0, 1];
        let g: Vec<String> = ["a", "a", "b", "b"].iter().map(|s| s.to_string()).collect();
        let r = fairness(&t, &t, &g, ("a", "b"), 2).unwrap();
        assert_eq!(r.equalized_odds_difference, 0.0);
        assert_eq!(r.small_cells.len(), 4);
        let e = fairness(&t, &t, &g, ("a", "z"), 2).unwrap_err().to_string();
        assert!(e.contains("'z'") && e.contains("\"a\""), "{e}");
        assert!(fairness(&t, &[0, 1, 2, 0], &g, ("a", "b"), 2).is_err());
    }
}
