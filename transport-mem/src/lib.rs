//! # cipherdm-transport-mem
//!
//! Three parties in one process: each party runs on its own thread and talks to the
//! others only through byte messages on channels, exactly as it would over sockets.
//! [`run3`] runs one closure per party and returns the three results.
//!
//! Links can misbehave on purpose ([`Fault`]): drop, corrupt, delay or close the n-th
//! message of a link. Every receive has a timeout, so a party whose peer vanishes or
//! misbehaves gets a typed [`TransportError`] instead of hanging:
//!
//! | fault | what the receiver gets |
//! |---|---|
//! | `Drop` | [`TransportError::OutOfSequence`] on the next message, or `Timeout` if none follows |
//! | `Corrupt` | [`TransportError::Corrupt`] (each message carries a 64-bit checksum) |
//! | `Delay(d)` | the message after `d`; `Timeout` if `d` exceeds the timeout |
//! | `Close` | [`TransportError::Closed`] once earlier messages are consumed; the sender's later sends fail with `Closed` too |
//!
//! A peer thread that returns (or panics) closes its links, so its peers get `Closed`.
//!
//! ```
//! use cipherdm_kernel::{protocols, share::ArithShare, Shape, PartyId};
//! use cipherdm_transport_mem::{run3, MemConfig};
//!
//! // Party 0 owns x, party 1 owns y; everybody learns x * y.
//! let out = run3(&MemConfig::default(), |p| {
//!     let me = p.id();
//!     let x = protocols::share_input::<u64, _>(p, PartyId::P0, (me == PartyId::P0).then_some(&[6u64][..]), Shape::vector(1))?;
//!     let y = protocols::share_input::<u64, _>(p, PartyId::P1, (me == PartyId::P1).then_some(&[7u64][..]), Shape::vector(1))?;
//!     let z = protocols::mul(p, &x, &y)?;
//!     protocols::open(p, &z)
//! });
//! for r in out {
//!     assert_eq!(r.unwrap(), vec![42]);
//! }
//! ```

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use cipherdm_kernel::party::session_entropy;
use cipherdm_kernel::{Error, FixedPoint, Party, PartyId, Transport, TransportError};

/// What a fault does to the message it hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// The message is never delivered.
    Drop,
    /// One payload byte is flipped after the checksum was computed.
    Corrupt,
    /// The message is delivered this much later.
    Delay(Duration),
    /// The link closes instead of delivering this message.
    Close,
}

/// A fault on the link `from -> to`, hitting the `nth` message (0-based) sent on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Sending party.
    pub from: PartyId,
    /// Receiving party.
    pub to: PartyId,
    /// Index of the message on that link (the session set-up sends message 0).
    pub nth: u64,
    /// What happens to it.
    pub kind: FaultKind,
}

/// A simulated network: every link delivers a message `latency` after its last byte left
/// the sender, and each directed link sends at most `bandwidth` bytes per second
/// (messages on one link queue behind each other; the two links of a party run in
/// parallel).
///
/// Time model (checked by `cipherdm-bench`'s tests against runs with this injected):
/// `time ≈ compute + rounds × latency + max link bytes / bandwidth`, where a round is one
/// message hop, i.e. half a round trip.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Network {
    /// One-way delay of every message.
    pub latency: Duration,
    /// Bytes per second per directed link.
    pub bandwidth: f64,
}

impl Network {
    /// The LAN of "Secure Inference for Diffusion Models via Unconditional Scores" (Song
    /// et al.): 3 Gbps one way, 0.3 ms round trip.
    pub fn lan() -> Self {
        Network {
            latency: Duration::from_micros(150),
            bandwidth: 3e9 / 8.0,
        }
    }

    /// The WAN of Song et al.: 400 Mbps, 4 ms round trip.
    pub fn wan() -> Self {
        Network {
            latency: Duration::from_millis(2),
            bandwidth: 400e6 / 8.0,
        }
    }

    /// The model's prediction of a run that took `compute` without the network.
    pub fn predict(&self, compute: Duration, rounds: u64, max_link_bytes: u64) -> Duration {
        compute
            + self.latency * rounds as u32
            + Duration::from_secs_f64(max_link_bytes as f64 / self.bandwidth)
    }
}

/// Configuration of an in-memory session.
#[derive(Clone, Debug)]
pub struct MemConfig {
    /// How long a receive waits before [`TransportError::Timeout`].
    pub timeout: Duration,
    /// Injected faults.
    pub faults: Vec<Fault>,
    /// Fixed-point format of the session.
    pub fixed: FixedPoint,
    /// Seed for the parties' PRSS key contributions; `None` draws fresh OS entropy
    /// (the only choice outside tests and reproducible benchmarks).
    pub seed: Option<u64>,
    /// Simulated latency and bandwidth (`None`: deliver at once).
    pub network: Option<Network>,
}

impl Default for MemConfig {
    fn default() -> Self {
        MemConfig {
            timeout: Duration::from_secs(10),
            faults: Vec::new(),
            fixed: FixedPoint::default(),
            seed: None,
            network: None,
        }
    }
}

struct Message {
    seq: u64,
    depth: u64,
    deliver_at: Option<Instant>,
    checksum: u64,
    payload: Vec<u8>,
}

/// One party's end of the in-memory mesh.
pub struct MemTransport {
    me: PartyId,
    senders: [Option<Sender<Message>>; 3],
    receivers: [Option<Receiver<Message>>; 3],
    sent_seq: [u64; 3],
    recv_seq: [u64; 3],
    timeout: Duration,
    faults: Vec<Fault>,
    depth: u64,
    network: Option<Network>,
    /// When each outgoing link finishes sending what is queued on it.
    link_free_at: [Option<Instant>; 3],
}

/// A fast 64-bit checksum of a payload (not cryptographic: it models the integrity
/// check an authenticated link performs). Four independent lanes over 32-byte blocks,
/// so the multiplications overlap; any flipped byte changes its lane's state, and the
/// lanes are mixed at the end.
fn checksum(bytes: &[u8]) -> u64 {
    const K: u64 = 0xff51_afd7_ed55_8ccd;
    let mut lanes = [
        0x9e37_79b9_7f4a_7c15u64 ^ bytes.len() as u64,
        0xc2b2_ae3d_27d4_eb4f,
        0x1656_67b1_9e37_79f9,
        0x85eb_ca77_c2b2_ae63,
    ];
    let mut blocks = bytes.chunks_exact(32);
    for b in &mut blocks {
        for (lane, w) in lanes.iter_mut().zip(b.chunks_exact(8)) {
            let v = u64::from_le_bytes(w.try_into().expect("8-byte chunk"));
            *lane = (*lane ^ v).wrapping_mul(K).rotate_left(29);
        }
    }
    let mut h = lanes
        .iter()
        .fold(0u64, |acc, &l| (acc ^ l).wrapping_mul(K).rotate_left(31));
    for &b in blocks.remainder() {
        h = (h ^ b as u64).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    }
    h
}

/// Builds the three connected transports of a session.
pub fn mesh(timeout: Duration, faults: &[Fault]) -> [MemTransport; 3] {
    mesh_with_network(timeout, faults, None)
}

/// [`mesh`] over a simulated [`Network`].
pub fn mesh_with_network(
    timeout: Duration,
    faults: &[Fault],
    network: Option<Network>,
) -> [MemTransport; 3] {
    let mut senders: [[Option<Sender<Message>>; 3]; 3] = Default::default();
    let mut receivers: [[Option<Receiver<Message>>; 3]; 3] = Default::default();
    for from in 0..3 {
        for to in 0..3 {
            if from != to {
                let (s, r) = mpsc::channel();
                senders[from][to] = Some(s);
                receivers[to][from] = Some(r);
            }
        }
    }
    let mut it_s = senders.into_iter();
    let mut it_r = receivers.into_iter();
    PartyId::ALL.map(|me| MemTransport {
        me,
        senders: it_s.next().expect("three senders"),
        receivers: it_r.next().expect("three receivers"),
        sent_seq: [0; 3],
        recv_seq: [0; 3],
        timeout,
        faults: faults.iter().copied().filter(|f| f.from == me).collect(),
        depth: 0,
        network,
        link_free_at: [None; 3],
    })
}

impl MemTransport {
    /// This transport's party.
    pub fn id(&self) -> PartyId {
        self.me
    }

    /// The causal depth reached so far: the length of the longest chain of messages
    /// (each sent after receiving the previous one) that ends at this party. Over a
    /// protocol that every party starts at the same depth, the maximum increase over the
    /// three parties is the protocol's measured number of rounds.
    pub fn causal_depth(&self) -> u64 {
        self.depth
    }

    fn peer_index(&self, peer: PartyId) -> Result<usize, TransportError> {
        if peer == self.me {
            return Err(TransportError::BadPeer {
                peer: peer.index() as u8,
            });
        }
        Ok(peer.index())
    }

    fn take(&mut self, from: PartyId) -> Result<Message, TransportError> {
        let i = self.peer_index(from)?;
        let rx = self.receivers[i]
            .as_ref()
            .ok_or(TransportError::Closed { peer: from })?;
        let timeout_ms = self.timeout.as_millis() as u64;
        let start = Instant::now();
        let msg = match rx.recv_timeout(self.timeout) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => {
                return Err(TransportError::Timeout {
                    peer: from,
                    after_ms: timeout_ms,
                });
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.receivers[i] = None;
                return Err(TransportError::Closed { peer: from });
            }
        };
        if let Some(at) = msg.deliver_at {
            let deadline = start + self.timeout;
            if at > deadline {
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                return Err(TransportError::Timeout {
                    peer: from,
                    after_ms: timeout_ms,
                });
            }
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
        }
        if msg.seq != self.recv_seq[i] {
            return Err(TransportError::OutOfSequence {
                peer: from,
                expected: self.recv_seq[i],
                got: msg.seq,
            });
        }
        self.recv_seq[i] += 1;
        if checksum(&msg.payload) != msg.checksum {
            return Err(TransportError::Corrupt { peer: from });
        }
        self.depth = self.depth.max(msg.depth);
        Ok(msg)
    }
}

impl Transport for MemTransport {
    fn send(&mut self, to: PartyId, msg: &[u8]) -> Result<(), TransportError> {
        self.send_owned(to, msg.to_vec())
    }

    fn send_owned(&mut self, to: PartyId, mut payload: Vec<u8>) -> Result<(), TransportError> {
        let i = self.peer_index(to)?;
        let seq = self.sent_seq[i];
        self.sent_seq[i] += 1;
        let sum = checksum(&payload);
        let mut deliver_at = None;
        let fault = self
            .faults
            .iter()
            .find(|f| f.to == to && f.nth == seq)
            .map(|f| f.kind);
        match fault {
            Some(FaultKind::Drop) => return Ok(()),
            Some(FaultKind::Close) => {
                self.senders[i] = None;
                return Ok(());
            }
            Some(FaultKind::Corrupt) => match payload.first_mut() {
                Some(b) => *b ^= 0x5a,
                None => payload.push(0x5a),
            },
            Some(FaultKind::Delay(d)) => deliver_at = Some(Instant::now() + d),
            None => {}
        }
        if let Some(net) = self.network {
            let now = Instant::now();
            let start = self.link_free_at[i].map_or(now, |t| t.max(now));
            let sent = start + Duration::from_secs_f64(payload.len() as f64 / net.bandwidth);
            self.link_free_at[i] = Some(sent);
            let arrive = sent + net.latency;
            deliver_at = Some(deliver_at.map_or(arrive, |d| d.max(arrive)));
        }
        let tx = self.senders[i]
            .as_ref()
            .ok_or(TransportError::Closed { peer: to })?;
        let msg = Message {
            seq,
            depth: self.depth + 1,
            deliver_at,
            checksum: sum,
            payload,
        };
        tx.send(msg)
            .map_err(|_| TransportError::Closed { peer: to })
    }

    fn recv(&mut self, from: PartyId, buf: &mut [u8]) -> Result<(), TransportError> {
        let payload = self.recv_owned(from, buf.len())?;
        buf.copy_from_slice(&payload);
        Ok(())
    }

    fn recv_owned(&mut self, from: PartyId, len: usize) -> Result<Vec<u8>, TransportError> {
        let msg = self.take(from)?;
        if msg.payload.len() != len {
            return Err(TransportError::Desync {
                peer: from,
                expected: len,
                got: msg.payload.len(),
            });
        }
        Ok(msg.payload)
    }

    fn flush(&mut self) -> Result<(), TransportError> {
        Ok(())
    }
}

/// Runs `f` once per party, each on its own thread with its own [`Party`] (already set
/// up: PRSS keys agreed), and returns the three results in party order.
///
/// The closure is shared code, but each invocation sees only its own party: inputs that
/// belong to one party should be selected with `p.id()` (or passed through
/// [`run3_with`]). If a closure panics, its links close (its peers get
/// [`TransportError::Closed`]) and the panic is propagated after all threads end.
pub fn run3<Out, F>(cfg: &MemConfig, f: F) -> [Result<Out, Error>; 3]
where
    Out: Send,
    F: Fn(&mut Party<MemTransport>) -> Result<Out, Error> + Sync,
{
    run3_with(cfg, [(), (), ()], |p, ()| f(p))
}

/// Like [`run3`], but party `i` also receives `inputs[i]` (moved to its thread only).
pub fn run3_with<In, Out, F>(cfg: &MemConfig, inputs: [In; 3], f: F) -> [Result<Out, Error>; 3]
where
    In: Send,
    Out: Send,
    F: Fn(&mut Party<MemTransport>, In) -> Result<Out, Error> + Sync,
{
    let transports = mesh_with_network(cfg.timeout, &cfg.faults, cfg.network);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = transports
            .into_iter()
            .zip(inputs)
            .map(|(t, input)| {
                let seed = cfg.seed;
                let fixed = cfg.fixed;
                scope.spawn(move || {
                    let me = t.id();
                    let mut entropy = session_entropy(seed, me)?;
                    let mut party = Party::setup(me, t, fixed, &mut entropy)?;
                    f(&mut party, input)
                })
            })
            .collect();
        let mut results = Vec::with_capacity(3);
        let mut panic = None;
        for h in handles {
            match h.join() {
                Ok(r) => results.push(r),
                Err(e) => {
                    panic.get_or_insert(e);
                    results.push(Err(Error::Transport(TransportError::Other(
                        "party panicked",
                    ))));
                }
            }
        }
        if let Some(e) = panic {
            std::panic::resume_unwind(e);
        }
        let mut it = results.into_iter();
        [(); 3].map(|_| it.next().expect("three results"))
    })
}
