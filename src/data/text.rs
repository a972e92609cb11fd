//! Plain text corpora (UTF-8, optionally gzip'd), for the character language model.

use std::io::Read as _;
use std::path::Path;

use sha2::Digest as _;

use super::idx::open_maybe_gz;
use crate::error::{CoreError, CoreResult};

/// A text corpus.
#[derive(Clone, Debug)]
pub struct TextCorpus {
    /// Where it came from.
    pub source: String,
    /// The text.
    pub text: String,
    /// Hex content hash (first 16 hex digits of SHA-256).
    pub hash: String,
}

impl TextCorpus {
    /// The distinct characters, sorted.
    pub fn alphabet(&self) -> Vec<char> {
        let mut v: Vec<char> = self
            .text
            .chars()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        v.sort_unstable();
        v
    }
}

/// Loads a text file (gzip'd or plain). Invalid UTF-8 is an error naming the byte offset.
pub fn load_text(path: &Path) -> CoreResult<TextCorpus> {
    let mut r = open_maybe_gz(path)?;
    let mut bytes = Vec::new();
    r.read_to_end(&mut bytes)
        .map_err(|e| CoreError::format(path, format!("cannot read: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        CoreError::format(
            path,
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    let digest = sha2::Sha256::digest(text.as_bytes());
    let hash = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    Ok(TextCorpus {
        source: path.display().to_string(),
        text,
        hash,
    })
}
