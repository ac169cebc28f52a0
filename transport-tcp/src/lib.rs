//! Framed, encrypted TCP links between the three cipherdm parties (issue 7).
//!
//! Built so far: [`frame`], the link framing (sequence number, length, maximum size)
//! with an incremental decoder that checks every header against what the protocol
//! expects before allocating the payload. The mio data plane, the encrypted handshake and
//! the party daemon follow.

pub mod frame;
