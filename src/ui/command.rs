//! Intents from the views, applied once per frame by the app.

use std::path::PathBuf;

use super::View;
use crate::train::TrainConfig;

/// Something a view asks the app to do.
#[derive(Debug, Clone)]
pub enum Command {
    /// Open (or create) a study folder.
    OpenStudy(PathBuf),
    /// Copy the open study to a new folder and switch to the copy.
    SaveStudyAs(PathBuf),
    /// Load an image data set by bundled name or path and make it current.
    LoadDataset(String),
    /// Make an already loaded data set current.
    SelectDataset(String),
    /// Train a model into the open study.
    StartTraining(TrainConfig),
    /// Cancel a running job.
    CancelJob(u64),
    /// Find the nearest neighbours of an image of the current data set.
    FindNeighbours {
        /// Data set key.
        dataset: String,
        /// Image index.
        index: usize,
    },
    /// Copy a model folder (card + weights) into the study, after checking it.
    ImportModel(PathBuf),
    /// Train (or grow) a zoo in the open study and compute its reports.
    TrainZoo(Box<crate::train::zoo::ZooConfig>, u32),
    /// Re-read the study's models.
    RefreshModels,
    /// Switch view.
    ShowView(View),
}
