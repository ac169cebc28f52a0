//! The one error type of the models crate.

use std::path::PathBuf;

/// Everything that can go wrong building, loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Tensor or graph shapes that do not fit together.
    #[error("shape error: {0}")]
    Shape(String),
    /// A weight file that does not match the graph: missing, unexpected, wrong shape or dtype.
    #[error("weight error: {0}")]
    Weight(String),
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
    /// A deployment's link, peer or client failed (network, handshake, protocol).
    #[error("{0}")]
    Network(String),
    /// A file-system error, with the path it concerned.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An error from the protocol kernel (for example a missing approximation).
    #[error("kernel: {0}")]
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
}
