//! PGD adversarial training and DeMem-style de-memorization as defences, checked by what they
//! change on a digits zoo with planted mislabels: the variants record their robust accuracy
//! (under PGD-20 at the training radius: below the natural accuracy, far above chance), PGD-AT at
//! ε = 0.1 stops memorizing the planted mislabels that the plain recipe memorizes, DeMem costs
//! little natural accuracy, and both variants sit under their baseline. (The hinge's gradient is
//! held to autograd in `train::batched_mlp_adv`.)
#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use crate::common;

use rote::defence::compare::{Defence, defences_report, train_variant};
use rote::defence::demem::{Adversarial, Demem};
use rote::job::{JobCtx, NullSink};

#[test]
fn adversarial_variants_are_robust_and_stop_memorizing_mislabels() {
    let (dir, study) = common::digits_base_zoo("demem", 8);
    let cancel = Default::default();
    let ctx = JobCtx::new(&cancel, &NullSink);
    let at = Adversarial::new(0.1, 3, None);
    let pgdat = train_variant(&study, "base", &Defence::Adversarial(at.clone()), None, &ctx).unwrap();
    let demem = Adversarial::new(0.1, 3, Some(Demem::default()));
    let dm = train_variant(&study, "base", &Defence::Adversarial(demem), None, &ctx).unwrap();
    let report = defences_report(&study, &ctx).unwrap();
    for r in &report.rows {
        eprintln!("{r:?}");
    }
    let row = |id: &str| report.rows.iter().find(|r| r.zoo == id).unwrap();
    assert_eq!(report.rows[0].zoo, "base");
    assert!(report.rows[0].robust_accuracy.is_none());
    for id in [&pgdat, &dm] {
        let r = row(id);
        assert_eq!(r.variant_of.as_deref(), Some("base"));
        let robust = r.robust_accuracy.unwrap();
        assert!(
            robust < r.test_accuracy - 0.01 && robust > 0.6,
            "{id}: robust {robust} natural {}",
            r.test_accuracy
        );
    }
    assert!(row(&dm).defence.contains("DeMem-style"));
    // Adversarial training stops the memorization of the planted mislabels.
    let (rb, ra) = (
        report.rows[0].planted_recall.unwrap(),
        row(&pgdat).planted_recall.unwrap(),
    );
    assert!(rb >= 0.3 && ra <= 0.5 * rb, "planted recall {rb} -> {ra}");
    // Natural accuracy costs little.
    assert!(row(&dm).test_accuracy > row(&pgdat).test_accuracy - 0.03);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_adversarial_settings_are_one_clear_error() {
    let bad = Adversarial::new(2.0, 3, None);
    let e = bad.check().unwrap_err().to_string();
    assert!(e.contains("--adv-epsilon"), "{e}");
}
