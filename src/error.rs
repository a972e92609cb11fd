//! The core's error type. Every error that concerns a file names the file and the problem, so the
//! CLI can print it on one line and the GUI can show it in a toast.

use std::path::{Path, PathBuf};

/// Errors from the headless core.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },

    /// A file was read but its contents are not what they should be.
    #[error("{}: {msg}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },

    /// Two things that must agree do not (model vs data, card vs weights).
    #[error("mismatch: {0}")]
    Mismatch(String),

    /// A request that cannot be carried out as given (bad option, unknown name).
    #[error("{0}")]
    Invalid(String),

    /// The job was cancelled by the user.
    #[error("cancelled")]
    Cancelled,

    /// An error from candle's tensor code.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),

    /// An error from the GPU compute path.
    #[error("gpu: {0}")]
    Gpu(String),
}

/// Shorthand for results of the core.
pub type CoreResult<T> = Result<T, CoreError>;

impl CoreError {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A format error on `path`.
    pub fn format(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Self::Format {
            path: path.as_ref().to_path_buf(),
            msg: msg.into(),
        }
    }

    /// Whether this is a cancellation rather than a failure.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Self::Cancelled)
    }
}
