//! The Tabular view's work: reading a study's tabular models, measuring a model's memorized rows
//! (`tabular::twins`), training a model (`tabular::train`) and the group fairness of a classifier
//! trained on a table (`measure::fairness_model`). Each runs as a job; the results come back as
//! [`TabularDone`].

use std::path::{Path, PathBuf};

use crate::error::CoreResult;
use crate::job::JobCtx;
use crate::measure::fairness_model::{MeasuredFairness, measure_table, model_predictions};
use crate::tabular::memorization::DistanceRule;
use crate::tabular::train::{TabTrainConfig, TabularCard, load_card, tabular_dir, train_tabular};
use crate::tabular::twins::{Twins, list_models, memorized_twins};

/// A tabular model of the study.
#[derive(Clone, Debug)]
pub struct TabModel {
    /// Its folder (`STUDY/tabular/<id>`).
    pub dir: PathBuf,
    /// Its id (the folder's name).
    pub id: String,
    /// Its card.
    pub card: TabularCard,
}

/// What the view asks for.
#[derive(Clone, Debug)]
pub enum TabularRequest {
    /// The memorized rows of a model under a rule.
    Twins(PathBuf, DistanceRule),
    /// Train a model into the study.
    Train(Box<TabTrainConfig>),
    /// The fairness of a classifier (its folder) between two groups of a protected column.
    Fairness(PathBuf, Option<String>),
}

/// What a job brings back.
#[derive(Debug)]
pub enum TabularDone {
    /// The memorized rows of the model in (folder) under a rule.
    Twins(PathBuf, Box<Twins>),
    /// A model finished training (its folder).
    Trained(PathBuf),
    /// The fairness of the classifier (id) on the test split.
    Fairness(String, Box<MeasuredFairness>),
}

/// The study's tabular models with readable cards, and one message per unreadable one.
pub fn list(study: &Path) -> (Vec<TabModel>, Vec<String>) {
    let mut models = Vec::new();
    let mut bad = Vec::new();
    for dir in list_models(study) {
        match load_card(&dir) {
            Ok(card) => models.push(TabModel {
                id: dir
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default(),
                dir,
                card,
            }),
            Err(e) => bad.push(e.to_string()),
        }
    }
    (models, bad)
}

/// Runs a request.
pub fn run(study: &Path, req: TabularRequest, ctx: &JobCtx<'_>) -> CoreResult<TabularDone> {
    match req {
        TabularRequest::Twins(dir, rule) => {
            let (_, twins) = memorized_twins(&dir, None, rule)?;
            Ok(TabularDone::Twins(dir, Box::new(twins)))
        }
        TabularRequest::Train(cfg) => {
            train_tabular(&cfg, study, ctx)?;
            let dir = tabular_dir(study).join(cfg.id_or_default());
            Ok(TabularDone::Trained(dir))
        }
        TabularRequest::Fairness(model, protected) => {
            let table = model_predictions(&model, protected.as_deref())?;
            let measured = measure_table(&table, &model, "test", None)?;
            let id = model
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            Ok(TabularDone::Fairness(id, Box::new(measured)))
        }
    }
}

/// The label of a request's job.
pub fn label(req: &TabularRequest) -> String {
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    };
    match req {
        TabularRequest::Twins(dir, _) => format!("Memorized rows of {}", name(dir)),
        TabularRequest::Train(cfg) => format!("Training tabular model {}", cfg.id_or_default()),
        TabularRequest::Fairness(dir, _) => format!("Fairness of {}", name(dir)),
    }
}
