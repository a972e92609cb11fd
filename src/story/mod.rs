//! The demo story that presentation mode steps through: data -> memorized samples ->
//! high-influence pairs -> extraction -> inpainting -> inversion -> layers -> exposure ->
//! in-context learning, with the animations a speaker steps through frame by frame (denoising
//! steps of an extracted generation, RePaint steps of the IN and OUT models, inversion iterates).
//!
//! Animations are computed from the demo study's models once and cached in
//! `STUDY/results/story/<step>.json` (written atomically), so a talk opens instantly the second
//! time. Every frame is a row of labelled panels of display bytes (0 = black, 255 = white).

mod denoise;
mod inpaint;
mod invert;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use denoise::denoise_anim;
pub use inpaint::inpaint_anim;
pub use invert::invert_anim;

use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
use crate::study::write_json_atomic;

/// A step of the story.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// The training data.
    Data,
    /// Feldman-Zhang memorized samples.
    Memorized,
    /// High-influence train/test pairs.
    Influence,
    /// Training images extracted from a diffusion model.
    Extraction,
    /// The inpainting membership attack.
    Inpainting,
    /// Model inversion of a face classifier.
    Inversion,
    /// Per-layer memorization in SSL encoders.
    Layers,
    /// Canary exposure in a language model.
    Exposure,
    /// In-context learning against memorization as the number of training items grows.
    Icl,
}

/// The story in order.
pub const STEPS: [Step; 9] = [
    Step::Data,
    Step::Memorized,
    Step::Influence,
    Step::Extraction,
    Step::Inpainting,
    Step::Inversion,
    Step::Layers,
    Step::Exposure,
    Step::Icl,
];

impl Step {
    /// Heading shown on the slide.
    pub fn title(self) -> &'static str {
        match self {
            Self::Data => "1. The training data",
            Self::Memorized => "2. What the models memorized",
            Self::Influence => "3. One training image decides a test answer",
            Self::Extraction => "4. Extracting training images from a diffusion model",
            Self::Inpainting => "5. Inpainting tells members from non-members",
            Self::Inversion => "6. Recovering a face from a face classifier",
            Self::Layers => "7. Where memorization lives inside an encoder",
            Self::Exposure => "8. A secret in a language model",
            Self::Icl => "9. A few items are memorized, thousands teach learning in context",
        }
    }

    /// One or two sentences the speaker can read out.
    pub fn narrative(self) -> &'static str {
        match self {
            Self::Data => {
                "10,000 handwritten digits, 28x28. Models train on random 70% subsets: every image is in some models and out of others."
            }
            Self::Memorized => {
                "Feldman-Zhang memorization: how much more likely a model is to get an image right when it trained on it. Mislabelled and odd images top the list."
            }
            Self::Influence => {
                "High-influence pairs: removing one training image flips the prediction on a near-identical test image."
            }
            Self::Extraction => {
                "Carlini et al. 2023: sample the model from pure noise. Step through the denoising: the generation lands on a training image that appeared 32 times."
            }
            Self::Inpainting => {
                "Hide part of an image and let each model fill it in: the model that trained on it restores it, the one that did not invents something else."
            }
            Self::Inversion => {
                "Fredrikson et al. 2015: gradient descent on the input until the classifier is sure it sees this person. Step through the iterations."
            }
            Self::Layers => {
                "LayerMem / UnitMem (Wang et al.): the encoder that trained on the candidates aligns them better than its twin that never saw them, most in the deep blocks, the planted outliers most of all."
            }
            Self::Exposure => {
                "Secret Sharer: a PIN inserted 32 times is ranked first among a million candidates; the model can be made to spell it out."
            }
            Self::Icl => {
                "Nguyen & Reddy: a small transformer trained on a few dozen items memorizes them and ignores the context; trained on thousands, it reads the answer from the context instead, even for items it never saw."
            }
        }
    }

    /// Short name (`rote screenshot --view present-<name>`).
    pub fn slug(self) -> &'static str {
        match self {
            Self::Data => "data",
            Self::Memorized => "memorized",
            Self::Influence => "influence",
            Self::Extraction => "extraction",
            Self::Inpainting => "inpainting",
            Self::Inversion => "inversion",
            Self::Layers => "layers",
            Self::Exposure => "exposure",
            Self::Icl => "icl",
        }
    }

    /// The step index of a short name.
    pub fn index_of(slug: &str) -> Option<usize> {
        STEPS.iter().position(|s| s.slug() == slug)
    }

    /// File stem of the step's cached animation (`None`: no animation).
    pub fn anim_stem(self) -> Option<&'static str> {
        match self {
            Self::Extraction => Some("extraction"),
            Self::Inpainting => Some("inpainting"),
            Self::Inversion => Some("inversion"),
            _ => None,
        }
    }
}

/// One labelled image of a frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Panel {
    /// What the panel shows.
    pub label: String,
    /// Channels (1 or 3), height, width.
    pub shape: [usize; 3],
    /// C x H x W display bytes (0 black, 255 white), base64 in the file.
    #[serde(with = "crate::invert::run::base64_bytes")]
    pub pixels: Vec<u8>,
}

/// One frame of an animation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnimFrame {
    /// What this frame is ("denoising step 12 of 50").
    pub caption: String,
    /// The panels, left to right.
    pub panels: Vec<Panel>,
}

/// A step's animation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Anim {
    /// Which model and image it shows.
    pub subject: String,
    /// The frames in order; the last is the result.
    pub frames: Vec<AnimFrame>,
    /// What the speaker should point at in the last frame.
    pub verdict: String,
    /// What the step's view should select to match: the data-set index of the inpainted image,
    /// the inverted class, the extracted generation.
    #[serde(default)]
    pub focus: Option<usize>,
}

/// Where a step's animation is cached.
pub fn anim_path(study_root: &Path, stem: &str) -> PathBuf {
    study_root
        .join("results")
        .join("story")
        .join(format!("{stem}.json"))
}

/// The step's animation: from the cache, or computed from the demo study's models and cached.
/// `Ok(None)` for steps without an animation.
pub fn load_or_build(study_root: &Path, step: Step, ctx: &JobCtx<'_>) -> CoreResult<Option<Anim>> {
    let Some(stem) = step.anim_stem() else {
        return Ok(None);
    };
    let path = anim_path(study_root, stem);
    if path.is_file() {
        let text = std::fs::read_to_string(&path).map_err(|e| CoreError::io(&path, e))?;
        match serde_json::from_str::<Anim>(&text) {
            Ok(anim) if !anim.frames.is_empty() => return Ok(Some(anim)),
            // A stale or damaged cache is rebuilt rather than shown.
            _ => {}
        }
    }
    let anim = match step {
        Step::Extraction => denoise_anim(study_root, ctx)?,
        Step::Inpainting => inpaint_anim(study_root, ctx)?,
        Step::Inversion => invert_anim(study_root, ctx)?,
        _ => return Ok(None),
    };
    write_json_atomic(&path, &anim)?;
    Ok(Some(anim))
}

/// Data-set bytes (0..=`max_value`) as display bytes (0..=255).
pub(crate) fn display_bytes(v: &[u8], max_value: u8) -> Vec<u8> {
    let m = f32::from(max_value.max(1));
    v.iter()
        .map(|&b| (f32::from(b) * 255.0 / m).round().clamp(0.0, 255.0) as u8)
        .collect()
}

/// Stretches display bytes to the full 0..=255 range (min to black, max to white), as the
/// Inversion view's "Stretch contrast" does: inversions live in a narrow band around grey.
pub(crate) fn stretch(v: &[u8]) -> Vec<u8> {
    let (lo, hi) = v.iter().fold((u8::MAX, 0u8), |(l, h), &x| (l.min(x), h.max(x)));
    if hi <= lo {
        return v.to_vec();
    }
    let span = f32::from(hi - lo);
    v.iter()
        .map(|&x| (f32::from(x - lo) * 255.0 / span).round() as u8)
        .collect()
}

/// Keeps at most `n` evenly spaced items of `v`, always the first and the last.
pub(crate) fn thin<T: Clone>(v: &[T], n: usize) -> Vec<T> {
    if v.len() <= n || n < 2 {
        return v.to_vec();
    }
    (0..n).map(|k| v[k * (v.len() - 1) / (n - 1)].clone()).collect()
}

#[cfg(test)]
mod story_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_both_ends_and_order() {
        let v: Vec<usize> = (0..151).collect();
        let t = thin(&v, 60);
        assert_eq!(t.len(), 60);
        assert_eq!(t[0], 0);
        assert_eq!(t[59], 150);
        assert!(t.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(thin(&v[..10], 60).len(), 10);
    }

    #[test]
    fn stretch_maps_the_range_to_black_and_white() {
        assert_eq!(stretch(&[100, 110, 120]), vec![0, 128, 255]);
        assert_eq!(stretch(&[7, 7]), vec![7, 7]);
    }

    #[test]
    fn display_bytes_scale_to_white() {
        assert_eq!(display_bytes(&[0, 8, 16], 16), vec![0, 128, 255]);
        assert_eq!(display_bytes(&[0, 255], 255), vec![0, 255]);
    }
}
