//! `tokenizer.json` (the Hugging Face fast-tokenizer format) through the `tokenizers` crate.

use std::path::{Path, PathBuf};

use crate::error::{CoreError, CoreResult};

/// A model folder's tokenizer.
pub struct LmTokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
}

impl std::fmt::Debug for LmTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LmTokenizer")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl LmTokenizer {
    /// Reads `dir/tokenizer.json`.
    pub fn load(dir: &Path) -> CoreResult<Self> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(CoreError::format(
                dir,
                "has no tokenizer.json (save one with tokenizer.save_pretrained(dir) in Python)",
            ));
        }
        let inner = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| CoreError::format(&path, format!("not a readable tokenizer: {e}")))?;
        Ok(Self { inner, path })
    }

    /// A tokenizer built in memory (rote's BPE training); `path` is where it will be saved, for
    /// error messages.
    pub(crate) fn from_tokenizer(inner: tokenizers::Tokenizer, path: PathBuf) -> Self {
        Self { inner, path }
    }

    /// The `tokenizers` tokenizer inside.
    pub(crate) fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Token ids of `text` as transformers' `tokenizer(text)` gives them (special tokens such as a
    /// beginning-of-sequence token added when the tokenizer's post-processor adds them).
    pub fn encode(&self, text: &str) -> CoreResult<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, true)
            .map_err(|e| CoreError::format(&self.path, format!("cannot encode the text: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The text of `ids` (special tokens skipped).
    pub fn decode(&self, ids: &[u32]) -> CoreResult<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| CoreError::format(&self.path, format!("cannot decode token ids: {e}")))
    }

    /// The text one token stands for, as a reader would see it (byte-level markers decoded);
    /// `None` for an id outside the vocabulary.
    pub fn token_text(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)?;
        self.inner.decode(&[id], false).ok()
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The `tokenizer.json` it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
