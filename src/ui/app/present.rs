//! The App glue of presentation mode: keys, entering and leaving full screen, the slide layout,
//! and the jobs that compute (or read back) each step's animation.

use super::{App, View};
use crate::story::{STEPS, Step};
use crate::ui::jobs::{JobKind, JobResult};
use crate::ui::present::fit::{anim_share, fit_zoom};
use crate::ui::present::{AnimSlot, Keys, anim_panel_ui, header_ui, hints_ui, presenter_ui};
use crate::ui::toasts::Level;

/// The view that shows a step.
fn view_of(step: Step) -> View {
    match step {
        Step::Data => View::Data,
        Step::Memorized => View::Memorization,
        Step::Influence => View::Influence,
        Step::Extraction => View::Extraction,
        Step::Inpainting => View::Inpainting,
        Step::Inversion => View::Inversion,
        Step::Layers => View::Layers,
        Step::Exposure => View::Exposure,
        Step::Icl => View::Text,
    }
}

/// Zooms the slide to the window: called every frame while presenting, so a window that goes
/// full screen (or is refused it, or is resized) gets the slide that fits it.
fn fit_to_screen(ctx: &egui::Context) {
    let zoom = ctx.zoom_factor();
    let native = ctx.content_rect().size() * zoom;
    let fit = fit_zoom(native);
    if (fit - zoom).abs() > 0.01 * zoom {
        ctx.set_zoom_factor(fit);
    }
}

impl App {
    /// Reads the presentation keys and advances playback; call once per frame before drawing.
    pub(super) fn presentation_input(&mut self, ctx: &egui::Context) {
        if self.presentation.on_open && self.study.is_some() {
            self.presentation.on_open = false;
            self.enter_presentation(ctx, None);
        }
        let keys =
            Keys::read(ctx, self.presentation.active).or(std::mem::take(&mut self.presentation.pending_keys));
        let now = ctx.input(|i| i.time);
        if !self.presentation.active {
            if keys.toggle {
                self.enter_presentation(ctx, None);
            }
            return;
        }
        let before = self.presentation.step;
        if self.presentation.apply(keys, now) {
            self.leave_presentation(ctx);
            return;
        }
        if self.presentation.step != before {
            self.show_step();
        }
        fit_to_screen(ctx);
        self.demonstrate();
        if let Some(wait) = self.presentation.tick(now) {
            ctx.request_repaint_after(std::time::Duration::from_secs_f64(wait.max(0.001)));
        }
    }

    /// Enters presentation mode at `step` (default: where the talk last was).
    pub fn enter_presentation(&mut self, ctx: &egui::Context, step: Option<usize>) {
        let p = &mut self.presentation;
        p.active = true;
        if let Some(k) = step {
            p.go_to(k);
        }
        if p.saved_zoom.is_none() {
            p.saved_zoom = Some(ctx.zoom_factor());
            p.started_at = ctx.input(|i| i.time);
        }
        fit_to_screen(ctx);
        ctx.send_viewport_cmd(egui::ViewportCommand::Fullscreen(true));
        // Every animation is prepared up front, so stepping through the talk never waits.
        for k in 0..STEPS.len() {
            self.request_anim(k);
        }
        self.show_step();
    }

    /// Goes to step `k` of the talk (the step's first frame) and shows its view.
    pub fn present_step(&mut self, k: usize) {
        self.presentation.go_to(k);
        self.presentation.shown = None;
        self.show_step();
    }

    /// Leaves presentation mode, restoring the window and the zoom.
    pub fn leave_presentation(&mut self, ctx: &egui::Context) {
        let p = &mut self.presentation;
        p.active = false;
        p.playing = false;
        if let Some(z) = p.saved_zoom.take() {
            ctx.set_zoom_factor(z);
        }
        ctx.send_viewport_cmd(egui::ViewportCommand::Fullscreen(false));
    }

    /// Switches the app to the current step's view, showing what the slide's animation shows.
    fn show_step(&mut self) {
        let step = self.presentation.current();
        self.view = view_of(step);
        let focus = self.presentation.anim().and_then(|a| a.focus);
        match step {
            // The animation shows one image; the view beside it shows the attack on all of them.
            Step::Inpainting => {
                self.inpainting_view.mode = crate::ui::InpaintMode::Batch;
                if let Some(i) = focus {
                    self.inpainting_view.image = i;
                }
                if let (Some(a), Some(b)) = (self.inpainting_view.a.clone(), self.inpainting_view.b.clone())
                    && !self.inpainting_view.reports.contains_key(&(a.clone(), b.clone()))
                {
                    self.commands.push(crate::ui::Command::OpenInpaintReport(a, b));
                }
            }
            Step::Inversion => {
                if let Some(c) = focus {
                    self.inversion_view.person = c;
                }
            }
            // The slide shows the cached sweep: the Text view's In-context learning tab.
            Step::Icl => self.text_view.tab = crate::ui::views::TextTab::Icl,
            _ => {}
        }
    }

    /// The live part of the slides without a precomputed animation, once per talk and as soon as
    /// the view has its data: the exposure slide runs the secret search (the view types the
    /// partial secret out as it goes), the layers slide opens its most memorized candidate.
    fn demonstrate(&mut self) {
        let k = self.presentation.step;
        if self.presentation.demonstrated.contains(&k) {
            return;
        }
        let started = match self.presentation.current() {
            Step::Exposure => match self.exposure_view.extract_request(&self.settings.device) {
                Some(req) => {
                    self.push_command(crate::ui::Command::SearchSecret(Box::new(req)));
                    true
                }
                None => false,
            },
            Step::Layers => crate::ui::screenshot::open_top_candidate(self),
            _ => true,
        };
        if started {
            self.presentation.demonstrated.insert(k);
        }
    }

    /// Starts the job that makes step `k`'s animation, once.
    fn request_anim(&mut self, k: usize) {
        let step = STEPS[k];
        let (Some(_), Some(study)) = (step.anim_stem(), self.study.as_ref()) else {
            return;
        };
        if !self.presentation.requested.insert(k) {
            return;
        }
        let root = study.root.clone();
        self.presentation.anims.insert(k, AnimSlot::Loading);
        self.spawn(
            JobKind::Story,
            &format!("Preparing slide {}", k + 1),
            move |ctx| {
                let made = match crate::story::load_or_build(&root, step, ctx) {
                    Ok(a) => Ok(a.map(Box::new)),
                    Err(e) if e.is_cancelled() => return Err(e),
                    Err(e) => Err(e.to_string()),
                };
                Ok(JobResult::Story(k, made))
            },
        );
    }

    /// Keeps a finished animation.
    pub(super) fn on_story(&mut self, k: usize, made: Result<Option<Box<crate::story::Anim>>, String>) {
        let slot = match made {
            Ok(Some(a)) => AnimSlot::Ready(a),
            Ok(None) => return,
            Err(e) => AnimSlot::Failed(e),
        };
        self.presentation.anims.insert(k, slot);
        if self.presentation.active && self.presentation.step == k {
            self.presentation.shown = None;
            self.show_step();
        }
    }

    /// Exports the talk (the Export button of presentation mode; `rote present --export`).
    pub(super) fn export_talk(&mut self, dir: std::path::PathBuf, size: [u32; 2]) {
        let Some(study) = self.study.as_ref() else {
            self.toasts
                .push(Level::Error, "open a study before exporting the talk");
            return;
        };
        let root = study.root.clone();
        self.spawn(
            JobKind::ExportTalk,
            &format!("Exporting the talk at {}x{}", size[0], size[1]),
            move |ctx| {
                let done = crate::ui::present::export::export_talk(&root, &dir, size, ctx)?;
                Ok(JobResult::TalkExported(Box::new(done)))
            },
        );
    }

    /// Says where the exported talk is.
    pub(super) fn on_talk_exported(&mut self, done: &crate::ui::present::export::Exported) {
        self.toasts.push(
            Level::Ok,
            format!(
                "Exported {} slides ({} rendered, the rest from the cache): open {}",
                done.steps.len(),
                done.rendered(),
                done.dir.join("index.html").display()
            ),
        );
    }

    /// The slide: heading, hints, the animation beside the step's view.
    pub(super) fn presentation_ui(&mut self, ui: &mut egui::Ui) {
        egui::Panel::top("present_header").show(ui, |ui| header_ui(ui, &self.presentation));
        if !self.presentation.exporting {
            let asked = egui::Panel::bottom("present_hints")
                .show(ui, |ui| hints_ui(ui, &mut self.presentation))
                .inner;
            if let Some(size) = asked
                && let Some(dir) = rfd::FileDialog::new()
                    .set_title("Export the talk into a folder")
                    .pick_folder()
            {
                self.commands.push(crate::ui::Command::ExportTalk(dir, size));
            }
        }
        presenter_ui(ui.ctx(), &mut self.presentation);
        if self.presentation.hide_view {
            egui::CentralPanel::default().show(ui, |_| {});
            return;
        }
        if self.presentation.current().anim_stem().is_some() {
            let screen = ui.ctx().content_rect();
            let width = ui.available_width() * anim_share(screen.width(), screen.height());
            egui::Panel::left("present_anim")
                .resizable(false)
                .exact_size(width)
                .show(ui, |ui| anim_panel_ui(ui, &mut self.presentation));
        }
        self.central_ui(ui);
    }
}
