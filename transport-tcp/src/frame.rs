//! Link framing: every message on a link is a 12-byte header — the link's sequence
//! number (`u64`, little-endian) and the payload length (`u32`) — followed by the payload.
//!
//! The receiver always knows which sequence number comes next and, from the protocol,
//! how long the payload must be, so a header is checked *before* any payload buffer is
//! allocated: a wrong sequence number, a length other than the expected one, or a length
//! above the link's maximum is a typed [`FrameError`], never an allocation taken from the
//! wire. [`FrameDecoder`] accepts bytes in whatever pieces the socket delivers them.
//!
//! ```
//! use cipherdm_transport_tcp::frame::{encode, FrameDecoder, Expect};
//! let wire = encode(7, b"hello", 1 << 20).unwrap();
//! let mut d = FrameDecoder::new(1 << 20);
//! d.expect(Expect { seq: 7, len: 5 }).unwrap();
//! let (a, b) = wire.split_at(4);
//! assert_eq!(d.feed(a).unwrap(), None); // header incomplete
//! assert_eq!(d.feed(b).unwrap(), Some(b"hello".to_vec()));
//! ```

use core::fmt;

/// Header bytes: sequence number (8) and payload length (4).
pub const HEADER_LEN: usize = 12;

/// A framing error (all are fatal for the link).
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// Bytes arrived while no frame was expected.
    Unexpected,
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
            FrameError::Unexpected => write!(f, "bytes arrived while no frame was expected"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Encodes one frame: header and payload.
pub fn encode(seq: u64, payload: &[u8], max: u32) -> Result<Vec<u8>, FrameError> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&l| l <= max)
        .ok_or(FrameError::TooLarge {
            len: payload.len() as u64,
            max,
        })?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// What the receiver expects next on a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expect {
    /// Sequence number.
    pub seq: u64,
    /// Payload bytes.
    pub len: u32,
}

#[derive(Debug)]
enum State {
    /// No frame expected.
    Idle,
    /// Collecting the header of the expected frame.
    Header(Expect, [u8; HEADER_LEN], usize),
    /// Header checked; collecting `len` payload bytes.
    Payload(Vec<u8>, usize),
}

/// Incremental, allocation-safe frame reader for one link.
#[derive(Debug)]
pub struct FrameDecoder {
    max: u32,
    state: State,
}

impl FrameDecoder {
    /// A decoder for frames of at most `max` payload bytes.
    pub fn new(max: u32) -> Self {
        Self {
            max,
            state: State::Idle,
        }
    }

    /// Announces the next frame. Its length is checked against the maximum here, so a
    /// protocol that would need an oversized frame fails before any byte is read.
    pub fn expect(&mut self, e: Expect) -> Result<(), FrameError> {
        if e.len > self.max {
            return Err(FrameError::TooLarge {
                len: e.len as u64,
                max: self.max,
            });
        }
        self.state = State::Header(e, [0; HEADER_LEN], 0);
        Ok(())
    }

    /// Whether a frame is expected and not yet complete.
    pub fn busy(&self) -> bool {
        !matches!(self.state, State::Idle)
    }

    /// Consumes bytes; returns the payload once the expected frame is complete. Bytes
    /// beyond the frame are not consumed: `feed` returns after the frame, and the caller
    /// passes the rest once it has announced the next frame ([`Self::consumed`] says how
    /// many were used).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<Vec<u8>>, FrameError> {
        self.feed_counted(bytes).map(|(p, _)| p)
    }

    /// Like [`Self::feed`], also returning how many bytes of `bytes` were used.
    pub fn feed_counted(
        &mut self,
        mut bytes: &[u8],
    ) -> Result<(Option<Vec<u8>>, usize), FrameError> {
        let total = bytes.len();
        loop {
            match &mut self.state {
                State::Idle => {
                    return if bytes.is_empty() {
                        Ok((None, total))
                    } else {
                        Err(FrameError::Unexpected)
                    };
                }
                State::Header(e, buf, have) => {
                    let take = (HEADER_LEN - *have).min(bytes.len());
                    buf[*have..*have + take].copy_from_slice(&bytes[..take]);
                    *have += take;
                    bytes = &bytes[take..];
                    if *have < HEADER_LEN {
                        return Ok((None, total - bytes.len()));
                    }
                    let seq = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
                    let len = u32::from_le_bytes(buf[8..].try_into().expect("4 bytes"));
                    if seq != e.seq {
                        return Err(FrameError::OutOfSequence {
                            expected: e.seq,
                            got: seq,
                        });
                    }
                    if len > self.max {
                        return Err(FrameError::TooLarge {
                            len: len as u64,
                            max: self.max,
                        });
                    }
                    if len != e.len {
                        return Err(FrameError::Length {
                            expected: e.len,
                            got: len,
                        });
                    }
                    // Checked: the allocation is the protocol's expected size.
                    self.state = State::Payload(vec![0; len as usize], 0);
                }
                State::Payload(buf, have) => {
                    let take = (buf.len() - *have).min(bytes.len());
                    buf[*have..*have + take].copy_from_slice(&bytes[..take]);
                    *have += take;
                    bytes = &bytes[take..];
                    if *have < buf.len() {
                        return Ok((None, total - bytes.len()));
                    }
                    let State::Payload(done, _) = core::mem::replace(&mut self.state, State::Idle)
                    else {
                        unreachable!("in the payload state");
                    };
                    return Ok((Some(done), total - bytes.len()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_in_any_split() {
        let payload: Vec<u8> = (0..=255).collect();
        let wire = encode(3, &payload, 1024).unwrap();
        for step in [1, 5, 12, 13, 100, wire.len()] {
            let mut d = FrameDecoder::new(1024);
            d.expect(Expect { seq: 3, len: 256 }).unwrap();
            let mut got = None;
            for chunk in wire.chunks(step) {
                let (p, used) = d.feed_counted(chunk).unwrap();
                assert_eq!(used, chunk.len());
                if p.is_some() {
                    got = p;
                }
            }
            assert_eq!(got.as_deref(), Some(&payload[..]), "step {step}");
            assert!(!d.busy());
        }
    }

    #[test]
    fn a_second_frame_in_the_same_read_is_left_for_the_next_expect() {
        let mut wire = encode(0, b"ab", 16).unwrap();
        wire.extend(encode(1, b"cde", 16).unwrap());
        let mut d = FrameDecoder::new(16);
        d.expect(Expect { seq: 0, len: 2 }).unwrap();
        let (p, used) = d.feed_counted(&wire).unwrap();
        assert_eq!(p.as_deref(), Some(&b"ab"[..]));
        d.expect(Expect { seq: 1, len: 3 }).unwrap();
        assert_eq!(d.feed(&wire[used..]).unwrap().as_deref(), Some(&b"cde"[..]));
    }

    #[test]
    fn bad_headers_are_typed_errors_before_any_allocation() {
        let mut d = FrameDecoder::new(64);
        // A header announcing 4 GB: refused from its 12 bytes.
        let mut huge = 0u64.to_le_bytes().to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        d.expect(Expect { seq: 0, len: 8 }).unwrap();
        assert_eq!(
            d.feed(&huge),
            Err(FrameError::TooLarge {
                len: u32::MAX as u64,
                max: 64
            })
        );
        let mut d = FrameDecoder::new(64);
        d.expect(Expect { seq: 5, len: 2 }).unwrap();
        assert_eq!(
            d.feed(&encode(6, b"xy", 64).unwrap()),
            Err(FrameError::OutOfSequence {
                expected: 5,
                got: 6
            })
        );
        let mut d = FrameDecoder::new(64);
        d.expect(Expect { seq: 0, len: 2 }).unwrap();
        assert_eq!(
            d.feed(&encode(0, b"xyz", 64).unwrap()),
            Err(FrameError::Length {
                expected: 2,
                got: 3
            })
        );
        let mut d = FrameDecoder::new(64);
        assert_eq!(d.feed(b"junk"), Err(FrameError::Unexpected));
        assert!(matches!(
            d.expect(Expect { seq: 0, len: 65 }),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(matches!(
            encode(0, &[0; 65], 64),
            Err(FrameError::TooLarge { len: 65, max: 64 })
        ));
    }
}
