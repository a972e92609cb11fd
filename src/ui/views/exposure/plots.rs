//! The Exposure view's three plots.

use egui_plot::{Bar, BarChart, HLine, Legend, Line, LineStyle, Plot, PlotPoint, PlotPoints, Text, VLine};

use crate::ui::exposure_jobs::LoadedExposure;
use crate::ui::theme;

/// Canaries of `format` as (card index, insertions), by insertions.
fn members(l: &LoadedExposure, format: usize) -> Vec<(usize, u32)> {
    let mut v: Vec<(usize, u32)> = l
        .card
        .canaries
        .iter()
        .enumerate()
        .filter(|(_, c)| c.format == format)
        .map(|(k, c)| (k, c.insertions))
        .collect();
    v.sort_by_key(|&(k, n)| (n, k));
    v
}

/// Exposure of canary `k`: the report's best figure, else the last epoch's.
fn exposure_of(l: &LoadedExposure, k: usize) -> Option<f64> {
    match &l.report {
        Some(r) => r.canaries.iter().find(|c| c.canary == k).map(|c| c.best()),
        None => l.card.epochs.last().and_then(|e| e.exposure.get(k).copied()),
    }
}

fn ceiling(l: &LoadedExposure, format: usize) -> f64 {
    l.card
        .formats
        .get(format)
        .map_or(0.0, |f| (f.space() as f64).log2())
}

/// Exposure against insertions: one bar per canary, the log2|R| ceiling dashed.
pub fn insertions_ui(ui: &mut egui::Ui, l: &LoadedExposure, format: usize, selected: Option<usize>, h: f32) {
    ui.strong("Exposure vs insertions");
    let m = members(l, format);
    let labels: Vec<String> = m.iter().map(|(_, n)| format!("x{n}")).collect();
    let bars: Vec<Bar> = m
        .iter()
        .enumerate()
        .filter_map(|(i, &(k, n))| {
            exposure_of(l, k).map(|e| {
                let c = if Some(k) == selected {
                    theme::SELECTED
                } else {
                    theme::INFO
                };
                Bar::new(i as f64, e).width(0.6).fill(c).name(format!("x{n}"))
            })
        })
        .collect();
    let top = ceiling(l, format);
    Plot::new("exposure_insertions")
        .height(h)
        .allow_scroll(false)
        .include_y(0.0)
        .include_y(top + 1.0)
        .x_axis_label("times inserted")
        .y_axis_label("exposure (bits)")
        .show_axes([false, true])
        .include_y(-1.5)
        .legend(Legend::default())
        .show(ui, |p| {
            p.bar_chart(BarChart::new("exposure", bars).color(theme::INFO));
            for (i, label) in labels.iter().enumerate() {
                p.text(Text::new("", PlotPoint::new(i as f64, -0.8), label.clone()));
            }
            p.hline(
                HLine::new("log2 |R| (ceiling)", top)
                    .color(egui::Color32::GRAY)
                    .style(LineStyle::dashed_loose()),
            );
            p.hline(
                HLine::new(
                    "baseline E[exposure] of a random secret",
                    std::f64::consts::LOG2_E,
                )
                .color(theme::PLACEHOLDER)
                .style(LineStyle::dotted_loose()),
            );
        });
}

/// Exposure of every canary of `format` against the epoch, with the losses.
pub fn epochs_ui(ui: &mut egui::Ui, l: &LoadedExposure, format: usize, selected: Option<usize>, h: f32) {
    ui.strong("Exposure vs training epoch (memorized before over-fitting)");
    let m = members(l, format);
    let top = ceiling(l, format);
    Plot::new("exposure_epochs")
        .height(h * 0.68)
        .allow_scroll(false)
        .include_y(0.0)
        .include_y(top)
        .x_axis_label("epoch")
        .y_axis_label("exposure (bits)")
        .legend(Legend::default())
        .show(ui, |p| {
            for (i, &(k, n)) in m.iter().enumerate() {
                let pts: PlotPoints<'_> = l
                    .card
                    .epochs
                    .iter()
                    .filter_map(|e| e.exposure.get(k).map(|&x| [e.epoch as f64, x]))
                    .collect();
                // Hotter = inserted more often.
                let colour = crate::ui::widgets::colour(i as f32 / (m.len().max(2) - 1) as f32);
                let width = if Some(k) == selected { 3.0 } else { 1.5 };
                p.line(Line::new(format!("x{n:>2}"), pts).color(colour).width(width));
            }
            p.hline(
                HLine::new("log2 |R|", top)
                    .color(egui::Color32::GRAY)
                    .style(LineStyle::dashed_loose()),
            );
        });
    Plot::new("exposure_loss")
        .height(h * 0.32 - 8.0)
        .allow_scroll(false)
        .x_axis_label("epoch")
        .y_axis_label("nats/char")
        .legend(Legend::default())
        .show(ui, |p| {
            let series = |f: fn(&crate::canary::card::LmEpoch) -> f64| -> PlotPoints<'_> {
                l.card.epochs.iter().map(|e| [e.epoch as f64, f(e)]).collect()
            };
            p.line(Line::new("train loss", series(|e| e.train_loss)).color(theme::SERIES[0]));
            p.line(Line::new("validation loss", series(|e| e.val_loss)).color(theme::SERIES[1]));
        });
}

/// The histogram of log-perplexities with the skew-normal fit and the selected canary marked.
pub fn histogram_ui(ui: &mut egui::Ui, l: &LoadedExposure, format: usize, selected: Option<usize>, h: f32) {
    let Some(rep) = &l.report else {
        ui.strong("Log-perplexity of the candidate space");
        ui.label("Measure exposure to see the distribution of every candidate's log-perplexity.");
        return;
    };
    let Some(f) = rep.formats.get(format) else {
        return;
    };
    ui.strong(format!(
        "Log-perplexity of {} with the skew-normal fit",
        f.histogram.source
    ));
    let hist = &f.histogram;
    let bars: Vec<Bar> = hist
        .counts
        .iter()
        .enumerate()
        .map(|(i, &c)| Bar::new(hist.lo + (i as f64 + 0.5) * hist.width, c as f64).width(hist.width))
        .collect();
    let total: u64 = hist.counts.iter().sum();
    let hi = hist.lo + hist.width * hist.counts.len() as f64;
    let canary = selected.and_then(|k| rep.canaries.iter().find(|c| c.canary == k && c.format == format));
    Plot::new("exposure_histogram")
        .height(h)
        .allow_scroll(false)
        .x_axis_label("log-perplexity of the slot (bits)")
        .y_axis_label("candidates")
        .legend(Legend::default())
        .show(ui, |p| {
            p.bar_chart(BarChart::new("candidates", bars).color(theme::INFO));
            if let Some(fit) = f.fit {
                let lo = canary.map_or(hist.lo, |c| c.px_bits.min(hist.lo));
                let n = 200;
                let pts: PlotPoints<'_> = (0..=n)
                    .map(|i| {
                        let x = lo + (hi - lo) * i as f64 / n as f64;
                        [x, fit.ln_pdf(x).exp() * total as f64 * hist.width]
                    })
                    .collect();
                p.line(
                    Line::new("skew-normal fit", pts)
                        .color(theme::SERIES[1])
                        .width(2.0),
                );
            }
            if let Some(c) = canary {
                p.vline(
                    VLine::new(format!("canary {} (x{})", c.secret, c.insertions), c.px_bits)
                        .color(theme::SELECTED)
                        .width(2.0),
                );
            }
        });
}
