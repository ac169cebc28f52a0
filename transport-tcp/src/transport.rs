//! [`TcpTransport`]: the kernel's `Transport` over one authenticated TCP link per peer,
//! driven by a single-threaded `mio` event loop in the calling thread.
//!
//! Full duplex: `send` seals the message into the link's queue and writes what the
//! socket takes without blocking; every `recv` and `flush` keeps writing *all* queued
//! bytes and reading *all* links while it waits, so two parties that send each other
//! large messages at once never deadlock on full socket buffers. A wait ends with
//! [`TransportError::Timeout`] when no byte moves on the awaited link for the configured
//! timeout, and with [`TransportError::Closed`] when the peer goes away.

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use cipherdm_kernel::{PartyId, Transport, TransportError};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::channel::Channel;
use crate::error::LinkError;
use crate::frame::FrameError;
use crate::link::LinkState;

/// Wire traffic of one link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WireStats {
    /// Bytes written to the socket: payload, frame headers, record lengths and tags.
    pub sent: u64,
    /// Bytes read from the socket.
    pub received: u64,
}

/// `drive`'s watch value meaning "any link".
const ANY: usize = usize::MAX;

struct Peer {
    id: PartyId,
    stream: TcpStream,
    state: LinkState,
    /// Edge-triggered readiness we have not yet exhausted.
    readable: bool,
    writable: bool,
    /// The peer closed its side (or the socket failed).
    closed: bool,
}

/// A party's two links, driven by mio.
pub struct TcpTransport {
    me: PartyId,
    poll: Poll,
    events: Events,
    peers: Vec<Peer>,
    timeout: Duration,
}

impl core::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TcpTransport")
            .field("me", &self.me)
            .field(
                "peers",
                &self.peers.iter().map(|p| p.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn map_link_error(peer: PartyId, e: LinkError) -> TransportError {
    match e {
        LinkError::Corrupt => TransportError::Corrupt { peer },
        LinkError::Frame(FrameError::OutOfSequence { expected, got }) => {
            TransportError::OutOfSequence {
                peer,
                expected,
                got,
            }
        }
        LinkError::Frame(FrameError::Length { expected, got }) => TransportError::Desync {
            peer,
            expected: expected as usize,
            got: got as usize,
        },
        LinkError::Frame(FrameError::TooLarge { .. }) => {
            TransportError::Other("a frame exceeded the link maximum")
        }
        LinkError::Closed(_) => TransportError::Closed { peer },
        _ => TransportError::Other("link failure"),
    }
}

impl TcpTransport {
    /// Takes over two authenticated channels (to the two other parties) as the data plane
    /// of party `me`. `timeout` bounds every wait for progress.
    pub fn new(
        me: PartyId,
        links: Vec<(PartyId, Channel)>,
        timeout: Duration,
    ) -> Result<Self, LinkError> {
        let poll = Poll::new().map_err(|e| LinkError::io("creating the event loop", e))?;
        let mut peers = Vec::with_capacity(links.len());
        for (id, ch) in links {
            if id == me || peers.iter().any(|p: &Peer| p.id == id) {
                return Err(LinkError::Refused(format!(
                    "{me} was given a second link to {id}"
                )));
            }
            let Channel { stream, state, .. } = ch;
            stream
                .set_nonblocking(true)
                .map_err(|e| LinkError::io("making the socket non-blocking", e))?;
            let mut stream = TcpStream::from_std(stream);
            poll.registry()
                .register(
                    &mut stream,
                    Token(id.index()),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .map_err(|e| LinkError::io("registering the socket", e))?;
            peers.push(Peer {
                id,
                stream,
                state,
                readable: true,
                writable: true,
                closed: false,
            });
        }
        Ok(TcpTransport {
            me,
            poll,
            events: Events::with_capacity(8),
            peers,
            timeout,
        })
    }

    /// This party.
    pub fn id(&self) -> PartyId {
        self.me
    }

    /// Wire traffic per peer.
    pub fn wire_stats(&self) -> Vec<(PartyId, WireStats)> {
        self.peers
            .iter()
            .map(|p| {
                (
                    p.id,
                    WireStats {
                        sent: p.state.wire_sent,
                        received: p.state.wire_received,
                    },
                )
            })
            .collect()
    }

    /// Changes the progress timeout.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    fn index(&self, peer: PartyId) -> Result<usize, TransportError> {
        self.peers
            .iter()
            .position(|p| p.id == peer)
            .ok_or(TransportError::BadPeer {
                peer: peer.index() as u8,
            })
    }

    /// Moves bytes on every link without blocking; returns whether any moved on the
    /// link `watch`.
    fn drive(&mut self, watch: usize) -> Result<bool, TransportError> {
        let mut moved = false;
        for (i, p) in self.peers.iter_mut().enumerate() {
            // Write everything queued.
            while p.writable && !p.state.pending_tx().is_empty() && !p.closed {
                match p.stream.write(p.state.pending_tx()) {
                    Ok(0) => p.closed = true,
                    Ok(n) => {
                        p.state.advance_tx(n);
                        moved |= i == watch || watch == ANY;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => p.writable = false,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => p.closed = true,
                }
            }
            // Read while there is room.
            while p.readable && !p.closed {
                if p.state.rx_room() == 0 {
                    break;
                }
                let stream = &mut p.stream;
                match p
                    .state
                    .read_with(|space| stream.read(space))
                    .map_err(|e| map_link_error(p.id, e))?
                {
                    Ok(0) => p.closed = true,
                    Ok(_) => moved |= i == watch || watch == ANY,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => p.readable = false,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => p.closed = true,
                }
            }
        }
        Ok(moved)
    }

    /// Blocks until a socket becomes ready or `until` passes.
    fn wait(&mut self, until: Instant) -> Result<(), TransportError> {
        let left = until.saturating_duration_since(Instant::now());
        match self.poll.poll(&mut self.events, Some(left)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(()),
            Err(_) => return Err(TransportError::Other("the event loop failed")),
        }
        for ev in self.events.iter() {
            if let Some(p) = self.peers.iter_mut().find(|p| p.id.index() == ev.token().0) {
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    p.readable = true;
                }
                if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                    p.writable = true;
                }
            }
        }
        Ok(())
    }

    fn timeout_error(&self, peer: PartyId) -> TransportError {
        TransportError::Timeout {
            peer,
            after_ms: self.timeout.as_millis() as u64,
        }
    }

    /// Waits up to `limit` for any byte from `peer`; returns whether input is waiting.
    /// Lets an idle party poll for the next job while checking for shutdown.
    pub fn wait_for_input(
        &mut self,
        peer: PartyId,
        limit: Duration,
    ) -> Result<bool, TransportError> {
        let i = self.index(peer)?;
        let until = Instant::now() + limit;
        loop {
            self.drive(i)?;
            if self.peers[i].state.has_input() {
                return Ok(true);
            }
            if self.peers[i].closed {
                return Err(TransportError::Closed { peer });
            }
            if Instant::now() >= until {
                return Ok(false);
            }
            self.wait(until)?;
        }
    }
}

impl TcpTransport {
    /// An idle party's look at its links: waits up to `limit` for input on any of them.
    /// Returns the first peer with input waiting (or `None`), and fails with
    /// [`TransportError::Closed`] as soon as any link is closed — so a peer that stopped
    /// or restarted is noticed between jobs, not at the next job.
    pub fn idle(&mut self, limit: Duration) -> Result<Option<PartyId>, TransportError> {
        let until = Instant::now() + limit;
        loop {
            self.drive(ANY)?;
            if let Some(p) = self.peers.iter().find(|p| p.closed) {
                return Err(TransportError::Closed { peer: p.id });
            }
            if let Some(p) = self.peers.iter().find(|p| p.state.has_input()) {
                return Ok(Some(p.id));
            }
            if Instant::now() >= until {
                return Ok(None);
            }
            self.wait(until)?;
        }
    }
}

impl Transport for TcpTransport {
    fn send(&mut self, to: PartyId, msg: &[u8]) -> Result<(), TransportError> {
        let i = self.index(to)?;
        if self.peers[i].closed {
            return Err(TransportError::Closed { peer: to });
        }
        self.peers[i]
            .state
            .queue_message(msg)
            .map_err(|e| map_link_error(to, e))?;
        self.drive(i)?;
        Ok(())
    }

    fn recv(&mut self, from: PartyId, buf: &mut [u8]) -> Result<(), TransportError> {
        let i = self.index(from)?;
        let mut filled = 0usize;
        let mut last_progress = Instant::now();
        loop {
            let before = filled;
            if self.peers[i]
                .state
                .take_message(buf, &mut filled)
                .map_err(|e| map_link_error(from, e))?
            {
                return Ok(());
            }
            let moved = self.drive(i)?;
            if moved || filled > before {
                last_progress = Instant::now();
                continue;
            }
            if self.peers[i].closed {
                return Err(TransportError::Closed { peer: from });
            }
            let until = last_progress + self.timeout;
            if Instant::now() >= until {
                return Err(self.timeout_error(from));
            }
            self.wait(until)?;
        }
    }

    fn flush(&mut self) -> Result<(), TransportError> {
        let mut last_progress = Instant::now();
        loop {
            let any_moved = self.drive(ANY)?;
            let pending = self
                .peers
                .iter()
                .find(|p| !p.state.pending_tx().is_empty())
                .map(|p| (p.id, p.closed));
            match pending {
                None => return Ok(()),
                Some((peer, true)) => return Err(TransportError::Closed { peer }),
                Some((peer, false)) => {
                    if any_moved {
                        last_progress = Instant::now();
                        continue;
                    }
                    let until = last_progress + self.timeout;
                    if Instant::now() >= until {
                        return Err(self.timeout_error(peer));
                    }
                    self.wait(until)?;
                }
            }
        }
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        // Best effort: push out what is queued (e.g. the last protocol message) before
        // the sockets close, bounded by the timeout.
        self.timeout = self.timeout.min(Duration::from_secs(2));
        let _ = self.flush();
        for p in &self.peers {
            let _ = p.stream.shutdown(std::net::Shutdown::Write);
        }
    }
}
