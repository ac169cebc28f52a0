//! Errors of links, handshakes and keys.

use std::time::Duration;

use crate::frame::FrameError;

/// Why a link could not be set up or failed outside the kernel's protocol calls.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// A socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, and with whom.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A key could not be made, read or parsed.
    #[error("key: {0}")]
    Key(String),
    /// The Noise handshake failed (wrong key, garbage, or a peer in another mode).
    #[error("handshake: {0}")]
    Handshake(String),
    /// The connecting side is not one this side accepts.
    #[error("refused: {0}")]
    Refused(String),
    /// A handshake parameter differs between the two sides.
    #[error("{field} differs: ours is {ours}, the peer's is {theirs}")]
    Mismatch {
        /// Which parameter.
        field: &'static str,
        /// This side's value.
        ours: String,
        /// The peer's value.
        theirs: String,
    },
    /// A frame broke the framing rules.
    #[error("framing: {0}")]
    Frame(#[from] FrameError),
    /// A record failed its integrity check.
    #[error("a record from the peer failed its integrity check")]
    Corrupt,
    /// Nothing (or not enough) arrived in time.
    #[error("timed out after {after:?} while {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The configured limit.
        after: Duration,
    },
    /// The peer closed the connection.
    #[error("the peer closed the connection while {0}")]
    Closed(String),
    /// The responder is at its limit of connections being set up and asked us to come
    /// back later (its address).
    #[error("{0} is busy: it has as many connections being set up as it takes; try again")]
    Busy(String),
    /// Given up because this side is stopping.
    #[error("stopped: this side is shutting down")]
    Stopped,
    /// A message could not be decoded.
    #[error("malformed message: {0}")]
    Malformed(String),
}

impl LinkError {
    /// An I/O error with its context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        LinkError::Io {
            context: context.into(),
            source,
        }
    }
}
