//! ROC curves for membership-inference scores.
//!
//! A score is a real number per candidate, higher meaning "predicted member"; a label says whether the
//! candidate really was a member. [`roc`] sweeps the decision threshold over every distinct score,
//! from above the largest (nothing predicted member, the point (0, 0)) down to the smallest
//! (everything predicted member, the point (1, 1)). Candidates with equal scores are crossed
//! together, so a tie moves the curve diagonally, exactly like scikit-learn's
//! `roc_curve(..., drop_intermediate=False)`.
//!
//! With P positives and N negatives, and TP(s), FP(s) the counts with score >= s,
//!
//! ```text
//! TPR(s) = TP(s) / P,   FPR(s) = FP(s) / N.
//! ```
//!
//! The area under the curve is computed by the trapezoid rule over these points, which equals the
//! Mann–Whitney statistic (Mann & Whitney 1947; Hanley & McNeil 1982, "The meaning and use of the
//! area under a ROC curve", Radiology 143, Eq. 1):
//!
//! ```text
//! AUC = P(score_pos > score_neg) + 0.5 * P(score_pos = score_neg).
//! ```
//!
//! The sum is carried out in integers, so the AUC is exact up to one final division.
//!
//! Carlini et al. (2022), "Membership Inference Attacks From First Principles" (IEEE S&P), argue
//! that an attack should be judged by its true-positive rate at a low false-positive rate rather
//! than by the AUC, and plot ROC curves on log–log axes; [`tpr_at_fpr`] follows the convention of
//! their code (the largest TPR among curve points with FPR <= the target) and [`log_roc_points`]
//! prepares a curve for such a plot.

use crate::error::{CoreError, CoreResult};

/// A receiver operating characteristic curve.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Roc {
    /// False-positive rates, non-decreasing, from 0 to 1.
    pub fpr: Vec<f64>,
    /// True-positive rates, non-decreasing, from 0 to 1 (same length as `fpr`).
    pub tpr: Vec<f64>,
    /// Area under the curve (trapezoid rule; equals the Mann–Whitney probability).
    pub auc: f64,
}

/// The ROC curve of `scores` (higher = predicted member) against `labels` (true = member).
///
/// The curve has one point per distinct score plus the point (0, 0); it ends at (1, 1). Fails if the
/// lengths differ, if there is no positive or no negative label, or if a score is NaN. Infinite
/// scores are allowed; `-0.0` and `0.0` count as the same score.
pub fn roc(scores: &[f64], labels: &[bool]) -> CoreResult<Roc> {
    if scores.len() != labels.len() {
        return Err(CoreError::Invalid(format!(
            "roc: {} scores but {} labels",
            scores.len(),
            labels.len()
        )));
    }
    if scores.iter().any(|s| s.is_nan()) {
        return Err(CoreError::Invalid("roc: a score is NaN".into()));
    }
    let n_pos = labels.iter().filter(|&&l| l).count();
    let n_neg = labels.len() - n_pos;
    if n_pos == 0 {
        return Err(CoreError::Invalid("roc: no positive (member) labels".into()));
    }
    if n_neg == 0 {
        return Err(CoreError::Invalid("roc: no negative (non-member) labels".into()));
    }

    let mut pairs: Vec<(f64, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    // No NaN here, so `partial_cmp` is a total order (and treats -0.0 == 0.0). Descending.
    pairs.sort_unstable_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));

    let (p, q) = (n_pos as f64, n_neg as f64);
    let mut fpr = vec![0.0];
    let mut tpr = vec![0.0];
    let (mut tp, mut fp) = (0u64, 0u64);
    // Twice the area, in units of 1 / (P * N): sum of dFP * (TP_before + TP_after).
    let mut area2: u128 = 0;
    let mut start = 0;
    while start < pairs.len() {
        let s = pairs[start].0;
        let mut end = start;
        let (mut dtp, mut dfp) = (0u64, 0u64);
        while end < pairs.len() && pairs[end].0 == s {
            if pairs[end].1 {
                dtp += 1;
            } else {
                dfp += 1;
            }
            end += 1;
        }
        area2 += u128::from(dfp) * u128::from(2 * tp + dtp);
        tp += dtp;
        fp += dfp;
        fpr.push(fp as f64 / q);
        tpr.push(tp as f64 / p);
        start = end;
    }
    let auc = area2 as f64 / (2.0 * p * q);
    Ok(Roc { fpr, tpr, auc })
}

/// The true-positive rate at a false-positive rate of at most `target_fpr`: the largest TPR among
/// the curve's points with `fpr <= target_fpr` (the convention of Carlini et al.'s LiRA code).
/// Returns 0 if no point qualifies (a negative target).
pub fn tpr_at_fpr(roc: &Roc, target_fpr: f64) -> f64 {
    roc.fpr
        .iter()
        .zip(&roc.tpr)
        .filter(|&(&f, _)| f <= target_fpr)
        .map(|(_, &t)| t)
        .fold(0.0, f64::max)
}

/// The curve's (fpr, tpr) points for a log–log plot: both coordinates clamped below at `min`
/// (which should be positive, e.g. 1e-5), thinned to at most `max_points` points.
///
/// Thinning keeps the first and the last point and, between them, a point each time the arc length
/// along the curve in log–log coordinates since the last kept point reaches a step, the smallest
/// step (found by bisection) that stays within `max_points`. So the low-FPR part, which has few
/// points but takes much of a log plot, keeps its shape, and long straight stretches cost few
/// points. O(len · 64). A curve with at most `max_points` points is returned whole.
/// `max_points == 1` gives the first point only and `0` gives nothing.
pub fn log_roc_points(roc: &Roc, min: f64, max_points: usize) -> Vec<[f64; 2]> {
    let pts: Vec<[f64; 2]> = roc
        .fpr
        .iter()
        .zip(&roc.tpr)
        .map(|(&f, &t)| [f.max(min), t.max(min)])
        .collect();
    if pts.len() <= max_points {
        return pts;
    }
    if max_points == 0 {
        return Vec::new();
    }
    if max_points <= 2 {
        let mut out: Vec<[f64; 2]> = pts.first().copied().into_iter().collect();
        if max_points == 2 {
            out.extend(pts.last().copied());
        }
        return out;
    }
    // Cumulative arc length in log10 coordinates (a floor keeps logs finite if min <= 0).
    let lg = |v: f64| v.max(1e-300).log10();
    let mut cum = Vec::with_capacity(pts.len());
    let mut total = 0.0;
    cum.push(0.0);
    for w in pts.windows(2) {
        let dx = lg(w[1][0]) - lg(w[0][0]);
        let dy = lg(w[1][1]) - lg(w[0][1]);
        total += (dx * dx + dy * dy).sqrt();
        cum.push(total);
    }
    let last = pts.len() - 1;
    // Greedy walk: keep an interior point once the arc length since the last kept point reaches
    // `step`. The number kept does not grow with `step`; bisect for the smallest step that keeps
    // at most max_points - 2 interior points. A step above `total` keeps none.
    let budget = max_points - 2;
    let walk = |step: f64, keep: &mut dyn FnMut(usize)| {
        let mut from = 0.0;
        let mut kept = 0usize;
        for (j, &c) in cum.iter().enumerate().take(last).skip(1) {
            if c - from >= step {
                keep(j);
                kept += 1;
                from = c;
            }
        }
        kept
    };
    let (mut lo, mut hi) = (0.0f64, total * 1.5 + 1.0);
    for _ in 0..64 {
        let mid = 0.5 * (lo + hi);
        if walk(mid, &mut |_| {}) <= budget {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    let mut out = Vec::with_capacity(max_points);
    out.push(pts[0]);
    walk(hi, &mut |j| out.push(pts[j]));
    out.push(pts[last]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn hand_computed_example() {
        let scores = [0.9, 0.8, 0.7, 0.6, 0.55, 0.4];
        let labels = [true, true, false, true, false, false];
        let r = roc(&scores, &labels).unwrap();
        let fpr = [0.0, 0.0, 0.0, 1.0 / 3.0, 1.0 / 3.0, 2.0 / 3.0, 1.0];
        let tpr = [0.0, 1.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0, 1.0, 1.0, 1.0];
        assert_eq!(r.fpr.len(), fpr.len());
        for j in 0..fpr.len() {
            assert!(close(r.fpr[j], fpr[j]), "fpr[{j}] = {}", r.fpr[j]);
            assert!(close(r.tpr[j], tpr[j]), "tpr[{j}] = {}", r.tpr[j]);
        }
        // Area: 1/3 * 2/3 + 2/3 * 1 = 8/9; Mann–Whitney: 3 + 3 + 2 winning pairs of 9.
        assert!(close(r.auc, 8.0 / 9.0), "auc = {}", r.auc);
        // Order of the input does not matter.
        let r2 = roc(
            &[0.4, 0.6, 0.9, 0.55, 0.7, 0.8],
            &[false, true, true, false, false, true],
        )
        .unwrap();
        assert_eq!(r, r2);
    }

    #[test]
    fn ties_are_grouped() {
        // One tie across classes: a diagonal step, AUC 0.5.
        let r = roc(&[1.0, 1.0, 0.5, 0.5], &[true, false, true, false]).unwrap();
        assert_eq!(r.fpr, vec![0.0, 0.5, 1.0]);
        assert_eq!(r.tpr, vec![0.0, 0.5, 1.0]);
        assert!(close(r.auc, 0.5));
        // 0.8 > both negatives, 0.5 ties one (half) and beats one: (2 + 1.5) / 4.
        let r = roc(&[0.8, 0.5, 0.5, 0.2], &[true, true, false, false]).unwrap();
        assert_eq!(r.fpr, vec![0.0, 0.0, 0.5, 1.0]);
        assert_eq!(r.tpr, vec![0.0, 0.5, 1.0, 1.0]);
        assert!(close(r.auc, 0.875));
        // -0.0 and 0.0 are one score; all tied gives one step from (0,0) to (1,1).
        let r = roc(&[0.0, -0.0, 0.0], &[true, false, true]).unwrap();
        assert_eq!(r.fpr, vec![0.0, 1.0]);
        assert_eq!(r.tpr, vec![0.0, 1.0]);
        assert!(close(r.auc, 0.5));
        // Infinite scores are fine.
        let r = roc(&[f64::INFINITY, f64::NEG_INFINITY], &[true, false]).unwrap();
        assert!(close(r.auc, 1.0));
    }

    #[test]
    fn auc_equals_brute_force_mann_whitney() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..5 {
            let n = 300 + 37 * round;
            // Few distinct values, so there are many ties; labels correlated with scores.
            let scores: Vec<f64> = (0..n).map(|_| (next() % 40) as f64).collect();
            let labels: Vec<bool> = scores
                .iter()
                .map(|&s| (next() % 100) as f64 + s > 70.0 || next() % 7 == 0)
                .collect();
            let r = roc(&scores, &labels).unwrap();
            let (mut wins, mut pairs) = (0.0, 0.0);
            for i in 0..n {
                for j in 0..n {
                    if labels[i] && !labels[j] {
                        pairs += 1.0;
                        if scores[i] > scores[j] {
                            wins += 1.0;
                        } else if scores[i] == scores[j] {
                            wins += 0.5;
                        }
                    }
                }
            }
            assert!(
                (r.auc - wins / pairs).abs() < 1e-12,
                "{} vs {}",
                r.auc,
                wins / pairs
            );
            // Trapezoid over the returned points agrees too.
            let trap: f64 = (1..r.fpr.len())
                .map(|j| (r.fpr[j] - r.fpr[j - 1]) * (r.tpr[j] + r.tpr[j - 1]) / 2.0)
                .sum();
            assert!((trap - r.auc).abs() < 1e-9);
            // One point per distinct score, plus (0, 0); monotone; ends at (1, 1).
            let mut distinct = scores.clone();
            distinct.sort_by(|a, b| a.partial_cmp(b).unwrap());
            distinct.dedup();
            assert_eq!(r.fpr.len(), distinct.len() + 1);
            assert!(r.fpr.windows(2).all(|w| w[0] <= w[1]) && r.tpr.windows(2).all(|w| w[0] <= w[1]));
            assert_eq!((r.fpr[r.fpr.len() - 1], r.tpr[r.tpr.len() - 1]), (1.0, 1.0));
        }
    }

    #[test]
    fn tpr_at_fpr_values() {
        let r = roc(
            &[0.9, 0.8, 0.7, 0.6, 0.55, 0.4],
            &[true, true, false, true, false, false],
        )
        .unwrap();
        assert!(close(tpr_at_fpr(&r, 0.0), 2.0 / 3.0));
        assert!(close(tpr_at_fpr(&r, 0.01), 2.0 / 3.0));
        assert!(close(tpr_at_fpr(&r, 0.3), 2.0 / 3.0));
        assert!(close(tpr_at_fpr(&r, 1.0 / 3.0), 1.0));
        assert!(close(tpr_at_fpr(&r, 0.5), 1.0));
        assert!(close(tpr_at_fpr(&r, 1.0), 1.0));
        assert_eq!(tpr_at_fpr(&r, -0.1), 0.0);
        // A perfectly wrong ranking has TPR 0 until FPR 1.
        let r = roc(&[0.1, 0.9], &[true, false]).unwrap();
        assert_eq!(tpr_at_fpr(&r, 0.99), 0.0);
        assert_eq!(tpr_at_fpr(&r, 1.0), 1.0);
        assert_eq!(r.auc, 0.0);
    }

    #[test]
    fn error_cases() {
        assert!(roc(&[0.1, 0.2], &[true]).is_err());
        assert!(roc(&[0.1, 0.2], &[true, true]).is_err());
        assert!(roc(&[0.1, 0.2], &[false, false]).is_err());
        assert!(roc(&[0.1, f64::NAN], &[true, false]).is_err());
        assert!(roc(&[], &[]).is_err());
    }

    #[test]
    fn log_points_clamp_and_thin() {
        // Small curve: returned whole, clamped.
        let r = roc(
            &[0.9, 0.8, 0.7, 0.6, 0.55, 0.4],
            &[true, true, false, true, false, false],
        )
        .unwrap();
        let pts = log_roc_points(&r, 1e-4, 100);
        assert_eq!(pts.len(), 7);
        assert_eq!(pts[0], [1e-4, 1e-4]);
        assert_eq!(pts[1], [1e-4, 1.0 / 3.0]);
        assert_eq!(pts[6], [1.0, 1.0]);
        assert_eq!(log_roc_points(&r, 1e-4, 0).len(), 0);
        assert_eq!(log_roc_points(&r, 1e-4, 1), vec![[1e-4, 1e-4]]);
        assert_eq!(log_roc_points(&r, 1e-4, 2), vec![[1e-4, 1e-4], [1.0, 1.0]]);

        // A large curve with a signal at low FPR: 20 000 distinct scores.
        let mut state = 12345u64;
        let mut unif = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let n = 20_000;
        let labels: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
        let scores: Vec<f64> = labels
            .iter()
            .map(|&l| unif() + if l { 0.3 } else { 0.0 })
            .collect();
        let r = roc(&scores, &labels).unwrap();
        assert_eq!(r.fpr.len(), n + 1);
        let min = 1e-5;
        for max_points in [3, 50, 300] {
            let pts = log_roc_points(&r, min, max_points);
            assert!(pts.len() <= max_points && pts.len() >= 2, "{} points", pts.len());
            assert_eq!(pts[0], [min, min]);
            assert_eq!(pts[pts.len() - 1], [1.0, 1.0]);
            // Monotone, clamped, and a subsequence of the clamped curve.
            assert!(pts.windows(2).all(|w| w[0][0] <= w[1][0] && w[0][1] <= w[1][1]));
            assert!(pts.iter().all(|p| p[0] >= min && p[1] >= min));
            let full: Vec<[f64; 2]> = r
                .fpr
                .iter()
                .zip(&r.tpr)
                .map(|(&f, &t)| [f.max(min), t.max(min)])
                .collect();
            let mut pos = 0;
            for p in &pts {
                while pos < full.len() && full[pos] != *p {
                    pos += 1;
                }
                assert!(pos < full.len(), "point {p:?} not on the curve in order");
            }
        }
        // Thinned to 300, the low-FPR decades are still sampled.
        let pts = log_roc_points(&r, min, 300);
        assert!(pts.len() > 280, "{} points", pts.len());
        assert!(pts.iter().filter(|p| p[0] < 1e-2).count() >= 10);
        // Every original point (in log space) is near the thinned polyline's vertices in x.
        // (The first step, from the clamp 1e-5 to FPR 1/10000, is a decade wide whatever the thinning.)
        let xs: Vec<f64> = pts.iter().filter(|p| p[0] > min).map(|p| p[0].log10()).collect();
        let max_gap = xs.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
        assert!(max_gap < 0.5, "largest gap {max_gap} decades");
    }
}
