//! Intents from the views, applied once per frame by the app.

use std::path::PathBuf;

use super::View;
use super::inpaint_jobs::InpaintRequest;
use super::invert_jobs::InvertRequest;
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
    /// Import a diffusers UNet2DModel folder into the study with its training images (a folder).
    ImportDiffusers {
        /// The diffusers folder.
        model: PathBuf,
        /// The training images.
        data: PathBuf,
    },
    /// Train (or grow) a zoo in the open study and compute its reports.
    TrainZoo(Box<crate::train::zoo::ZooConfig>, u32),
    /// Re-read the study's models.
    RefreshModels,
    /// Switch view.
    ShowView(View),
    /// Open the Inpainting view on one image with an IN and an OUT model.
    InpaintImage {
        /// Data-set index.
        image: usize,
        /// A model that trained on it.
        in_model: String,
        /// A model that did not.
        out_model: String,
    },
    /// Open the newest saved extraction of a diffusion model (by id).
    OpenExtraction(String),
    /// Measure the sharpness of every generation of the shown extraction of a model.
    MeasureSharpness(String),
    /// Sample a diffusion model and score the generations against its training images.
    RunExtraction {
        /// Model id.
        model: String,
        /// Generations.
        samples: usize,
        /// Seed of the generations.
        seed: u64,
    },
    /// Open the saved inpainting attack report of two diffusion models (A, B).
    OpenInpaintReport(String, String),
    /// Export the talk into a folder at a size in pixels (`rote present --export`).
    ExportTalk(PathBuf, [u32; 2]),
    /// Inpaint one image with the IN and the OUT model, streaming previews.
    Inpaint(Box<InpaintRequest>),
    /// Run the inpainting attack on a batch of images.
    InpaintBatch(Box<InpaintRequest>),
    /// Read the study's diffusion MIA reports again.
    ReloadDiffusionMia,
    /// Open a classifier and its saved inversions in the Inversion view (by model id).
    OpenInversion(String),
    /// Invert one person or all of them, streaming frames.
    RunInversion(Box<InvertRequest>),
    /// Write the open model's inversion grid of a method as a PNG.
    ExportInversionGrid(crate::invert::Method, PathBuf),
    /// Write the open study's report (HTML, PNG galleries, CSV tables) into a folder.
    ExportReport(PathBuf),
    /// Open a LayerMem report (its file) in the Layers view.
    OpenLayers(PathBuf),
    /// Compute the Layers view's drill-down of one candidate.
    DrillLayers(Box<super::layer_jobs::DrillRequest>),
    /// Open a character LM (its folder) in the Exposure view.
    OpenExposure(PathBuf),
    /// Measure the exposure of an LM's canaries (its folder).
    MeasureExposure(PathBuf),
    /// Run the secret extraction search.
    SearchSecret(Box<super::exposure_jobs::ExtractRequest>),
    /// Open an HF language model in the Text view, or measure it.
    Text(Box<super::text_jobs::TextRequest>),
    /// Read the study's cached ICL sweeps, or run the default sweep (Text view, ICL tab).
    Icl(super::icl_jobs::IclTask),
    /// A Tabular view job: the memorized rows of a model, training one, or fairness.
    Tabular(Box<super::tabular_jobs::TabularRequest>),
    /// Compare the study's zoos (the saved comparison, else measured now) for the Defences view.
    MeasureDefences,
    /// Train a zoo's defended variant (DP-SGD, PGD-AT, DeMem), then compare again.
    TrainDefence {
        /// The baseline zoo.
        baseline: String,
        /// The defence.
        defence: crate::defence::compare::Defence,
    },
}
