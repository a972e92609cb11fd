//! Cards and configs are untrusted input (a study folder may be edited by hand or come from
//! someone else), so every size they state is bounded here before anything is allocated: each
//! dimension within a stated range, products with checked arithmetic, and the parameter count of
//! the whole architecture. Every model kind (classifier, DDPM UNet, character LM, SSL encoder;
//! later HF `config.json` or diffusers configs) implements [`Architecture`], and its loader calls
//! [`validate`] when the card is parsed and [`super::header::check_weights`] against the weights
//! file's header before the model is built.
//!
//! Messages name the card field and the limit, e.g. `unet.base is 1000000000; rote accepts 1 to
//! 65536`; the caller puts the file in front.

use std::ops::RangeInclusive;

use candle_nn::VarBuilder;

use crate::error::CoreResult;

/// Image channels (grey, RGB, RGBA).
pub const CHANNELS: RangeInclusive<usize> = 1..=4;
/// Image height or width, in pixels (the image-folder decoder's limit too).
pub const SIDE: RangeInclusive<usize> = 1..=4096;
/// Layer widths: hidden units, convolution channels, embedding and LSTM sizes.
pub const WIDTH: RangeInclusive<usize> = 1..=65_536;
/// Classes of a classifier.
pub const CLASSES: RangeInclusive<usize> = 2..=65_536;
/// Characters of a language model's vocabulary.
pub const VOCAB: RangeInclusive<usize> = 1..=65_536;
/// Hidden layers of an MLP.
pub const MLP_LAYERS: RangeInclusive<usize> = 0..=16;
/// Levels of a UNet or blocks of an SSL encoder (the image halves between them).
pub const LEVELS: RangeInclusive<usize> = 1..=8;
/// A UNet level's channel multiplier.
pub const MULT: RangeInclusive<usize> = 1..=16;
/// Diffusion steps T (the schedule holds T values).
pub const T_MAX: RangeInclusive<usize> = 1..=100_000;
/// Images in a data set a card refers to (indices are u32).
pub const DATASET_N: RangeInclusive<usize> = 1..=u32::MAX as usize;
/// Parameters of one model (512 MiB as f32): loading such a model stays well under 4 GiB.
pub const MAX_PARAMS: usize = 1 << 27;
/// Activations of one layer for one image (1 GiB as f32).
pub const MAX_ACTIVATIONS: usize = 1 << 28;
/// Bytes of a safetensors header (the safetensors crate's own limit).
pub const MAX_HEADER: u64 = 100_000_000;

/// An architecture stated in a card or config, validated before anything is allocated.
pub trait Architecture: Sized {
    /// Names the architecture in messages ("UNet", "character LM", "mlp").
    fn kind(&self) -> &'static str;

    /// Checks every size against its range; the message names the card field and the limit.
    fn check_sizes(&self) -> Result<(), String>;

    /// Declares every parameter on `vb` exactly as the loader's constructor does (by running
    /// it): [`super::header::expected_shapes`] records names and shapes without allocating.
    /// Only called after [`Architecture::check_sizes`] passed.
    fn declare(&self, vb: VarBuilder<'_>) -> CoreResult<()>;

    /// The scalar size fields, as (card field, value), that could explain a card/weights
    /// mismatch on their own.
    fn size_fields(&self) -> Vec<(String, usize)>;

    /// A copy with the size field `field` set to `value` (None for an unknown field).
    fn with_size(&self, field: &str, value: usize) -> Option<Self>;
}

/// `field` must lie in `range`.
pub fn in_range(field: &str, value: usize, range: RangeInclusive<usize>) -> Result<(), String> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{field} is {value}; rote accepts {} to {}",
            range.start(),
            range.end()
        ))
    }
}

/// Every entry of `values` in `range` (`field[k]` named), and their count in `count`.
pub fn all_in_range(
    field: &str,
    values: &[usize],
    count: RangeInclusive<usize>,
    range: RangeInclusive<usize>,
) -> Result<(), String> {
    if !count.contains(&values.len()) {
        return Err(format!(
            "{field} has {} entries; rote accepts {} to {}",
            values.len(),
            count.start(),
            count.end()
        ));
    }
    for (k, &v) in values.iter().enumerate() {
        in_range(&format!("{field}[{k}]"), v, range.clone())?;
    }
    Ok(())
}

/// The product of `factors` when it is at most `max`; `what` names it in the message.
pub fn product(what: &str, factors: &[usize], max: usize) -> Result<usize, String> {
    let p = factors
        .iter()
        .try_fold(1usize, |acc, &f| acc.checked_mul(f))
        .filter(|&p| p <= max);
    p.ok_or_else(|| {
        let shown: Vec<String> = factors.iter().map(ToString::to_string).collect();
        format!("{what} {} exceeds rote's limit of {max}", shown.join(" x "))
    })
}

/// Image channels, height and width of a card (`prefix` names the fields, e.g. `unet.`).
pub fn check_image(prefix: &str, channels: usize, height: usize, width: usize) -> Result<(), String> {
    in_range(&format!("{prefix}channels"), channels, CHANNELS)?;
    in_range(&format!("{prefix}height"), height, SIDE)?;
    in_range(&format!("{prefix}width"), width, SIDE)
}

/// Sizes in range and the parameter count within [`MAX_PARAMS`]: what a card's parser checks,
/// without reading the weights.
pub fn validate<A: Architecture>(arch: &A) -> Result<(), String> {
    super::header::expected_shapes(arch).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_products_name_the_field_and_the_limit() {
        assert!(in_range("unet.base", 32, WIDTH).is_ok());
        let e = in_range("unet.base", 1_000_000_000, WIDTH).unwrap_err();
        assert_eq!(e, "unet.base is 1000000000; rote accepts 1 to 65536");
        let e = all_in_range("spec.widths", &[8, 0], 0..=4, WIDTH).unwrap_err();
        assert!(e.starts_with("spec.widths[1] is 0"), "{e}");
        assert!(
            all_in_range("x", &[1; 9], LEVELS, WIDTH)
                .unwrap_err()
                .contains("9 entries")
        );
        assert_eq!(product("p", &[3, 4], 12), Ok(12));
        let e = product("activations", &[usize::MAX, 2], MAX_ACTIVATIONS).unwrap_err();
        assert!(e.contains("exceeds rote's limit of 268435456"), "{e}");
    }
}
