//! The app's dispatch: applying the views' commands and taking in finished jobs' results.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{App, FinishedTraining, View};
use crate::job::JobOutcome;
use crate::ui::command::Command;
use crate::ui::jobs::{FinishedJob, JobKind, JobResult, ScoreColumns};
use crate::ui::toasts::Level;

impl App {
    pub(super) fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::OpenStudy(p) => self.open_study(Some(p)),
            Command::SaveStudyAs(dest) => {
                let Some(study) = self.study.clone() else { return };
                self.spawn(
                    JobKind::Study,
                    &format!("Saving to {}", dest.display()),
                    move |_| {
                        let copy = study.copy_to(&dest)?;
                        let (models, bad) = copy.models();
                        Ok(JobResult::Study(
                            copy,
                            models,
                            bad.iter().map(ToString::to_string).collect(),
                        ))
                    },
                );
            }
            Command::LoadDataset(k) => self.load_dataset(k),
            Command::SelectDataset(k) => self.set_current(k),
            Command::ShowView(v) => self.view = v,
            Command::InpaintImage {
                image,
                in_model,
                out_model,
            } => {
                let v = &mut self.inpainting_view;
                v.image = image;
                v.a = Some(in_model);
                v.b = Some(out_model);
                v.mode = crate::ui::views::InpaintMode::Single;
                v.last = None;
                self.view = View::Inpainting;
            }
            Command::RefreshModels => self.refresh_models(),
            Command::CancelJob(id) => self.jobs.cancel(id),
            Command::FindNeighbours { dataset, index } => {
                let Some(ds) = self.datasets.get(&dataset).cloned() else {
                    return;
                };
                // A table's rows have no pixels to search.
                if ds.is_tabular() {
                    return;
                }
                // One search at a time: each one packs and uploads the whole set (a 60k set is
                // 47 MB), so quick clicks used to pile up searches and gigabytes. The newest
                // selection's search starts when the running one ends (see on_result).
                if self.jobs.is_running(JobKind::Neighbours) {
                    return;
                }
                let prefer_gpu = self.settings.use_gpu_kernels;
                self.spawn(
                    JobKind::Neighbours,
                    &format!("Neighbours of #{index}"),
                    move |ctx| {
                        let refs: Vec<usize> = (0..ds.n).collect();
                        let (mut found, backend) =
                            crate::gpu::nearest_neighbours(&ds, &[index], &refs, 8, prefer_gpu, Some(ctx))?;
                        Ok(JobResult::Neighbours(
                            dataset,
                            index,
                            found.pop().unwrap_or_default(),
                            backend,
                        ))
                    },
                );
            }
            Command::StartTraining(mut cfg) => {
                let Some(study) = self.study.clone() else {
                    self.toasts.push(Level::Error, "open a study before training");
                    return;
                };
                cfg.device = self.settings.device.clone();
                let ds = self.datasets.get(&cfg.data).cloned();
                self.last_training = None;
                let label = format!("Training {} on {}", cfg.family.as_str(), cfg.data);
                self.spawn(JobKind::Train, &label, move |ctx| {
                    let ds = match ds {
                        Some(d) => d,
                        None => Arc::new(crate::data::load(&cfg.data)?),
                    };
                    let mut study = study;
                    let outcome = crate::train::train_into_study(&cfg, &ds, &mut study, ctx)?;
                    Ok(JobResult::Trained(Box::new(outcome.card)))
                });
            }
            Command::TrainZoo(cfg, k) => {
                let Some(study) = self.study.clone() else {
                    self.toasts
                        .push(Level::Error, "open a study before training a zoo");
                    return;
                };
                let mut cfg = *cfg;
                cfg.train.device = self.settings.device.clone();
                let ds = self.datasets.get(&cfg.train.data).cloned();
                let label = format!("Training zoo {} ({k} models)", cfg.id);
                self.spawn(JobKind::TrainZoo, &label, move |ctx| {
                    let ds = match ds {
                        Some(d) => d,
                        None => Arc::new(crate::data::load(&cfg.train.data)?),
                    };
                    let mut study = study;
                    study.add_dataset(&cfg.train.data)?;
                    crate::measure::zoo_report::train_zoo_with_reports(&cfg, &ds, &study, k, 8, ctx)?;
                    Ok(JobResult::ZooTrained(cfg.id.clone()))
                });
            }
            Command::OpenExtraction(model) => self.open_extraction(model),
            Command::MeasureSharpness(model) => self.measure_sharpness(model),
            Command::RunExtraction { model, samples, seed } => self.run_extraction(model, samples, seed),
            Command::OpenInpaintReport(a, b) => self.open_inpaint_report(a, b),
            Command::ExportTalk(dir, size) => self.export_talk(dir, size),
            Command::Inpaint(req) => self.inpaint(*req, false),
            Command::InpaintBatch(req) => self.inpaint(*req, true),
            Command::ReloadDiffusionMia => self.load_diffusion_mia(),
            Command::OpenInversion(model) => self.open_inversion(model),
            Command::RunInversion(req) => self.run_inversion(*req),
            Command::ExportInversionGrid(method, path) => self.export_inversion_grid(method, &path),
            Command::ExportReport(dir) => self.export_report(dir),
            Command::OpenLayers(path) => self.open_layers(path),
            Command::DrillLayers(req) => self.drill_layers(*req),
            Command::OpenExposure(dir) => self.open_exposure(dir),
            Command::MeasureExposure(dir) => self.measure_exposure(dir),
            Command::SearchSecret(req) => self.search_secret(*req),
            Command::Text(req) => self.run_text(*req),
            Command::Icl(task) => self.run_icl(task),
            Command::Tabular(req) => self.run_tabular(*req),
            Command::MeasureDefences => self.measure_defences(None),
            Command::TrainDefence { baseline, defence } => self.measure_defences(Some((baseline, defence))),
            Command::ImportModel(dir) => {
                let Some(study) = self.study.clone() else {
                    self.toasts
                        .push(Level::Error, "open a study before importing a model");
                    return;
                };
                self.spawn(JobKind::Import, "Importing model", move |_| {
                    let id = crate::ui::views::import_model(&study, &dir)?;
                    Ok(JobResult::Imported(id))
                });
            }
            Command::ImportDiffusers { model, data } => {
                let Some(study) = self.study.clone() else {
                    self.toasts
                        .push(Level::Error, "open a study before importing a model");
                    return;
                };
                self.spawn(JobKind::Import, "Importing diffusers model", move |_| {
                    let data = data.to_string_lossy().into_owned();
                    let card = crate::diffusion::import::import_diffusers(&model, &data, &study.root, None)?;
                    Ok(JobResult::ImportedDiffusion(card.id))
                });
            }
        }
    }

    /// Starts the neighbour search of the selected image when the last search was of another
    /// (selections made while a search ran).
    fn search_selected_neighbours(&mut self) {
        let (Some(key), Some(i)) = (self.current.clone(), self.data_view.selected) else {
            return;
        };
        let done = self
            .data_view
            .neighbours
            .as_ref()
            .is_some_and(|n| n.dataset == key && n.index == i);
        if !done {
            self.apply(Command::FindNeighbours {
                dataset: key,
                index: i,
            });
        }
    }

    pub(super) fn on_finished(&mut self, job: FinishedJob) {
        let FinishedJob {
            kind,
            label,
            series,
            outcome,
        } = job;
        match outcome {
            JobOutcome::Done(result) => self.on_result(result, series),
            JobOutcome::Cancelled => {
                self.toasts.push(Level::Info, format!("{label}: cancelled"));
                if kind == JobKind::Train {
                    self.last_training = Some(FinishedTraining {
                        series,
                        summary: "Cancelled; nothing was saved".into(),
                    });
                }
            }
            JobOutcome::Failed(e) => {
                self.toasts.push(Level::Error, format!("{label} failed: {e}"));
                self.text_view.on_failed(kind, format!("{label} failed: {e}"));
                self.tabular_view.on_failed(kind, format!("{label} failed: {e}"));
                if kind == JobKind::Train {
                    self.last_training = Some(FinishedTraining {
                        series,
                        summary: format!("Failed: {e}"),
                    });
                }
            }
            JobOutcome::Panicked(msg) => {
                self.toasts.push(Level::Error, format!("{label} crashed: {msg}"));
                self.text_view.on_failed(kind, format!("{label} crashed: {msg}"));
                self.tabular_view
                    .on_failed(kind, format!("{label} crashed: {msg}"));
                if kind == JobKind::Train {
                    self.last_training = Some(FinishedTraining {
                        series,
                        summary: format!("Crashed: {msg}"),
                    });
                }
            }
        }
    }

    pub(super) fn on_result(&mut self, result: JobResult, series: BTreeMap<String, Vec<[f64; 2]>>) {
        match result {
            JobResult::Study(study, models, bad) => {
                for b in bad {
                    self.toasts.push(Level::Error, b);
                }
                let first = study
                    .manifest
                    .datasets
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "mnist10k".into());
                self.study = Some(study);
                self.models = models;
                self.models_view.select_first(&self.models);
                self.zoo = None;
                self.load_scores();
                self.load_zoo_results();
                self.load_diffusion();
                self.load_diffusion_mia();
                self.open_default_inversion();
                self.list_layers();
                self.list_exposure();
                self.list_text();
                self.run_icl(crate::ui::icl_jobs::IclTask::Open(None));
                self.list_tabular();
                self.defences_view.report = None;
                self.defences_view.requested = false;
                self.load_dataset(first);
            }
            JobResult::Dataset(key, ds) => {
                self.datasets.insert(key.clone(), ds);
                self.set_current(key);
            }
            JobResult::Trained(card) => {
                let summary = format!(
                    "Trained {} on {} samples: train acc {:.3}, test acc {:.3}",
                    card.id, card.metrics.n_train, card.metrics.train_acc, card.metrics.test_acc
                );
                self.toasts.push(Level::Ok, summary.clone());
                self.last_training = Some(FinishedTraining { series, summary });
                self.models_view.selected = Some(card.id.clone());
                self.refresh_models();
            }
            JobResult::Neighbours(key, index, found, backend) => {
                self.data_view.set_neighbours(key, index, found, backend);
                self.search_selected_neighbours();
            }
            JobResult::Scores(cols) => {
                // Keep zoo columns, replace model columns.
                let zoo_cols: Vec<(String, ScoreColumns)> = self
                    .scores
                    .iter()
                    .map(|(h, c)| {
                        (
                            h.clone(),
                            c.iter()
                                .filter(|(n, _)| n.starts_with("mem ·") || n.starts_with("vulnerability"))
                                .cloned()
                                .collect(),
                        )
                    })
                    .collect();
                self.scores = cols;
                for (h, c) in zoo_cols {
                    self.scores.entry(h).or_default().extend(c);
                }
            }
            JobResult::ImportedDiffusion(id) => {
                self.toasts.push(
                    Level::Ok,
                    format!("Imported diffusers model {id}: run an extraction on it"),
                );
                self.extraction_view.model = Some(id);
                self.load_diffusion();
            }
            JobResult::Imported(id) => {
                self.toasts.push(Level::Ok, format!("Imported model {id}"));
                self.models_view.selected = Some(id);
                self.refresh_models();
            }
            JobResult::Probe(info) => {
                // A software adapter (lavapipe) runs the kernels on the same cores as the CPU
                // twin, about 4x slower, and takes them from the window's rasterizer: the twin by
                // default there (Settings can turn the kernel back on).
                if info.as_ref().is_ok_and(|i| i.device_type == "Cpu") {
                    self.settings.use_gpu_kernels = false;
                }
                self.gpu = Some(info);
            }
            JobResult::ZooTrained(id) => {
                self.toasts
                    .push(Level::Ok, format!("Zoo {id} trained; results saved"));
                self.load_zoo_results();
            }
            JobResult::DiffusionModels(models) => self.on_diffusion_models(*models),
            JobResult::Extraction { model, ex, computed } => self.on_extraction(model, ex, computed),
            JobResult::Inpainted(one) => self.inpainting_view.set_single(*one),
            JobResult::InpaintReport(a, b, report) => {
                self.inpainting_view
                    .reports
                    .insert((a, b), report.map(|r| Arc::new(*r)));
            }
            JobResult::DiffusionMia(list) => self.on_diffusion_mia(*list),
            JobResult::InversionOpened(loaded) => self.on_inversion_opened(*loaded),
            JobResult::Inverted(model, report) => self.on_inverted(model, *report),
            JobResult::Layers(loaded) => self.on_layers(*loaded),
            JobResult::LayersDrill(d) => self.on_layers_drill(*d),
            JobResult::ExposureOpened(l) => self.on_exposure(*l),
            JobResult::ExposureMeasured(dir, r) => self.on_exposure_measured(dir, *r),
            JobResult::SecretSearched(dir, r) => self.on_secret_searched(dir, *r),
            JobResult::Text(done) => self.on_text(*done),
            JobResult::Icl(done) => self.text_view.icl.on_done(*done),
            JobResult::Tabular(done) => self.on_tabular(*done),
            JobResult::Defences(report, trained) => self.on_defences(*report, trained),
            JobResult::Report(s) => self.on_report(*s),
            JobResult::Story(k, made) => self.on_story(k, made),
            JobResult::TalkExported(done) => self.on_talk_exported(&done),
            JobResult::Zoo(res) => {
                if let Some(res) = res {
                    let cols = self.scores.entry(res.memorization_hash.clone()).or_default();
                    cols.retain(|(n, _)| !n.ends_with(&format!("· {}", res.results.zoo)));
                    cols.extend(res.columns.iter().cloned());
                    self.zoo = Some(Arc::new(res.results));
                }
            }
        }
    }
}
