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
//! # Protocol (our own design; roles rotate with [`Branch::next_lead`])
//!
//! Call the lead `P0`, its successor `P1` and the third party `P2`; `U = 2^(k−m)`. The
//! input is first written as `x' = x + 2^(k-2) = A + B mod 2^k` with
//! `x' ∈ [0, 2^(k-1))`, where `A` is known to `P0` only and `B` is known to both `P1`
//! and `P2` (for a replicated input `A = x_0 + x_1 + 2^(k-2)`, `B = x_2`). Then, with
//! `w = [A + B ≥ 2^k]` the wrap bit,
//!
//! `floor(x'/2^m) = (A >> m) + (B >> m) − w·U + δ`, `δ ∈ {0, 1}` (the low carry),
//!
//! and because `x' < 2^(k-1)`, `w = msb(A) ∨ msb(B)` (if both top bits are set the sum
//! wraps; if exactly one is, a sum below `2^k` would have its top bit set, so it wraps
//! too). That holds for *any* split, so before anything else the parties move a common
//! uniform `ζ` (PRSS, known to all three) across it: `A ← A + ζ`, `B ← B − ζ`. The
//! rounding carry `δ = [B mod 2^m > x' mod 2^m]` then has, over `ζ`, the same
//! distribution whatever `B` is, so rounding is unbiased however `x` is shared
//! (owner-led inputs, public values, products with a public power of two). Every server
//! can compute `δ` from `x` (both `A` and `B` determine it), so a truncated value must
//! never be opened to a server: the protocols open truncated values only to the user,
//! after [`output_to_client`](super::output_to_client) re-randomises them.
//!
//! Only `w mod 2^m` matters (it is multiplied by `U`). With `a = msb(A)` at `P0` and
//! `b = msb(B)` at `P1`, `P2`: `w = a + b − a·b`, and the cross term is split without
//! any exchange between the bit holders: `P0` sends `a' = a + s` (mod `2^m`, `s` from its
//! stream with `P2`), and `a·b = b·a' − b·s`, the first term computable by `P1`, the
//! second by `P2`. The three terms of the result,
//!
//! `T0 = (A>>m) − a·U − (2^(k−2−m) − 1)` at `P0`, `T1 = −b·(1 − a')·U` at `P1`,
//! `T2 = −b·s·U` at `P2`, plus `(B>>m)` at both `P1` and `P2`,
//!
//! sum to `floor(x/2^m) + 1 − δ`, and are re-shared in the same messages. For a
//! replicated input (`P2` knows `b` from the start):
//!
//! 1. `P0` draws `s` (mod `2^m`), `ρ` and `λ` (mod `2^m`) from its stream with `P2`;
//!    `P1` and `P2` draw `μ` (mod `2^m`). `P0` sends `P1` the values `T0 − ρ` (`B`
//!    bytes) and `a'` (`w` bytes); `P2` sends `P1` the value `t2 = −b·s + λ` (`w` bytes).
//! 2. `P1` sends `P0` the value `ℓ = −b·(1 − a') − μ + t2` (`w` bytes).
//!
//! The output shares are `y_0 = ρ − λ·U`, `y_1 = (T0 − ρ) + ℓ·U` (both `P0` and `P1`
//! know it), `y_2 = (B>>m) + μ·U`. `P1` receives `T0 − ρ`, `a'` and `t2`, masked by
//! `ρ`, `s` and `λ` (`P0` and `P2` share them; `P1` does not); `P0` receives `ℓ`,
//! masked by `μ`; `P2` receives nothing.
//!
//! For a product, the input is the additive `z = z_0 + z_1 + z_2` (re-randomised by a
//! PRSS zero share) before resharing: `P1` and `P2` swap `z_1`, `z_2` (so
//! `B = z_1 + z_2`, `A = z_0`) in the same round as `P0`'s message. `P2` then learns `b`
//! only in the second round, so `P0`'s low part comes from both in that round: `P1` and
//! `P2` also draw `ν`, `P1` sends `e1 = −b·(1 − a') − μ − ν` and `P2` sends
//! `e2 = −b·s + ν` (beside `t2`), and `ℓ = e1 + e2 + λ` (the two jointly masked by the
//! independent `μ`, `ν`). Still 2 rounds, and no resharing.
//!
//! Cost per element (`Z_{2^64}`, `m = 18`, `w = 3` bytes): replicated input 2 rounds,
//! 17 bytes in total (lead 11, the others 3 each); additive input 2 rounds, 36 bytes
//! (lead 11, `P1` 11, `P2` 14).

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
    br.finish_rounds(start, 2).await?;
    Ok(out)
}

/// The core shared by [`trunc`] and [`additive_trunc`]. In the `additive` form the
/// pair's `B` is completed by the summand the other pair member sends in the first round
/// (`swapped`, the pair's receive of it), so `P2`'s messages wait for the second round.
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
    let up = k - m; // terms that are multiples of U = 2^(k-m) only need their value mod 2^m
    let offset = R::ONE.shl(k - 2);
    // Removes the offset 2^(k-2) after the shift and adds the +1 that turns the
    // floor-minus-carry into stochastic rounding.
    let fixup = R::ONE.shl(k - 2 - m).wrapping_sub(R::ONE);

    // Re-randomise the split with a value all three draw: `A' = A + ζ`, `B' = B − ζ`.
    // The rounding carry then depends on `x` and `ζ` only, never on how `x` happens to
    // be shared (an owner-led input, a public value or a product with a public power of
    // two would otherwise always round the same way).
    // Only `ζ mod 2^m` matters for rounding (the split is correct for any ζ).
    let zeta: Vec<R> = br.prss().draw_common_bits(n, m);
    let (this, next) = match split {
        Split::Lead(a) if me == lead => {
            // P0: the stream shared with P2 is `with_prev`.
            let s: Vec<R> = br.prss().draw_with_prev_bits(n, m);
            let rho: Vec<R> = br.prss().draw_with_prev(n);
            let lambda: Vec<R> = br.prss().draw_with_prev_bits(n, m);
            let mut msg = alloc::vec![0u8; n * (R::BYTES + w)];
            let (t_bytes, a_bytes) = msg.split_at_mut(n * R::BYTES);
            let mut t0 = Vec::with_capacity(n);
            let mut a1 = Vec::with_capacity(n);
            for j in 0..n {
                let big_a = a[j].wrapping_add(zeta[j]).wrapping_add(offset);
                let bit = R::from_bool(big_a.msb());
                t0.push(
                    big_a
                        .shr(m)
                        .wrapping_sub(bit.shl(up))
                        .wrapping_sub(fixup)
                        .wrapping_sub(rho[j]),
                );
                a1.push(bit.wrapping_add(s[j]));
            }
            ring::encode_slice(&t0, t_bytes);
            ring::pack_low(&a1, m, a_bytes);
            br.send_bytes(mid, msg)?;
            // Replicated input: one message back, `ℓ = T1/U − μ + t2`, in the second round.
            // Additive input: `e1 = T1/U − μ − ν` and `e2 = T2/U + ν`, both in the second
            // round (P2 learns b only after the swap).
            br.next_round().await;
            let e2 = if additive {
                Some(br.recv_packed::<R>(last, n, m)?)
            } else {
                None
            };
            let mut low = br.recv_packed::<R>(mid, n, m)?.await;
            if let Some(e2) = e2 {
                for ((l, e), lam) in low.iter_mut().zip(&e2.await).zip(&lambda) {
                    *l = l.wrapping_add(*e).wrapping_add(*lam);
                }
            }
            let y0: Vec<R> = rho
                .iter()
                .zip(&lambda)
                .map(|(r, l)| r.wrapping_sub(l.low_bits(m).shl(up)))
                .collect();
            let y1: Vec<R> = (0..n)
                .map(|j| t0[j].wrapping_add(low[j].low_bits(m).shl(up)))
                .collect();
            (y0, y1)
        }
        Split::Pair(mut b) if me == last => {
            // P2: shares (s, ρ, λ) with P0 via `with_next`, (μ, ν) with P1 via `with_prev`.
            let s: Vec<R> = br.prss().draw_with_next_bits(n, m);
            let rho: Vec<R> = br.prss().draw_with_next(n);
            let lambda: Vec<R> = br.prss().draw_with_next_bits(n, m);
            let mu: Vec<R> = br.prss().draw_with_prev_bits(n, m);
            let nu: Vec<R> = if additive {
                br.prss().draw_with_prev_bits(n, m)
            } else {
                Vec::new()
            };
            if let Some(theirs) = swapped {
                for (v, o) in b.iter_mut().zip(&theirs.await) {
                    *v = v.wrapping_add(*o);
                }
            }
            let mut e2 = Vec::with_capacity(if additive { n } else { 0 });
            let mut t2 = Vec::with_capacity(n);
            let mut y2 = Vec::with_capacity(n);
            for j in 0..n {
                let big_b = b[j].wrapping_sub(zeta[j]);
                let bs = if big_b.msb() { s[j] } else { R::ZERO };
                if additive {
                    e2.push(nu[j].wrapping_sub(bs));
                }
                t2.push(lambda[j].wrapping_sub(bs));
                y2.push(big_b.shr(m).wrapping_add(mu[j].low_bits(m).shl(up)));
            }
            if additive {
                br.send_packed(lead, &e2, m)?;
            }
            br.send_packed(mid, &t2, m)?;
            let y0: Vec<R> = rho
                .iter()
                .zip(&lambda)
                .map(|(r, l)| r.wrapping_sub(l.low_bits(m).shl(up)))
                .collect();
            (y2, y0)
        }
        Split::Pair(mut b) if me == mid => {
            // P1: (μ, ν) shared with P2 via `with_next`. T0 − ρ and a' arrive in the first
            // round; t2 in the same round, or one later after a swap.
            let mu: Vec<R> = br.prss().draw_with_next_bits(n, m);
            let nu: Vec<R> = if additive {
                br.prss().draw_with_next_bits(n, m)
            } else {
                Vec::new()
            };
            let from_lead = br.recv_bytes(lead, n * (R::BYTES + w))?;
            if let Some(theirs) = swapped {
                for (v, o) in b.iter_mut().zip(&theirs.await) {
                    *v = v.wrapping_add(*o);
                }
            }
            let t2 = br.recv_packed::<R>(last, n, m)?;
            let msg = from_lead.await;
            let (t_bytes, a_bytes) = msg.split_at(n * R::BYTES);
            let mut t0 = alloc::vec![R::ZERO; n];
            let mut a1 = alloc::vec![R::ZERO; n];
            ring::decode_slice(t_bytes, &mut t0);
            ring::unpack_low(a_bytes, m, &mut a1);
            // T1/U − μ, with −b·(1 − a') = T1/U.
            let mut t1 = Vec::with_capacity(n);
            let mut y2 = Vec::with_capacity(n);
            for j in 0..n {
                let big_b = b[j].wrapping_sub(zeta[j]);
                let term = if big_b.msb() {
                    a1[j].wrapping_sub(R::ONE)
                } else {
                    R::ZERO
                };
                t1.push(term.wrapping_sub(mu[j]));
                y2.push(big_b.shr(m).wrapping_add(mu[j].low_bits(m).shl(up)));
            }
            // P0 learns its low part from P1 and P2 (additive input: P1 sends before t2
            // arrives, in the round P2 sends e2), or from P1 alone (replicated input: t2
            // came in the first round, so P1 can add it).
            if additive {
                let e1: Vec<R> = t1
                    .iter()
                    .zip(&nu)
                    .map(|(a, v)| a.wrapping_sub(*v))
                    .collect();
                br.send_packed(lead, &e1, m)?;
            }
            let t2 = t2.await;
            let low: Vec<R> = t1
                .iter()
                .zip(&t2)
                .map(|(a, b)| a.wrapping_add(*b))
                .collect();
            if !additive {
                br.send_packed(lead, &low, m)?;
            }
            let y1: Vec<R> = (0..n)
                .map(|j| t0[j].wrapping_add(low[j].low_bits(m).shl(up)))
                .collect();
            (y1, y2)
        }
        _ => return Err(Error::Inconsistent("truncation role does not match party")),
    };
    ArithShare::from_components(this, next, shape)
}
