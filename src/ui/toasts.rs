//! Short messages in the bottom-right corner; errors stay longer and can be dismissed.

use std::time::{Duration, Instant};

use super::theme;

/// Severity of a toast.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Something finished.
    Ok,
    /// For information.
    Info,
    /// Something failed.
    Error,
}

/// One message.
#[derive(Clone, Debug)]
pub struct Toast {
    /// Severity.
    pub level: Level,
    /// Text.
    pub text: String,
    shown: Instant,
}

/// The toast stack.
#[derive(Default)]
pub struct Toasts {
    items: Vec<Toast>,
    /// Every error shown this session, newest last (for tests and the log).
    pub error_log: Vec<String>,
}

impl Toasts {
    /// Adds a message.
    pub fn push(&mut self, level: Level, text: impl Into<String>) {
        let text = text.into();
        if level == Level::Error {
            log::error!("{text}");
            self.error_log.push(text.clone());
        }
        self.items.push(Toast {
            level,
            text,
            shown: Instant::now(),
        });
        if self.items.len() > 6 {
            self.items.remove(0);
        }
    }

    /// Messages now on screen.
    pub fn visible(&self) -> &[Toast] {
        &self.items
    }

    /// Draws the stack.
    pub fn ui(&mut self, ctx: &egui::Context) {
        self.items.retain(|t| {
            let life = if t.level == Level::Error { 12 } else { 5 };
            t.shown.elapsed() < Duration::from_secs(life)
        });
        if self.items.is_empty() {
            return;
        }
        let mut dismiss = None;
        egui::Area::new(egui::Id::unique("toasts"))
            .anchor(egui::Align2::RIGHT_BOTTOM, egui::vec2(-12.0, -44.0))
            .order(egui::Order::Foreground)
            .show(ctx, |ui| {
                for (k, t) in self.items.iter().enumerate() {
                    let colour = match t.level {
                        Level::Ok => theme::OK,
                        Level::Info => theme::INFO,
                        Level::Error => theme::ERROR,
                    };
                    egui::Frame::popup(ui.style())
                        .stroke(egui::Stroke::new(1.5, colour))
                        .show(ui, |ui| {
                            ui.set_max_width(420.0);
                            ui.horizontal(|ui| {
                                ui.colored_label(colour, &t.text);
                                if ui.small_button("x").on_hover_text("Dismiss").clicked() {
                                    dismiss = Some(k);
                                }
                            });
                        });
                }
            });
        if let Some(k) = dismiss {
            self.items.remove(k);
        }
        ctx.request_repaint_after(Duration::from_millis(500));
    }
}
