//! Truncation by a public number of bits, with at most 1 LSB error and no large-error
//! failure anywhere in its input range.
//!
//! # Input range and result
//!
//! For `x` in `[-2^(k-2), 2^(k-2))` (two's complement) and `1 <= m <= k-2`, the result
//! is `floor(x / 2^m) + e` with `e ∈ {0, 1}` and `P(e = 1) = ((x mod 2^m) + 1) / 2^m`:
//! stochastic rounding driven by a common random offset (so unbiased up to `2^-m` LSB
//! whatever the input's sharing), never off by more than one LSB. The
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
//! and because `x' < 2^(k-1)`, `w = msb(A) ∨ msb(B)` (if both top bits are set the sum
//! wraps; if exactly one is, a sum below `2^k` would have its top bit set, so it wraps
//! too). That holds for *any* split, so before anything else the parties move a common
//! uniform `ζ` (PRSS, known to all three) across it: `A ← A + ζ`, `B ← B − ζ`. The
//! rounding carry `δ` below is then a function of `x` and `ζ` alone, so rounding is
//! unbiased however `x` is shared (owner-led inputs, public values, products with a
//! public power of two). Only `w mod 2^m` matters (it is
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
use crate::rounds::Branch;
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
    p.run(async |br| trunc_async(br, x, bits).await)
}

/// [`trunc`] in a [`Branch`].
pub async fn trunc_async<R: Ring>(
    br: &mut Branch<'_>,
    x: &ArithShare<R>,
    bits: u32,
) -> Result<ArithShare<R>, Error> {
    check_bits::<R>(bits)?;
    if bits == 0 {
        return Ok(x.clone());
    }
    let start = br.round();
    let lead = br.next_lead();
    let me = br.id();
    let split = if me == lead {
        Split::Lead(x.local_sum())
    } else if me == lead.next() {
        Split::Pair(x.next().to_vec())
    } else {
        Split::Pair(x.this().to_vec())
    };
    let no_swap: Option<core::future::Ready<Vec<R>>> = None;
    let out = trunc_core(br, lead, split, false, no_swap, x.shape().clone(), bits).await?;
    br.finish_rounds(start, 2).await?;
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
    z: Vec<R>,
    shape: Shape,
    bits: u32,
) -> Result<ArithShare<R>, Error> {
    p.run(async move |br| additive_trunc_async(br, z, shape, bits).await)
}

/// [`additive_trunc`] in a [`Branch`].
pub async fn additive_trunc_async<R: Ring>(
    br: &mut Branch<'_>,
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
        return super::arith::reshare_async(br, z, shape).await;
    }
    let start = br.round();
    br.prss().add_zero_share(&mut z);
    let lead = br.next_lead();
    let me = br.id();
    let (split, swapped) = if me == lead {
        (Split::Lead(z), None)
    } else {
        // P1 and P2 swap their summands so both know B = z_1 + z_2. The lead's first
        // message goes out in this same round (inside `trunc_core`).
        let other = if me == lead.next() {
            lead.plus(2)
        } else {
            lead.next()
        };
        br.send_ring(other, &z)?;
        let theirs = br.recv_ring::<R>(other, z.len())?;
        (Split::Pair(z), Some(theirs))
    };
    let out = trunc_core(br, lead, split, true, swapped, shape, bits).await?;
    br.finish_rounds(start, 3).await?;
    Ok(out)
}

/// The two-message core shared by [`trunc`] and [`additive_trunc`]. In the `additive`
/// form the pair's `B` is completed by the summand the other pair member sends in the
/// first round (`swapped`, the pair's receive of it), so every later message moves one
/// round on.
async fn trunc_core<R: Ring>(
    br: &mut Branch<'_>,
    lead: PartyId,
    split: Split<R>,
    additive: bool,
    swapped: Option<impl core::future::Future<Output = Vec<R>>>,
    shape: Shape,
    m: u32,
) -> Result<ArithShare<R>, Error> {
    let k = R::BITS;
    let n = shape.numel();
    let me = br.id();
    let mid = lead.next();
    let last = lead.plus(2);
    let w = ring::packed_bytes(m);
    let up = k - m; // w·2^(k-m) only needs w mod 2^m
    let offset = R::ONE.shl(k - 2);
    // Removes the offset 2^(k-2) after the shift and adds the +1 that turns the
    // floor-minus-carry into stochastic rounding.
    let fixup = R::ONE.shl(k - 2 - m).wrapping_sub(R::ONE);
    // Callers have not waited yet, so this is the protocol's first round.
    let start_round = br.round();

    // Re-randomise the split with a value all three draw: `A' = A + ζ`, `B' = B − ζ`.
    // The rounding carry then depends on `x` and `ζ` only, never on how `x` happens to
    // be shared (an owner-led input, a public value or a product with a public power of
    // two would otherwise always round the same way).
    let zeta: Vec<R> = br.prss().draw_common(n);
    let (this, next) = match split {
        Split::Lead(mut a) if me == lead => {
            for (v, z) in a.iter_mut().zip(&zeta) {
                *v = v.wrapping_add(*z);
            }
            // P0: stream shared with P2 is `with_prev`.
            let s: Vec<R> = br.prss().draw_with_prev(n);
            let t: Vec<R> = br.prss().draw_with_prev(n);
            let rho: Vec<R> = br.prss().draw_with_prev(n);
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
            br.send_bytes(mid, msg)?;
            // D comes back in the last round (the 2nd, or the 3rd after a swap).
            let last_round = start_round + if additive { 2 } else { 1 };
            while br.round() < last_round {
                br.next_round().await;
            }
            let d: Vec<R> = br.recv_packed(mid, n, m)?.await;
            for (cj, dj) in c.iter_mut().zip(&d) {
                *cj = cj.wrapping_sub(dj.shl(up));
            }
            (rho, c)
        }
        Split::Pair(mut b) if me == last => {
            // P2: shares (s, t, ρ) with P0 via `with_next`, μ with P1 via `with_prev`.
            let s: Vec<R> = br.prss().draw_with_next(n);
            let t: Vec<R> = br.prss().draw_with_next(n);
            let rho: Vec<R> = br.prss().draw_with_next(n);
            let mu: Vec<R> = br.prss().draw_with_prev(n);
            if let Some(theirs) = swapped {
                for (v, o) in b.iter_mut().zip(&theirs.await) {
                    *v = v.wrapping_add(*o);
                }
            }
            for (v, z) in b.iter_mut().zip(&zeta) {
                *v = v.wrapping_sub(*z);
            }
            let u: Vec<R> = (0..n)
                .map(|j| {
                    if b[j].msb() {
                        R::ONE.wrapping_sub(s[j])
                    } else {
                        t[j]
                    }
                })
                .collect();
            br.send_packed(mid, &u, m)?;
            let y2: Vec<R> = b
                .iter()
                .zip(&mu)
                .map(|(bj, mj)| bj.shr(m).wrapping_add(mj.low_bits(m).shl(up)))
                .collect();
            (y2, rho)
        }
        Split::Pair(mut b) if me == mid => {
            // P1: μ shared with P2 via `with_next`. C and v arrive in the first round;
            // u in the same round, or one later after a swap.
            let mu: Vec<R> = br.prss().draw_with_next(n);
            let cv = br.recv_bytes(lead, n * (R::BYTES + w))?;
            if let Some(theirs) = swapped {
                for (v, o) in b.iter_mut().zip(&theirs.await) {
                    *v = v.wrapping_add(*o);
                }
            }
            let u = br.recv_packed::<R>(last, n, m)?;
            let msg = cv.await;
            let u = u.await;
            for (v, z) in b.iter_mut().zip(&zeta) {
                *v = v.wrapping_sub(*z);
            }
            let (c_bytes, v_bytes) = msg.split_at(n * R::BYTES);
            let mut c = alloc::vec![R::ZERO; n];
            let mut v = alloc::vec![R::ZERO; n];
            ring::decode_slice(c_bytes, &mut c);
            ring::unpack_low(v_bytes, m, &mut v);
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
            br.send_packed(lead, &d, m)?;
            (c, y2)
        }
        _ => return Err(Error::Inconsistent("truncation role does not match party")),
    };
    ArithShare::from_components(this, next, shape)
}
