//! The study's classifiers: id, family, data set and accuracies (`models.csv`).

use super::{Cell, Report, Section, Table, html};
use crate::error::CoreResult;
use crate::job::JobCtx;

/// Adds the models section (skipped when the study has no classifier and no broken card).
pub(super) fn add(r: &mut Report<'_>, _ctx: &JobCtx<'_>) -> CoreResult<()> {
    let (models, bad) = r.study.models();
    if models.is_empty() && bad.is_empty() {
        return Ok(());
    }
    let mut body = String::new();
    for e in bad {
        body.push_str(&r.note(format!("a model was left out: {e}")));
    }
    let mut t = Table::new(&[
        "id",
        "family",
        "dataset",
        "n_train",
        "n_test",
        "train_acc",
        "test_acc",
        "train_loss",
        "seconds",
    ]);
    for m in &models {
        let k = &m.card.metrics;
        t.push(vec![
            m.id.as_str().into(),
            m.card.spec.family.as_str().into(),
            m.card.dataset.name.as_str().into(),
            k.n_train.into(),
            k.n_test.into(),
            k.train_acc.into(),
            k.test_acc.into(),
            k.train_loss.into(),
            Cell::F64(k.seconds),
        ]);
    }
    let f = r.csv("models", "the study's classifiers and their accuracies", &t)?;
    body.push_str(&html::table(&t, 50, Some(&f)));
    r.sections.push(Section {
        id: "models".into(),
        title: "Models".into(),
        body,
    });
    Ok(())
}
