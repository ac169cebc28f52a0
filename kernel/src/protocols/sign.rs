//! `[x < 0]` as an arithmetic 0/1 share in 5 rounds (values below `2^32`), against 9
//! for [`msb_bits`](super::msb_bits) followed by [`b2a`](super::b2a): block tables from
//! the party that knows one operand, a carry tree run by the two that know the other,
//! and a conversion through a random bit known in both forms.
//!
//! # Protocol (our own design; roles rotate with [`Branch::next_lead`])
//!
//! As in the local-sum MSB, `x = S + B` with `S = x_L + x_{L+1}` known to the lead
//! `P0` only and `B = x_{L+2}` known to `P1 = L+1` and `P2 = L+2`. The sign of `x` in
//! `bits` bits is `S_t ⊕ B_t ⊕ c`, `t = bits − 1`, `c` the carry into bit `t`. Cut the
//! `t` low positions into `nb = ⌈t/4⌉` blocks of four (zeros below the lowest position,
//! which generate no carry). A block's generate and propagate bits,
//! `g = [s + b ≥ 16]` and `p = [s + b = 15]`, are functions of the lead's nibble `s` and
//! the pair's nibble `b`:
//!
//! 1. (round 1) `P0` sends `P1`, for every element and block, the 16-entry tables
//!    `G[β] = g(s, β) ⊕ α_β` and `P[β] = p(s, β) ⊕ α'_β` (`α`, `α'` fresh per entry from
//!    its stream with `P2`), and `S_t ⊕ γ`. `P1` reads entry `b`; `P2`, who knows `b` and
//!    the masks, holds `α_b`, `α'_b`, `γ`: every block's `(g, p)` and the top bit are now
//!    XOR-shared between `P1` and `P2`. In the same round `P0` deals the AND triples of
//!    the carry tree: `(a_1, b_1, c_1)` from its stream with `P1`, `(a_2, b_2)` from its
//!    stream with `P2`, and sends `P2` the value `c_2 = (a_1 ⊕ a_2)(b_1 ⊕ b_2) ⊕ c_1`.
//! 2. (rounds 2 … `1 + ⌈log2 nb⌉`) `P1` and `P2` combine blocks pairwise,
//!    `G = G_hi ⊕ P_hi·G_lo`, `P = P_hi·P_lo`, each AND by Beaver's method on the dealt
//!    triples (they swap `x ⊕ a`, `y ⊕ b`). `P0` is idle.
//! 3. Beside all this, a random bit `r` is made from PRSS bits (free) and injected
//!    ([`b2a`](super::b2a), 2 rounds): the parties hold `[r]` arithmetically and, as
//!    `r = r_L ⊕ r_{L+1} ⊕ r_{L+2}`, `P1` holds `r_{L+1} ⊕ r_{L+2}` and `P2` holds `r_L`.
//! 4. (last round) `m = [x < 0] ⊕ r` is opened to all three: `P1` sends its share of it
//!    `⊕ κ`, `P2` its share `⊕ κ` (`κ` from their common stream), to each other and to
//!    `P0`. Then `[x < 0] = m + (1 − 2m)·[r]`, locally.
//!
//! # Views
//!
//! `P1` receives the tables, masked entry by entry by `α`, `α'` and the top bit by `γ`
//! (stream of `P0`, `P2`), the Beaver openings of `P2`, masked by `a_2`, `b_2` (same
//! stream), and `P2`'s opening share, which with its own gives `m`; `P2` receives
//! `c_2`, masked by `c_1` (stream of `P0`, `P1`), `P1`'s Beaver openings, masked by
//! `a_1`, `b_1`, and `P1`'s opening share. `P0` receives only the two opening shares,
//! each masked by `κ`, which it does not hold: it learns `m` and nothing else (without
//! `κ` it would learn `P2`'s XOR share, which depends on the dealt triples it knows).
//! `m` is masked by `r`, whose components `r_{L+2}` (for `P0`), `r_L` (for `P1`) and
//! `r_{L+1}` (for `P2`) each party lacks. Input range `x ∈ [−2^(bits−1), 2^(bits−1))`;
//! outside it the bit is wrong, and the views are the same.
//!
//! Cost per element (`bits = 33`: 8 blocks, 13 AND gates): tables 32 bytes, the top bit
//! and 13 dealt `c_2` bits, 13 Beaver openings each way (4 bits per gate), the bit
//! injection (24 bytes) and the opening (4 bits): about 66 bytes, against 63 for
//! `msb_bits` + `b2a`. Rounds: `max(1 + ⌈log2 nb⌉, 2) + 1`.

use alloc::vec::Vec;

use super::boolean::{BoolShare, words_for};
use super::select::b2a_async;
use crate::error::Error;
use crate::party::Party;
use crate::ring::Ring;
use crate::rounds::Branch;
use crate::shape::Shape;
use crate::share::ArithShare;
use crate::transport::Transport;

/// Number of 4-bit blocks below the sign bit of a `bits`-bit comparison.
pub fn blocks(bits: u32) -> usize {
    (bits as usize - 1).div_ceil(4)
}

/// AND gates (as word planes per element) of the carry tree over `nb` blocks: two per
/// combination, one at the last level (only the generate bit is needed there).
pub fn tree_gates(nb: usize) -> usize {
    let mut c = nb;
    let mut gates = 0;
    while c > 1 {
        let pairs = c / 2;
        let next = c.div_ceil(2);
        gates += if next == 1 { pairs } else { 2 * pairs };
        c = next;
    }
    gates
}

/// Carry-tree levels over `nb` blocks.
pub fn tree_levels(nb: usize) -> u64 {
    let mut c = nb;
    let mut levels = 0;
    while c > 1 {
        c = c.div_ceil(2);
        levels += 1;
    }
    levels
}

/// The operand's `t = bits − 1` low bits, shifted up so that the blocks of four end
/// exactly below bit `t`.
fn aligned<R: Ring>(v: R, bits: u32) -> u64 {
    let t = bits - 1;
    let pad = 4 * blocks(bits) as u32 - t;
    (v.low_bits(t).to_i128() as u64) << pad
}

fn top_bit<R: Ring>(v: R, bits: u32) -> bool {
    v.shr(bits - 1).low_bits(1) == R::ONE
}

/// Gate `i` (counted from `from`) of a triple component laid out gate by gate.
fn gate(v: &[u64], from: usize, i: usize, w: usize) -> &[u64] {
    &v[(from + i) * w..(from + i + 1) * w]
}

/// The generate table of a nibble `s`: bit `β` is `[s + β ≥ 16]`.
const fn generate_table(s: u64) -> u16 {
    if s == 0 {
        0
    } else {
        (0xffffu32 << (16 - s)) as u16
    }
}

/// The propagate table of a nibble `s`: bit `β` is `[s + β = 15]`.
const fn propagate_table(s: u64) -> u16 {
    1 << (15 - s)
}

/// Entry `b` (the element's nibble of `B` in each block) of every element's two tables
/// `(g, p)` (16-bit little-endian words, interleaved in `tables`, one pair per element
/// and block), as bit planes: one plane per block, 64 elements per word.
fn read_entries<R: Ring>(
    b_vals: &[R],
    bits: u32,
    nb: usize,
    tables: &[u8],
    g_planes: &mut Planes,
    p_planes: &mut Planes,
) {
    for (word, chunk) in b_vals.chunks(64).enumerate() {
        let mut g = [0u64; 16];
        let mut p = [0u64; 16];
        for (i, v) in chunk.iter().enumerate() {
            let b_al = aligned(*v, bits);
            let row = &tables[4 * nb * (64 * word + i)..4 * nb * (64 * word + i + 1)];
            for (j, entry) in row.chunks_exact(4).enumerate() {
                let beta = (b_al >> (4 * j)) & 15;
                let pair = u32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]);
                g[j] |= u64::from((pair >> beta) & 1) << i;
                p[j] |= u64::from((pair >> (16 + beta)) & 1) << i;
            }
        }
        for j in 0..nb {
            g_planes[j][word] = g[j];
            p_planes[j][word] = p[j];
        }
    }
}

fn set_bit(words: &mut [u64], e: usize) {
    words[e / 64] |= 1 << (e % 64);
}

/// One party's XOR share of a set of bit planes, `w` words each.
type Planes = Vec<Vec<u64>>;

/// `[x < 0]` for every element, as an integer 0/1 arithmetic share; `x` must lie in
/// `[−2^(bits−1), 2^(bits−1))`. See the [module docs](self); widths above 64 (in
/// `Z_{2^128}`) fall back to [`msb_bits`](super::msb_bits) and [`b2a`](super::b2a).
///
/// Cost: `max(1 + ⌈log2 ⌈(bits−1)/4⌉⌉, 2) + 1` rounds (5 for `bits = 33`).
pub fn negative<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    bits: u32,
) -> Result<ArithShare<R>, Error> {
    p.run(async |br| negative_async(br, x, bits).await)
}

/// [`negative`] in a [`Branch`].
pub async fn negative_async<R: Ring>(
    br: &mut Branch<'_>,
    x: &ArithShare<R>,
    bits: u32,
) -> Result<ArithShare<R>, Error> {
    if bits > 64 && bits <= R::BITS {
        // Wider than the block tables handle (Z_{2^128}): the carry-tree MSB and a bit
        // injection.
        let b = super::compare::msb_bits_async(br, x, bits).await?;
        return super::select::b2a_async(br, &b, x.shape().clone()).await;
    }
    if !(2..=R::BITS.min(64)).contains(&bits) {
        return Err(Error::InvalidParameter(
            "comparison width must lie in 2..=ring bits",
        ));
    }
    let n = x.len();
    let shape = x.shape().clone();
    let w = words_for(n);
    // The sign, XOR-shared between P1 and P2, beside a random bit in both forms.
    let ((lead, sign), (r_arith, r_bool)) = br
        .join(
            async |a| sign_core(a, x, bits).await,
            async |b| {
                let this: Vec<u64> = b.prss().draw_with_prev(w);
                let next: Vec<u64> = b.prss().draw_with_next(w);
                let bits = BoolShare::from_components(1, n, this, next)?;
                let arith = b2a_async::<R>(b, &bits, Shape::vector(n)).await?;
                Ok((arith, bits))
            },
        )
        .await?;
    // Open m = sign ⊕ r: P1 adds r_{L+1} ⊕ r_{L+2}, P2 adds r_L, both add κ.
    let start = br.round();
    let me = br.id();
    let (mid, last) = (lead.next(), lead.plus(2));
    let m: Vec<u64> = if me == lead {
        let from_mid = br.recv_ring::<u64>(mid, w)?;
        let from_last = br.recv_ring::<u64>(last, w)?;
        let (a, b) = (from_mid.await, from_last.await);
        a.iter().zip(&b).map(|(u, v)| u ^ v).collect()
    } else {
        let share = sign.ok_or(Error::Inconsistent("the pair lost its sign share"))?;
        let (other, kappa): (_, Vec<u64>) = if me == mid {
            (last, br.prss().draw_with_next(w))
        } else {
            (mid, br.prss().draw_with_prev(w))
        };
        let mine: Vec<u64> = (0..w)
            .map(|j| {
                let r = if me == mid {
                    r_bool.this()[j] ^ r_bool.next()[j]
                } else {
                    r_bool.next()[j]
                };
                share[j] ^ r ^ kappa[j]
            })
            .collect();
        br.send_ring(lead, &mine)?;
        br.send_ring(other, &mine)?;
        let theirs = br.recv_ring::<u64>(other, w)?.await;
        mine.iter().zip(&theirs).map(|(u, v)| u ^ v).collect()
    };
    br.finish_rounds(start, 1).await?;
    // [x < 0] = m + (1 − 2m)·[r].
    let one = ArithShare::from_public(me, &alloc::vec![R::ONE; n], shape.clone())?;
    let r = r_arith.reshape(shape)?;
    let (mut this, mut next) = (r.this().to_vec(), r.next().to_vec());
    for e in 0..n {
        if (m[e / 64] >> (e % 64)) & 1 == 1 {
            this[e] = one.this()[e].wrapping_sub(this[e]);
            next[e] = one.next()[e].wrapping_sub(next[e]);
        }
    }
    ArithShare::from_components(this, next, r.shape().clone())
}

/// Rounds 1 and 2: the tables and the carry tree. Returns the lead and, at `P1` and
/// `P2`, their XOR share of the sign (bit planes, one word per 64 elements).
async fn sign_core<R: Ring>(
    br: &mut Branch<'_>,
    x: &ArithShare<R>,
    bits: u32,
) -> Result<(crate::transport::PartyId, Option<Vec<u64>>), Error> {
    let start = br.round();
    let n = x.len();
    let w = words_for(n);
    let nb = blocks(bits);
    let gates = tree_gates(nb);
    let levels = tree_levels(nb);
    let lead = br.next_lead();
    let me = br.id();
    let (mid, last) = (lead.next(), lead.plus(2));
    if me == lead {
        // Tables, masked by α, α' (stream with P2), and the top bit masked by γ.
        let sum = x.local_sum();
        // The masks are the keystream itself: the table message is the tables XORed
        // into it in place.
        let mut msg = br.prss().draw_bytes_with_prev(4 * nb * n);
        let gamma: Vec<u64> = br.prss().draw_with_prev(w);
        msg.reserve(8 * w);
        let mut top = alloc::vec![0u64; w];
        for (e, s) in sum.iter().enumerate() {
            let s_al = aligned(*s, bits);
            for j in 0..nb {
                let nib = (s_al >> (4 * j)) & 15;
                let k = 4 * (e * nb + j);
                let g = generate_table(nib).to_le_bytes();
                let p = propagate_table(nib).to_le_bytes();
                msg[k] ^= g[0];
                msg[k + 1] ^= g[1];
                msg[k + 2] ^= p[0];
                msg[k + 3] ^= p[1];
            }
            if top_bit(*s, bits) {
                set_bit(&mut top, e);
            }
        }
        for (t, g) in top.iter().zip(&gamma) {
            msg.extend_from_slice(&(t ^ g).to_le_bytes());
        }
        br.send_bytes(mid, msg)?;
        // The triples of every gate of the tree: (a1, b1, c1) with P1, (a2, b2) with P2.
        let a1: Vec<u64> = br.prss().draw_with_next(gates * w);
        let b1: Vec<u64> = br.prss().draw_with_next(gates * w);
        let c1: Vec<u64> = br.prss().draw_with_next(gates * w);
        let a2: Vec<u64> = br.prss().draw_with_prev(gates * w);
        let b2: Vec<u64> = br.prss().draw_with_prev(gates * w);
        let c2: Vec<u64> = (0..gates * w)
            .map(|i| ((a1[i] ^ a2[i]) & (b1[i] ^ b2[i])) ^ c1[i])
            .collect();
        br.send_ring(last, &c2)?;
        br.finish_rounds(start, 1 + levels).await?;
        return Ok((lead, None));
    }
    // P1 (`mid`) and P2 (`last`): B is component L+2.
    let b_vals: &[R] = if me == mid { x.next() } else { x.this() };
    let mut g_planes: Planes = (0..nb).map(|_| alloc::vec![0u64; w]).collect();
    let mut p_planes: Planes = (0..nb).map(|_| alloc::vec![0u64; w]).collect();
    let mut top = alloc::vec![0u64; w];
    let (a, b, c) = if me == mid {
        let a: Vec<u64> = br.prss().draw_with_prev(gates * w);
        let b: Vec<u64> = br.prss().draw_with_prev(gates * w);
        let c: Vec<u64> = br.prss().draw_with_prev(gates * w);
        let msg = br.recv_bytes(lead, 4 * nb * n + 8 * w)?.await;
        let (tables, top_bytes) = msg.split_at(4 * nb * n);
        read_entries(b_vals, bits, nb, tables, &mut g_planes, &mut p_planes);
        for (e, v) in b_vals.iter().enumerate() {
            if top_bit(*v, bits) {
                set_bit(&mut top, e);
            }
        }
        for (j, t) in top.iter_mut().enumerate() {
            let mut word = [0u8; 8];
            word.copy_from_slice(&top_bytes[8 * j..8 * j + 8]);
            *t ^= u64::from_le_bytes(word);
        }
        (a, b, c)
    } else {
        let alpha = br.prss().draw_bytes_with_next(4 * nb * n);
        let gamma: Vec<u64> = br.prss().draw_with_next(w);
        let a: Vec<u64> = br.prss().draw_with_next(gates * w);
        let b: Vec<u64> = br.prss().draw_with_next(gates * w);
        read_entries(b_vals, bits, nb, &alpha, &mut g_planes, &mut p_planes);
        top.copy_from_slice(&gamma);
        let c = br.recv_ring::<u64>(lead, gates * w)?.await;
        (a, b, c)
    };
    // The carry tree, one level per round, AND by Beaver's method on the dealt triples.
    let other = if me == mid { last } else { mid };
    let mut used = 0;
    let mut count = nb;
    while count > 1 {
        let pairs = count / 2;
        let last_level = count.div_ceil(2) == 1;
        // Left and right operands: (P_hi, G_lo) for G, then (P_hi, P_lo) for P.
        let mut left: Vec<&[u64]> = Vec::new();
        let mut right: Vec<&[u64]> = Vec::new();
        for i in 0..pairs {
            left.push(&p_planes[2 * i + 1]);
            right.push(&g_planes[2 * i]);
        }
        if !last_level {
            for i in 0..pairs {
                left.push(&p_planes[2 * i + 1]);
                right.push(&p_planes[2 * i]);
            }
        }
        let k = left.len();
        let mut opening = Vec::with_capacity(2 * k * w);
        for (i, x) in left.iter().enumerate() {
            opening.extend(x.iter().zip(gate(&a, used, i, w)).map(|(u, v)| u ^ v));
        }
        for (i, y) in right.iter().enumerate() {
            opening.extend(y.iter().zip(gate(&b, used, i, w)).map(|(u, v)| u ^ v));
        }
        br.send_ring(other, &opening)?;
        let theirs = br.recv_ring::<u64>(other, 2 * k * w)?.await;
        let mut products: Planes = Vec::with_capacity(k);
        for i in 0..k {
            let mut z = Vec::with_capacity(w);
            for j in 0..w {
                let d = opening[i * w + j] ^ theirs[i * w + j];
                let e = opening[(k + i) * w + j] ^ theirs[(k + i) * w + j];
                let mut v = gate(&c, used, i, w)[j]
                    ^ (d & gate(&b, used, i, w)[j])
                    ^ (e & gate(&a, used, i, w)[j]);
                if me == mid {
                    v ^= d & e;
                }
                z.push(v);
            }
            products.push(z);
        }
        used += k;
        let mut g_next: Planes = Vec::with_capacity(count.div_ceil(2));
        let mut p_next: Planes = Vec::with_capacity(count.div_ceil(2));
        for i in 0..pairs {
            let g: Vec<u64> = g_planes[2 * i + 1]
                .iter()
                .zip(&products[i])
                .map(|(u, v)| u ^ v)
                .collect();
            g_next.push(g);
            if !last_level {
                p_next.push(products[pairs + i].clone());
            }
        }
        if count % 2 == 1 {
            g_next.push(g_planes[count - 1].clone());
            p_next.push(p_planes[count - 1].clone());
        }
        g_planes = g_next;
        p_planes = p_next;
        count = count.div_ceil(2);
    }
    br.finish_rounds(start, 1 + levels).await?;
    let sign: Vec<u64> = top.iter().zip(&g_planes[0]).map(|(t, g)| t ^ g).collect();
    Ok((lead, Some(sign)))
}
