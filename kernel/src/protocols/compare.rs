//! Most significant bit and comparisons of arithmetic shares, by a log-depth carry
//! circuit on bit-sliced boolean shares.
//!
//! # MSB with the local-sum trick
//!
//! Write `x = S + B` with `S = x_L + x_{L+1}` known to the lead `L` only and
//! `B = x_{L+2}` known to the two other parties. `B` is already a boolean sharing (it is
//! component `L+2` of a sharing whose other components are zero, at no cost); `S` is
//! input once by the lead (1 round, `k` bits). Then `msb(x) = S_{k-1} ⊕ B_{k-1} ⊕ c`,
//! where `c` is the carry into bit `k-1` of `S + B`: generate bits `g = S ∧ B` (one AND
//! level), then a binary tree of (generate, propagate) combinations over the low `k-1`
//! positions, `G = G_hi ⊕ (P_hi ∧ G_lo)`, `P = P_hi ∧ P_lo`, one AND level per tree
//! level. A two-operand adder (instead of the three shares' full adder) halves the gates.
//!
//! Cost for `Z_{2^64}`: `1 + 1 + ceil(log2 63) = 8` rounds; the lead's input is 8 bytes
//! per element, and the AND gates `63 + 2·(31 + 16 + 8 + 4 + 2 + 1) = 187` bits per party
//! per element (23.4 bytes), about 78 bytes per comparison over the three parties
//! (SPU: 108). [`msb_bits`] runs the same circuit on the low `bits` planes only, for
//! values known to be small (the approximations use `bits = f + 15`).

use alloc::vec::Vec;

use super::boolean::{BoolShare, and_async, slice_bits, words_for};
use crate::error::Error;
use crate::party::Party;
use crate::ring::Ring;
use crate::rounds::Branch;
use crate::share::ArithShare;
use crate::transport::Transport;

/// Replicated component words `(this, next)`.
type Words = (Vec<u64>, Vec<u64>);

/// A level of (generate, propagate) planes over the group positions, `words` words each.
struct Groups {
    g: Words,
    p: Words,
    count: usize,
}

fn rows(v: &Words, w: usize, i: usize) -> (&[u64], &[u64]) {
    (&v.0[i * w..(i + 1) * w], &v.1[i * w..(i + 1) * w])
}

/// Boolean sharings `(S, B)` of the low `bits` planes of `x = S + B`: `S` is the lead's
/// local sum of its two components, input once (1 round, `bits` bits per element from
/// the lead); `B` is the third component, already a boolean sharing at no cost. Both are
/// returned as `(this, next)` plane-major words.
async fn split_operands<R: Ring>(
    p: &mut Branch<'_>,
    x: &ArithShare<R>,
    bits: u32,
) -> Result<(Words, Words), Error> {
    let planes = |v: &[R]| -> Vec<u64> { slice_bits(v, bits) };
    let start = p.round();
    let kw = bits as usize * words_for(x.len());
    let lead = p.next_lead();
    let me = p.id();
    let split = if me == lead {
        let sum: Vec<R> = x.local_sum();
        let r: Vec<u64> = p.prss().draw_with_prev(kw);
        let mut s1 = planes(&sum);
        for (a, b) in s1.iter_mut().zip(&r) {
            *a ^= b;
        }
        p.send_ring(lead.next(), &s1)?;
        ((r, s1), (alloc::vec![0; kw], alloc::vec![0; kw]))
    } else if me == lead.next() {
        let s1: Vec<u64> = p.recv_ring(lead, kw)?.await;
        let b = planes(x.next());
        ((s1, alloc::vec![0; kw]), (alloc::vec![0; kw], b))
    } else {
        let r: Vec<u64> = p.prss().draw_with_next(kw);
        let b = planes(x.this());
        ((alloc::vec![0; kw], r), (b, alloc::vec![0; kw]))
    };
    p.finish_rounds(start, 1).await?;
    Ok(split)
}

/// `[msb(x)]` as a one-plane boolean share, for every element of `x`.
///
/// Exact for every ring element. Cost: `2 + ceil(log2(k-1))` rounds (8 for `Z_{2^64}`);
/// see the [module docs](self).
pub fn msb<R: Ring, T: Transport>(p: &mut Party<T>, x: &ArithShare<R>) -> Result<BoolShare, Error> {
    msb_bits(p, x, R::BITS)
}

/// [`msb_bits`] in a [`Branch`].
pub async fn msb_bits_async<R: Ring>(
    p: &mut Branch<'_>,
    x: &ArithShare<R>,
    bits: u32,
) -> Result<BoolShare, Error> {
    if !(2..=R::BITS).contains(&bits) {
        return Err(Error::InvalidParameter(
            "comparison width must lie in 2..=ring bits",
        ));
    }
    let n = x.len();
    let k = bits;
    let w = words_for(n);
    let (s_sh, b_sh) = split_operands(p, x, k).await?;

    // Positions 0..k-1 feed the carry into bit k-1.
    let low = (k as usize - 1) * w;
    let g = and_async(
        p,
        (&s_sh.0[..low], &s_sh.1[..low]),
        (&b_sh.0[..low], &b_sh.1[..low]),
    )
    .await?;
    let pr: Words = (
        s_sh.0[..low]
            .iter()
            .zip(&b_sh.0[..low])
            .map(|(a, b)| a ^ b)
            .collect(),
        s_sh.1[..low]
            .iter()
            .zip(&b_sh.1[..low])
            .map(|(a, b)| a ^ b)
            .collect(),
    );
    let mut level = Groups {
        g,
        p: pr,
        count: k as usize - 1,
    };
    while level.count > 1 {
        level = combine(p, level, w).await?;
    }
    // msb = S_{k-1} ⊕ B_{k-1} ⊕ carry.
    let top = (k as usize - 1) * w..k as usize * w;
    let this: Vec<u64> = (0..w)
        .map(|j| s_sh.0[top.start + j] ^ b_sh.0[top.start + j] ^ level.g.0[j])
        .collect();
    let next: Vec<u64> = (0..w)
        .map(|j| s_sh.1[top.start + j] ^ b_sh.1[top.start + j] ^ level.g.1[j])
        .collect();
    BoolShare::from_components(1, n, this, next)
}

/// `[x < 0]` for values known to lie in `[-2^(bits-1), 2^(bits-1))`: the sign of `x` read
/// in `Z_{2^bits}` (every share reduces mod `2^bits` locally, so only the low `bits`
/// planes enter the carry circuit). Outside that range the result is meaningless.
///
/// Cost: `2 + ceil(log2(bits-1))` rounds; the lead inputs `bits` bits and each party sends
/// `(bits-1) + 2·(gates of the tree)` AND bits per element: 39 bytes in total for
/// `bits = 33` (fixed point f = 18, `|x| < 2^14`), against 78 for the full ring.
pub fn msb_bits<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    bits: u32,
) -> Result<BoolShare, Error> {
    p.run(async |br| msb_bits_async(br, x, bits).await)
}

/// One tree level: pairs (lo = 2i, hi = 2i+1) combine; an odd last group passes through.
/// All ANDs of the level go out in one call.
async fn combine(p: &mut Branch<'_>, lv: Groups, w: usize) -> Result<Groups, Error> {
    let pairs = lv.count / 2;
    // Left operands: P_hi twice (for G and P); right operands: G_lo, P_lo.
    let mut left = (
        Vec::with_capacity(2 * pairs * w),
        Vec::with_capacity(2 * pairs * w),
    );
    let mut right = (
        Vec::with_capacity(2 * pairs * w),
        Vec::with_capacity(2 * pairs * w),
    );
    for i in 0..pairs {
        let (lo, hi) = (2 * i, 2 * i + 1);
        for (dst, src) in [
            (&mut left, rows(&lv.p, w, hi)),
            (&mut right, rows(&lv.g, w, lo)),
        ] {
            dst.0.extend_from_slice(src.0);
            dst.1.extend_from_slice(src.1);
        }
        for (dst, src) in [
            (&mut left, rows(&lv.p, w, hi)),
            (&mut right, rows(&lv.p, w, lo)),
        ] {
            dst.0.extend_from_slice(src.0);
            dst.1.extend_from_slice(src.1);
        }
    }
    let prod = and_async(p, (&left.0, &left.1), (&right.0, &right.1)).await?;
    let count = lv.count.div_ceil(2);
    let mut g = (Vec::with_capacity(count * w), Vec::with_capacity(count * w));
    let mut pp = (Vec::with_capacity(count * w), Vec::with_capacity(count * w));
    for i in 0..pairs {
        let ghi = rows(&lv.g, w, 2 * i + 1);
        let pg = rows(&prod, w, 2 * i);
        let pp_ = rows(&prod, w, 2 * i + 1);
        g.0.extend(ghi.0.iter().zip(pg.0).map(|(a, b)| a ^ b));
        g.1.extend(ghi.1.iter().zip(pg.1).map(|(a, b)| a ^ b));
        pp.0.extend_from_slice(pp_.0);
        pp.1.extend_from_slice(pp_.1);
    }
    if lv.count % 2 == 1 {
        let last = lv.count - 1;
        let (gl, pl) = (rows(&lv.g, w, last), rows(&lv.p, w, last));
        g.0.extend_from_slice(gl.0);
        g.1.extend_from_slice(gl.1);
        pp.0.extend_from_slice(pl.0);
        pp.1.extend_from_slice(pl.1);
    }
    Ok(Groups { g, p: pp, count })
}

/// `[x < y]` for `x, y` in `[-2^(k-2), 2^(k-2))`: `msb(x - y)`. Cost as [`msb`].
pub fn lt<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    y: &ArithShare<R>,
) -> Result<BoolShare, Error> {
    msb(p, &x.sub(y)?)
}

/// `[x > y]` = `[y < x]`. Cost as [`msb`].
pub fn gt<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    y: &ArithShare<R>,
) -> Result<BoolShare, Error> {
    msb(p, &y.sub(x)?)
}

/// `[x <= y]` = `NOT [y < x]`. Cost as [`msb`].
pub fn le<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    y: &ArithShare<R>,
) -> Result<BoolShare, Error> {
    Ok(gt(p, x, y)?.not(p.id()))
}

/// `[x >= y]` = `NOT [x < y]`. Cost as [`msb`].
pub fn ge<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    y: &ArithShare<R>,
) -> Result<BoolShare, Error> {
    Ok(lt(p, x, y)?.not(p.id()))
}

/// `[x < c]` for public `c` (one per element). Cost as [`msb`].
pub fn lt_public<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    c: &[R],
) -> Result<BoolShare, Error> {
    msb(p, &minus_public(p, x, c)?)
}

/// `[x > c]` for public `c`: `msb(c - x)`. Cost as [`msb`].
pub fn gt_public<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    c: &[R],
) -> Result<BoolShare, Error> {
    msb(p, &x.neg().add_public(p.id(), c)?)
}

/// `[x <= c]` = `NOT [x > c]`. Cost as [`msb`].
pub fn le_public<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    c: &[R],
) -> Result<BoolShare, Error> {
    Ok(gt_public(p, x, c)?.not(p.id()))
}

/// `[x >= c]` = `NOT [x < c]`. Cost as [`msb`].
pub fn ge_public<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    c: &[R],
) -> Result<BoolShare, Error> {
    Ok(lt_public(p, x, c)?.not(p.id()))
}

fn minus_public<R: Ring, T: Transport>(
    p: &Party<T>,
    x: &ArithShare<R>,
    c: &[R],
) -> Result<ArithShare<R>, Error> {
    let neg: Vec<R> = c.iter().map(|v| v.wrapping_neg()).collect();
    x.add_public(p.id(), &neg)
}

/// Arithmetic to boolean conversion: every bit of `x` as a `k`-plane [`BoolShare`]
/// (plane `i` = bit `i`). Same two-operand split as [`msb`] (`x = S + B`, `S` input by
/// the lead), then a Kogge–Stone prefix over (generate, propagate) pairs gives every
/// carry: level `d = 1, 2, 4, …` updates `G_i ← G_i ⊕ (P_i ∧ G_{i-d})` and
/// `P_i ← P_i ∧ P_{i-d}` for all `i ≥ d` in one batched AND call.
///
/// Cost for `Z_{2^64}`: `2 + 6 = 8` rounds; AND bits per party and element
/// `64 + 2·(62 + 61 + 59 + 55 + 47) + 31 = 663` (the last level skips the propagates),
/// 83 bytes per party plus the lead's 8-byte input: 257 bytes in total.
pub fn a2b<R: Ring, T: Transport>(p: &mut Party<T>, x: &ArithShare<R>) -> Result<BoolShare, Error> {
    p.run(async |br| a2b_async(br, x).await)
}

/// [`a2b`] in a [`Branch`].
pub async fn a2b_async<R: Ring>(p: &mut Branch<'_>, x: &ArithShare<R>) -> Result<BoolShare, Error> {
    let n = x.len();
    let k = R::BITS as usize;
    let w = words_for(n);
    let kw = k * w;
    let (s_sh, b_sh) = split_operands(p, x, R::BITS).await?;
    let xor = |a: &[u64], b: &[u64]| -> Vec<u64> { a.iter().zip(b).map(|(u, v)| u ^ v).collect() };
    // Half-adder bits: p = S ⊕ B (also the sum without carries), g = S ∧ B.
    let half: Words = (xor(&s_sh.0, &b_sh.0), xor(&s_sh.1, &b_sh.1));
    let mut g: Words = and_async(p, (&s_sh.0, &s_sh.1), (&b_sh.0, &b_sh.1)).await?;
    let mut pp: Words = half.clone();
    let mut d = 1;
    while d < k - 1 {
        // Positions i in d..k-1 need G_{i-d} (and P_{i-d} while a later level reads P).
        let lo = d * w;
        let hi = (k - 1) * w;
        let span = hi - lo;
        let need_p = 2 * d < k - 1;
        let mut left = (Vec::with_capacity(2 * span), Vec::with_capacity(2 * span));
        let mut right = (Vec::with_capacity(2 * span), Vec::with_capacity(2 * span));
        left.0.extend_from_slice(&pp.0[lo..hi]);
        left.1.extend_from_slice(&pp.1[lo..hi]);
        right.0.extend_from_slice(&g.0[..span]);
        right.1.extend_from_slice(&g.1[..span]);
        if need_p {
            left.0.extend_from_slice(&pp.0[lo..hi]);
            left.1.extend_from_slice(&pp.1[lo..hi]);
            right.0.extend_from_slice(&pp.0[..span]);
            right.1.extend_from_slice(&pp.1[..span]);
        }
        let prod = and_async(p, (&left.0, &left.1), (&right.0, &right.1)).await?;
        for j in 0..span {
            g.0[lo + j] ^= prod.0[j];
            g.1[lo + j] ^= prod.1[j];
        }
        if need_p {
            pp.0[lo..hi].copy_from_slice(&prod.0[span..]);
            pp.1[lo..hi].copy_from_slice(&prod.1[span..]);
        }
        d *= 2;
    }
    // Bit i = p_i ⊕ carry_i, carry_i = G_{i-1} (prefix generate of bits 0..i-1).
    let mut this = half.0;
    let mut next = half.1;
    for j in w..kw {
        this[j] ^= g.0[j - w];
        next[j] ^= g.1[j - w];
    }
    BoolShare::from_components(R::BITS, n, this, next)
}
