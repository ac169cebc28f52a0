//! Round merging: protocols written as `async fn`s over a [`Branch`], run by a small
//! round scheduler that lets independent work share communication rounds.
//!
//! A protocol that does not depend on another one's result should not wait for it: a
//! piecewise polynomial's segment comparisons and its powers, the two halves of a
//! Newton step, a residual shortcut and the main path. Each protocol is therefore an
//! `async fn` taking `&mut Branch`; [`Branch::join`] runs two of them side by side, and
//! [`Party::run`](crate::party::Party::run) drives the whole computation:
//!
//! 1. it polls the computation until every live branch waits — on a message of this
//!    round ([`Branch::recv_bytes`], registered when called) or on the end of the round
//!    ([`Branch::next_round`]);
//! 2. it sends what the branches queued for each peer as **one merged message per peer
//!    per round**, flushes, and receives from each peer exactly the bytes the registered
//!    receives add up to (the length always comes from the protocol, never from the
//!    wire), then hands each receive its part;
//! 3. it counts the round and polls again.
//!
//! Every party runs the same code, and branches are polled in a fixed order, so the
//! sender's order of messages within a round is the receiver's order of receives. The
//! rule protocol code keeps: **a message sent in round `r` is received in round `r`**
//! (register the receive before the round ends; a party idle in a round awaits
//! [`Branch::next_round`]). A mistake shows as a
//! [`TransportError::Desync`] or a failed test,
//! never as a hang, since every receive has the transport's timeout.
//!
//! Branches draw correlated randomness from their own PRSS streams
//! ([`Prss::fork`](crate::prss::Prss::fork)), forked at the join, so what they draw does
//! not depend on the order in which the scheduler polls them.
//!
//! Every primitive protocol ends with [`Branch::finish_rounds`]: it declares the
//! protocol's depth and lets a party with nothing left to receive pass the remaining
//! rounds (for free), so all three parties leave a protocol in the same round and the
//! next one starts in step. Rounds are therefore counted twice: *declared* (the stated
//! depth; a join declares the larger of its branches') and *measured* (rounds the party
//! went through, [`Party::rounds_waited`](crate::party::Party::rounds_waited)); a
//! protocol that goes through more rounds than it declares fails, and tests check that
//! the two counts agree.
//!
//! ```
//! use cipherdm_kernel::{protocols as pr, Party, PartyId, Shape, ArithShare, FixedPoint};
//! # use cipherdm_kernel::{Transport, TransportError};
//! # fn demo<T: Transport>(p: &mut Party<T>, x: &ArithShare<u64>) -> Result<(), cipherdm_kernel::Error> {
//! // x² and x·2.0 side by side: 3 rounds instead of 5.
//! let (sq, twice) = p.run(async |br| {
//!     br.join(
//!         async |a| pr::mul_fixed_async(a, x, x).await,
//!         async |b| pr::trunc::trunc_async(b, &x.mul_public_scalar(2), 0).await,
//!     )
//!     .await
//! })?;
//! # Ok(()) }
//! ```

use alloc::vec::Vec;
use core::cell::RefCell;
use core::future::Future;
use core::pin::{Pin, pin};
use core::task::{Context, Poll, Waker};

use crate::cost::CostLedger;
use crate::error::{Error, TransportError};
use crate::fixed::FixedPoint;
use crate::prss::Prss;
use crate::ring::{self, Ring};
use crate::transport::{PartyId, Transport};

/// What a [`Branch`] needs from the scheduler: queue a message, register a receive,
/// take a received message, wait for the end of the round. Object-safe, so branches and
/// protocol code are not generic over the transport.
trait Wire {
    fn send(&self, to: PartyId, msg: Vec<u8>);
    fn expect(&self, from: PartyId, len: usize) -> usize;
    fn take(&self, slot: usize) -> Option<Vec<u8>>;
    fn round(&self) -> u64;
    fn wait_for_round_end(&self);
    fn opened(&self, to: PartyId, values: usize);
}

struct Request {
    from: PartyId,
    len: usize,
    slot: usize,
}

struct LinkState<'p, T: Transport> {
    transport: &'p mut T,
    costs: &'p mut CostLedger,
    outgoing: [Vec<u8>; 3],
    requests: Vec<Request>,
    slots: Vec<Option<Vec<u8>>>,
    barrier: bool,
    round: u64,
}

/// The scheduler's side of one [`Party::run`](crate::party::Party::run).
pub(crate) struct Link<'p, T: Transport> {
    state: RefCell<LinkState<'p, T>>,
}

impl<'p, T: Transport> Link<'p, T> {
    pub(crate) fn new(transport: &'p mut T, costs: &'p mut CostLedger) -> Self {
        Link {
            state: RefCell::new(LinkState {
                transport,
                costs,
                outgoing: [Vec::new(), Vec::new(), Vec::new()],
                requests: Vec::new(),
                slots: Vec::new(),
                barrier: false,
                round: 0,
            }),
        }
    }

    /// Rounds this party waited for.
    pub(crate) fn rounds_waited(&self) -> u64 {
        self.state.borrow().round
    }

    /// Polls `fut` to completion, ending a round whenever it waits.
    pub(crate) fn block_on<O>(
        &self,
        fut: impl Future<Output = Result<O, Error>>,
    ) -> Result<O, Error> {
        let mut fut = pin!(fut);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            match fut.as_mut().poll(&mut cx) {
                Poll::Ready(out) => {
                    // Messages queued after the last wait still belong to this round. A
                    // protocol's own error wins over what its abandoned receives cause.
                    let flushed = self.end_round(false);
                    return match (out, flushed) {
                        (Err(e), _) | (Ok(_), Err(e)) => Err(e),
                        (Ok(v), Ok(())) => Ok(v),
                    };
                }
                Poll::Pending => self.end_round(true)?,
            }
        }
    }

    /// Sends the merged messages of this round; when `wait`, receives this round's
    /// messages and counts the round.
    fn end_round(&self, wait: bool) -> Result<(), Error> {
        let mut st = self.state.borrow_mut();
        let st = &mut *st;
        let mut sent = false;
        for peer in PartyId::ALL {
            let msg = core::mem::take(&mut st.outgoing[peer.index()]);
            if !msg.is_empty() {
                st.transport.send_owned(peer, msg)?;
                sent = true;
            }
        }
        if sent {
            st.transport.flush()?;
        }
        if !wait {
            if st.requests.is_empty() {
                return Ok(());
            }
            return Err(Error::Inconsistent(
                "a protocol finished with receives still registered",
            ));
        }
        if st.requests.is_empty() && !st.barrier {
            return Err(Error::Inconsistent("a protocol waits on nothing"));
        }
        let requests = core::mem::take(&mut st.requests);
        for peer in PartyId::ALL {
            let total: usize = requests
                .iter()
                .filter(|r| r.from == peer)
                .map(|r| r.len)
                .sum();
            if total == 0 {
                continue;
            }
            let bytes = st.transport.recv_owned(peer, total)?;
            if bytes.len() != total {
                return Err(TransportError::Desync {
                    peer,
                    expected: total,
                    got: bytes.len(),
                }
                .into());
            }
            let mut from_peer = requests.iter().filter(|r| r.from == peer && r.len > 0);
            match (from_peer.next(), from_peer.next()) {
                // One receive: it takes the message as it is.
                (Some(only), None) => st.slots[only.slot] = Some(bytes),
                _ => {
                    let mut at = 0;
                    for r in requests.iter().filter(|r| r.from == peer) {
                        st.slots[r.slot] = Some(bytes[at..at + r.len].to_vec());
                        at += r.len;
                    }
                }
            }
        }
        for r in &requests {
            if r.len == 0 {
                st.slots[r.slot] = Some(Vec::new());
            }
        }
        st.barrier = false;
        st.round += 1;
        Ok(())
    }
}

impl<T: Transport> Wire for Link<'_, T> {
    fn send(&self, to: PartyId, msg: Vec<u8>) {
        let mut st = self.state.borrow_mut();
        st.costs.sent(to, msg.len());
        let out = &mut st.outgoing[to.index()];
        if out.is_empty() {
            *out = msg;
        } else {
            out.extend_from_slice(&msg);
        }
    }

    fn expect(&self, from: PartyId, len: usize) -> usize {
        let mut st = self.state.borrow_mut();
        let slot = st.slots.len();
        st.slots.push(None);
        st.requests.push(Request { from, len, slot });
        slot
    }

    fn take(&self, slot: usize) -> Option<Vec<u8>> {
        self.state.borrow_mut().slots.get_mut(slot)?.take()
    }

    fn round(&self) -> u64 {
        self.state.borrow().round
    }

    fn wait_for_round_end(&self) {
        self.state.borrow_mut().barrier = true;
    }

    fn opened(&self, to: PartyId, values: usize) {
        self.state.borrow_mut().costs.opened(to, values);
    }
}

/// One line of work inside [`Party::run`](crate::party::Party::run): the party's id and
/// fixed-point format, its own PRSS streams and lead rotation, and its declared rounds.
/// Protocols take `&mut Branch`; see the [module docs](self).
pub struct Branch<'a> {
    wire: &'a dyn Wire,
    id: PartyId,
    fixed: FixedPoint,
    prss: Prss,
    lead: u64,
    rounds: u64,
}

impl core::fmt::Debug for Branch<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Branch")
            .field("id", &self.id)
            .field("rounds", &self.rounds)
            .finish()
    }
}

/// A receive registered in the current round; awaiting it yields the bytes once the
/// round has ended.
#[derive(Debug)]
#[must_use = "a registered receive must be awaited"]
pub struct Incoming<'a> {
    wire: &'a dyn Wire,
    slot: usize,
}

impl core::fmt::Debug for dyn Wire + '_ {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Wire")
    }
}

impl Future for Incoming<'_> {
    type Output = Vec<u8>;
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Vec<u8>> {
        match self.wire.take(self.slot) {
            Some(bytes) => Poll::Ready(bytes),
            None => Poll::Pending,
        }
    }
}

/// Completes once the round it was created in has ended.
struct RoundEnd<'a> {
    wire: &'a dyn Wire,
    after: u64,
}

impl Future for RoundEnd<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.wire.round() > self.after {
            Poll::Ready(())
        } else {
            self.wire.wait_for_round_end();
            Poll::Pending
        }
    }
}

impl<'a> Branch<'a> {
    pub(crate) fn root<T: Transport>(
        link: &'a Link<'_, T>,
        id: PartyId,
        fixed: FixedPoint,
        prss: Prss,
        lead: u64,
    ) -> Self {
        Branch {
            wire: link,
            id,
            fixed,
            prss,
            lead,
            rounds: 0,
        }
    }

    /// Hands back what the party keeps: PRSS streams, lead counter, declared rounds.
    pub(crate) fn into_parts(self) -> (Prss, u64, u64) {
        (self.prss, self.lead, self.rounds)
    }

    /// This party's id.
    pub fn id(&self) -> PartyId {
        self.id
    }

    /// The session's fixed-point format.
    pub fn fixed(&self) -> FixedPoint {
        self.fixed
    }

    /// This branch's PRSS streams.
    pub fn prss(&mut self) -> &mut Prss {
        &mut self.prss
    }

    /// The lead of the next asymmetric protocol in this branch (rotates 0, 1, 2).
    pub fn next_lead(&mut self) -> PartyId {
        let p = PartyId::ALL[(self.lead % 3) as usize];
        self.lead += 1;
        p
    }

    /// The round this party's run is in (rounds ended so far).
    pub fn round(&self) -> u64 {
        self.wire.round()
    }

    /// Declares that the protocol begun in round `start` takes `n` rounds, and lets the
    /// rounds in which this party has nothing left to receive pass (free: it only sends
    /// what it queued), so that all three parties leave the protocol in the same round.
    /// A protocol that waited for more rounds than it declares is an
    /// [`Error::Inconsistent`].
    pub async fn finish_rounds(&mut self, start: u64, n: u64) -> Result<(), Error> {
        self.rounds += n;
        while self.wire.round() < start + n {
            self.next_round().await;
        }
        if self.wire.round() > start + n {
            return Err(Error::Inconsistent(
                "a protocol waited for more rounds than it declares",
            ));
        }
        Ok(())
    }

    /// Rounds declared in this branch so far.
    pub fn rounds(&self) -> u64 {
        self.rounds
    }

    /// Records that `values` secrets were revealed to party `to`.
    pub fn count_opened(&mut self, to: PartyId, values: usize) {
        self.wire.opened(to, values);
    }

    fn check_peer(&self, peer: PartyId) -> Result<(), Error> {
        if peer == self.id {
            return Err(TransportError::BadPeer {
                peer: peer.index() as u8,
            }
            .into());
        }
        Ok(())
    }

    /// Queues one counted message for `to`; it leaves with this round's merged message.
    pub fn send_bytes(&mut self, to: PartyId, msg: Vec<u8>) -> Result<(), Error> {
        self.check_peer(to)?;
        self.wire.send(to, msg);
        Ok(())
    }

    /// Queues ring elements as one message.
    pub fn send_ring<R: Ring>(&mut self, to: PartyId, values: &[R]) -> Result<(), Error> {
        let mut buf = alloc::vec![0u8; values.len() * R::BYTES];
        ring::encode_slice(values, &mut buf);
        self.send_bytes(to, buf)
    }

    /// Queues the low `bits` bits of each value, packed in `ceil(bits/8)` bytes each.
    pub fn send_packed<R: Ring>(
        &mut self,
        to: PartyId,
        values: &[R],
        bits: u32,
    ) -> Result<(), Error> {
        let mut buf = alloc::vec![0u8; values.len() * ring::packed_bytes(bits)];
        ring::pack_low(values, bits, &mut buf);
        self.send_bytes(to, buf)
    }

    /// Registers, in the current round, a receive of exactly `len` bytes from `from`.
    pub fn recv_bytes(&mut self, from: PartyId, len: usize) -> Result<Incoming<'a>, Error> {
        self.check_peer(from)?;
        Ok(Incoming {
            wire: self.wire,
            slot: self.wire.expect(from, len),
        })
    }

    /// Registers a receive of `n` ring elements (see [`recv_bytes`](Self::recv_bytes)).
    pub fn recv_ring<R: Ring>(
        &mut self,
        from: PartyId,
        n: usize,
    ) -> Result<impl Future<Output = Vec<R>> + 'a, Error> {
        let len = n
            .checked_mul(R::BYTES)
            .ok_or(Error::InvalidParameter("message too large"))?;
        let incoming = self.recv_bytes(from, len)?;
        Ok(async move {
            let bytes = incoming.await;
            let mut out = alloc::vec![R::ZERO; n];
            ring::decode_slice(&bytes, &mut out);
            out
        })
    }

    /// Registers a receive of `n` values sent with [`send_packed`](Self::send_packed).
    pub fn recv_packed<R: Ring>(
        &mut self,
        from: PartyId,
        n: usize,
        bits: u32,
    ) -> Result<impl Future<Output = Vec<R>> + 'a, Error> {
        let len = n
            .checked_mul(ring::packed_bytes(bits))
            .ok_or(Error::InvalidParameter("message too large"))?;
        let incoming = self.recv_bytes(from, len)?;
        Ok(async move {
            let bytes = incoming.await;
            let mut out = alloc::vec![R::ZERO; n];
            ring::unpack_low(&bytes, bits, &mut out);
            out
        })
    }

    /// Waits for the end of the current round (for a party with nothing to receive in
    /// it that must act in the next one).
    pub fn next_round(&self) -> impl Future<Output = ()> + 'a {
        RoundEnd {
            wire: self.wire,
            after: self.wire.round(),
        }
    }

    /// A new branch for work beside this one: its own PRSS streams (forked from this
    /// branch's) and lead rotation, no rounds yet.
    pub fn fork(&mut self) -> Branch<'a> {
        let lead = self.lead;
        self.lead += 1;
        Branch {
            wire: self.wire,
            id: self.id,
            fixed: self.fixed,
            prss: self.prss.fork(),
            lead,
            rounds: 0,
        }
    }

    /// Runs `a` and `b` side by side in the same rounds and returns both results; the
    /// first error wins. Declares the larger of the two branches' rounds.
    pub async fn join<A, B>(
        &mut self,
        a: impl AsyncFnOnce(&mut Branch<'a>) -> Result<A, Error>,
        b: impl AsyncFnOnce(&mut Branch<'a>) -> Result<B, Error>,
    ) -> Result<(A, B), Error> {
        let mut ba = self.fork();
        let mut bb = self.fork();
        let out = try_join2(a(&mut ba), b(&mut bb)).await;
        self.rounds += ba.rounds.max(bb.rounds);
        out
    }
}

/// Polls both futures until both are ready, or until either fails.
async fn try_join2<A, B>(
    a: impl Future<Output = Result<A, Error>>,
    b: impl Future<Output = Result<B, Error>>,
) -> Result<(A, B), Error> {
    let mut a = pin!(a);
    let mut b = pin!(b);
    let mut ra: Option<A> = None;
    let mut rb: Option<B> = None;
    core::future::poll_fn(|cx| {
        if ra.is_none()
            && let Poll::Ready(v) = a.as_mut().poll(cx)
        {
            ra = Some(v?);
        }
        if rb.is_none()
            && let Poll::Ready(v) = b.as_mut().poll(cx)
        {
            rb = Some(v?);
        }
        if ra.is_some() && rb.is_some() {
            Poll::Ready(Ok::<(), Error>(()))
        } else {
            Poll::Pending
        }
    })
    .await?;
    match (ra, rb) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(Error::Inconsistent("join finished without both results")),
    }
}
