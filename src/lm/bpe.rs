//! Byte-level BPE (Sennrich et al. 2016; GPT-2's byte-level variant, Radford et al. 2019) trained
//! with the `tokenizers` crate on the training text, for the GPT rote trains.
//!
//! Pre-tokenization is a `Sequence` of `Digits(individual)` and `ByteLevel` (no prefix space,
//! GPT-2's regex): every decimal digit is its own pre-token and so its own token, which keeps a
//! canary's slot at exactly one token per digit (Secret Sharer's enumeration over 10^digits
//! candidates then is one path per secret). The end-of-text token `<|endoftext|>` is id 0. The
//! merges depend only on the text and the vocabulary size: the same text gives the same
//! `tokenizer.json` byte for byte.

use std::path::{Path, PathBuf};

use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper,
    TokenizerBuilder,
};

use super::LmTokenizer;
use crate::error::{CoreError, CoreResult};

/// The end-of-text special token (GPT-2's spelling).
pub const EOT: &str = "<|endoftext|>";

/// Smallest vocabulary: the 256 byte symbols, the end-of-text token and some merges.
pub const MIN_VOCAB: usize = 300;

/// Trains a byte-level BPE of `vocab_size` tokens (special token included) on `texts`
/// (each a paragraph or a document). `path` is where the tokenizer will be saved; it only names
/// the file in errors.
pub fn train_bpe<'a>(
    texts: impl Iterator<Item = &'a str> + Send,
    vocab_size: usize,
    path: &Path,
) -> CoreResult<LmTokenizer> {
    if !(MIN_VOCAB..=65_536).contains(&vocab_size) {
        return Err(CoreError::Invalid(format!(
            "a BPE vocabulary of {vocab_size} tokens: {MIN_VOCAB} to 65536 allowed"
        )));
    }
    let fail = |what: &str, e: tokenizers::Error| {
        CoreError::format(path, format!("cannot {what} the BPE tokenizer: {e}"))
    };
    let byte_level = ByteLevel::new(false, true, true);
    let pre = Sequence::new(vec![
        PreTokenizerWrapper::Digits(Digits::new(true)),
        PreTokenizerWrapper::ByteLevel(byte_level),
    ]);
    let mut tok = TokenizerBuilder::<
        BPE,
        NormalizerWrapper,
        PreTokenizerWrapper,
        PostProcessorWrapper,
        DecoderWrapper,
    >::new()
    .with_model(BPE::default())
    .with_normalizer(None)
    .with_pre_tokenizer(Some(PreTokenizerWrapper::Sequence(pre)))
    .with_post_processor(Some(PostProcessorWrapper::ByteLevel(byte_level)))
    .with_decoder(Some(DecoderWrapper::ByteLevel(byte_level)))
    .build()
    .map_err(|e| fail("build", e))?;
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(vec![AddedToken::from(EOT, true)])
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    tok.train(&mut trainer, texts).map_err(|e| fail("train", e))?;
    Ok(LmTokenizer::from_tokenizer(tok.into(), PathBuf::from(path)))
}

/// The id of [`EOT`] in `tok`.
pub fn eot_id(tok: &LmTokenizer) -> CoreResult<u32> {
    tok.inner()
        .token_to_id(EOT)
        .ok_or_else(|| CoreError::format(tok.path(), format!("has no {EOT} token")))
}

/// Writes `tok` as `tokenizer.json` at `path` (compact JSON, deterministic).
pub fn save_tokenizer(tok: &LmTokenizer, path: &Path) -> CoreResult<()> {
    let text = tok
        .inner()
        .to_string(false)
        .map_err(|e| CoreError::format(path, format!("cannot serialise the tokenizer: {e}")))?;
    crate::study::write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text() -> String {
        let mut s = String::new();
        for i in 0..200 {
            s.push_str(&format!(
                "It is a truth universally acknowledged, that a single man {i} in possession of a good fortune, must be in want of a wife.\n"
            ));
        }
        s
    }

    #[test]
    fn digits_are_single_tokens_and_text_round_trips() {
        let t = text();
        let tok = train_bpe(t.lines(), 320, Path::new("tokenizer.json")).unwrap();
        assert_eq!(tok.vocab_size(), 320);
        assert_eq!(eot_id(&tok).unwrap(), 0);
        let line = "my pin number is 0123456789 and that is all.";
        let ids = tok.encode(line).unwrap();
        assert_eq!(tok.decode(&ids).unwrap(), line);
        let pieces: Vec<String> = ids.iter().map(|&i| tok.token_text(i).unwrap()).collect();
        let digits: Vec<&String> = pieces
            .iter()
            .filter(|p| p.chars().any(|c| c.is_ascii_digit()))
            .collect();
        assert_eq!(digits.len(), 10, "{pieces:?}");
        assert!(digits.iter().all(|p| p.len() == 1), "{pieces:?}");
        // Deterministic, and the saved file reads back through LmTokenizer::load.
        let again = train_bpe(t.lines(), 320, Path::new("tokenizer.json")).unwrap();
        let a = tok.inner().to_string(false).unwrap();
        assert_eq!(a, again.inner().to_string(false).unwrap());
        let dir = tempfile::tempdir().unwrap();
        save_tokenizer(&tok, &dir.path().join("tokenizer.json")).unwrap();
        let loaded = LmTokenizer::load(dir.path()).unwrap();
        assert_eq!(loaded.encode(line).unwrap(), ids);
        assert!(train_bpe(t.lines(), 10, Path::new("x")).is_err());
    }
}
