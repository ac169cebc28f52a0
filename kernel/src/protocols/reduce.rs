//! Maximum and argmax along the last axis, by a tournament tree: each level is one
//! batched comparison over every pair of every row ([`negative`](super::sign::negative),
//! which returns arithmetic bits), then one batched selection (one ring product).
//!
//! Ties keep the earlier element, so [`argmax`] returns the first index of the maximum.
//!
//! Cost per row of length `n`: `n - 1` comparisons of width `bits` and `n - 1`
//! selections spread over `ceil(log2 n)` levels; each level takes `rounds(negative) + 1`
//! rounds (6 for the approximations' 33-bit comparisons: 48 for a row of 196). Per
//! element about one comparison (66 bytes at 33 bits) plus 24 bytes for [`max`], 48 for
//! [`argmax`] (the index rides along). (A 4-ary tree — all six pairs of a group compared
//! at once — halves the levels but more than doubles the bytes; pairs won.)

use alloc::vec::Vec;

use super::arith::mul_async;
use super::sign::negative_async;
use crate::error::Error;
use crate::party::Party;
use crate::ring::Ring;
use crate::rounds::Branch;
use crate::shape::Shape;
use crate::share::ArithShare;
use crate::transport::Transport;

fn gather<R: Ring>(s: &ArithShare<R>, idx: &[usize]) -> ArithShare<R> {
    let this = idx.iter().map(|&i| s.this()[i]).collect();
    let next = idx.iter().map(|&i| s.next()[i]).collect();
    ArithShare::from_components(this, next, Shape::vector(idx.len()))
        .expect("lengths agree by construction")
}

/// Row maxima (and, with `with_index`, the first index of each) of `x` viewed as rows of
/// its last dimension.
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
    let rows = x.len() / n;
    let me = p.id();
    let mut vals = x.clone().reshape(Shape::vector(x.len()))?;
    let idx: Vec<R> = (0..rows)
        .flat_map(|_| (0..n).map(|i| R::from_u64(i as u64)))
        .collect();
    let mut index = ArithShare::from_public(me, &idx, Shape::vector(x.len()))?;
    let mut m = n;
    while m > 1 {
        let pairs = m / 2;
        let (mut left, mut right, mut carry) = (Vec::new(), Vec::new(), Vec::new());
        for r in 0..rows {
            for i in 0..pairs {
                left.push(r * m + 2 * i);
                right.push(r * m + 2 * i + 1);
            }
        }
        let (a, b) = (gather(&vals, &left), gather(&vals, &right));
        // c = [a < b]: take b only when strictly larger (ties keep the earlier index).
        let c = negative_async(p, &a.sub(&b)?, bits).await?;
        let (win_v, win_i) = if with_index {
            let (ia, ib) = (gather(&index, &left), gather(&index, &right));
            let cc = ArithShare::concat(&[&c, &c]);
            let d = ArithShare::concat(&[&b.sub(&a)?, &ib.sub(&ia)?]);
            let prod = mul_async(p, &cc, &d).await?;
            let k = a.len();
            (
                a.add(&prod.slice(0, k)?)?,
                Some(ia.add(&prod.slice(k, k)?)?),
            )
        } else {
            (a.add(&mul_async(p, &c, &b.sub(&a)?).await?)?, None)
        };
        // Reassemble rows of length ceil(m/2): winners, then the odd element.
        let next_m = m.div_ceil(2);
        let mut order_v = Vec::with_capacity(rows * next_m);
        for r in 0..rows {
            for i in 0..pairs {
                order_v.push((0usize, r * pairs + i));
            }
            if m % 2 == 1 {
                carry.push(r * m + m - 1);
                order_v.push((1usize, carry.len() - 1));
            }
        }
        let odd_v = gather(&vals, &carry);
        let odd_i = gather(&index, &carry);
        let pick = |win: &ArithShare<R>, odd: &ArithShare<R>| {
            let src = |(s, i): (usize, usize)| {
                if s == 0 {
                    (win.this()[i], win.next()[i])
                } else {
                    (odd.this()[i], odd.next()[i])
                }
            };
            let (t, nx): (Vec<R>, Vec<R>) = order_v.iter().map(|&o| src(o)).unzip();
            ArithShare::from_components(t, nx, Shape::vector(order_v.len()))
        };
        vals = pick(&win_v, &odd_v)?;
        if let Some(wi) = win_i {
            index = pick(&wi, &odd_i)?;
        }
        m = next_m;
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
/// width: elements of a row must differ by less than `2^(bits-1)` (pass the ring's bit
/// count for any input; [`approx_compare_bits`](super::poly::approx_compare_bits) for
/// fixed-point activations below `2^13`).
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
