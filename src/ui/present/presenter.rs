//! The presenter view (P while presenting): a second window for the speaker's laptop screen with
//! the sentence to say now, the next slide's title, the time since the talk began and the slide
//! count. Where the platform cannot open a second window (and in headless tests) it shows as a
//! window inside the slide, which P hides again.

use egui::RichText;

use super::{Keys, Presentation};
use crate::story::STEPS;

/// What the presenter view shows, worked out from the talk's state.
#[derive(Clone, Debug, PartialEq)]
pub struct Notes {
    /// "Slide 4 of 9".
    pub count: String,
    /// Time since the talk began, "m:ss".
    pub elapsed: String,
    /// The sentence to say on this slide.
    pub say: String,
    /// The next slide's title, or that this is the last.
    pub next: String,
    /// Where the animation is, if the slide has one.
    pub frame: Option<String>,
}

impl Notes {
    /// The notes for `p` at input time `now` (seconds).
    pub fn of(p: &Presentation, now: f64) -> Self {
        let secs = (now - p.started_at).max(0.0) as u64;
        let step = p.current();
        let next = STEPS
            .get(p.step + 1)
            .map_or_else(|| "the end of the talk".to_owned(), |s| s.title().to_owned());
        let frames = p.anim().map_or(0, |a| a.frames.len());
        Self {
            count: format!("Slide {} of {}", p.step + 1, STEPS.len()),
            elapsed: format!("{}:{:02}", secs / 60, secs % 60),
            say: step.narrative().to_owned(),
            next,
            frame: (frames > 1).then(|| format!("frame {} of {frames}", p.frame + 1)),
        }
    }
}

/// Shows the presenter view while `p.presenter` is on.
pub fn presenter_ui(ctx: &egui::Context, p: &mut Presentation) {
    if !p.presenter {
        return;
    }
    let notes = Notes::of(p, ctx.input(|i| i.time));
    // The timer ticks.
    ctx.request_repaint_after(std::time::Duration::from_millis(500));
    let body = |ui: &mut egui::Ui| {
        ui.horizontal(|ui| {
            ui.label(RichText::new(&notes.count).size(20.0).strong());
            ui.separator();
            ui.label(RichText::new(&notes.elapsed).size(20.0).monospace());
            if let Some(f) = &notes.frame {
                ui.separator();
                ui.label(f);
            }
        });
        ui.separator();
        ui.label(RichText::new("Say").weak());
        ui.add(egui::Label::new(RichText::new(&notes.say).size(18.0)).wrap());
        ui.add_space(8.0);
        ui.label(RichText::new("Next").weak());
        ui.add(egui::Label::new(RichText::new(&notes.next).size(16.0)).wrap());
        ui.add_space(8.0);
        ui.weak("P: hide this view");
    };
    let id = egui::ViewportId::from_hash_of("rote_presenter");
    let builder = egui::ViewportBuilder::default()
        .with_title("rote: presenter view")
        .with_inner_size([560.0, 360.0]);
    let mut close = false;
    ctx.show_viewport_immediate(id, builder, |ui, class| {
        if class == egui::ViewportClass::EmbeddedWindow {
            // Already inside a window of the slide.
            body(ui);
        } else {
            egui::CentralPanel::default().show(ui, body);
            close = ui.input(|i| i.viewport().close_requested());
            // The speaker's clicker may be talking to this window: its keys drive the talk too.
            let keys = Keys::read(ui.ctx(), true);
            if keys != Keys::default() {
                p.pending_keys = p.pending_keys.or(keys);
                ui.ctx().request_repaint_of(egui::ViewportId::ROOT);
            }
        }
    });
    if close {
        p.presenter = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_say_this_slide_and_name_the_next() {
        let mut p = Presentation::default();
        p.go_to(3);
        p.started_at = 10.0;
        let n = Notes::of(&p, 10.0 + 125.4);
        assert_eq!(n.count, "Slide 4 of 9");
        assert_eq!(n.elapsed, "2:05");
        assert_eq!(n.say, STEPS[3].narrative());
        assert_eq!(n.next, STEPS[4].title());
        assert_eq!(n.frame, None, "no animation loaded");
        p.go_to(STEPS.len() - 1);
        assert_eq!(Notes::of(&p, 0.0).next, "the end of the talk");
    }
}
