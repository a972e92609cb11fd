//! Bias after memorization (Pepin, Igel and Selvan; spec 14 §4-§7) with planted ground truth:
//! the closed forms equal the simulation on any memorized set, the EO-optimal set removes the
//! equal-opportunity gap up to the rounding of one row while a uniform set of the same mass does
//! not, memorizing everything leaves only the base-rate gap, and on an Adult MLP the CLI reports
//! the same.
#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use crate::common;

use rand::{Rng, SeedableRng};
use rote::measure::fairness_memorization::{Population, Strategy};

const STRATEGIES: [Strategy; 4] = [
    Strategy::Uniform,
    Strategy::Group,
    Strategy::EoOptimal,
    Strategy::Targeted,
];

/// Male: 300 positives at TPR 0.8, 700 negatives at FPR 0.1; Female: 100 positives at TPR 0.5,
/// 600 negatives at FPR 0.05. Base EO gap +0.3, base-rate gap 0.3 − 1/7.
fn planted() -> Population {
    let (mut t, mut p, mut g) = (Vec::new(), Vec::new(), Vec::new());
    for (name, pos, neg, tp, fp) in [("Male", 300, 700, 240, 70), ("Female", 100, 600, 50, 30)] {
        for i in 0..pos {
            t.push(1);
            p.push(usize::from(i < tp));
            g.push(name.to_string());
        }
        for i in 0..neg {
            t.push(0);
            p.push(usize::from(i < fp));
            g.push(name.to_string());
        }
    }
    // A third group is not part of the population.
    t.push(1);
    p.push(0);
    g.push("Other".into());
    Population::new(&t, &p, &g, ("Male", "Female"), 2).unwrap()
}

#[test]
fn closed_form_equals_simulation_on_random_masks_and_every_strategy() {
    let pop = planted();
    assert_eq!(pop.len(), 1700);
    let base = pop.base().unwrap();
    assert!((base.equal_opportunity_difference - 0.3).abs() < 1e-12);
    assert_eq!(pop.names[pop.disadvantaged()], "Female");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for _ in 0..20 {
        let p: f64 = rng.random();
        let mask: Vec<bool> = (0..pop.len()).map(|_| rng.random::<f64>() < p).collect();
        let r = pop.report(Strategy::Uniform, p, &mask).unwrap();
        assert!(
            r.closed_form_error < 1e-12,
            "random mask: {}",
            r.closed_form_error
        );
    }
    for s in STRATEGIES {
        for (seed, mass) in [(0, 0.02), (1, 0.05), (2, 0.2), (3, 0.3)] {
            let mask = pop.mask(s, mass, seed).unwrap();
            // Seeded and deterministic.
            assert_eq!(mask, pop.mask(s, mass, seed).unwrap());
            let r = pop.report(s, mass, &mask).unwrap();
            assert!(
                r.closed_form_error < 1e-12,
                "{s:?} {mass}: {}",
                r.closed_form_error
            );
            // Targeted is capped by the 210 misclassified rows; eo-optimal ignores the mass.
            let want = if s == Strategy::Targeted {
                mass.min(210.0 / 1700.0)
            } else {
                mass
            };
            if s != Strategy::EoOptimal {
                assert!((r.p_d - want).abs() < 1.0 / 1700.0, "{s:?}: {}", r.p_d);
            }
        }
    }
    // Group: only Female rows; targeted at 68 rows: only the 80 misclassified Female rows.
    let mask = pop.mask(Strategy::Group, 0.2, 0).unwrap();
    assert!((0..pop.len()).all(|i| !mask[i] || pop.group[i] == 1));
    let mask = pop.mask(Strategy::Targeted, 0.04, 0).unwrap();
    assert!((0..pop.len()).all(|i| !mask[i] || (pop.group[i] == 1 && pop.y_pred[i] != pop.y_true[i])));
}

#[test]
fn eo_optimal_removes_the_equal_opportunity_gap_and_uniform_does_not() {
    let pop = planted();
    let mask = pop.mask(Strategy::EoOptimal, 0.05, 3).unwrap();
    let r = pop.report(Strategy::EoOptimal, 0.05, &mask).unwrap();
    // Smallest cell: 100 Female positives.
    let tol = 1.0 / 100.0 + 1e-12;
    for y in 0..2 {
        assert!(r.simulated.equal_opportunity[y].abs() <= tol, "{:?}", r.simulated);
    }
    // M*_EO = (100·0.3/0.5 + 700·0.05/0.1)/1700 = 410/1700, realised to the row.
    assert!(
        (r.derived.m_star_eo - 410.0 / 1700.0).abs() < 1e-12,
        "{:?}",
        r.derived
    );
    assert!((r.p_d - r.derived.m_star_eo).abs() <= 2.0 / 1700.0, "{}", r.p_d);
    let (lo, hi) = r.derived.m_star_eo_bounds;
    assert!(lo <= r.derived.m_star_eo && r.derived.m_star_eo <= hi);
    // Uniform at the same mass: Δ_eo ≈ 0.3 − p_D·(0.5 − 0.2) ≈ 0.23.
    let uniform = pop.mask(Strategy::Uniform, r.p_d, 3).unwrap();
    let u = pop.report(Strategy::Uniform, r.p_d, &uniform).unwrap();
    assert!(
        u.simulated.equal_opportunity_difference > 0.15,
        "{:?}",
        u.simulated
    );
    // SP bound: min(π₊, π₋)·TV/max FNR = (700/1700)·|310/1000 − 80/700|/0.5.
    let bound = 700.0 / 1700.0 * (0.31 - 80.0 / 700.0) / 0.5;
    assert!(
        (r.derived.sp_lower_bound - bound).abs() < 1e-12,
        "{:?}",
        r.derived
    );
}

#[test]
fn memorizing_everything_leaves_only_the_base_rate_gap() {
    let pop = planted();
    let mask = pop.mask(Strategy::Uniform, 1.0, 0).unwrap();
    assert!(mask.iter().all(|&m| m));
    let r = pop.report(Strategy::Uniform, 1.0, &mask).unwrap();
    assert!((r.p_d - 1.0).abs() < 1e-12);
    for g in [&r.simulated, &r.closed_form] {
        assert!(g.equal_opportunity.iter().all(|v| v.abs() < 1e-12), "{g:?}");
        assert!(g.equalized_odds_difference < 1e-12, "{g:?}");
        assert!(
            (g.statistical_parity_difference - (0.3 - 100.0 / 700.0)).abs() < 1e-12,
            "{g:?}"
        );
    }
}

/// An Adult MLP: `rote fairness MODEL --memorize eo-optimal --json` closes the EO gap on the test
/// rows, its closed form equals the simulation, and without --memorize the JSON is unchanged.
#[test]
fn adult_mlp_eo_optimal_memorization_closes_the_gap() {
    let dir = tempfile::tempdir().unwrap();
    let study = dir.path().join("study");
    let out = common::rote(
        &[
            "train",
            "--family",
            "mlp",
            "--data",
            "adult",
            "--epochs",
            "5",
            "--out",
            study.to_str().unwrap(),
            "--json",
        ],
        dir.path(),
    );
    let trained = common::json_of(&out);
    let model = trained["path"].as_str().unwrap().to_string();
    let plain = common::json_of(&common::rote(&["fairness", &model, "--json"], dir.path()));
    assert!(plain.get("memorization").is_none(), "{plain}");
    for strategy in ["eo-optimal", "uniform", "group", "targeted"] {
        let out = common::rote(
            &[
                "fairness",
                &model,
                "--memorize",
                strategy,
                "--mass",
                "0.05",
                "--json",
            ],
            dir.path(),
        );
        let v = common::json_of(&out);
        let m = &v["memorization"];
        eprintln!("{strategy}: {}", m["finding"]);
        eprintln!(
            "  p_D {} SP {} -> {} EO {} -> {} EOdds {} -> {}; M*_EO {} SP bound {}",
            m["p_d"],
            m["before"]["statistical_parity_difference"],
            m["simulated"]["statistical_parity_difference"],
            m["before"]["equal_opportunity_difference"],
            m["simulated"]["equal_opportunity_difference"],
            m["before"]["equalized_odds_difference"],
            m["simulated"]["equalized_odds_difference"],
            m["derived"]["m_star_eo"],
            m["derived"]["sp_lower_bound"],
        );
        // The base report is the one without --memorize.
        assert_eq!(
            v["statistical_parity_difference"],
            plain["statistical_parity_difference"]
        );
        assert!(m["closed_form_error"].as_f64().unwrap() < 1e-12, "{m}");
        let after = m["simulated"]["equal_opportunity_difference"].as_f64().unwrap();
        let closed = m["closed_form"]["equal_opportunity_difference"].as_f64().unwrap();
        assert!((after - closed).abs() < 1e-12, "{m}");
        if strategy == "eo-optimal" {
            assert!(after.abs() < 0.01, "{m}");
            let before = m["before"]["equal_opportunity_difference"].as_f64().unwrap();
            assert!(before.abs() > after.abs(), "{m}");
        }
    }
    // Real memorization (spec 14 §7 step 4): the recipe again on its rows plus 20 x D, where D
    // is 5 % of the test rows, all misclassified by the base model.
    let out = common::rote(
        &[
            "fairness",
            &model,
            "--memorize",
            "targeted",
            "--mass",
            "0.05",
            "--retrain",
            "--json",
        ],
        dir.path(),
    );
    let v = common::json_of(&out);
    let m = &v["memorization"];
    let r = &m["retrained"];
    eprintln!("retrained: {r}");
    let f = |v: &serde_json::Value| v.as_f64().unwrap();
    assert_eq!(r["memorized"], m["memorized"], "{r}");
    assert_eq!(
        f(&r["base_fit_on_d"]),
        0.0,
        "targeted rows are all misclassified: {r}"
    );
    assert!(f(&r["fit_on_d"]) > 0.6, "the retrained model fits most of D: {r}");
    assert!(
        f(&r["accuracy"][1]) > f(&r["accuracy"][0]),
        "memorizing D inflates the accuracy on the rows that contain it: {r}"
    );
    let spill = f(&r["spillover"]);
    assert!(
        spill > 0.005 && spill < 0.5,
        "a real network changes rows outside D too: {r}"
    );
    let eo = |g: &serde_json::Value| f(&g["equal_opportunity_difference"]);
    let (before, simulated, real) = (eo(&m["before"]), eo(&m["simulated"]), eo(&r["seen"]));
    assert!(
        (real - before) * (simulated - before) > 0.0,
        "the real gap moves the way the simulation does: {before} -> {simulated} / {real}"
    );
    let out = common::rote(
        &["fairness", &model, "--memorize", "uniform", "--sweep"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(
        text.contains("closed form gives") && text.contains("0.30"),
        "{text}"
    );
}
