//! Truncation by a public number of bits, with at most 1 LSB error and no large-error
//! failure anywhere in its input range.
//!
//! # Input range and result
//!
//! For `x` in `[-2^(k-2), 2^(k-2))` (two's complement) and `1 <= m <= k-2`, the result
//! is `floor(x / 2^m) + e` with `e ∈ {0, 1}` and `P(e = 1) = ((x mod 2^m) + 1) / 2^m`:
//! stochastic rounding, unbiased up to `2^-m` LSB, never off by more than one LSB. The
//! 1-round ABY3 "share truncation" instead fails with error `~2^(k-m)` with probability
//! `~|x|/2^k` per element; across the `~10^8` truncations of one sample that is not rare.
//!
//! # Protocol (our own design; roles rotate with [`Party::next_lead`])
//!
//! Call the lead `P0`, its successor `P1` and the third party `P2`. The input is first
//! written as `x' = x + 2^(k-2) = A + B mod 2^k` with `x' ∈ [0, 2^(k-1))`, where `A` is
//! known to `P0` only and `B` is known to both `P1` and `P2` (for a replicated input
//! `A = x_0 + x_1 + 2^(k-2)`, `B = x_2`). Then, with `w = [A + B ≥ 2^k]` the wrap bit,
//!
//! `floor(x'/2^m) = (A >> m) + (B >> m) − w·2^(k−m) + δ`, `δ ∈ {0, 1}` (the low carry),
//!
//! and because `x' < 2^(k-1)`, `w = msb(A) ∨ msb(B)`. Only `w mod 2^m` matters (it is
//! multiplied by `2^(k-m)`), so the whole nonlinear part is one OR of two bits held by
//! different parties, computed with a three-party oblivious transfer on `m`-bit values:
//!
//! 1. `P0` and `P2` draw `s, t` (mod `2^m`) and `ρ` from their PRSS stream; `P1` and `P2`
//!    draw `μ` (mod `2^m`). `P0` sends `P1` the values `C = (A>>m) − s·2^(k−m) − ρ −
//!    2^(k−2−m) + 1` (B bytes) and `v = msb(A) − s + t` (w bytes). `P2`, who knows
//!    `b = msb(B)`, sends `P1` the value `u = (1 − s)` if `b` else `t` (w bytes).
//! 2. `P1` computes `m_b = u` if `b` else `v − u`, so that `m_b + s ≡ w (mod 2^m)`,
//!    and sends `P0` the value `D = m_b + μ` (w bytes).
//!
//! The output shares are `y_0 = ρ`, `y_1 = C − D·2^(k−m)`, `y_2 = (B>>m) + μ·2^(k−m)`;
//! they sum to `floor(x/2^m) + 1 − δ`. Every message is masked by a value its receiver
//! does not know (`ρ`, `t`, `s` or `μ`), and `P2` receives nothing.
//!
//! For a product, the input is the additive `z = z_0 + z_1 + z_2` before resharing:
//! `P1` and `P2` swap `z_1`, `z_2` (so `B = z_1 + z_2`) in the same round as step 1's
//! message from `P0` (`A = z_0`), which costs one more round but saves the resharing.
//!
//! Cost per element (`Z_{2^64}`, `m = 18`, `w = 3` bytes): replicated input 2 rounds,
//! 17 bytes in total (lead 11, others 3); additive input 3 rounds, 33 bytes (11 each).

use alloc::vec::Vec;

use crate::error::Error;
use crate::party::Party;
use crate::ring::{self, Ring};
use crate::shape::Shape;
use crate::share::ArithShare;
use crate::transport::{PartyId, Transport};

/// What one party knows of `x' = A + B` before the truncation core runs.
enum Split<R> {
    /// The lead's `A`.
    Lead(Vec<R>),
    /// `B`, held by the two other parties.
    Pair(Vec<R>),
}

fn check_bits<R: Ring>(bits: u32) -> Result<(), Error> {
    if bits > R::BITS - 2 {
        return Err(Error::InvalidParameter(
            "truncation needs 0 <= bits <= k - 2",
        ));
    }
    Ok(())
}

/// `[x / 2^bits]` for a replicated input in `[-2^(k-2), 2^(k-2))`; see the
/// [module docs](self) for the protocol and its error.
///
/// Cost: 2 rounds; the lead sends `B + w` bytes per element, the others `w`.
pub fn trunc<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    bits: u32,
) -> Result<ArithShare<R>, Error> {
    check_bits::<R>(bits)?;
    if bits == 0 {
        return Ok(x.clone());
    }
    let lead = p.next_lead();
    let me = p.id();
    let split = if me == lead {
        Split::Lead(x.local_sum())
    } else if me == lead.next() {
        Split::Pair(x.next().to_vec())
    } else {
        Split::Pair(x.this().to_vec())
    };
    let out = trunc_core(p, lead, split, x.shape().clone(), bits)?;
    p.count_rounds(2);
    Ok(out)
}

/// [`trunc`] by the session's fraction bits `f`.
pub fn trunc_fixed<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
) -> Result<ArithShare<R>, Error> {
    let f = p.fixed().frac_bits();
    trunc(p, x, f)
}

/// Truncates a 3-out-of-3 additive sharing (`z` is this party's summand, e.g. a local
/// product) straight into a replicated sharing of `z / 2^bits`.
///
/// Cost: 3 rounds, `B + w` bytes per element from every party.
pub fn additive_trunc<R: Ring, T: Transport>(
    p: &mut Party<T>,
    mut z: Vec<R>,
    shape: Shape,
    bits: u32,
) -> Result<ArithShare<R>, Error> {
    check_bits::<R>(bits)?;
    if z.len() != shape.numel() {
        return Err(Error::LengthMismatch {
            what: "additive_trunc",
            expected: shape.numel(),
            got: z.len(),
        });
    }
    if bits == 0 {
        return super::arith::reshare(p, z, shape);
    }
    p.prss().add_zero_share(&mut z);
    let lead = p.next_lead();
    let me = p.id();
    let split = if me == lead {
        Split::Lead(z)
    } else {
        // P1 and P2 swap their summands so both know B = z_1 + z_2. The lead's first
        // message goes out in this same round (inside `trunc_core`).
        let other = if me == lead.next() {
            lead.plus(2)
        } else {
            lead.next()
        };
        p.send_ring(other, &z)?;
        p.flush()?;
        let theirs: Vec<R> = p.recv_ring(other, z.len())?;
        for (a, b) in z.iter_mut().zip(&theirs) {
            *a = a.wrapping_add(*b);
        }
        Split::Pair(z)
    };
    let out = trunc_core(p, lead, split, shape, bits)?;
    p.count_rounds(3);
    Ok(out)
}

/// The two-message core shared by [`trunc`] and [`additive_trunc`].
fn trunc_core<R: Ring, T: Transport>(
    p: &mut Party<T>,
    lead: PartyId,
    split: Split<R>,
    shape: Shape,
    m: u32,
) -> Result<ArithShare<R>, Error> {
    let k = R::BITS;
    let n = shape.numel();
    let me = p.id();
    let mid = lead.next();
    let last = lead.plus(2);
    let w = ring::packed_bytes(m);
    let up = k - m; // w·2^(k-m) only needs w mod 2^m
    let offset = R::ONE.shl(k - 2);
    // Removes the offset 2^(k-2) after the shift and adds the +1 that turns the
    // floor-minus-carry into stochastic rounding.
    let fixup = R::ONE.shl(k - 2 - m).wrapping_sub(R::ONE);

    let (this, next) = match split {
        Split::Lead(a) if me == lead => {
            // P0: stream shared with P2 is `with_prev`.
            let s: Vec<R> = p.prss().draw_with_prev(n);
            let t: Vec<R> = p.prss().draw_with_prev(n);
            let rho: Vec<R> = p.prss().draw_with_prev(n);
            let mut msg = alloc::vec![0u8; n * (R::BYTES + w)];
            let (c_bytes, v_bytes) = msg.split_at_mut(n * R::BYTES);
            let mut c = Vec::with_capacity(n);
            let mut v = Vec::with_capacity(n);
            for j in 0..n {
                let big_a = a[j].wrapping_add(offset);
                let sj = s[j].low_bits(m);
                c.push(
                    big_a
                        .shr(m)
                        .wrapping_sub(sj.shl(up))
                        .wrapping_sub(rho[j])
                        .wrapping_sub(fixup),
                );
                v.push(
                    R::from_bool(big_a.msb())
                        .wrapping_sub(sj)
                        .wrapping_add(t[j]),
                );
            }
            ring::encode_slice(&c, c_bytes);
            ring::pack_low(&v, m, v_bytes);
            p.send_bytes(mid, msg)?;
            p.flush()?;
            let d: Vec<R> = p.recv_packed(mid, n, m)?;
            for (cj, dj) in c.iter_mut().zip(&d) {
                *cj = cj.wrapping_sub(dj.shl(up));
            }
            (rho, c)
        }
        Split::Pair(b) if me == last => {
            // P2: shares (s, t, ρ) with P0 via `with_next`, μ with P1 via `with_prev`.
            let s: Vec<R> = p.prss().draw_with_next(n);
            let t: Vec<R> = p.prss().draw_with_next(n);
            let rho: Vec<R> = p.prss().draw_with_next(n);
            let mu: Vec<R> = p.prss().draw_with_prev(n);
            let u: Vec<R> = (0..n)
                .map(|j| {
                    if b[j].msb() {
                        R::ONE.wrapping_sub(s[j])
                    } else {
                        t[j]
                    }
                })
                .collect();
            p.send_packed(mid, &u, m)?;
            p.flush()?;
            let y2: Vec<R> = b
                .iter()
                .zip(&mu)
                .map(|(bj, mj)| bj.shr(m).wrapping_add(mj.low_bits(m).shl(up)))
                .collect();
            (y2, rho)
        }
        Split::Pair(b) if me == mid => {
            // P1: μ shared with P2 via `with_next`.
            let mu: Vec<R> = p.prss().draw_with_next(n);
            let msg = p.recv_bytes(lead, n * (R::BYTES + w))?;
            let (c_bytes, v_bytes) = msg.split_at(n * R::BYTES);
            let mut c = alloc::vec![R::ZERO; n];
            let mut v = alloc::vec![R::ZERO; n];
            ring::decode_slice(c_bytes, &mut c);
            ring::unpack_low(v_bytes, m, &mut v);
            let u: Vec<R> = p.recv_packed(last, n, m)?;
            let mut d = Vec::with_capacity(n);
            let mut y2 = Vec::with_capacity(n);
            for j in 0..n {
                let mb = if b[j].msb() {
                    u[j]
                } else {
                    v[j].wrapping_sub(u[j])
                };
                let muj = mu[j].low_bits(m);
                let dj = mb.wrapping_add(muj).low_bits(m);
                c[j] = c[j].wrapping_sub(dj.shl(up));
                y2.push(b[j].shr(m).wrapping_add(muj.shl(up)));
                d.push(dj);
            }
            p.send_packed(lead, &d, m)?;
            p.flush()?;
            (c, y2)
        }
        _ => return Err(Error::Inconsistent("truncation role does not match party")),
    };
    ArithShare::from_components(this, next, shape)
}
