//! The study's models: every kind with its headline metric (`all-models.csv`, from
//! [`crate::study::inventory`]), then the classifiers with their accuracies (`models.csv`).

use super::{Cell, Report, Section, Table, html};
use crate::error::CoreResult;
use crate::job::JobCtx;

/// Adds the models section (skipped when the study has no model and no broken card).
pub(super) fn add(r: &mut Report<'_>, _ctx: &JobCtx<'_>) -> CoreResult<()> {
    let (all, bad) = crate::study::inventory(r.study);
    if all.is_empty() && bad.is_empty() {
        return Ok(());
    }
    let mut body = String::new();
    for e in bad {
        body.push_str(&r.note(format!("a model was left out: {e}")));
    }
    let mut t = Table::new(&["kind", "id", "family", "dataset", "metric", "value"]);
    for m in &all {
        t.push(vec![
            m.kind.as_str().into(),
            m.id.as_str().into(),
            m.family.as_str().into(),
            m.dataset.as_str().into(),
            m.metric.as_str().into(),
            Cell::F64(m.value),
        ]);
    }
    let f = r.csv(
        "all-models",
        "every model of the study, of every kind, with its headline metric",
        &t,
    )?;
    body.push_str(&html::table(&t, 50, Some(&f)));
    let (models, _) = r.study.models();
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
    if !models.is_empty() {
        let f = r.csv("models", "the study's classifiers and their accuracies", &t)?;
        body.push_str(&html::h3("Classifiers"));
        body.push_str(&html::table(&t, 50, Some(&f)));
    }
    r.sections.push(Section {
        id: "models".into(),
        title: "Models".into(),
        body,
    });
    Ok(())
}
