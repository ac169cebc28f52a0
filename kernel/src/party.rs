//! The `Party` context every protocol runs in: id, transport, PRSS, fixed-point format
//! and cost counters.

use alloc::vec::Vec;

use rand_chacha::ChaCha12Rng;
use rand_core::{CryptoRng, SeedableRng};

use crate::cost::CostLedger;
use crate::error::Error;
use crate::fixed::FixedPoint;
use crate::prss::{Prss, SEED_BYTES};
use crate::rounds::{Branch, Link};
use crate::transport::{PartyId, Transport};

/// Reproducible PRSS entropy for party `id` from a public `seed`: ChaCha12 seeded from
/// `seed`, on stream `id + 1`.
///
/// **For tests and reproducible benchmarks only**: anyone who knows `seed` knows every
/// PRSS key of the session. Transports use it when a run is configured with a seed, so
/// that the in-memory and the TCP transports give bit-identical results.
///
/// ```
/// use cipherdm_kernel::party::seeded_entropy;
/// use cipherdm_kernel::PartyId;
/// use rand_core::Rng;
/// let (mut a, mut b) = (seeded_entropy(7, PartyId::P0), seeded_entropy(7, PartyId::P1));
/// assert_ne!(a.next_u64(), b.next_u64());
/// ```
pub fn seeded_entropy(seed: u64, id: PartyId) -> ChaCha12Rng {
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    rng.set_stream(id.index() as u64 + 1);
    rng
}

/// Entropy for a party's fresh PRSS key contributions: [`seeded_entropy`] when a public
/// `seed` is given (tests and reproducible benchmarks only), otherwise a ChaCha12 stream
/// keyed from the operating system (feature `std`). The one place every host — the
/// in-memory transport, the TCP loopback runner and the party daemon — gets its
/// [`Party::setup`] entropy from.
///
/// ```
/// use cipherdm_kernel::party::session_entropy;
/// use cipherdm_kernel::PartyId;
/// use rand_core::Rng;
/// let mut fresh = session_entropy(None, PartyId::P0).unwrap();
/// let mut again = session_entropy(None, PartyId::P0).unwrap();
/// assert_ne!(fresh.next_u64(), again.next_u64());
/// ```
#[cfg(feature = "std")]
pub fn session_entropy(seed: Option<u64>, id: PartyId) -> Result<ChaCha12Rng, Error> {
    match seed {
        Some(s) => Ok(seeded_entropy(s, id)),
        None => {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).map_err(|_| Error::Entropy)?;
            Ok(ChaCha12Rng::from_seed(key))
        }
    }
}

/// One of the three parties of a session.
///
/// Created by [`Party::setup`], which agrees fresh PRSS keys with both peers (one round,
/// 64 bytes to each). Protocols are free functions in [`protocols`](crate::protocols)
/// taking `&mut Party` (each a [`run`](Self::run) of its `*_async` form over a
/// [`Branch`]; a protocol built outside the kernel is written the same way). All three
/// parties must call the same protocols in the same order with the same public
/// parameters.
pub struct Party<T: Transport> {
    id: PartyId,
    transport: T,
    prss: Prss,
    fixed: FixedPoint,
    costs: CostLedger,
    lead_counter: u64,
    rounds_waited: u64,
}

impl<T: Transport> core::fmt::Debug for Party<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Party")
            .field("id", &self.id)
            .field("fixed", &self.fixed)
            .finish()
    }
}

impl<T: Transport> Party<T> {
    /// Starts a session: exchanges fresh PRSS key contributions drawn from `entropy`
    /// with both peers (one round, 64 bytes to each: the pair key's contribution and this
    /// party's part of the common key). Every session must use fresh entropy (keys are
    /// never reused).
    pub fn setup<G: CryptoRng + ?Sized>(
        id: PartyId,
        transport: T,
        fixed: FixedPoint,
        entropy: &mut G,
    ) -> Result<Self, Error> {
        let mut to_next = [0u8; SEED_BYTES];
        let mut to_prev = [0u8; SEED_BYTES];
        let mut common = [0u8; SEED_BYTES];
        entropy.fill_bytes(&mut to_next);
        entropy.fill_bytes(&mut to_prev);
        entropy.fill_bytes(&mut common);
        let mut party = Party {
            id,
            transport,
            prss: Prss::from_keys([0; SEED_BYTES], [0; SEED_BYTES], [0; SEED_BYTES]),
            fixed,
            costs: CostLedger::default(),
            lead_counter: 0,
            rounds_waited: 0,
        };
        party.costs.enter("setup");
        party.send_bytes(id.next(), [to_next, common].concat())?;
        party.send_bytes(id.prev(), [to_prev, common].concat())?;
        party.flush()?;
        let from_prev = party.recv_bytes(id.prev(), 2 * SEED_BYTES)?;
        let from_next = party.recv_bytes(id.next(), 2 * SEED_BYTES)?;
        party.costs.rounds(1);
        party.costs.leave();
        let mut prev_key = [0u8; SEED_BYTES];
        let mut next_key = [0u8; SEED_BYTES];
        let mut common_key = [0u8; SEED_BYTES];
        for j in 0..SEED_BYTES {
            // Pair (i-1, i): i-1's to_next XOR i's to_prev.
            prev_key[j] = from_prev[j] ^ to_prev[j];
            next_key[j] = to_next[j] ^ from_next[j];
            common_key[j] = common[j] ^ from_prev[SEED_BYTES + j] ^ from_next[SEED_BYTES + j];
        }
        party.prss = Prss::from_keys(prev_key, next_key, common_key);
        Ok(party)
    }

    /// This party's id.
    pub fn id(&self) -> PartyId {
        self.id
    }

    /// The session's fixed-point format.
    pub fn fixed(&self) -> FixedPoint {
        self.fixed
    }

    /// The cost counters.
    pub fn costs(&self) -> &CostLedger {
        &self.costs
    }

    /// The PRSS streams (between runs; inside one, a [`Branch`] has its own).
    pub fn prss(&mut self) -> &mut Prss {
        &mut self.prss
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The transport, mutably.
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Ends the session and returns the transport.
    pub fn into_transport(self) -> T {
        self.transport
    }

    /// Runs `f` with costs attributed to `label` (nested scopes join with `/`).
    ///
    /// ```ignore
    /// let y = party.scope("conv1", |p| protocols::mul(p, &x, &w))?;
    /// let c = party.costs().label("conv1").unwrap();
    /// ```
    pub fn scope<Out>(&mut self, label: &str, f: impl FnOnce(&mut Self) -> Out) -> Out {
        self.costs.enter(label);
        let out = f(self);
        self.costs.leave();
        out
    }

    /// Runs a protocol written against a [`Branch`] (an `async` closure) to completion,
    /// merging the communication of its branches round by round; see
    /// [`rounds`](crate::rounds). The blocking protocol functions are this call around
    /// their `*_async` form. Declared rounds go to the cost counters.
    ///
    /// ```ignore
    /// let (sq, y) = p.run(async |br| {
    ///     br.join(async |a| mul_fixed_async(a, &x, &x).await,
    ///             async |b| silu_async(b, &x, profile).await).await
    /// })?;
    /// ```
    pub fn run<O>(
        &mut self,
        f: impl for<'b> AsyncFnOnce(&mut Branch<'b>) -> Result<O, Error>,
    ) -> Result<O, Error> {
        let prss = core::mem::replace(
            &mut self.prss,
            Prss::from_keys([0; SEED_BYTES], [0; SEED_BYTES], [0; SEED_BYTES]),
        );
        let link = Link::new(&mut self.transport, &mut self.costs);
        let mut branch = Branch::root(&link, self.id, self.fixed, prss, self.lead_counter);
        let out = link.block_on(f(&mut branch));
        let waited = link.rounds_waited();
        let (prss, lead, declared) = branch.into_parts();
        drop(link);
        self.prss = prss;
        self.lead_counter = lead;
        self.rounds_waited += waited;
        self.costs.rounds(declared);
        out
    }

    /// Rounds this party has actually waited for in [`run`](Self::run) (its measured
    /// causal depth); the largest over the three parties equals the declared rounds.
    pub fn rounds_waited(&self) -> u64 {
        self.rounds_waited
    }

    /// Sends one counted message (set-up only; protocols send through a [`Branch`]).
    fn send_bytes(&mut self, to: PartyId, msg: Vec<u8>) -> Result<(), Error> {
        self.check_peer(to)?;
        self.costs.sent(to, msg.len());
        self.transport.send_owned(to, msg)?;
        Ok(())
    }

    /// Receives one message of exactly `len` bytes (set-up only).
    fn recv_bytes(&mut self, from: PartyId, len: usize) -> Result<Vec<u8>, Error> {
        self.check_peer(from)?;
        Ok(self.transport.recv_owned(from, len)?)
    }

    /// Flushes the transport.
    fn flush(&mut self) -> Result<(), Error> {
        Ok(self.transport.flush()?)
    }

    /// Records that this party handed its shares of `values` secrets to the output client.
    pub fn count_output(&mut self, values: usize) {
        self.costs.output(values);
    }

    fn check_peer(&self, peer: PartyId) -> Result<(), Error> {
        if peer == self.id {
            return Err(crate::error::TransportError::BadPeer {
                peer: peer.index() as u8,
            }
            .into());
        }
        Ok(())
    }
}
