//! The views, their names and their order in the top bar.

/// The views.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum View {
    /// Images, classes, scores and neighbours.
    #[default]
    Data,
    /// Model cards, training and curves.
    Models,
    /// Feldman-Zhang memorization from the study's zoo.
    Memorization,
    /// High-influence train/test pairs.
    Influence,
    /// Membership inference.
    Privacy,
    /// Training images extracted from a diffusion model.
    Extraction,
    /// The inpainting attack on diffusion models.
    Inpainting,
    /// Model inversion of face classifiers.
    Inversion,
    /// Per-layer and per-unit memorization of SSL encoders.
    Layers,
    /// Canary exposure and extraction in a character language model.
    Exposure,
    /// Extraction and membership inference on the documents of a Hugging Face language model.
    Text,
    /// Memorized rows of tabular diffusion models, TabCutMix, and fairness on a table.
    Tabular,
    /// What a defence changes: baselines and their defended variants side by side.
    Defences,
    /// Compute device and GPU adapter.
    Settings,
}

/// Every view, in navigation order.
pub const VIEWS: [View; 14] = [
    View::Data,
    View::Models,
    View::Memorization,
    View::Influence,
    View::Privacy,
    View::Extraction,
    View::Inpainting,
    View::Inversion,
    View::Layers,
    View::Exposure,
    View::Text,
    View::Tabular,
    View::Defences,
    View::Settings,
];

impl View {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Data => "Data",
            Self::Models => "Models",
            Self::Memorization => "Memorization",
            Self::Influence => "Influence",
            Self::Privacy => "Membership",
            Self::Extraction => "Extraction",
            Self::Inpainting => "Inpainting",
            Self::Inversion => "Inversion",
            Self::Layers => "Layers",
            Self::Exposure => "Exposure",
            Self::Text => "Text",
            Self::Tabular => "Tabular",
            Self::Defences => "Defences",
            Self::Settings => "Settings",
        }
    }

    /// Parses a view name (for `rote screenshot --view`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "data" => Some(Self::Data),
            "models" => Some(Self::Models),
            "settings" => Some(Self::Settings),
            "memorization" => Some(Self::Memorization),
            "influence" => Some(Self::Influence),
            "privacy" | "mia" | "membership" => Some(Self::Privacy),
            "extraction" | "extract" => Some(Self::Extraction),
            "inpainting" | "inpaint" => Some(Self::Inpainting),
            "inversion" | "invert" => Some(Self::Inversion),
            "layers" | "layermem" => Some(Self::Layers),
            "exposure" | "canary" | "secret-sharer" => Some(Self::Exposure),
            "text" | "lm" => Some(Self::Text),
            "tabular" | "table" | "tables" | "tab" => Some(Self::Tabular),
            "defences" | "defenses" | "defence" | "dp" => Some(Self::Defences),
            _ => None,
        }
    }
}
