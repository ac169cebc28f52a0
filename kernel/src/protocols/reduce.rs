//! Maximum and argmax along the last axis, by a tournament. Each level splits every row
//! into groups (the last one filled with a public value below every input), compares
//! the pairs of every group in one batched comparison, finds each group's winner, injects
//! the winner bits and selects with one product.
//!
//! Groups are of four where a call has at most [`FOUR_WAY_MAX_ELEMENTS`] elements: all
//! six pairs compared at once, the winner found by two levels of AND, 12 rounds per
//! level (with the approximations' 33-bit comparisons) for a 4× reduction — 48 rounds
//! instead of 80 for a row of 196 — at about 1.6 times the bytes. Larger calls use
//! pairs: 10 rounds per level for a 2× reduction, one comparison per element in all.
//!
//! Ties keep the earlier element (element `i` of a group wins when it is at least every
//! later one and greater than every earlier one: exactly one wins), so [`argmax`]
//! returns the first index of the maximum.

use alloc::vec::Vec;

use super::arith::mul_async;
use super::boolean::{BoolShare, and_async, words_for};
use super::compare::msb_bits_async;
use super::select::b2a_async;
use crate::error::Error;
use crate::party::Party;
use crate::ring::Ring;
use crate::rounds::Branch;
use crate::shape::Shape;
use crate::share::ArithShare;
use crate::transport::Transport;

/// The six pairs `(i, j)`, `i < j`, of a group of four, in the order their comparison
/// bits `[a_i < a_j]` are laid out.
const PAIRS: [(usize, usize); 6] = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)];

/// Calls with at most this many elements use groups of four; larger ones pairs. A 4-ary
/// level costs about 1.6 times the bytes of the two binary levels it replaces and saves
/// 8 rounds: below this size that is at most a few MB for 30-odd rounds, the right trade
/// on a LAN and a WAN alike; above it (Stable Diffusion's 4,096-long rows) bandwidth
/// wins. Shared with the cost model.
pub const FOUR_WAY_MAX_ELEMENTS: usize = 1 << 17;

/// The group size of a tournament over `elements` elements.
pub fn tournament_arity(elements: usize) -> usize {
    if elements <= FOUR_WAY_MAX_ELEMENTS {
        4
    } else {
        2
    }
}

/// Component words `(this, next)` of a one-plane boolean share.
type Plane = (Vec<u64>, Vec<u64>);

/// Row maxima (and, with `with_index`, the first index of each) of `x` viewed as rows of
/// its last dimension; see the [module docs](self).
async fn tournament<R: Ring>(
    p: &mut Branch<'_>,
    x: &ArithShare<R>,
    bits: u32,
    with_index: bool,
) -> Result<(ArithShare<R>, Option<ArithShare<R>>), Error> {
    let n = x.shape().last_dim();
    if n == 0 || x.is_empty() {
        return Err(Error::InvalidShape("max/argmax need a non-empty last axis"));
    }
    if !(3..=R::BITS).contains(&bits) {
        return Err(Error::InvalidParameter(
            "max/argmax comparison width must lie in 3..=ring bits",
        ));
    }
    let rows = x.len() / n;
    let me = p.id();
    // Below every input in [-2^(bits-2), 2^(bits-2)) and within comparison range of it.
    let pad = R::ONE.shl(bits - 2).wrapping_neg();
    let mut vals = x.clone().reshape(Shape::vector(x.len()))?;
    let idx: Vec<R> = (0..rows)
        .flat_map(|_| (0..n).map(|i| R::from_u64(i as u64)))
        .collect();
    let mut index = ArithShare::from_public(me, &idx, Shape::vector(x.len()))?;
    let arity = tournament_arity(x.len());
    // The pairs compared, and for each member the (pair, negated) bits whose AND says it
    // wins: lt_k for PAIRS[k]; element i wins iff a_i ≥ every later and > every earlier.
    let (pairs, wins): (&[(usize, usize)], &[&[(usize, bool)]]) = if arity == 4 {
        (
            &PAIRS,
            &[
                &[(0, true), (1, true), (2, true)],
                &[(0, false), (3, true), (4, true)],
                &[(1, false), (3, false), (5, true)],
                &[(2, false), (4, false), (5, false)],
            ],
        )
    } else {
        (&PAIRS[..1], &[&[(0, true)], &[(0, false)]])
    };
    let mut m = n;
    while m > 1 {
        let g = m.div_ceil(arity);
        let gn = rows * g;
        // Member q of group (r, i) is element r·m + 4i + q, or the pad past the row's end.
        let member = |src: &ArithShare<R>, q: usize, fill: R| -> Result<ArithShare<R>, Error> {
            let (mut t, mut nx) = (Vec::with_capacity(gn), Vec::with_capacity(gn));
            let (fill_this, fill_next) = match me.index() {
                0 => (fill, R::ZERO),
                2 => (R::ZERO, fill),
                _ => (R::ZERO, R::ZERO),
            };
            for r in 0..rows {
                for i in 0..g {
                    let pos = arity * i + q;
                    if pos < m {
                        t.push(src.this()[r * m + pos]);
                        nx.push(src.next()[r * m + pos]);
                    } else {
                        t.push(fill_this);
                        nx.push(fill_next);
                    }
                }
            }
            ArithShare::from_components(t, nx, Shape::vector(gn))
        };
        let a: Vec<ArithShare<R>> = (0..arity)
            .map(|q| member(&vals, q, pad))
            .collect::<Result<_, _>>()?;
        // Each pair's block padded to whole words, so planes can be sliced by words.
        let words = words_for(gn);
        let block = 64 * words;
        let np = pairs.len();
        let mut diff_this = alloc::vec![R::ZERO; np * block];
        let mut diff_next = alloc::vec![R::ZERO; np * block];
        for (k, &(i, j)) in pairs.iter().enumerate() {
            let d = a[i].sub(&a[j])?;
            diff_this[k * block..k * block + gn].copy_from_slice(d.this());
            diff_next[k * block..k * block + gn].copy_from_slice(d.next());
        }
        let diffs = ArithShare::from_components(diff_this, diff_next, Shape::vector(np * block))?;
        let lt = msb_bits_async(p, &diffs, bits).await?;
        let plane = |k: usize, negate: bool| -> Plane {
            let r = k * words..(k + 1) * words;
            let (mut t, mut nx) = (lt.this()[r.clone()].to_vec(), lt.next()[r].to_vec());
            if negate {
                match me.index() {
                    0 => t.iter_mut().for_each(|w| *w = !*w),
                    2 => nx.iter_mut().for_each(|w| *w = !*w),
                    _ => {}
                }
            }
            (t, nx)
        };
        let cat = |planes: Vec<Plane>| -> Plane {
            let mut out = (Vec::new(), Vec::new());
            for (t, nx) in planes {
                out.0.extend(t);
                out.1.extend(nx);
            }
            out
        };
        let column = |c: usize| cat(wins.iter().map(|w| plane(w[c].0, w[c].1)).collect());
        // Two AND levels for three bits (groups of four); a pair's bit is its own winner.
        let mut win = column(0);
        for c in 1..wins[0].len() {
            let other = column(c);
            win = and_async(p, (&win.0, &win.1), (&other.0, &other.1)).await?;
        }
        let win = BoolShare::from_components(1, arity * block, win.0, win.1)?;
        let win = b2a_async::<R>(p, &win, Shape::vector(arity * block)).await?;
        let win: Vec<ArithShare<R>> = (0..arity)
            .map(|q| win.slice(q * block, gn))
            .collect::<Result<_, _>>()?;
        // Σ_q win_q·a_q (and Σ_q win_q·index_q) in one product call.
        let mut lhs: Vec<&ArithShare<R>> = win.iter().collect();
        let mut rhs: Vec<&ArithShare<R>> = a.iter().collect();
        let ids: Vec<ArithShare<R>> = if with_index {
            (0..arity)
                .map(|q| member(&index, q, R::ZERO))
                .collect::<Result<_, _>>()?
        } else {
            Vec::new()
        };
        if with_index {
            lhs.extend(win.iter());
            rhs.extend(ids.iter());
        }
        let prod = mul_async(p, &ArithShare::concat(&lhs), &ArithShare::concat(&rhs)).await?;
        let sum = |first: usize| -> Result<ArithShare<R>, Error> {
            let mut acc = prod.slice(first * gn, gn)?;
            for q in 1..arity {
                acc.add_assign(&prod.slice((first + q) * gn, gn)?)?;
            }
            Ok(acc)
        };
        vals = sum(0)?;
        if with_index {
            index = sum(arity)?;
        }
        m = g;
    }
    let mut dims: Vec<usize> = x.shape().dims().to_vec();
    let last = dims.len() - 1;
    dims[last] = 1;
    let shape = Shape::new(&dims)?;
    let idx_out = if with_index {
        Some(index.reshape(shape.clone())?)
    } else {
        None
    };
    Ok((vals.reshape(shape)?, idx_out))
}

/// Maximum along the last axis (the last dimension becomes 1). `bits` is the comparison
/// width: elements must lie in `[-2^(bits-2), 2^(bits-2))` (pass the ring's bit count
/// for any fixed-point input; [`approx_compare_bits`](super::poly::approx_compare_bits)
/// for fixed-point activations below `2^13`). Outside it the result is wrong, and
/// nothing is revealed.
pub fn max<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    bits: u32,
) -> Result<ArithShare<R>, Error> {
    p.run(async |br| max_async(br, x, bits).await)
}

/// [`max`] in a [`Branch`].
pub async fn max_async<R: Ring>(
    br: &mut Branch<'_>,
    x: &ArithShare<R>,
    bits: u32,
) -> Result<ArithShare<R>, Error> {
    Ok(tournament(br, x, bits, false).await?.0)
}

/// Maximum and the first index attaining it (an integer share, not fixed point) along
/// the last axis; see [`max`] for `bits`.
pub fn argmax<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    bits: u32,
) -> Result<(ArithShare<R>, ArithShare<R>), Error> {
    let (v, i) = p.run(async |br| tournament(br, x, bits, true).await)?;
    Ok((v, i.ok_or(Error::Inconsistent("argmax lost its index"))?))
}
