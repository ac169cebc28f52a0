//! From boolean back to arithmetic: bit injection (B2A), multiplexers and ReLU.
//!
//! # Bit injection in 2 rounds and 24 bytes
//!
//! A shared bit is `b = b_L ⊕ b_{L+1} ⊕ b_{L+2}`. The lead `L` knows `a = b_L ⊕ b_{L+1}`
//! (both its components); the two others know `d = b_{L+2}`. As integers
//! `b = a ⊕ d = d + a·(1 - 2d)`. The lead sends `e = a - r` to `L+2`, with `r` drawn from
//! the stream it shares with `L+1`; then `t1 = r·(1-2d)` (at `L+1`) and
//! `t2 = e·(1-2d) + d` (at `L+2`) add up to `b`. The replicated sharing takes two fresh
//! masks `σ` (stream `L, L+1`) and `ρ` (stream `L, L+2`) as components `L+1` and `L`; the
//! last component `t1 + t2 - σ - ρ` is assembled by `L+1` and `L+2` swapping
//! `t1 - σ` and `t2 - ρ` (each masked by a value the receiver does not know).
//! `L+1`'s message does not depend on the first round, so the depth is 2.
//!
//! Cost: 2 rounds; `B` bytes from each party per bit (24 bytes in `Z_{2^64}`), against
//! 32 for "input `a`, multiply by `d`".

use alloc::vec::Vec;

use super::arith::mul;
use super::boolean::BoolShare;
use super::compare::msb;
use crate::error::Error;
use crate::party::Party;
use crate::ring::Ring;
use crate::rounds::Branch;
use crate::shape::Shape;
use crate::share::ArithShare;
use crate::transport::Transport;

/// Bit of element `j` in a one-plane word vector.
fn bit(words: &[u64], j: usize) -> u64 {
    (words[j / 64] >> (j % 64)) & 1
}

/// Injects a one-plane boolean share into `Z_{2^k}`: `[b]^A` with `b ∈ {0, 1}` as an
/// integer (not fixed point), shaped `shape`. See the [module docs](self).
///
/// Cost: 2 rounds, `B` bytes per bit from each party.
pub fn b2a<R: Ring, T: Transport>(
    p: &mut Party<T>,
    b: &BoolShare,
    shape: Shape,
) -> Result<ArithShare<R>, Error> {
    p.run(async move |br| b2a_async(br, b, shape).await)
}

/// [`b2a`] in a [`Branch`].
pub async fn b2a_async<R: Ring>(
    p: &mut Branch<'_>,
    b: &BoolShare,
    shape: Shape,
) -> Result<ArithShare<R>, Error> {
    let n = b.len();
    if b.bits() != 1 {
        return Err(Error::InvalidParameter(
            "b2a takes a one-plane boolean share",
        ));
    }
    if shape.numel() != n {
        return Err(Error::LengthMismatch {
            what: "b2a shape",
            expected: n,
            got: shape.numel(),
        });
    }
    let start = p.round();
    let lead = p.next_lead();
    let me = p.id();
    let (this, next) = if me == lead {
        let r: Vec<R> = p.prss().draw_with_next(n);
        let sigma: Vec<R> = p.prss().draw_with_next(n);
        let rho: Vec<R> = p.prss().draw_with_prev(n);
        let e: Vec<R> = (0..n)
            .map(|j| R::from_u64(bit(b.this(), j) ^ bit(b.next(), j)).wrapping_sub(r[j]))
            .collect();
        p.send_ring(lead.prev(), &e)?;
        (rho, sigma)
    } else if me == lead.next() {
        let r: Vec<R> = p.prss().draw_with_prev(n);
        let sigma: Vec<R> = p.prss().draw_with_prev(n);
        let mine: Vec<R> = (0..n)
            .map(|j| {
                let t1 = if bit(b.next(), j) == 1 {
                    r[j].wrapping_neg()
                } else {
                    r[j]
                };
                t1.wrapping_sub(sigma[j])
            })
            .collect();
        p.send_ring(lead.prev(), &mine)?;
        // `L+2` answers in the second round, once it has the lead's `e`.
        p.next_round().await;
        let theirs: Vec<R> = p.recv_ring(lead.prev(), n)?.await;
        let last = mine.iter().zip(&theirs).map(|(a, c)| a.wrapping_add(*c));
        (sigma, last.collect())
    } else {
        let rho: Vec<R> = p.prss().draw_with_next(n);
        let e = p.recv_ring::<R>(lead, n)?;
        let theirs = p.recv_ring::<R>(lead.next(), n)?;
        let e = e.await;
        let mine: Vec<R> = (0..n)
            .map(|j| {
                let d = bit(b.this(), j);
                let t2 = if d == 1 {
                    e[j].wrapping_neg().wrapping_add(R::ONE)
                } else {
                    e[j]
                };
                t2.wrapping_sub(rho[j])
            })
            .collect();
        p.send_ring(lead.next(), &mine)?;
        let theirs = theirs.await;
        let last = mine.iter().zip(&theirs).map(|(a, c)| a.wrapping_add(*c));
        (last.collect(), rho)
    };
    p.finish_rounds(start, 2).await?;
    ArithShare::from_components(this, next, shape)
}

/// `b ? x : y` elementwise, for a one-plane boolean `b` of the same length: `y + b·(x-y)`.
/// Works for any encoding (the product is by an integer bit, so no truncation).
///
/// Cost: [`b2a`] then one [`mul`]: 3 rounds, `2B` bytes per element from each party.
pub fn select<R: Ring, T: Transport>(
    p: &mut Party<T>,
    b: &BoolShare,
    x: &ArithShare<R>,
    y: &ArithShare<R>,
) -> Result<ArithShare<R>, Error> {
    let bit = b2a(p, b, x.shape().clone())?;
    let diff = x.sub(y)?;
    y.add(&mul(p, &bit, &diff)?)
}

/// `max(x, 0)` elementwise, exact: `x - [x < 0]·x`.
///
/// Cost: [`msb`] + [`b2a`] + [`mul`]: 11 rounds, 78 + 24 + 24 = 126 bytes per element
/// in `Z_{2^64}`.
pub fn relu<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
) -> Result<ArithShare<R>, Error> {
    let neg = msb(p, x)?;
    let bit = b2a(p, &neg, x.shape().clone())?;
    x.sub(&mul(p, &bit, x)?)
}

/// `min(max(x, lo), hi)` elementwise, exact, for public bounds `lo ≤ hi`: both
/// comparisons share one [`msb`] call, so the cost is that of one [`relu`] on twice the
/// elements: 11 rounds, 252 bytes per element in total in `Z_{2^64}`.
pub fn clamp<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    lo: f64,
    hi: f64,
) -> Result<ArithShare<R>, Error> {
    if lo.is_nan() || hi.is_nan() || lo > hi {
        return Err(Error::InvalidParameter("clamp needs lo <= hi"));
    }
    let me = p.id();
    let (elo, ehi): (R, R) = (p.fixed().encode(lo)?, p.fixed().encode(hi)?);
    // Negative exactly where x < lo, and where x > hi.
    let below = x.add_public_scalar(me, elo.wrapping_neg());
    let above = x.neg().add_public_scalar(me, ehi);
    let both = ArithShare::concat(&[&below, &above]);
    let bits = msb(p, &both)?;
    let bits = b2a(p, &bits, both.shape().clone())?;
    // Where a bound is crossed, add the distance back to it: lo - x or hi - x.
    let delta = ArithShare::concat(&[&below.neg(), &above]);
    let fix = mul(p, &bits, &delta)?;
    let n = x.len();
    let lo_fix = fix.slice(0, n)?.reshape(x.shape().clone())?;
    let hi_fix = fix.slice(n, n)?.reshape(x.shape().clone())?;
    x.add(&lo_fix)?.add(&hi_fix)
}
