//! Three parties in one process over loopback TCP: real sockets, the real handshake and
//! the real data plane, for tests and for `opbench --transport tcp`.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use cipherdm_kernel::party::session_entropy;
use cipherdm_kernel::{FixedPoint, Party, PartyId};

use crate::channel::{Channel, LinkConfig};
use crate::error::LinkError;
use crate::keys::{KeyPair, PublicKey};
use crate::transport::TcpTransport;

/// A loopback run.
#[derive(Clone, Copy, Debug)]
pub struct LoopbackConfig {
    /// Link settings (mode, timeouts, maximum frame).
    pub link: LinkConfig,
    /// Fixed-point format.
    pub fixed: FixedPoint,
    /// Reproducible PRSS entropy (tests only); `None` draws from the OS.
    pub seed: Option<u64>,
}

/// Why a loopback party failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoopbackError {
    /// Setting up its links failed.
    #[error("link setup: {0}")]
    Link(#[from] LinkError),
    /// The protocol failed.
    #[error("protocol: {0}")]
    Kernel(#[from] cipherdm_kernel::Error),
}

/// Accepts one connection on `listener` before `deadline`.
pub fn accept_until(
    listener: &TcpListener,
    deadline: Instant,
) -> Result<std::net::TcpStream, LinkError> {
    listener
        .set_nonblocking(true)
        .map_err(|e| LinkError::io("listener", e))?;
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false)
                    .map_err(|e| LinkError::io("accepted socket", e))?;
                return Ok(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err(LinkError::Timeout {
                        what: "waiting for a peer to connect".into(),
                        after: Duration::ZERO,
                    });
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(LinkError::io("accepting", e)),
        }
    }
}

/// Party `me`'s links: it dials every lower id and accepts every higher one.
fn connect_mesh(
    me: PartyId,
    listener: &TcpListener,
    addrs: &[String; 3],
    keys: &[KeyPair; 3],
    cfg: &LinkConfig,
) -> Result<Vec<(PartyId, Channel)>, LinkError> {
    let mine = &keys[me.index()];
    let mut links = Vec::with_capacity(2);
    for j in 0..me.index() {
        let ch = Channel::connect(&addrs[j], mine, &keys[j].public, cfg)?;
        links.push((PartyId::ALL[j], ch));
    }
    let deadline = Instant::now() + cfg.connect_deadline;
    for _ in me.index() + 1..3 {
        let s = accept_until(listener, deadline)?;
        let higher: Vec<PublicKey> = (me.index() + 1..3).map(|j| keys[j].public).collect();
        let ch = Channel::accept(s, mine, &|k| higher.contains(k), cfg)?;
        let j = (0..3)
            .find(|&j| keys[j].public == *ch.peer_key())
            .expect("accepted key is pinned");
        links.push((PartyId::ALL[j], ch));
    }
    Ok(links)
}

/// Listeners, their addresses and the parties' keys.
type Endpoints = ([TcpListener; 3], [String; 3], [KeyPair; 3]);

/// Runs `f` once per party on its own thread, each with a [`Party`] over real loopback
/// TCP links (fresh keys, the full handshake), and returns the three results in order.
pub fn run3_with<In, Out, F>(
    cfg: &LoopbackConfig,
    inputs: [In; 3],
    f: F,
) -> [Result<Out, LoopbackError>; 3]
where
    In: Send,
    Out: Send,
    F: Fn(&mut Party<TcpTransport>, In) -> Result<Out, LoopbackError> + Sync,
{
    let setup = || -> Result<Endpoints, LinkError> {
        let mut ls = Vec::new();
        let mut addrs = Vec::new();
        for _ in 0..3 {
            let l = TcpListener::bind("127.0.0.1:0").map_err(|e| LinkError::io("bind", e))?;
            addrs.push(
                l.local_addr()
                    .map_err(|e| LinkError::io("local address", e))?
                    .to_string(),
            );
            ls.push(l);
        }
        let keys = [
            KeyPair::generate()?,
            KeyPair::generate()?,
            KeyPair::generate()?,
        ];
        let ls: [TcpListener; 3] = ls.try_into().expect("three");
        let addrs: [String; 3] = addrs.try_into().expect("three");
        Ok((ls, addrs, keys))
    };
    let (listeners, addrs, keys) = match setup() {
        Ok(v) => v,
        Err(e) => {
            let msg = e.to_string();
            return [0, 1, 2].map(|_| {
                Err(LoopbackError::Link(LinkError::Refused(format!(
                    "loopback setup: {msg}"
                ))))
            });
        }
    };
    let f = &f;
    let (addrs, keys) = (&addrs, &keys);
    std::thread::scope(|scope| {
        let handles: Vec<_> = listeners
            .into_iter()
            .zip(inputs)
            .enumerate()
            .map(|(i, (listener, input))| {
                scope.spawn(move || -> Result<Out, LoopbackError> {
                    let me = PartyId::ALL[i];
                    let links = connect_mesh(me, &listener, addrs, keys, &cfg.link)?;
                    let t = TcpTransport::new(me, links, cfg.link.timeout)?;
                    let mut entropy = session_entropy(cfg.seed, me)?;
                    let mut party = Party::setup(me, t, cfg.fixed, &mut entropy)?;
                    f(&mut party, input)
                })
            })
            .collect();
        let mut out: Vec<Result<Out, LoopbackError>> = Vec::with_capacity(3);
        for h in handles {
            out.push(h.join().unwrap_or_else(|_| {
                Err(LoopbackError::Link(LinkError::Closed(
                    "the party thread panicked".into(),
                )))
            }));
        }
        let mut it = out.into_iter();
        [(); 3].map(|_| it.next().expect("three results"))
    })
}
