//! Colours and sizes in one place.

use egui::Color32;

/// Outline of the selected thumbnail.
pub const SELECTED: Color32 = Color32::from_rgb(255, 170, 0);
/// Error toasts.
pub const ERROR: Color32 = Color32::from_rgb(220, 60, 60);
/// Success toasts.
pub const OK: Color32 = Color32::from_rgb(60, 170, 90);
/// Informational toasts.
pub const INFO: Color32 = Color32::from_rgb(90, 140, 220);
/// Plot series colours (loss, train accuracy, test accuracy, then more series).
pub const SERIES: [Color32; 4] = [
    Color32::from_rgb(230, 120, 40),
    Color32::from_rgb(60, 130, 220),
    Color32::from_rgb(60, 170, 90),
    Color32::from_rgb(190, 90, 200),
];
/// Background of a thumbnail not yet uploaded.
pub const PLACEHOLDER: Color32 = Color32::from_gray(60);
/// Tag of a planted duplicate training image.
pub const DUPLICATE: Color32 = Color32::from_rgb(200, 80, 170);
/// Hidden region of an inpainting mask.
pub const MASKED: Color32 = Color32::from_rgb(40, 90, 170);
/// Strongest background of the token strip (the most probable tokens); weaker ones fade out.
pub const TOKEN_HOT: Color32 = Color32::from_rgb(235, 110, 30);
/// Background of a generated token that matches the true continuation.
pub const MATCH_BG: Color32 = Color32::from_rgb(40, 140, 70);
/// Background of a generated token that does not.
pub const MISMATCH_BG: Color32 = Color32::from_rgb(170, 50, 50);
