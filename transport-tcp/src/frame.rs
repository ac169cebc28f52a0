//! Link framing: every message on a link is one or more frames, each a 12-byte header —
//! the link's sequence number (`u64`, little-endian) and the payload length (`u32`) —
//! followed by the payload.
//!
//! The receiver always knows which sequence number comes next and, from the protocol,
//! how long the payload must be, so a header is checked *before* any payload byte is
//! stored: a wrong sequence number, a length other than the expected one, or a length
//! above the link's maximum is a typed [`FrameError`], never an allocation taken from the
//! wire. A protocol message longer than the maximum frame is carried by several frames
//! ([`frame_lengths`]), so the maximum bounds what one header can claim, not what the
//! protocol may send.
//!
//! ```
//! use cipherdm_transport_tcp::frame::{check_header, encode_header, Expect};
//! let h = encode_header(7, 5);
//! assert_eq!(check_header(&h, Expect::Exactly { seq: 7, len: 5 }, 1 << 20), Ok(5));
//! assert!(check_header(&h, Expect::Exactly { seq: 8, len: 5 }, 1 << 20).is_err());
//! ```

use core::fmt;

/// Header bytes: sequence number (8) and payload length (4).
pub const HEADER_LEN: usize = 12;

/// A framing error (all are fatal for the link).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The payload is longer than the link allows.
    TooLarge {
        /// Declared (or requested) length.
        len: u64,
        /// The link's maximum.
        max: u32,
    },
    /// The sequence number is not the next one.
    OutOfSequence {
        /// The next number this side expects.
        expected: u64,
        /// What the header says.
        got: u64,
    },
    /// The payload length differs from what the protocol expects.
    Length {
        /// Expected payload bytes.
        expected: u32,
        /// What the header says.
        got: u32,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the link maximum of {max}")
            }
            FrameError::OutOfSequence { expected, got } => {
                write!(f, "frame {got} arrived where frame {expected} was expected")
            }
            FrameError::Length { expected, got } => {
                write!(
                    f,
                    "frame carries {got} bytes, the protocol expects {expected}"
                )
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// The header of frame `seq` carrying `len` payload bytes.
pub fn encode_header(seq: u64, len: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(&seq.to_le_bytes());
    h[8..].copy_from_slice(&len.to_le_bytes());
    h
}

/// What the receiver expects of the next frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// A data frame whose length the protocol knows.
    Exactly {
        /// Sequence number.
        seq: u64,
        /// Payload bytes.
        len: u32,
    },
    /// A control message of variable length, at most `max` bytes.
    AtMost {
        /// Sequence number.
        seq: u64,
        /// Largest acceptable payload.
        max: u32,
    },
}

/// Checks a header against what is expected and the link's maximum frame; returns the
/// payload length.
pub fn check_header(h: &[u8; HEADER_LEN], expect: Expect, max: u32) -> Result<u32, FrameError> {
    let seq = u64::from_le_bytes(h[..8].try_into().expect("8 bytes"));
    let len = u32::from_le_bytes(h[8..].try_into().expect("4 bytes"));
    let (want_seq, limit, exact) = match expect {
        Expect::Exactly { seq, len } => (seq, max, Some(len)),
        Expect::AtMost { seq, max: m } => (seq, m.min(max), None),
    };
    if seq != want_seq {
        return Err(FrameError::OutOfSequence {
            expected: want_seq,
            got: seq,
        });
    }
    if len > limit {
        return Err(FrameError::TooLarge {
            len: len as u64,
            max: limit,
        });
    }
    match exact {
        Some(e) if e != len => Err(FrameError::Length {
            expected: e,
            got: len,
        }),
        _ => Ok(len),
    }
}

/// The payload lengths of the frames that carry a message of `n` bytes when frames hold
/// at most `max` bytes: `max`-byte frames and a shorter last one; one empty frame for an
/// empty message.
pub fn frame_lengths(n: usize, max: u32) -> impl Iterator<Item = u32> {
    let max = max.max(1) as usize;
    let frames = n.div_ceil(max).max(1);
    (0..frames).map(move |i| (n - i * max).min(max) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_bad_headers_are_typed_errors() {
        let h = encode_header(3, 256);
        assert_eq!(
            check_header(&h, Expect::Exactly { seq: 3, len: 256 }, 1024),
            Ok(256)
        );
        assert_eq!(
            check_header(&h, Expect::AtMost { seq: 3, max: 300 }, 1024),
            Ok(256)
        );
        assert_eq!(
            check_header(&h, Expect::AtMost { seq: 3, max: 100 }, 1024),
            Err(FrameError::TooLarge { len: 256, max: 100 })
        );
        assert_eq!(
            check_header(&h, Expect::Exactly { seq: 4, len: 256 }, 1024),
            Err(FrameError::OutOfSequence {
                expected: 4,
                got: 3
            })
        );
        assert_eq!(
            check_header(&h, Expect::Exactly { seq: 3, len: 255 }, 1024),
            Err(FrameError::Length {
                expected: 255,
                got: 256
            })
        );
        // A header announcing 4 GB is refused from its 12 bytes.
        let huge = encode_header(0, u32::MAX);
        assert_eq!(
            check_header(&huge, Expect::Exactly { seq: 0, len: 8 }, 64),
            Err(FrameError::TooLarge {
                len: u32::MAX as u64,
                max: 64
            })
        );
    }

    #[test]
    fn messages_split_into_frames_of_at_most_the_maximum() {
        assert_eq!(frame_lengths(0, 10).collect::<Vec<_>>(), vec![0]);
        assert_eq!(frame_lengths(10, 10).collect::<Vec<_>>(), vec![10]);
        assert_eq!(frame_lengths(25, 10).collect::<Vec<_>>(), vec![10, 10, 5]);
        assert_eq!(frame_lengths(3, 10).collect::<Vec<_>>(), vec![3]);
    }
}
