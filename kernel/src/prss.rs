//! Pseudo-random secret sharing (PRSS): correlated randomness with no messages.
//!
//! There are three ChaCha8 keys `k_0, k_1, k_2`; key `k_i` is known to parties `i-1`
//! and `i` (the same pattern as share components). So party `i` holds two streams:
//! `with_prev` (key `k_i`, shared with party `i-1`) and `with_next` (key `k_{i+1}`,
//! shared with party `i+1`). Then
//! - a *random share* takes `x_i` from `with_prev` and `x_{i+1}` from `with_next`:
//!   a consistent replicated sharing of a uniform value nobody knows;
//! - a *zero share* `α_i = F(k_i) - F(k_{i+1})` is a 3-out-of-3 additive sharing of 0
//!   (the sum telescopes), used to re-randomise products before they are sent.
//!
//! A third key `k_c`, known to all three parties, drives a *common* stream: values every
//! party knows but that are fixed by no share and by no single party (truncation draws
//! its rounding offset from it, see [`trunc`](crate::protocols::trunc())). It is public
//! among the servers, so it never masks anything.
//!
//! Both parties of a pair must draw the same amounts in the same order; every protocol
//! does, because all parties run the same protocol sequence.
//!
//! Keys are agreed once per session by [`Party::setup`](crate::party::Party::setup):
//! each party sends a fresh 32-byte contribution to each neighbour and a pair's key is
//! the XOR of both contributions, so it is fresh if either side's entropy is; the common
//! key is the XOR of one more contribution from each of the three parties.

use alloc::vec::Vec;
use core::fmt;

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use crate::ring::Ring;
use crate::shape::Shape;
use crate::share::ArithShare;

/// The stream cipher behind every PRSS draw. ChaCha with 8 rounds: the best known attack
/// reaches 7 (Aumasson, "Too Much Crypto", 2019, recommends 8), and the keystream was a
/// sixth of a secure U-Net forward's time with 12.
pub type PrssRng = ChaCha8Rng;

/// Bytes of a PRSS key.
pub const SEED_BYTES: usize = 32;

/// A party's PRSS streams: one per neighbour, and the common one.
pub struct Prss {
    with_prev: PrssRng,
    with_next: PrssRng,
    common: PrssRng,
}

impl fmt::Debug for Prss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Prss { .. }")
    }
}

impl Prss {
    /// Streams from the key shared with the previous party, the key shared with the
    /// next party and the key all three parties share.
    pub fn from_keys(
        prev_key: [u8; SEED_BYTES],
        next_key: [u8; SEED_BYTES],
        common_key: [u8; SEED_BYTES],
    ) -> Self {
        Prss {
            with_prev: PrssRng::from_seed(prev_key),
            with_next: PrssRng::from_seed(next_key),
            common: PrssRng::from_seed(common_key),
        }
    }

    /// Independent streams for a branch of work that runs beside others in the same
    /// rounds (see [`rounds`](crate::rounds)): fresh keys drawn from each of this
    /// party's streams. A pair's two members fork at the same point of the same
    /// protocol, so their forks agree; what the branches draw afterwards no longer
    /// depends on the order in which the scheduler runs them.
    pub fn fork(&mut self) -> Prss {
        let mut keys = [[0u8; SEED_BYTES]; 3];
        for (key, rng) in
            keys.iter_mut()
                .zip([&mut self.with_prev, &mut self.with_next, &mut self.common])
        {
            rand_core::Rng::fill_bytes(rng, key);
        }
        Prss::from_keys(keys[0], keys[1], keys[2])
    }

    /// Fills `out` from the stream shared with the previous party.
    pub fn fill_with_prev<R: Ring>(&mut self, out: &mut [R]) {
        R::fill_random(&mut self.with_prev, out);
    }

    /// Fills `out` from the stream shared with the next party.
    pub fn fill_with_next<R: Ring>(&mut self, out: &mut [R]) {
        R::fill_random(&mut self.with_next, out);
    }

    /// `n` fresh values from the stream shared with the previous party.
    pub fn draw_with_prev<R: Ring>(&mut self, n: usize) -> Vec<R> {
        let mut v = alloc::vec![R::ZERO; n];
        self.fill_with_prev(&mut v);
        v
    }

    /// `n` fresh values from the stream shared with the next party.
    pub fn draw_with_next<R: Ring>(&mut self, n: usize) -> Vec<R> {
        let mut v = alloc::vec![R::ZERO; n];
        self.fill_with_next(&mut v);
        v
    }

    /// `len` raw keystream bytes from the stream shared with the previous party.
    pub fn draw_bytes_with_prev(&mut self, len: usize) -> Vec<u8> {
        let mut v = alloc::vec![0u8; len];
        rand_core::Rng::fill_bytes(&mut self.with_prev, &mut v);
        v
    }

    /// `len` raw keystream bytes from the stream shared with the next party.
    pub fn draw_bytes_with_next(&mut self, len: usize) -> Vec<u8> {
        let mut v = alloc::vec![0u8; len];
        rand_core::Rng::fill_bytes(&mut self.with_next, &mut v);
        v
    }

    /// `n` values below `2^bits` from the stream shared with the previous party, drawn
    /// as 32-bit words when `bits ≤ 32` (half the keystream of full words: the masks a
    /// truncation needs only modulo `2^m`).
    pub fn draw_with_prev_bits<R: Ring>(&mut self, n: usize, bits: u32) -> Vec<R> {
        draw_bits(&mut self.with_prev, n, bits)
    }

    /// `n` values below `2^bits` from the stream shared with the next party; see
    /// [`draw_with_prev_bits`](Self::draw_with_prev_bits).
    pub fn draw_with_next_bits<R: Ring>(&mut self, n: usize, bits: u32) -> Vec<R> {
        draw_bits(&mut self.with_next, n, bits)
    }

    /// `n` values below `2^bits` from the stream all three parties share: known to every
    /// server, fixed by none of them alone; see
    /// [`draw_with_prev_bits`](Self::draw_with_prev_bits).
    pub fn draw_common_bits<R: Ring>(&mut self, n: usize, bits: u32) -> Vec<R> {
        draw_bits(&mut self.common, n, bits)
    }

    /// A replicated sharing of a uniformly random tensor, without communication.
    pub fn random_share<R: Ring>(&mut self, shape: Shape) -> ArithShare<R> {
        let n = shape.numel();
        let this = self.draw_with_prev(n);
        let next = self.draw_with_next(n);
        // Lengths match the shape by construction.
        ArithShare::from_components(this, next, shape).expect("lengths match shape")
    }

    /// This party's part of a 3-out-of-3 additive sharing of zero, added into `acc`.
    pub fn add_zero_share<R: Ring>(&mut self, acc: &mut [R]) {
        let mut buf = [R::ZERO; 256];
        let mut buf2 = [R::ZERO; 256];
        for chunk in acc.chunks_mut(256) {
            let a = &mut buf[..chunk.len()];
            let b = &mut buf2[..chunk.len()];
            self.fill_with_prev(a);
            self.fill_with_next(b);
            for ((z, x), y) in chunk.iter_mut().zip(a.iter()).zip(b.iter()) {
                *z = z.wrapping_add(x.wrapping_sub(*y));
            }
        }
    }

    /// This party's part of a 3-out-of-3 additive sharing of `n` zeros.
    pub fn zero_share<R: Ring>(&mut self, n: usize) -> Vec<R> {
        let mut v = alloc::vec![R::ZERO; n];
        self.add_zero_share(&mut v);
        v
    }
}

/// `n` uniform values below `2^bits` from `rng`: 32-bit words for `bits ≤ 32` (exactly
/// uniform, as `2^bits` divides `2^32`), full ring elements otherwise.
fn draw_bits<R: Ring>(rng: &mut PrssRng, n: usize, bits: u32) -> Vec<R> {
    let mut out = alloc::vec![R::ZERO; n];
    if bits > 32 {
        R::fill_random(rng, &mut out);
        for v in &mut out {
            *v = v.low_bits(bits);
        }
        return out;
    }
    let mask = if bits == 32 {
        u32::MAX
    } else {
        (1u32 << bits) - 1
    };
    let mut buf = [0u8; 4096];
    for chunk in out.chunks_mut(buf.len() / 4) {
        let bytes = &mut buf[..chunk.len() * 4];
        rand_core::Rng::fill_bytes(rng, bytes);
        for (v, b) in chunk.iter_mut().zip(bytes.chunks_exact(4)) {
            let w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            *v = R::from_u64(u64::from(w & mask));
        }
    }
    out
}
