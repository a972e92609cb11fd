//! The digit tree, the batched scorer and the searches agree on an untrained model (whose
//! distribution over the slot is far from uniform, so order matters).

use super::card::untrained_lm;
use super::extract::{SearchMethod, SearchOptions, search_secret};
use super::report::{Estimate, ExposureOptions, measure_exposure};
use super::score::{exact_space, score_secrets};
use crate::job::{CancelToken, JobCtx, NullSink};

fn ctx_parts() -> (CancelToken, NullSink) {
    (CancelToken::new(), NullSink)
}

#[test]
fn digit_tree_matches_sequence_scoring() {
    let lm = untrained_lm(4, 16, 3);
    let (c, s) = ctx_parts();
    let ctx = JobCtx::new(&c, &s);
    let space = exact_space(&lm, &lm.card.formats[0], &ctx).unwrap();
    assert_eq!(space.len(), 10_000);
    let picks = ["0000", "0420", "1234", "9999", "5071"];
    let secrets: Vec<String> = picks.iter().map(|p| p.to_string()).collect();
    let scored = score_secrets(&lm, &lm.card.formats[0], &secrets, &ctx).unwrap();
    for (p, v) in picks.iter().zip(scored) {
        let i: usize = p.parse().unwrap();
        assert!(
            (f64::from(space[i]) - v).abs() < 1e-3,
            "{p}: tree {} vs sequence {v}",
            space[i]
        );
    }
    // Probabilities of the slot fillings: their sum is the chance of any 4 digits, at most 1.
    let total: f64 = space.iter().map(|&b| (-f64::from(b)).exp2()).sum();
    assert!(total > 0.0 && total <= 1.0 + 1e-4, "{total}");
}

#[test]
fn dijkstra_lists_the_space_in_rank_order_and_beam_finds_the_best() {
    let lm = untrained_lm(3, 16, 5);
    let (c, s) = ctx_parts();
    let ctx = JobCtx::new(&c, &s);
    let mut space: Vec<(f32, usize)> = exact_space(&lm, &lm.card.formats[0], &ctx)
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(i, b)| (b, i))
        .collect();
    space.sort_by(|a, b| a.0.total_cmp(&b.0));
    let opts = SearchOptions {
        candidates: 25,
        batch: 7,
        ..SearchOptions::default()
    };
    let mut events = 0;
    let r = search_secret(&lm, "my pin is ", 3, &opts, &mut |_| events += 1, &ctx).unwrap();
    assert!(events > 0);
    assert_eq!(r.candidates.len(), 25);
    for (k, cand) in r.candidates.iter().enumerate() {
        assert!((cand.bits - f64::from(space[k].0)).abs() < 1e-3, "candidate {k}");
        // Same order except among near-ties.
        if k + 1 < space.len()
            && (space[k + 1].0 - space[k].0).abs() > 1e-3
            && (k == 0 || (space[k].0 - space[k - 1].0).abs() > 1e-3)
        {
            assert_eq!(cand.secret, format!("{:03}", space[k].1), "candidate {k}");
        }
    }
    assert!(!r.out_of_budget);
    // A tiny budget stops the search and says so.
    let tight = SearchOptions {
        budget: 3,
        ..opts.clone()
    };
    let t = search_secret(&lm, "my pin is ", 3, &tight, &mut |_| {}, &ctx).unwrap();
    assert!(t.out_of_budget && t.expanded <= 3);
    // Beam search with a wide beam is exact on 3 digits.
    let b = search_secret(
        &lm,
        "my pin is ",
        3,
        &SearchOptions {
            method: SearchMethod::Beam,
            beam: 100,
            candidates: 5,
            ..SearchOptions::default()
        },
        &mut |_| {},
        &ctx,
    )
    .unwrap();
    assert_eq!(b.candidates[0].secret, r.candidates[0].secret);
    // A prefix with a character outside the vocabulary is refused by name.
    let e = search_secret(&lm, "PIN: ", 3, &opts, &mut |_| {}, &ctx).unwrap_err();
    assert!(e.to_string().contains("'P'"), "{e}");
}

#[test]
fn report_ranks_match_the_enumerated_space() {
    let lm = untrained_lm(4, 16, 9);
    let (c, s) = ctx_parts();
    let ctx = JobCtx::new(&c, &s);
    let space = exact_space(&lm, &lm.card.formats[0], &ctx).unwrap();
    let rep = measure_exposure(
        &lm,
        &ExposureOptions {
            estimate: Estimate::Both,
            references: 2_000,
            ..ExposureOptions::default()
        },
        &ctx,
    )
    .unwrap();
    assert_eq!(rep.canaries.len(), 2);
    for ce in &rep.canaries {
        let own = space[ce.secret.parse::<usize>().unwrap()];
        let rank = space.iter().filter(|&&v| v <= own).count() as u64;
        assert_eq!(ce.exact_rank, Some(rank));
        let exact = ce.exact.unwrap();
        assert!((exact - (10_000f64.log2() - (rank as f64).log2())).abs() < 1e-12);
        // An untrained model: the interpolation over 2000 references agrees with the exact rank.
        assert!((ce.interpolation.unwrap() - exact).abs() < 0.5, "{ce:?}");
    }
    let f = &rep.formats[0];
    assert_eq!(f.histogram.counts.iter().sum::<u64>(), 10_000);
    assert!(f.ks.unwrap() < 0.2);
    // The exact estimate alone refuses a slot too long to enumerate.
    let long = untrained_lm(9, 8, 1);
    let err = measure_exposure(
        &long,
        &ExposureOptions {
            estimate: Estimate::Exact,
            ..ExposureOptions::default()
        },
        &ctx,
    )
    .unwrap_err();
    assert!(err.to_string().contains("skew-normal"), "{err}");
}
