//! Presentation mode (F11 or the Present button): full screen, large type, and the demo story of
//! [`crate::story`] one step per slide. The speaker drives it from the keyboard (a presenter
//! clicker sends Page Down / Page Up):
//!
//! - Right, Space, Page Down: play the step's animation; while it plays, jump to its end; at the
//!   end, the next step.
//! - Left, Page Up: the previous step.
//! - Down or `.`: one frame forward; Up or `,`: one frame back (both pause).
//! - Home / End: first / last frame; `+` / `-`: faster / slower playback.
//! - P: the presenter view (the sentence to say, the next slide, the timer) in a second window.
//! - Escape or F11: leave.

mod animfile;
pub mod export;
pub mod fit;
mod presenter;
mod slide;

use std::collections::{BTreeMap, BTreeSet};

use crate::story::{Anim, STEPS, Step};

pub use presenter::{Notes, presenter_ui};
pub use slide::{EXPORT_SIZES, anim_panel_ui, header_ui, hints_ui};

/// Frames per second of playback: the default and the bounds `+` / `-` move within.
const FPS: (f32, f32, f32) = (8.0, 1.0, 60.0);

/// What the keyboard asked for in one frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Keys {
    /// Toggle presentation mode.
    pub toggle: bool,
    /// Leave presentation mode.
    pub leave: bool,
    /// Next (play, finish, or next step).
    pub next: bool,
    /// Previous step.
    pub back: bool,
    /// Frame steps (+1 forward, -1 back).
    pub frame: i32,
    /// First frame.
    pub home: bool,
    /// Last frame.
    pub end: bool,
    /// Speed change (+1 faster, -1 slower).
    pub speed: i32,
    /// Toggle the presenter view.
    pub presenter: bool,
}

impl Keys {
    /// Both frames' keys (the slide's and the presenter window's).
    pub fn or(self, o: Self) -> Self {
        Self {
            toggle: self.toggle | o.toggle,
            leave: self.leave | o.leave,
            next: self.next | o.next,
            back: self.back | o.back,
            frame: self.frame + o.frame,
            home: self.home | o.home,
            end: self.end | o.end,
            speed: self.speed + o.speed,
            presenter: self.presenter | o.presenter,
        }
    }

    /// Takes the presentation keys out of this frame's input (so no widget also reacts to them).
    /// Only F11 is read while not presenting.
    pub fn read(ctx: &egui::Context, presenting: bool) -> Self {
        use egui::{Key, Modifiers};
        ctx.input_mut(|i| {
            let mut take = |k: Key| i.consume_key(Modifiers::NONE, k);
            let mut keys = Self {
                toggle: take(Key::F11),
                ..Self::default()
            };
            if !presenting {
                return keys;
            }
            keys.leave = take(Key::Escape);
            keys.next = take(Key::ArrowRight) | take(Key::Space) | take(Key::PageDown);
            keys.back = take(Key::ArrowLeft) | take(Key::PageUp);
            keys.frame = i32::from(take(Key::ArrowDown) | take(Key::Period))
                - i32::from(take(Key::ArrowUp) | take(Key::Comma));
            keys.home = take(Key::Home);
            keys.end = take(Key::End);
            keys.speed = i32::from(take(Key::Plus) | take(Key::Equals)) - i32::from(take(Key::Minus));
            keys.presenter = take(Key::P);
            keys
        })
    }
}

/// A step's animation as the slide shows it.
pub enum AnimSlot {
    /// Being computed (or read from the cache).
    Loading,
    /// Ready.
    Ready(Box<Anim>),
    /// Could not be made; why.
    Failed(String),
}

/// Presentation state.
pub struct Presentation {
    /// Whether the app is presenting.
    pub active: bool,
    /// Index into [`STEPS`].
    pub step: usize,
    /// Current frame of the step's animation.
    pub frame: usize,
    /// Whether the animation is playing.
    pub playing: bool,
    /// Playback speed.
    pub fps: f32,
    /// Seconds since start when the frame last advanced.
    pub last_tick: f64,
    /// Animations by step.
    pub anims: BTreeMap<usize, AnimSlot>,
    /// Zoom before presenting (restored on leaving).
    pub saved_zoom: Option<f32>,
    /// Textures of the shown frame: (step, frame) and one handle per panel.
    pub shown: Option<((usize, usize), Vec<egui::TextureHandle>)>,
    /// Steps whose animation was asked for.
    pub requested: BTreeSet<usize>,
    /// Steps whose view already ran its live demonstration (the exposure search, the layers
    /// drill-down).
    pub demonstrated: BTreeSet<usize>,
    /// Shows only the heading and the narrative (the first frame of an exported build-up).
    pub hide_view: bool,
    /// Rendering for an export: no key hints, no jobs bar.
    pub exporting: bool,
    /// Enter presentation mode once the study is open (`rote present`).
    pub on_open: bool,
    /// Index into [`slide::EXPORT_SIZES`] of the Export button's size.
    pub export_size: usize,
    /// Whether the presenter view is shown (P).
    pub presenter: bool,
    /// Input time (seconds) when the talk began, for the presenter view's timer.
    pub started_at: f64,
    /// Keys pressed in the presenter window, applied with the slide's at the next frame.
    pub pending_keys: Keys,
}

impl Default for Presentation {
    fn default() -> Self {
        Self {
            active: false,
            step: 0,
            frame: 0,
            playing: false,
            fps: FPS.0,
            last_tick: 0.0,
            anims: BTreeMap::new(),
            saved_zoom: None,
            shown: None,
            requested: BTreeSet::new(),
            demonstrated: BTreeSet::new(),
            hide_view: false,
            exporting: false,
            on_open: false,
            export_size: 0,
            presenter: false,
            started_at: 0.0,
            pending_keys: Keys::default(),
        }
    }
}

impl Presentation {
    /// The current step.
    pub fn current(&self) -> Step {
        STEPS[self.step.min(STEPS.len() - 1)]
    }

    /// The current step's animation, when ready.
    pub fn anim(&self) -> Option<&Anim> {
        match self.anims.get(&self.step) {
            Some(AnimSlot::Ready(a)) => Some(a),
            _ => None,
        }
    }

    fn frames(&self) -> usize {
        self.anim().map_or(0, |a| a.frames.len())
    }

    /// Goes to step `k` (clamped), at the first frame, paused.
    pub fn go_to(&mut self, k: usize) {
        self.step = k.min(STEPS.len() - 1);
        self.frame = 0;
        self.playing = false;
    }

    /// Applies the keys; `now` is the input time in seconds. Returns whether presenting should
    /// end.
    pub fn apply(&mut self, keys: Keys, now: f64) -> bool {
        if keys.leave || keys.toggle {
            return true;
        }
        let n = self.frames();
        let last = n.saturating_sub(1);
        if keys.next {
            if n > 1 && self.frame < last {
                if self.playing {
                    self.frame = last;
                    self.playing = false;
                } else {
                    self.playing = true;
                    self.last_tick = now;
                }
            } else if self.step + 1 < STEPS.len() {
                self.go_to(self.step + 1);
            }
        }
        if keys.back && self.step > 0 {
            self.go_to(self.step - 1);
        }
        if keys.frame != 0 && n > 0 {
            self.playing = false;
            self.frame = (self.frame as i64 + i64::from(keys.frame)).clamp(0, last as i64) as usize;
        }
        if keys.home {
            self.frame = 0;
            self.playing = false;
        }
        if keys.end {
            self.frame = last;
            self.playing = false;
        }
        if keys.presenter {
            self.presenter = !self.presenter;
        }
        if keys.speed != 0 {
            let f = if keys.speed > 0 { 1.5 } else { 1.0 / 1.5 };
            self.fps = (self.fps * f).clamp(FPS.1, FPS.2);
        }
        false
    }

    /// Advances a playing animation by the frames due at `now`; returns the seconds until the
    /// next frame is due while playing.
    pub fn tick(&mut self, now: f64) -> Option<f64> {
        if !self.playing {
            return None;
        }
        let n = self.frames();
        let period = 1.0 / f64::from(self.fps.max(FPS.1));
        let due = ((now - self.last_tick) / period).floor();
        if due >= 1.0 {
            self.frame = (self.frame + due as usize).min(n.saturating_sub(1));
            self.last_tick += due * period;
        }
        if self.frame + 1 >= n {
            self.playing = false;
            return None;
        }
        Some((self.last_tick + period - now).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::story::{AnimFrame, Panel};

    fn anim(n: usize) -> AnimSlot {
        let frame = AnimFrame {
            caption: String::new(),
            panels: vec![Panel {
                label: String::new(),
                shape: [1, 1, 1],
                pixels: vec![0],
            }],
        };
        AnimSlot::Ready(Box::new(Anim {
            subject: String::new(),
            frames: vec![frame; n],
            verdict: String::new(),
            focus: None,
        }))
    }

    #[test]
    fn next_plays_then_finishes_then_moves_on() {
        let mut p = Presentation::default();
        p.go_to(3);
        p.anims.insert(3, anim(10));
        let next = Keys {
            next: true,
            ..Keys::default()
        };
        assert!(!p.apply(next, 0.0));
        assert!(p.playing);
        assert_eq!(p.tick(0.26), Some(0.25 + 0.125 - 0.26));
        assert_eq!(p.frame, 2, "8 frames per second: two frames after 0.26 s");
        p.apply(next, 0.3);
        assert_eq!(
            (p.frame, p.playing),
            (9, false),
            "a second press jumps to the end"
        );
        p.apply(next, 0.4);
        assert_eq!((p.step, p.frame), (4, 0), "at the end, the next step");
        p.apply(
            Keys {
                back: true,
                ..Keys::default()
            },
            0.5,
        );
        assert_eq!(p.step, 3);
    }

    #[test]
    fn frame_keys_step_and_clamp() {
        let mut p = Presentation::default();
        p.go_to(5);
        p.anims.insert(5, anim(4));
        let fwd = Keys {
            frame: 1,
            ..Keys::default()
        };
        for _ in 0..10 {
            p.apply(fwd, 0.0);
        }
        assert_eq!(p.frame, 3);
        p.apply(
            Keys {
                frame: -1,
                ..Keys::default()
            },
            0.0,
        );
        assert_eq!(p.frame, 2);
        p.apply(
            Keys {
                home: true,
                ..Keys::default()
            },
            0.0,
        );
        assert_eq!(p.frame, 0);
        // Playback runs to the end and stops there.
        p.playing = true;
        p.last_tick = 0.0;
        assert_eq!(p.tick(100.0), None);
        assert_eq!((p.frame, p.playing), (3, false));
    }

    #[test]
    fn steps_without_animation_advance_at_once_and_stop_at_the_end() {
        let mut p = Presentation::default();
        let next = Keys {
            next: true,
            ..Keys::default()
        };
        for _ in 0..20 {
            p.apply(next, 0.0);
        }
        assert_eq!(p.step, STEPS.len() - 1);
        assert!(p.apply(
            Keys {
                leave: true,
                ..Keys::default()
            },
            0.0
        ));
    }
}
