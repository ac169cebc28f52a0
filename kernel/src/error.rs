//! The kernel's error types: plain enums (no `std`), `Display` and `core::error::Error`.

use alloc::boxed::Box;
use alloc::string::String;
use core::fmt;

use crate::fixed::EncodeError;
use crate::transport::PartyId;

/// What went wrong on a link. Transports return these; the kernel wraps them in
/// [`Error::Transport`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportError {
    /// Nothing arrived from `peer` within `after_ms` milliseconds.
    Timeout {
        /// The silent peer.
        peer: PartyId,
        /// The configured timeout in milliseconds.
        after_ms: u64,
    },
    /// The link to `peer` is closed (the peer vanished or shut down).
    Closed {
        /// The peer whose link closed.
        peer: PartyId,
    },
    /// The next message from `peer` has `got` bytes but the protocol expects `expected`.
    Desync {
        /// The sender.
        peer: PartyId,
        /// Bytes the protocol expects.
        expected: usize,
        /// Bytes that arrived.
        got: usize,
    },
    /// A message from `peer` failed its integrity check (corrupted or forged).
    Corrupt {
        /// The sender.
        peer: PartyId,
    },
    /// Messages from `peer` arrived out of sequence: message `got` came when `expected`
    /// was due (a message was lost or replayed).
    OutOfSequence {
        /// The sender.
        peer: PartyId,
        /// Sequence number due.
        expected: u64,
        /// Sequence number received.
        got: u64,
    },
    /// A party tried to talk to itself or to a party outside `0..3`.
    BadPeer {
        /// The offending peer index.
        peer: u8,
    },
    /// Any other transport failure, with a short static description.
    Other(&'static str),
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::Timeout { peer, after_ms } => {
                write!(f, "timed out after {after_ms} ms waiting for {peer}")
            }
            TransportError::Closed { peer } => write!(f, "link to {peer} is closed"),
            TransportError::Desync {
                peer,
                expected,
                got,
            } => write!(
                f,
                "protocol desync with {peer}: expected a {expected}-byte message, got {got} bytes"
            ),
            TransportError::Corrupt { peer } => {
                write!(f, "message from {peer} failed its integrity check")
            }
            TransportError::OutOfSequence {
                peer,
                expected,
                got,
            } => write!(
                f,
                "message from {peer} out of sequence: expected #{expected}, got #{got}"
            ),
            TransportError::BadPeer { peer } => write!(f, "invalid peer index {peer}"),
            TransportError::Other(s) => write!(f, "transport error: {s}"),
        }
    }
}

impl core::error::Error for TransportError {}

/// Every fallible kernel operation returns this.
///
/// Errors raised inside a graph layer arrive wrapped in [`Error::Layer`], which names the
/// layer; [`Error::root`] gives the underlying kind (a closed link stays a closed link).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed (timeout, closed link, desync, corruption).
    Transport(TransportError),
    /// A real could not be encoded in fixed point.
    Encode(EncodeError),
    /// Two operands, or an operand and its shape, disagree in length.
    LengthMismatch {
        /// The operation or check that failed.
        what: &'static str,
        /// The length it expected.
        expected: usize,
        /// The length it got.
        got: usize,
    },
    /// A shape is not valid for the operation.
    InvalidShape(&'static str),
    /// A protocol parameter is out of its documented range.
    InvalidParameter(&'static str),
    /// Shares that should form a consistent sharing do not.
    Inconsistent(&'static str),
    /// Input was expected from this party (it is the owner) but none was given, or the
    /// reverse.
    MissingInput,
    /// A model graph that is not well formed, or inputs that do not fit it.
    Graph {
        /// The node (layer) concerned.
        node: String,
        /// What is wrong.
        detail: String,
    },
    /// An error raised while evaluating the layer `layer` of a graph.
    Layer {
        /// The layer's name.
        layer: String,
        /// The underlying error.
        source: Box<Error>,
    },
    /// The platform could not supply randomness for fresh keys.
    Entropy,
}

impl Error {
    /// `self` attributed to the graph layer `layer` (a no-op for errors that already
    /// name a layer).
    pub fn in_layer(self, layer: &str) -> Self {
        match self {
            e @ Error::Layer { .. } => e,
            e => Error::Layer {
                layer: layer.into(),
                source: Box::new(e),
            },
        }
    }

    /// The underlying error, below any [`Error::Layer`] context.
    ///
    /// ```
    /// use cipherdm_kernel::{Error, PartyId, TransportError};
    /// let lost = Error::Transport(TransportError::Closed { peer: PartyId::P1 });
    /// let e = lost.clone().in_layer("down.0.conv");
    /// assert_eq!(e.root(), &lost);
    /// assert_eq!(e.to_string(), "layer `down.0.conv`: link to party 1 is closed");
    /// ```
    pub fn root(&self) -> &Error {
        match self {
            Error::Layer { source, .. } => source.root(),
            e => e,
        }
    }

    /// The link failure underneath, if this is one.
    pub fn transport(&self) -> Option<&TransportError> {
        match self.root() {
            Error::Transport(t) => Some(t),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Transport(e) => write!(f, "{e}"),
            Error::Encode(e) => write!(f, "{e}"),
            Error::LengthMismatch {
                what,
                expected,
                got,
            } => {
                write!(f, "{what}: expected {expected} elements, got {got}")
            }
            Error::InvalidShape(s) => write!(f, "invalid shape: {s}"),
            Error::InvalidParameter(s) => write!(f, "invalid parameter: {s}"),
            Error::Inconsistent(s) => write!(f, "inconsistent shares: {s}"),
            Error::MissingInput => {
                write!(
                    f,
                    "the input owner must pass values and the other parties must not"
                )
            }
            Error::Graph { node, detail } => write!(f, "graph node `{node}`: {detail}"),
            Error::Layer { layer, source } => write!(f, "layer `{layer}`: {source}"),
            Error::Entropy => write!(f, "the platform supplied no randomness for fresh keys"),
        }
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Error::Transport(e) => Some(e),
            Error::Encode(e) => Some(e),
            Error::Layer { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

impl From<TransportError> for Error {
    fn from(e: TransportError) -> Self {
        Error::Transport(e)
    }
}

impl From<EncodeError> for Error {
    fn from(e: EncodeError) -> Self {
        Error::Encode(e)
    }
}
