//! The one error type of the models crate.

use std::path::PathBuf;

use crate::secure::ShareFileError;

/// Everything that can go wrong building, loading or running a model.
///
/// Errors keep their kind: a kernel error (a closed link, a desync, a malformed graph)
/// stays [`ModelError::Kernel`] with its layer, a bad share file stays
/// [`ModelError::ShareFile`] with its path and defect.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// Tensor shapes that do not fit together (plaintext backends, samplers).
    #[error("shape error: {0}")]
    Shape(String),
    /// A weight file that does not match the graph: missing, unexpected, wrong shape or dtype.
    #[error("weight error: {0}")]
    Weight(String),
    /// A share file that cannot be used (which file and what is wrong).
    #[error("share file {0}")]
    ShareFile(#[from] ShareFileError),
    /// A malformed file (safetensors, JSON config, IDX, PNG).
    #[error("format error in {what}: {detail}")]
    Format {
        /// What was being read.
        what: String,
        /// What was wrong.
        detail: String,
    },
    /// An invalid option or configuration value.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A file-system error, with the path it concerned.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The job was stopped by party 0's decision after a step (e.g. its client left).
    #[error("cancelled after {after_steps} steps")]
    Cancelled {
        /// Steps finished before the stop.
        after_steps: usize,
    },
    /// An error from the protocol kernel: a link failure, a graph or protocol error,
    /// named by the layer it happened in.
    #[error("{0}")]
    Kernel(#[from] cipherdm_kernel::Error),
}

impl From<cipherdm_kernel::fixed::EncodeError> for ModelError {
    fn from(e: cipherdm_kernel::fixed::EncodeError) -> Self {
        ModelError::Kernel(e.into())
    }
}

impl ModelError {
    /// A [`ModelError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A [`ModelError::Format`].
    pub fn format(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Format {
            what: what.into(),
            detail: detail.into(),
        }
    }

    /// The link failure underneath, if the error is one (a lost or silent peer).
    pub fn transport(&self) -> Option<&cipherdm_kernel::TransportError> {
        match self {
            ModelError::Kernel(e) => e.transport(),
            _ => None,
        }
    }
}
