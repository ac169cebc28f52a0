//! Setting up a link: TCP connect with retry and back-off, a preamble that fixes the
//! protocol version and the mode, the Noise `IK` handshake with pinned static keys, and
//! blocking control messages with timeouts (used for the hello, jobs and reports).
//!
//! Why Noise (`snow`) rather than TLS: the deployment already pins raw public keys and
//! there is no certificate authority, names or negotiation to manage; `IK` gives mutual
//! authentication and forward secrecy in one round trip with no X.509 parsing on the
//! attack surface, and after it the split keys drive AES-256-GCM records sealed in place with
//! `ring` (hardware-accelerated; Noise's nonce scheme, our record layout).
//!
//! Wire preamble (initiator → responder, 8 bytes): `b"CDM"`, protocol version, mode
//! (`b'N'` Noise / `b'P'` plaintext), 3 zero bytes. The responder refuses any other
//! preamble. Handshake messages follow as `u16` big-endian length + bytes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::error::LinkError;
use crate::keys::{KeyPair, PublicKey};
use crate::link::{Cipher, LinkState};

/// Noise protocol name used on every link.
pub const NOISE_PARAMS: &str = "Noise_IK_25519_AESGCM_SHA256";
/// Version of the link protocol (the preamble, framing and records).
pub const PROTOCOL_VERSION: u8 = 1;
/// Largest handshake message accepted.
pub(crate) const HANDSHAKE_MAX: usize = 1024;
/// What a responder that cannot take a connection now sends in place of its handshake
/// message: a zero length (a real handshake message is never empty). The initiator
/// reads [`LinkError::Busy`] and retries until its connect deadline.
pub const BUSY_REPLY: [u8; 2] = [0, 0];

/// Whether links are encrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Mode {
    /// Noise-encrypted and mutually authenticated (the default).
    Encrypted,
    /// No encryption, identities claimed in clear: **benchmarks only**.
    Plaintext,
}

impl Mode {
    const fn byte(self) -> u8 {
        match self {
            Mode::Encrypted => b'N',
            Mode::Plaintext => b'P',
        }
    }
}

/// Timing and size limits of a link.
#[derive(Clone, Copy, Debug)]
pub struct LinkConfig {
    /// Encrypted or plaintext.
    pub mode: Mode,
    /// Longest wait for any progress on a read or write.
    pub timeout: Duration,
    /// How long a dialler keeps retrying a refused connection.
    pub connect_deadline: Duration,
    /// Largest frame payload.
    pub max_frame: u32,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            mode: Mode::Encrypted,
            timeout: Duration::from_secs(30),
            connect_deadline: Duration::from_secs(30),
            max_frame: 1 << 20,
        }
    }
}

/// Closes a [`Channel`]'s socket from another thread ([`Channel::closer`]).
#[derive(Debug)]
pub struct Closer(TcpStream);

impl Closer {
    /// Shuts the socket down in both directions.
    pub fn close(&self) {
        let _ = self.0.shutdown(std::net::Shutdown::Both);
    }
}

/// An authenticated link in blocking mode.
#[derive(Debug)]
pub struct Channel {
    pub(crate) stream: TcpStream,
    pub(crate) state: LinkState,
    peer_key: PublicKey,
    peer_addr: SocketAddr,
    timeout: Duration,
}

/// The preamble of encrypted links, also the Noise prologue (it binds the version).
static ENCRYPTED_PREAMBLE: [u8; 8] = preamble(Mode::Encrypted);

const fn preamble(mode: Mode) -> [u8; 8] {
    [b'C', b'D', b'M', PROTOCOL_VERSION, mode.byte(), 0, 0, 0]
}

fn describe_preamble(p: &[u8; 8]) -> String {
    if &p[..3] != b"CDM" {
        return "not a cipherdm link".into();
    }
    let mode = match p[4] {
        b'N' => "encrypted",
        b'P' => "plaintext",
        _ => "an unknown mode",
    };
    format!("link protocol version {}, {mode}", p[3])
}

fn configure(stream: &TcpStream, timeout: Duration, who: &str) -> Result<(), LinkError> {
    stream
        .set_nodelay(true)
        .and_then(|_| stream.set_read_timeout(Some(timeout)))
        .and_then(|_| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| LinkError::io(format!("configuring the socket to {who}"), e))
}

fn io_err(e: std::io::Error, what: &str, timeout: Duration) -> LinkError {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => LinkError::Timeout {
            what: what.into(),
            after: timeout,
        },
        std::io::ErrorKind::UnexpectedEof
        | std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::ConnectionAborted
        | std::io::ErrorKind::BrokenPipe => LinkError::Closed(what.into()),
        _ => LinkError::io(what, e),
    }
}

fn write_hs(s: &mut TcpStream, msg: &[u8], t: Duration) -> Result<(), LinkError> {
    let mut out = Vec::with_capacity(2 + msg.len());
    out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    out.extend_from_slice(msg);
    s.write_all(&out)
        .map_err(|e| io_err(e, "sending a handshake message", t))
}

fn read_hs(s: &mut TcpStream, t: Duration) -> Result<Vec<u8>, LinkError> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len)
        .map_err(|e| io_err(e, "reading a handshake message", t))?;
    let n = u16::from_be_bytes(len) as usize;
    if n > HANDSHAKE_MAX {
        return Err(LinkError::Handshake(format!(
            "a handshake message of {n} bytes (at most {HANDSHAKE_MAX})"
        )));
    }
    let mut msg = vec![0u8; n];
    s.read_exact(&mut msg)
        .map_err(|e| io_err(e, "reading a handshake message", t))?;
    Ok(msg)
}

fn noise_builder<'a>(me: &'a KeyPair) -> Result<snow::Builder<'a>, LinkError> {
    snow::Builder::new(NOISE_PARAMS.parse().expect("valid Noise parameters"))
        .local_private_key(me.secret())
        .and_then(|b| b.prologue(&ENCRYPTED_PREAMBLE))
        .map_err(|e| LinkError::Handshake(e.to_string()))
}

/// The responder's first check: the 8-byte preamble must be ours (magic, version, mode).
pub fn check_preamble(got: &[u8; 8], mode: Mode) -> Result<(), LinkError> {
    if *got == preamble(mode) {
        return Ok(());
    }
    Err(LinkError::Refused(format!(
        "speaks {}, this side speaks {}",
        describe_preamble(got),
        describe_preamble(&preamble(mode))
    )))
}

/// The responder's reading of the initiator's first Noise message (sans I/O): returns the
/// handshake state, ready to write the reply, and the initiator's authenticated static
/// key (which the caller must check against its pins).
pub fn respond_noise(
    me: &KeyPair,
    first: &[u8],
) -> Result<(snow::HandshakeState, PublicKey), LinkError> {
    if first.len() > HANDSHAKE_MAX {
        return Err(LinkError::Handshake(format!(
            "a handshake message of {} bytes (at most {HANDSHAKE_MAX})",
            first.len()
        )));
    }
    let mut hs = noise_builder(me)?
        .build_responder()
        .map_err(|e| LinkError::Handshake(e.to_string()))?;
    let mut p = [0u8; HANDSHAKE_MAX];
    hs.read_message(first, &mut p).map_err(|_| {
        LinkError::Handshake("a first handshake message that does not open with our key".into())
    })?;
    let key = PublicKey(
        hs.get_remote_static()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| LinkError::Handshake("no static key".into()))?,
    );
    Ok((hs, key))
}

impl Channel {
    /// Connects to `addr` (retrying refused connections with exponential back-off until
    /// `cfg.connect_deadline`) and authenticates as `me` to the peer holding `peer`.
    pub fn connect(
        addr: &str,
        me: &KeyPair,
        peer: &PublicKey,
        cfg: &LinkConfig,
    ) -> Result<Channel, LinkError> {
        Self::connect_unless(addr, me, peer, cfg, &|| false)
    }

    /// [`Channel::connect`] that also retries a [`LinkError::Busy`] responder, and gives
    /// up with [`LinkError::Stopped`] within about a second once `stop` says so.
    pub fn connect_unless(
        addr: &str,
        me: &KeyPair,
        peer: &PublicKey,
        cfg: &LinkConfig,
        stop: &dyn Fn() -> bool,
    ) -> Result<Channel, LinkError> {
        let addrs: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(|e| LinkError::io(format!("resolving {addr}"), e))?
            .collect();
        let target = *addrs
            .first()
            .ok_or_else(|| LinkError::Refused(format!("{addr} resolves to no address")))?;
        let deadline = Instant::now() + cfg.connect_deadline;
        let mut backoff = Duration::from_millis(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // Short attempts, so that `stop` is looked at at least every second.
            let attempt = left
                .min(cfg.timeout)
                .min(Duration::from_secs(1))
                .max(Duration::from_millis(10));
            let outcome = TcpStream::connect_timeout(&target, attempt)
                .map_err(|e| {
                    LinkError::io(
                        format!(
                            "connecting to {addr} (gave up after {:?})",
                            cfg.connect_deadline
                        ),
                        e,
                    )
                })
                .and_then(|stream| Self::initiate(stream, target, addr, me, peer, cfg));
            match outcome {
                Ok(ch) => return Ok(ch),
                Err(e @ (LinkError::Io { .. } | LinkError::Busy(_))) => {
                    if stop() {
                        return Err(LinkError::Stopped);
                    }
                    if Instant::now() + backoff >= deadline {
                        return Err(e);
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                    if stop() {
                        return Err(LinkError::Stopped);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The initiator's side on a connected stream: preamble, handshake, channel.
    fn initiate(
        mut stream: TcpStream,
        target: SocketAddr,
        addr: &str,
        me: &KeyPair,
        peer: &PublicKey,
        cfg: &LinkConfig,
    ) -> Result<Channel, LinkError> {
        configure(&stream, cfg.timeout, addr)?;
        let t = cfg.timeout;
        stream
            .write_all(&preamble(cfg.mode))
            .map_err(|e| io_err(e, "sending the preamble", t))?;
        let cipher = match cfg.mode {
            Mode::Encrypted => {
                let mut hs = noise_builder(me)?
                    .remote_public_key(&peer.0)
                    .and_then(|b| b.build_initiator())
                    .map_err(|e| LinkError::Handshake(e.to_string()))?;
                let mut m = [0u8; HANDSHAKE_MAX];
                let n = hs
                    .write_message(&[], &mut m)
                    .map_err(|e| LinkError::Handshake(e.to_string()))?;
                write_hs(&mut stream, &m[..n], t)?;
                let reply = read_hs(&mut stream, t).map_err(|e| match e {
                    LinkError::Closed(_) => LinkError::Refused(format!(
                        "{addr} closed the link during the handshake (it does not accept our key, or speaks another mode)"
                    )),
                    other => other,
                })?;
                if reply.is_empty() {
                    return Err(LinkError::Busy(addr.into()));
                }
                let mut p = [0u8; HANDSHAKE_MAX];
                hs.read_message(&reply, &mut p).map_err(|_| {
                    LinkError::Handshake(format!("{addr} did not prove the pinned key {peer}"))
                })?;
                Cipher::from_handshake(hs)?
            }
            Mode::Plaintext => {
                write_hs(&mut stream, &me.public.0, t)?;
                let reply = read_hs(&mut stream, t)?;
                if reply.is_empty() {
                    return Err(LinkError::Busy(addr.into()));
                }
                if reply != peer.0 {
                    return Err(LinkError::Handshake(format!(
                        "{addr} claims another key than the pinned {peer}"
                    )));
                }
                Cipher::Plain
            }
        };
        Ok(Channel {
            peer_addr: target,
            stream,
            state: LinkState::new(cipher, cfg.max_frame),
            peer_key: *peer,
            timeout: t,
        })
    }

    /// Runs the responder's side on an accepted stream: checks the preamble, completes
    /// the handshake, and accepts the peer only if `allowed` says yes to its key.
    pub fn accept(
        mut stream: TcpStream,
        me: &KeyPair,
        allowed: &dyn Fn(&PublicKey) -> bool,
        cfg: &LinkConfig,
    ) -> Result<Channel, LinkError> {
        let peer_addr = stream
            .peer_addr()
            .map_err(|e| LinkError::io("reading the peer's address", e))?;
        configure(&stream, cfg.timeout, &peer_addr.to_string())?;
        let t = cfg.timeout;
        let mut pre = [0u8; 8];
        stream
            .read_exact(&mut pre)
            .map_err(|e| io_err(e, "reading the preamble", t))?;
        check_preamble(&pre, cfg.mode).map_err(|e| match e {
            LinkError::Refused(why) => LinkError::Refused(format!("{peer_addr} {why}")),
            other => other,
        })?;
        let first = read_hs(&mut stream, t)?;
        Self::respond(stream, peer_addr, &first, me, allowed, cfg)
    }

    /// The responder's side once the preamble was checked and the initiator's first
    /// handshake message read (by [`Channel::accept`] or an [`crate::opening::Opening`]):
    /// checks the key against `allowed`, answers, and returns the channel.
    pub(crate) fn respond(
        mut stream: TcpStream,
        peer_addr: SocketAddr,
        first: &[u8],
        me: &KeyPair,
        allowed: &dyn Fn(&PublicKey) -> bool,
        cfg: &LinkConfig,
    ) -> Result<Channel, LinkError> {
        configure(&stream, cfg.timeout, &peer_addr.to_string())?;
        let t = cfg.timeout;
        let (cipher, key) = match cfg.mode {
            Mode::Encrypted => {
                let (mut hs, key) = respond_noise(me, first).map_err(|e| match e {
                    LinkError::Handshake(why) => {
                        LinkError::Handshake(format!("{peer_addr}: {why}"))
                    }
                    other => other,
                })?;
                if !allowed(&key) {
                    return Err(LinkError::Refused(format!(
                        "{peer_addr} authenticated as {key}, which the config does not pin"
                    )));
                }
                let mut m = [0u8; HANDSHAKE_MAX];
                let n = hs
                    .write_message(&[], &mut m)
                    .map_err(|e| LinkError::Handshake(e.to_string()))?;
                write_hs(&mut stream, &m[..n], t)?;
                (Cipher::from_handshake(hs)?, key)
            }
            Mode::Plaintext => {
                let key = PublicKey(first.try_into().map_err(|_| {
                    LinkError::Handshake(format!("{peer_addr} sent a malformed identity"))
                })?);
                if !allowed(&key) {
                    return Err(LinkError::Refused(format!(
                        "{peer_addr} claims {key}, which the config does not pin"
                    )));
                }
                write_hs(&mut stream, &me.public.0, t)?;
                (Cipher::Plain, key)
            }
        };
        Ok(Channel {
            peer_addr,
            stream,
            state: LinkState::new(cipher, cfg.max_frame),
            peer_key: key,
            timeout: t,
        })
    }

    /// The authenticated key of the other side.
    pub fn peer_key(&self) -> &PublicKey {
        &self.peer_key
    }

    /// The other side's socket address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// Changes the read/write timeout (e.g. a client waiting in a job queue).
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), LinkError> {
        self.timeout = timeout;
        configure(&self.stream, timeout, &self.peer_addr.to_string())
    }

    /// Sends one control message (at most the maximum frame size) and waits until it is
    /// on the wire.
    pub fn send(&mut self, msg: &[u8]) -> Result<(), LinkError> {
        self.state.queue_control(msg)?;
        while !self.state.pending_tx().is_empty() {
            let n = self
                .stream
                .write(self.state.pending_tx())
                .map_err(|e| io_err(e, "sending a message", self.timeout))?;
            if n == 0 {
                return Err(LinkError::Closed("sending a message".into()));
            }
            self.state.advance_tx(n);
        }
        Ok(())
    }

    /// Receives one control message of at most `max` bytes, waiting at most the timeout
    /// for each piece of it.
    pub fn recv(&mut self, max: u32) -> Result<Vec<u8>, LinkError> {
        loop {
            if let Some(m) = self.state.take_control(max)? {
                return Ok(m);
            }
            if self.state.rx_room() == 0 {
                return Err(LinkError::Malformed(
                    "a control message larger than the receive buffer".into(),
                ));
            }
            let stream = &mut self.stream;
            let n = self
                .state
                .read_with(|space| stream.read(space))?
                .map_err(|e| io_err(e, "waiting for a message", self.timeout))?;
            if n == 0 {
                return Err(LinkError::Closed("waiting for a message".into()));
            }
        }
    }

    /// A handle that can close this channel's socket from another thread (a deadline
    /// watchdog, a shutdown): every blocked or later read and write on it then fails.
    pub fn closer(&self) -> Result<Closer, LinkError> {
        self.stream
            .try_clone()
            .map(Closer)
            .map_err(|e| LinkError::io("duplicating the socket", e))
    }

    /// Whether the other side has closed its end (nothing left to read and end of
    /// stream, or a reset). Never blocks; bytes waiting to be read mean it is still there.
    pub fn peer_gone(&self) -> bool {
        if self.state.has_input() {
            return false;
        }
        if self.stream.set_nonblocking(true).is_err() {
            return true;
        }
        let mut b = [0u8; 1];
        let gone = match self.stream.peek(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
            ),
        };
        gone || self.stream.set_nonblocking(false).is_err()
    }

    /// Bytes written and read on the wire so far.
    pub fn wire_bytes(&self) -> (u64, u64) {
        (self.state.wire_sent, self.state.wire_received)
    }
}
