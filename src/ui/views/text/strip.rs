//! The selected document in detail: its tokens as a strip coloured by ln p(token | prefix), and
//! its extraction side by side (prefix | true continuation | generated continuation).

use egui::{Color32, RichText};

use crate::lm::extract_report::ExtractDoc;
use crate::ui::text_jobs::{LoadedText, TokenStrip};
use crate::ui::theme;

/// ln p at and below which a token gets the weakest colour (e^-8 ≈ 0.03 %).
pub const LOGP_FLOOR: f32 = -8.0;

/// The strip colour of a token with log-probability `ln_p`: a sequential map on one hue whose
/// opacity grows with ln p, from faint at [`LOGP_FLOOR`] to strong at ln p = 0 (certain). A
/// token without a score (the first) is transparent.
pub fn token_colour(ln_p: Option<f32>) -> Color32 {
    let Some(lp) = ln_p.filter(|x| !x.is_nan()) else {
        return Color32::TRANSPARENT;
    };
    let t = ((lp - LOGP_FLOOR) / -LOGP_FLOOR).clamp(0.0, 1.0);
    let [r, g, b, _] = theme::TOKEN_HOT.to_array();
    Color32::from_rgba_unmultiplied(r, g, b, (18.0 + 237.0 * t).round() as u8)
}

/// A token as it can be shown on one line: newlines, tabs and other control characters escaped,
/// empty ones marked, and a byte-level token that is only part of a UTF-8 character (decoded as
/// U+FFFD) shown as `<?>`.
pub fn shown(tok: &str) -> String {
    if tok.is_empty() {
        return "<empty>".into();
    }
    let mut out = String::with_capacity(tok.len());
    for c in tok.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{FFFD}' => out.push_str("<?>"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

fn token_label(ui: &mut egui::Ui, tok: &str, bg: Color32, underline: bool) -> egui::Response {
    let mut text = RichText::new(shown(tok)).monospace().background_color(bg);
    if bg.a() > 128 {
        // Dark glyphs on a strong background stay readable (the theme's text is light grey).
        text = text.color(Color32::BLACK);
    }
    if underline {
        text = text.underline();
    }
    ui.add(
        egui::Label::new(text)
            .selectable(false)
            .sense(egui::Sense::hover()),
    )
}

/// The colour key of the strip.
fn key_ui(ui: &mut egui::Ui) {
    ui.horizontal(|ui| {
        ui.small(format!("ln p ≤ {LOGP_FLOOR}"));
        for k in 0..=8 {
            let lp = LOGP_FLOOR * (1.0 - k as f32 / 8.0);
            token_label(ui, "  ", token_colour(Some(lp)), false);
        }
        ui.small("ln p = 0 (certain): a memorized span is a run of strong colour");
    });
}

/// The token strip of one document; the tokens in `continuation` (positions) are underlined.
pub fn strip_ui(ui: &mut egui::Ui, strip: &TokenStrip, continuation: Option<std::ops::Range<usize>>) {
    key_ui(ui);
    ui.horizontal_wrapped(|ui| {
        ui.spacing_mut().item_spacing = egui::vec2(0.0, 2.0);
        for (k, tok) in strip.tokens.iter().enumerate() {
            let lp = strip.logp.get(k).copied().flatten();
            let rank = strip.rank.get(k).copied().flatten();
            let hover = match (lp, rank) {
                (Some(lp), Some(rank)) => format!(
                    "'{}'\nln p = {lp:.3} (p = {:.4})\nrank {rank} of the vocabulary",
                    shown(tok),
                    lp.exp()
                ),
                _ => format!(
                    "'{}'\nfirst token: nothing before it to predict it from",
                    shown(tok)
                ),
            };
            let under = continuation.as_ref().is_some_and(|r| r.contains(&k));
            token_label(ui, tok, token_colour(lp), under).on_hover_text(hover);
        }
    });
    let scored: Vec<f32> = strip.logp.iter().flatten().copied().collect();
    if !scored.is_empty() {
        let top1 = strip.rank.iter().flatten().filter(|&&r| r == 1).count();
        ui.small(format!(
            "{} tokens, mean ln p {:.2}; the model's top guess for {top1} of {}{}",
            strip.tokens.len(),
            scored.iter().sum::<f32>() / scored.len() as f32,
            scored.len(),
            if strip.cut > 0 {
                format!("; {} tokens beyond the model's context not shown", strip.cut)
            } else {
                String::new()
            }
        ));
    }
}

/// Tokens with a green (match) or red (mismatch) background.
fn matched_tokens_ui(ui: &mut egui::Ui, tokens: &[String], matches: &[bool]) {
    ui.horizontal_wrapped(|ui| {
        ui.spacing_mut().item_spacing = egui::vec2(0.0, 2.0);
        for (tok, &ok) in tokens.iter().zip(matches) {
            let bg = if ok { theme::MATCH_BG } else { theme::MISMATCH_BG };
            let r = ui.add(
                egui::Label::new(
                    RichText::new(shown(tok))
                        .monospace()
                        .color(Color32::WHITE)
                        .background_color(bg),
                )
                .selectable(false)
                .sense(egui::Sense::hover()),
            );
            r.on_hover_text(if ok {
                "reproduced"
            } else {
                "differs from the true continuation"
            });
        }
    });
}

/// Prefix | true continuation | generated continuation of one document.
pub fn side_by_side_ui(ui: &mut egui::Ui, ex: &ExtractDoc) {
    ui.label(format!(
        "{}: {} of {} tokens reproduced, longest run {}, ln p of the true continuation {:.1}",
        if ex.exact { "Exact match" } else { "Not exact" },
        ex.matches.iter().filter(|m| **m).count(),
        ex.matches.len(),
        ex.longest_match,
        ex.ln_p_z
    ));
    // `vertical`: a justified column layout would stretch the wrapped prefix letter by letter.
    ui.columns(3, |cols| {
        cols[0].vertical(|ui| {
            ui.strong(format!("Prefix ({} tokens)", ex.prefix.len()));
            ui.add(egui::Label::new(RichText::new(shown(&ex.prefix_text)).monospace()).wrap());
        });
        cols[1].vertical(|ui| {
            ui.strong("True continuation");
            matched_tokens_ui(ui, &ex.truth_tokens, &ex.matches);
        });
        cols[2].vertical(|ui| {
            ui.strong("Generated (greedy)");
            matched_tokens_ui(ui, &ex.generated_tokens, &ex.matches);
        });
    });
}

/// Everything about document `i`: its token strip (None while it is computed) and extraction.
pub fn detail_ui(ui: &mut egui::Ui, loaded: &LoadedText, i: usize, strip: Option<&TokenStrip>) {
    let Some(doc) = loaded.docs.get(i) else {
        return;
    };
    let ins = match doc.insertions {
        None => String::new(),
        Some(0) => ", held out (never trained on)".into(),
        Some(n) => format!(", planted {n} times"),
    };
    ui.heading(format!("{}{ins}", doc.source));
    let ex = loaded
        .extract
        .as_ref()
        .and_then(|r| r.documents.iter().find(|d| d.source == doc.source));
    let continuation = ex.map(|e| e.prefix.len()..e.prefix.len() + e.truth.len());
    ui.strong("Token log-probabilities");
    if continuation.is_some() {
        ui.small("Underlined: the continuation greedy decoding was asked to reproduce");
    }
    match strip {
        Some(s) => strip_ui(ui, s, continuation),
        None => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Scoring the tokens");
            });
        }
    }
    ui.separator();
    ui.strong("Extraction");
    match (ex, &loaded.extract) {
        (Some(ex), _) => side_by_side_ui(ui, ex),
        (None, Some(r)) => {
            ui.label(format!(
                "Left out: shorter than the {} + {} tokens of prefix and continuation",
                r.options.prefix_tokens, r.options.suffix_tokens
            ));
        }
        (None, None) => {
            ui.label("Not measured yet: Run extraction above");
        }
    }
}
