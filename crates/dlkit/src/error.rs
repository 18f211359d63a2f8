//! The crate's error type: every failure a student can cause says what went wrong and what to do.

use std::path::PathBuf;

/// Errors raised by dlkit, with enough context to act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed (shape mismatch, device error, ...).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A dataset directory or file is not where it should be.
    #[error("{what} not found at {path}: {hint}")]
    DatasetMissing {
        /// What was looked for ("CIFAR-10", "Fashion-MNIST", ...).
        what: String,
        /// The path that was tried.
        path: PathBuf,
        /// How to get it (names the fetch command).
        hint: String,
    },
    /// A data file exists but its content is wrong (bad magic, truncated, bad label, ...).
    #[error("{path}: {reason}")]
    BadFile {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An I/O error on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The path being read or written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON (de)serialisation error on a named path.
    #[error("{path}: {source}")]
    Json {
        /// The file being read or written.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// An invalid configuration or hyperparameter.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Drawing a chart failed.
    #[error("plotting failed: {0}")]
    Plot(String),
    /// The training loss stopped being a finite number.
    #[error("{0}")]
    Diverged(Divergence),
}

/// Where a run's loss stopped being a finite number.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Divergence {
    /// Epoch, from 1.
    pub epoch: usize,
    /// Step within the epoch, from 1.
    pub step: usize,
    /// Learning rate of that step.
    pub lr: f64,
    /// The loss seen (NaN or ±∞).
    #[serde(with = "crate::serde_float")]
    pub loss: f64,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "training diverged: the loss is {} at epoch {}, step {} (learning rate {:.3e}); lower the learning rate",
            self.loss, self.epoch, self.step, self.lr
        )
    }
}

/// Result with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wrap an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// The message without the backtrace candle attaches when `RUST_BACKTRACE` is set: what a
    /// command line prints after `error:`.
    pub fn message(&self) -> String {
        fn without_backtrace(e: &candle_core::Error) -> String {
            match e {
                candle_core::Error::WithBacktrace { inner, .. } => without_backtrace(inner),
                other => other.to_string(),
            }
        }
        match self {
            Error::Candle(e) => without_backtrace(e),
            other => other.to_string(),
        }
    }

    /// A bad-file error for `path` with a reason.
    pub fn bad_file(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::BadFile { path: path.into(), reason: reason.into() }
    }
}

impl From<Error> for candle_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Candle(c) => c,
            other => candle_core::Error::Msg(other.to_string()),
        }
    }
}
