//! The `Transport` trait a host implements to carry the kernel's messages, and party ids.
//!
//! The contract is message-oriented and small on purpose:
//! - [`Transport::send`] queues one message for a peer and must not block forever on a
//!   peer that is itself sending (buffer it, or drive reads while writing);
//! - [`Transport::recv`] takes the *next* message from a peer into a buffer whose length
//!   the protocol already knows; a message of another length is
//!   [`TransportError::Desync`], never an allocation sized by the wire;
//! - [`Transport::flush`] pushes queued messages out (a no-op for in-memory links).
//!
//! Every call must return within the transport's configured timeout.

use alloc::vec::Vec;
use core::fmt;

use crate::error::TransportError;

/// One of the three parties: 0, 1 or 2.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct PartyId(u8);

impl PartyId {
    /// Party 0.
    pub const P0: PartyId = PartyId(0);
    /// Party 1.
    pub const P1: PartyId = PartyId(1);
    /// Party 2.
    pub const P2: PartyId = PartyId(2);
    /// All three parties in order.
    pub const ALL: [PartyId; 3] = [PartyId(0), PartyId(1), PartyId(2)];

    /// The party with index `i`, if `i < 3`.
    pub const fn new(i: usize) -> Option<PartyId> {
        if i < 3 { Some(PartyId(i as u8)) } else { None }
    }

    /// The index `0..3`.
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// Party `i + 1 mod 3`.
    pub const fn next(self) -> PartyId {
        PartyId((self.0 + 1) % 3)
    }

    /// Party `i - 1 mod 3`.
    pub const fn prev(self) -> PartyId {
        PartyId((self.0 + 2) % 3)
    }

    /// Party `i + k mod 3`.
    pub const fn plus(self, k: usize) -> PartyId {
        PartyId(((self.0 as usize + k) % 3) as u8)
    }
}

impl fmt::Debug for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "P{}", self.0)
    }
}

impl fmt::Display for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "party {}", self.0)
    }
}

/// A party's links to its two peers.
///
/// See the [module docs](self) for the contract. An implementation for a host system
/// usually wraps its own sockets or RPC layer; `cipherdm-transport-mem` and
/// `cipherdm-transport-tcp` are the two this project ships.
pub trait Transport {
    /// Sends one message to `to`.
    fn send(&mut self, to: PartyId, msg: &[u8]) -> Result<(), TransportError>;

    /// Receives the next message from `from`; it must be exactly `buf.len()` bytes.
    fn recv(&mut self, from: PartyId, buf: &mut [u8]) -> Result<(), TransportError>;

    /// Pushes every queued message onto the wire.
    fn flush(&mut self) -> Result<(), TransportError>;

    /// Sends one owned message; transports that can take ownership (in-memory queues)
    /// override this to avoid a copy.
    fn send_owned(&mut self, to: PartyId, msg: Vec<u8>) -> Result<(), TransportError> {
        self.send(to, &msg)
    }

    /// Receives the next message from `from`, which must be exactly `len` bytes, into a
    /// fresh buffer. `len` always comes from the protocol, never from the wire.
    fn recv_owned(&mut self, from: PartyId, len: usize) -> Result<Vec<u8>, TransportError> {
        let mut buf = alloc::vec![0u8; len];
        self.recv(from, &mut buf)?;
        Ok(buf)
    }
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn send(&mut self, to: PartyId, msg: &[u8]) -> Result<(), TransportError> {
        (**self).send(to, msg)
    }
    fn recv(&mut self, from: PartyId, buf: &mut [u8]) -> Result<(), TransportError> {
        (**self).recv(from, buf)
    }
    fn flush(&mut self) -> Result<(), TransportError> {
        (**self).flush()
    }
    fn send_owned(&mut self, to: PartyId, msg: Vec<u8>) -> Result<(), TransportError> {
        (**self).send_owned(to, msg)
    }
    fn recv_owned(&mut self, from: PartyId, len: usize) -> Result<Vec<u8>, TransportError> {
        (**self).recv_owned(from, len)
    }
}
