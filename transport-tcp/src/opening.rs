//! The responder's first phase without a thread per connection: a set of accepted,
//! non-blocking sockets that are read as bytes arrive until each holds the initiator's
//! preamble and first handshake message.
//!
//! A listener that gave every accepted socket a thread (or a slot) for its whole
//! handshake could be locked out by connections that send a byte now and then. Here:
//!
//! - a connection holds no thread until its first handshake message has arrived whole
//!   ([`Openings::poll`] hands it out as [`Opening`], ready for [`Opening::finish`]);
//! - each connection has a deadline for that, counted from its accept, not per read;
//! - the set has a limit per source address and in total: a new connection over either
//!   limit pushes out the *oldest* one of its address (or of the set), which is answered
//!   [`BUSY_REPLY`] — slow connections cannot keep a quick one out;
//! - a caller that cannot take a ready connection (e.g. all its threads are busy) answers
//!   it with [`Opening::refuse_busy`].

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::channel::{BUSY_REPLY, Channel, HANDSHAKE_MAX, LinkConfig, Mode, check_preamble};
use crate::error::LinkError;
use crate::keys::{KeyPair, PublicKey};

/// Limits of an [`Openings`] set.
#[derive(Clone, Copy, Debug)]
pub struct OpeningLimits {
    /// Connections being opened at once, in all.
    pub total: usize,
    /// Connections being opened at once from one IP address.
    pub per_address: usize,
    /// Time from accept to the whole first handshake message.
    pub deadline: Duration,
}

impl Default for OpeningLimits {
    fn default() -> Self {
        OpeningLimits {
            total: 256,
            per_address: 32,
            deadline: Duration::from_secs(10),
        }
    }
}

/// How many more bytes an opening that has received `buf` needs before its preamble and
/// first handshake message are whole (0: they are; the message is `buf[10..]`). The
/// preamble is checked as soon as its 8 bytes are in, the message length (a `u16` after
/// it) against the handshake limit, so that nothing beyond 10 + 1,024 bytes is ever
/// asked for.
pub fn wanted(buf: &[u8], mode: Mode) -> Result<usize, LinkError> {
    if let Some(pre) = buf.first_chunk::<8>() {
        check_preamble(pre, mode)?;
    }
    if buf.len() < 10 {
        return Ok(10 - buf.len());
    }
    let len = u16::from_be_bytes([buf[8], buf[9]]) as usize;
    if len > HANDSHAKE_MAX {
        return Err(LinkError::Handshake(format!(
            "a handshake message of {len} bytes (at most {HANDSHAKE_MAX})"
        )));
    }
    Ok((10 + len).saturating_sub(buf.len()))
}

/// An accepted connection whose preamble and first handshake message have arrived.
#[derive(Debug)]
pub struct Opening {
    stream: TcpStream,
    addr: SocketAddr,
    accepted: Instant,
    /// Preamble (8 bytes), then the first message's length (2) and bytes.
    buf: Vec<u8>,
}

impl Opening {
    /// The initiator's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// When the connection was accepted.
    pub fn accepted(&self) -> Instant {
        self.accepted
    }

    /// The first handshake message, once it is whole.
    fn first_message(&self) -> Option<&[u8]> {
        let n = u16::from_be_bytes(self.buf.get(8..10)?.try_into().ok()?) as usize;
        self.buf.get(10..10 + n).filter(|m| m.len() == n)
    }

    /// Reads what has arrived without blocking. `Ok(true)`: preamble and first message
    /// are whole. A wrong preamble, an oversized message or a closed socket is an error.
    fn read_more(&mut self, cfg: &LinkConfig) -> Result<bool, LinkError> {
        let addr = self.addr;
        loop {
            let want = wanted(&self.buf, cfg.mode).map_err(|e| match e {
                LinkError::Refused(why) => LinkError::Refused(format!("{addr} {why}")),
                LinkError::Handshake(why) => LinkError::Handshake(format!("{addr}: {why}")),
                other => other,
            })?;
            if want == 0 {
                return Ok(true);
            }
            let mut chunk = [0u8; 256];
            let take = want.min(chunk.len());
            match self.stream.read(&mut chunk[..take]) {
                Ok(0) => {
                    return Err(LinkError::Closed(format!(
                        "{addr} opened a connection and closed it before its handshake"
                    )));
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(LinkError::io(format!("reading from {addr}"), e)),
            }
        }
    }

    /// Answers [`BUSY_REPLY`] and closes. Bytes that already arrived are read first, so
    /// that the close is an orderly one the initiator can read the reply before.
    pub fn refuse_busy(mut self) {
        let mut sink = [0u8; 256];
        for _ in 0..16 {
            if !matches!(self.stream.read(&mut sink), Ok(n) if n > 0) {
                break;
            }
        }
        let _ = self.stream.write(&BUSY_REPLY);
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }

    /// Completes the handshake (the key must pass `allowed`) and returns the channel in
    /// blocking mode with `cfg`'s timeouts.
    pub fn finish(
        self,
        me: &KeyPair,
        allowed: &dyn Fn(&PublicKey) -> bool,
        cfg: &LinkConfig,
    ) -> Result<Channel, LinkError> {
        let first = self
            .first_message()
            .ok_or_else(|| LinkError::Handshake("the first message has not arrived".into()))?
            .to_vec();
        self.stream
            .set_nonblocking(false)
            .map_err(|e| LinkError::io("making the socket blocking", e))?;
        Channel::respond(self.stream, self.addr, &first, me, allowed, cfg)
    }
}

/// Connections being opened, with their limits (see the module docs).
#[derive(Debug)]
pub struct Openings {
    limits: OpeningLimits,
    link: LinkConfig,
    open: Vec<Opening>,
}

/// What one [`Openings::poll`] produced.
#[derive(Debug, Default)]
pub struct Polled {
    /// Connections whose first handshake message is whole.
    pub ready: Vec<Opening>,
    /// Connections dropped, and why (bad preamble, closed, over the deadline, pushed
    /// out over a limit).
    pub dropped: Vec<(SocketAddr, LinkError)>,
}

impl Openings {
    /// An empty set for links with `link`'s mode.
    pub fn new(limits: OpeningLimits, link: LinkConfig) -> Self {
        Openings {
            limits,
            link,
            open: Vec::new(),
        }
    }

    /// Connections being opened now.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether none is being opened.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Accepts every connection waiting on `listener` (which must be non-blocking),
    /// reads every open one, and returns those that are ready and those dropped.
    pub fn poll(&mut self, listener: &TcpListener) -> Polled {
        let mut out = Polled::default();
        loop {
            match listener.accept() {
                Ok((stream, addr)) => self.admit(stream, addr, &mut out),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // Out of file descriptors and the like: try again on the next poll.
                Err(_) => break,
            }
        }
        let now = Instant::now();
        let mut i = 0;
        while i < self.open.len() {
            let o = &mut self.open[i];
            match o.read_more(&self.link) {
                Ok(true) => out.ready.push(self.open.swap_remove(i)),
                Ok(false) if now.duration_since(o.accepted) > self.limits.deadline => {
                    let o = self.open.swap_remove(i);
                    out.dropped.push((
                        o.addr,
                        LinkError::Timeout {
                            what: format!("{} opening its connection", o.addr),
                            after: self.limits.deadline,
                        },
                    ));
                }
                Ok(false) => i += 1,
                Err(e) => {
                    let o = self.open.swap_remove(i);
                    out.dropped.push((o.addr, e));
                }
            }
        }
        out
    }

    fn admit(&mut self, stream: TcpStream, addr: SocketAddr, out: &mut Polled) {
        if stream.set_nonblocking(true).is_err() || stream.set_nodelay(true).is_err() {
            return;
        }
        let ip: IpAddr = addr.ip();
        let oldest_of = |open: &[Opening], same: &dyn Fn(&Opening) -> bool| {
            open.iter()
                .enumerate()
                .filter(|(_, o)| same(o))
                .min_by_key(|(_, o)| o.accepted)
                .map(|(i, _)| i)
        };
        let from_ip = self.open.iter().filter(|o| o.addr.ip() == ip).count();
        let evict = if from_ip >= self.limits.per_address {
            oldest_of(&self.open, &|o| o.addr.ip() == ip)
        } else if self.open.len() >= self.limits.total {
            oldest_of(&self.open, &|_| true)
        } else {
            None
        };
        if let Some(i) = evict {
            let o = self.open.swap_remove(i);
            let a = o.addr;
            o.refuse_busy();
            out.dropped.push((
                a,
                LinkError::Busy(format!("{a} pushed out by newer connections")),
            ));
        }
        self.open.push(Opening {
            stream,
            addr,
            accepted: Instant::now(),
            buf: Vec::with_capacity(64),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (TcpListener, SocketAddr) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let a = l.local_addr().unwrap();
        (l, a)
    }

    fn poll_until(set: &mut Openings, l: &TcpListener, f: impl Fn(&Polled) -> bool) -> Polled {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let p = set.poll(l);
            if f(&p) || Instant::now() > until {
                return p;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn idle_connections_cannot_keep_a_real_one_out() {
        let (l, addr) = pair();
        let limits = OpeningLimits {
            total: 4,
            per_address: 4,
            deadline: Duration::from_secs(60),
        };
        let mut set = Openings::new(limits, LinkConfig::default());
        // Four idle connections fill the set; one sends a byte now and then.
        let mut idle: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
        idle[0].write_all(b"C").unwrap();
        let until = Instant::now() + Duration::from_secs(5);
        while set.len() < 4 && Instant::now() < until {
            set.poll(&l);
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(set.len(), 4);
        // A real initiator: the oldest idle one is pushed out with the busy reply.
        let me = KeyPair::generate().unwrap();
        let server = KeyPair::generate().unwrap();
        let server_pub = server.public;
        let client = std::thread::spawn(move || {
            Channel::connect(&addr.to_string(), &me, &server_pub, &LinkConfig::default())
        });
        let p = poll_until(&mut set, &l, |p| !p.ready.is_empty());
        assert_eq!(p.ready.len(), 1);
        assert!(
            matches!(p.dropped[..], [(_, LinkError::Busy(_))]),
            "{:?}",
            p.dropped
        );
        let ch = p.ready.into_iter().next().unwrap();
        ch.finish(&server, &|_| true, &LinkConfig::default())
            .unwrap();
        client.join().unwrap().unwrap();
        // The pushed-out connection reads the busy reply.
        let mut reply = [9u8; 2];
        idle[0]
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        idle[0].read_exact(&mut reply).unwrap();
        assert_eq!(reply, BUSY_REPLY);
    }

    #[test]
    fn the_deadline_counts_from_accept_and_bad_preambles_are_dropped() {
        let (l, addr) = pair();
        let limits = OpeningLimits {
            deadline: Duration::from_millis(300),
            ..OpeningLimits::default()
        };
        let mut set = Openings::new(limits, LinkConfig::default());
        let mut slow = TcpStream::connect(addr).unwrap();
        let mut wrong = TcpStream::connect(addr).unwrap();
        wrong.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        let start = Instant::now();
        let mut dropped = Vec::new();
        while dropped.len() < 2 && start.elapsed() < Duration::from_secs(5) {
            // A byte every 50 ms keeps every read short of the deadline, not the whole.
            let _ = slow.write_all(b"C");
            dropped.extend(set.poll(&l).dropped);
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            dropped.iter().any(
                |(_, e)| matches!(e, LinkError::Refused(m) if m.contains("not a cipherdm link"))
            ),
            "{dropped:?}"
        );
        assert!(
            dropped
                .iter()
                .any(|(_, e)| matches!(e, LinkError::Timeout { .. })),
            "{dropped:?}"
        );
        assert!(start.elapsed() < Duration::from_secs(2));
        assert!(set.is_empty());
    }

    #[test]
    fn wanted_counts_down_to_a_whole_first_message_and_checks_as_it_goes() {
        let mut buf = Vec::new();
        assert_eq!(wanted(&buf, Mode::Encrypted).unwrap(), 10);
        buf.extend_from_slice(b"CDM\x01N\0\0\0");
        assert_eq!(wanted(&buf, Mode::Encrypted).unwrap(), 2);
        assert!(matches!(
            wanted(&buf, Mode::Plaintext),
            Err(LinkError::Refused(_))
        ));
        buf.extend_from_slice(&[0, 3, 9, 9]);
        assert_eq!(wanted(&buf, Mode::Encrypted).unwrap(), 1);
        buf.push(9);
        assert_eq!(wanted(&buf, Mode::Encrypted).unwrap(), 0);
        buf[8..10].copy_from_slice(&1025u16.to_be_bytes());
        assert!(matches!(
            wanted(&buf, Mode::Encrypted),
            Err(LinkError::Handshake(_))
        ));
        assert!(matches!(
            wanted(b"GET / HTTP", Mode::Encrypted),
            Err(LinkError::Refused(_))
        ));
    }

    #[test]
    fn an_oversized_first_message_and_an_early_close_are_refused() {
        let (l, addr) = pair();
        let mut set = Openings::new(OpeningLimits::default(), LinkConfig::default());
        let mut big = TcpStream::connect(addr).unwrap();
        big.write_all(&[b'C', b'D', b'M', 1, b'N', 0, 0, 0, 0xff, 0xff])
            .unwrap();
        let gone = TcpStream::connect(addr).unwrap();
        let p = poll_until(&mut set, &l, |p| !p.dropped.is_empty());
        drop(gone);
        let mut dropped = p.dropped;
        dropped.extend(poll_until(&mut set, &l, |p| !p.dropped.is_empty()).dropped);
        assert!(
            dropped
                .iter()
                .any(|(_, e)| matches!(e, LinkError::Handshake(m) if m.contains("65535 bytes"))),
            "{dropped:?}"
        );
        assert!(
            dropped
                .iter()
                .any(|(_, e)| matches!(e, LinkError::Closed(_))),
            "{dropped:?}"
        );
        assert!(set.is_empty());
    }

    #[test]
    fn a_busy_responder_is_retried_until_the_deadline_then_named() {
        let (l, addr) = pair();
        let mut set = Openings::new(OpeningLimits::default(), LinkConfig::default());
        let me = KeyPair::generate().unwrap();
        let server = KeyPair::generate().unwrap();
        let cfg = LinkConfig {
            connect_deadline: Duration::from_millis(600),
            ..LinkConfig::default()
        };
        let server_pub = server.public;
        let client =
            std::thread::spawn(move || Channel::connect(&addr.to_string(), &me, &server_pub, &cfg));
        let start = Instant::now();
        let mut refused = 0;
        while start.elapsed() < Duration::from_secs(3) && !client.is_finished() {
            for o in set.poll(&l).ready {
                o.refuse_busy();
                refused += 1;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let err = client.join().unwrap().unwrap_err();
        assert!(matches!(err, LinkError::Busy(_)), "{err}");
        assert!(refused >= 2, "retried {refused} times");
    }
}
