//! The command-line tool's error: every failure keeps its kind from the crate it came
//! from (a lost peer is a link error, a corrupt share file a share-file error).

use std::path::PathBuf;

use cipherdm_kernel::TransportError;
use cipherdm_models::ModelError;
use cipherdm_transport_tcp::{ConfigError, LinkError};

/// What can stop a `cipherdm` command.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// An option or argument that cannot be used (names the option).
    #[error("{0}")]
    Usage(String),
    /// A model, weight, share-file or kernel error (a lost peer during a job says so).
    #[error("{0}")]
    Model(#[from] ModelError),
    /// A problem in `deploy.toml`, naming the field.
    #[error("{0}")]
    Deploy(#[from] ConfigError),
    /// A link could not be set up or failed (connect, handshake, session hello, keys).
    #[error("{0}")]
    Link(#[from] LinkError),
    /// A link failed while the parties were agreeing on a job.
    #[error("{0}")]
    Transport(#[from] TransportError),
    /// A peer or client broke the deployment protocol, or a party reported a failure.
    #[error("{0}")]
    Peer(String),
    /// A failure at or on the link to one party (the underlying kind kept).
    #[error("party {party}: {source}")]
    AtParty {
        /// The party, 0 to 2.
        party: usize,
        /// What went wrong.
        source: Box<CliError>,
    },
    /// A file-system error, with the path it concerned.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl CliError {
    /// A [`CliError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<cipherdm_kernel::Error> for CliError {
    fn from(e: cipherdm_kernel::Error) -> Self {
        CliError::Model(e.into())
    }
}
