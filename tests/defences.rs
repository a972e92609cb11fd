//! DP-SGD as a defence, checked by its finding: on a digits zoo with planted mislabels, the
//! DP-SGD variant (ε = 2) of the same recipe leaks less to LiRA (AUC), stops memorizing the
//! planted mislabels, and its audited ε lower bound stays under the accountant's ε; the
//! comparison lists the variant under its baseline; bad DP settings are one clear error.
#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use crate::common;

use rote::defence::compare::{defences_report, train_dp_variant};
use rote::defence::dp_sgd::DpSettings;
use rote::job::{JobCtx, NullSink};

#[test]
fn dp_sgd_variant_leaks_less_and_stays_under_its_epsilon() {
    let (dir, study) = common::digits_base_zoo("defences", 8);
    let cancel = Default::default();
    let ctx = JobCtx::new(&cancel, &NullSink);
    let settings = DpSettings {
        clip: 1.0,
        epsilon: Some(2.0),
        noise_multiplier: None,
        delta: 1e-5,
    };
    let id = train_dp_variant(&study, "base", &settings, None, &ctx).unwrap();
    let report = defences_report(&study, &ctx).unwrap();
    let ids: Vec<&str> = report.rows.iter().map(|r| r.zoo.as_str()).collect();
    assert_eq!(ids, ["base", id.as_str()]);
    let (b, d) = (&report.rows[0], &report.rows[1]);
    eprintln!("baseline {b:?}\nDP {d:?}");
    assert_eq!(d.variant_of.as_deref(), Some("base"));
    let eps = d.accountant_epsilon.unwrap();
    assert!(eps <= 2.0 && eps > 1.9, "accountant ε {eps}");
    assert!(
        b.lira_auc - d.lira_auc >= 0.03,
        "AUC {} -> {}",
        b.lira_auc,
        d.lira_auc
    );
    assert!(
        b.planted_recall.unwrap() >= 0.3 && d.planted_recall.unwrap() <= 0.1,
        "planted recall {:?} -> {:?}",
        b.planted_recall,
        d.planted_recall
    );
    let audited = d.audited_epsilon.unwrap();
    assert!(
        (0.0..=eps).contains(&audited),
        "audited {audited} vs accountant {eps}"
    );
    // The zoo's manifest records the guarantee and what it depends on.
    let zoo = std::fs::read_to_string(dir.join("zoos").join(&id).join("zoo.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&zoo).unwrap();
    for key in [
        "epsilon",
        "delta",
        "noise_multiplier",
        "clip",
        "sample_rate",
        "steps",
    ] {
        assert!(v["config"]["dp"][key].is_number(), "{key} in {zoo}");
    }
    // A DP zoo is not a baseline; bad settings are one clear error.
    let e = train_dp_variant(&study, &id, &settings, None, &ctx)
        .unwrap_err()
        .to_string();
    assert!(e.contains("already trained with a defence (DP-SGD"), "{e}");
    let bad = DpSettings {
        epsilon: Some(0.0),
        ..settings
    };
    let e = train_dp_variant(&study, "base", &bad, None, &ctx)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--dp-epsilon must be a positive number"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
