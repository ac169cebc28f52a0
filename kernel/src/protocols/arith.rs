//! Arithmetic protocols: input sharing, opening, multiplication, dot products, matrix
//! products, and their fixed-point variants with fused truncation.
//!
//! Costs are in the [module table](super).

use alloc::vec::Vec;

use super::gemm::gemm_acc;
use super::trunc::{additive_trunc, additive_trunc_async, trunc};
use crate::error::Error;
use crate::party::Party;
use crate::ring::Ring;
use crate::rounds::Branch;
use crate::shape::Shape;
use crate::share::ArithShare;
use crate::transport::{PartyId, Transport};

/// Secret-shares a plaintext tensor held by `owner`.
///
/// The owner passes `Some(values)` (`shape.numel()` elements), the other parties `None`.
/// Component `x_o` comes from the PRSS stream the owner shares with its predecessor,
/// `x_{o+2}` is zero, and the owner sends `x_{o+1} = v - x_o` to its successor.
///
/// Cost: 1 round; the owner sends `B` bytes per element, the others nothing.
pub fn share_input<R: Ring, T: Transport>(
    p: &mut Party<T>,
    owner: PartyId,
    values: Option<&[R]>,
    shape: Shape,
) -> Result<ArithShare<R>, Error> {
    p.run(async move |br| share_input_async(br, owner, values, shape).await)
}

/// [`share_input`] in a [`Branch`].
pub async fn share_input_async<R: Ring>(
    p: &mut Branch<'_>,
    owner: PartyId,
    values: Option<&[R]>,
    shape: Shape,
) -> Result<ArithShare<R>, Error> {
    let start = p.round();
    let n = shape.numel();
    let me = p.id();
    let (this, next) = if me == owner {
        let v = values.ok_or(Error::MissingInput)?;
        if v.len() != n {
            return Err(Error::LengthMismatch {
                what: "share_input",
                expected: n,
                got: v.len(),
            });
        }
        let r: Vec<R> = p.prss().draw_with_prev(n);
        let x1: Vec<R> = v.iter().zip(&r).map(|(a, b)| a.wrapping_sub(*b)).collect();
        p.send_ring(owner.next(), &x1)?;
        (r, x1)
    } else {
        if values.is_some() {
            return Err(Error::MissingInput);
        }
        if me == owner.next() {
            (p.recv_ring(owner, n)?.await, alloc::vec![R::ZERO; n])
        } else {
            (alloc::vec![R::ZERO; n], p.prss().draw_with_next(n))
        }
    };
    p.finish_rounds(start, 1).await?;
    ArithShare::from_components(this, next, shape)
}

/// Encodes the owner's reals in the session's fixed-point format and shares them.
/// Encoding errors are reported by the owner before anything is sent (the other
/// parties then fail with a transport timeout).
pub fn share_input_fixed<R: Ring, T: Transport>(
    p: &mut Party<T>,
    owner: PartyId,
    values: Option<&[f64]>,
    shape: Shape,
) -> Result<ArithShare<R>, Error> {
    let encoded = match values {
        Some(v) => {
            let mut e = alloc::vec![R::ZERO; v.len()];
            p.fixed().encode_slice(v, &mut e)?;
            Some(e)
        }
        None => None,
    };
    share_input(p, owner, encoded.as_deref(), shape)
}

/// Opens `x` to all three parties: each sends its `x_i` to its successor, which lacks it.
///
/// Cost: 1 round, `B` bytes per element from each party.
pub fn open<R: Ring, T: Transport>(p: &mut Party<T>, x: &ArithShare<R>) -> Result<Vec<R>, Error> {
    p.run(async |br| open_async(br, x).await)
}

/// [`open`] in a [`Branch`].
pub async fn open_async<R: Ring>(p: &mut Branch<'_>, x: &ArithShare<R>) -> Result<Vec<R>, Error> {
    let start = p.round();
    let n = x.len();
    let me = p.id();
    p.send_ring(me.next(), x.this())?;
    let missing: Vec<R> = p.recv_ring(me.prev(), n)?.await;
    p.finish_rounds(start, 1).await?;
    for q in PartyId::ALL {
        p.count_opened(q, n);
    }
    Ok(sum3(x.this(), x.next(), &missing))
}

/// Opens `x` to party `to` only; the others learn nothing and get `None`.
///
/// Cost: 1 round, `B` bytes per element from `to`'s predecessor.
pub fn open_to<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    to: PartyId,
) -> Result<Option<Vec<R>>, Error> {
    p.run(async |br| open_to_async(br, x, to).await)
}

/// [`open_to`] in a [`Branch`].
pub async fn open_to_async<R: Ring>(
    p: &mut Branch<'_>,
    x: &ArithShare<R>,
    to: PartyId,
) -> Result<Option<Vec<R>>, Error> {
    let start = p.round();
    let n = x.len();
    let me = p.id();
    let out = if me == to.prev() {
        p.send_ring(to, x.this())?;
        None
    } else if me == to {
        let missing: Vec<R> = p.recv_ring(to.prev(), n)?.await;
        Some(sum3(x.this(), x.next(), &missing))
    } else {
        None
    };
    p.finish_rounds(start, 1).await?;
    p.count_opened(to, n);
    Ok(out)
}

/// `Σ c_j·x_j` for public reals `c_j` and secret tensors `x_j` of one shape: the
/// products are summed locally at scale `2^2f` and truncated once.
///
/// Cost: as [`trunc`]: 2 rounds, 17 bytes per element in total for `Z_{2^64}`, however
/// many terms.
pub fn linear_combination_fixed<R: Ring, T: Transport>(
    p: &mut Party<T>,
    terms: &[(f64, &ArithShare<R>)],
) -> Result<ArithShare<R>, Error> {
    let (_, first) = terms
        .first()
        .ok_or(Error::InvalidShape("linear combination of nothing"))?;
    let mut acc = ArithShare::zeros(first.shape().clone());
    for (c, x) in terms {
        let enc: R = p.fixed().encode(*c)?;
        acc.add_assign(&x.mul_public_scalar(enc))?;
    }
    let f = p.fixed().frac_bits();
    trunc(p, &acc, f)
}

/// Re-randomises `x` and hands this party's two components of the fresh sharing to the
/// output client (the user), who reconstructs `x` from the three parties' pairs (and can
/// check that they agree). Each party adds a fresh 3-out-of-3 sharing of zero to its
/// component and [`reshare`]s, so the three pairs the user receives are a uniformly
/// random replicated sharing of `x`: the user's view is simulated from `x` alone, and
/// nothing of how `x` was computed leaves the servers. No server learns anything; the
/// call is counted in [`Cost::output_to_client`](crate::cost::Cost::output_to_client).
///
/// Cost: 1 round and `B` bytes per element from each server (the resharing); `2·B`
/// bytes per element to the client.
pub fn output_to_client<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
) -> Result<(Vec<R>, Vec<R>), Error> {
    let fresh = reshare(p, x.this().to_vec(), x.shape().clone())?;
    p.count_output(x.len());
    Ok((fresh.this().to_vec(), fresh.next().to_vec()))
}

fn sum3<R: Ring>(a: &[R], b: &[R], c: &[R]) -> Vec<R> {
    a.iter()
        .zip(b)
        .zip(c)
        .map(|((x, y), z)| x.wrapping_add(*y).wrapping_add(*z))
        .collect()
}

/// Turns a 3-out-of-3 additive sharing (`z_i` at party `i`) into a replicated one:
/// re-randomises with a PRSS zero share and sends `z_i` to the predecessor.
///
/// Cost: 1 round, `B` bytes per element from each party.
pub fn reshare<R: Ring, T: Transport>(
    p: &mut Party<T>,
    z: Vec<R>,
    shape: Shape,
) -> Result<ArithShare<R>, Error> {
    p.run(async move |br| reshare_async(br, z, shape).await)
}

/// [`reshare`] in a [`Branch`], to merge with other work.
pub async fn reshare_async<R: Ring>(
    br: &mut Branch<'_>,
    mut z: Vec<R>,
    shape: Shape,
) -> Result<ArithShare<R>, Error> {
    if z.len() != shape.numel() {
        return Err(Error::LengthMismatch {
            what: "reshare",
            expected: shape.numel(),
            got: z.len(),
        });
    }
    let start = br.round();
    let me = br.id();
    br.prss().add_zero_share(&mut z);
    br.send_ring(me.prev(), &z)?;
    let next = br.recv_ring(me.next(), z.len())?.await;
    br.finish_rounds(start, 1).await?;
    ArithShare::from_components(z, next, shape)
}

/// The local part of a product: `x_i y_i + x_i y_{i+1} + x_{i+1} y_i`, a 3-out-of-3
/// additive share of `x * y` (not yet re-randomised).
pub(crate) fn local_products<R: Ring>(x: &ArithShare<R>, y: &ArithShare<R>) -> Vec<R> {
    let (x0, x1, y0, y1) = (x.this(), x.next(), y.this(), y.next());
    (0..x.len())
        .map(|j| {
            x0[j]
                .wrapping_mul(y0[j].wrapping_add(y1[j]))
                .wrapping_add(x1[j].wrapping_mul(y0[j]))
        })
        .collect()
}

fn check_len<R: Ring>(
    x: &ArithShare<R>,
    y: &ArithShare<R>,
    what: &'static str,
) -> Result<(), Error> {
    if x.len() != y.len() {
        return Err(Error::LengthMismatch {
            what,
            expected: x.len(),
            got: y.len(),
        });
    }
    Ok(())
}

/// Elementwise ring product `[x * y]` (no truncation).
///
/// Cost: 1 round, `B` bytes per element from each party.
pub fn mul<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    y: &ArithShare<R>,
) -> Result<ArithShare<R>, Error> {
    p.run(async |br| mul_async(br, x, y).await)
}

/// [`mul`] in a [`Branch`].
pub async fn mul_async<R: Ring>(
    br: &mut Branch<'_>,
    x: &ArithShare<R>,
    y: &ArithShare<R>,
) -> Result<ArithShare<R>, Error> {
    check_len(x, y, "mul")?;
    reshare_async(br, local_products(x, y), x.shape().clone()).await
}

/// Elementwise fixed-point product: `[x * y / 2^f]`, multiplication and truncation
/// fused (the truncation starts from the additive product, saving the resharing).
///
/// Input range: `|x * y| < 2^(k-2)` as integers, i.e. `|x·y| < 2^(k-2-2f)` as reals
/// ([`FixedPoint::max_abs_product`](crate::fixed::FixedPoint::max_abs_product)). Result:
/// `floor(x*y / 2^f)` or one more (stochastic rounding, at most 1 LSB error).
///
/// Cost: 3 rounds, `B + w` bytes per element from each party.
pub fn mul_fixed<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    y: &ArithShare<R>,
) -> Result<ArithShare<R>, Error> {
    p.run(async |br| mul_fixed_async(br, x, y).await)
}

/// [`mul_fixed`] in a [`Branch`].
pub async fn mul_fixed_async<R: Ring>(
    br: &mut Branch<'_>,
    x: &ArithShare<R>,
    y: &ArithShare<R>,
) -> Result<ArithShare<R>, Error> {
    check_len(x, y, "mul_fixed")?;
    let f = br.fixed().frac_bits();
    additive_trunc_async(br, local_products(x, y), x.shape().clone(), f).await
}

fn dot_shape<R: Ring>(x: &ArithShare<R>, y: &ArithShare<R>) -> Result<(Shape, usize), Error> {
    if x.shape() != y.shape() {
        return Err(Error::InvalidShape(
            "dot: operands must have the same shape",
        ));
    }
    let dims = x.shape().dims();
    let (outer, k) = match dims.split_last() {
        Some((&k, outer)) => (outer, k),
        None => (&[][..], 1),
    };
    Ok((Shape::new(outer)?, k))
}

fn local_dots<R: Ring>(x: &ArithShare<R>, y: &ArithShare<R>, rows: usize, k: usize) -> Vec<R> {
    let (x0, x1, y0, y1) = (x.this(), x.next(), y.this(), y.next());
    (0..rows)
        .map(|r| {
            let mut acc = R::ZERO;
            for j in r * k..(r + 1) * k {
                acc = acc
                    .wrapping_add(x0[j].wrapping_mul(y0[j].wrapping_add(y1[j])))
                    .wrapping_add(x1[j].wrapping_mul(y0[j]));
            }
            acc
        })
        .collect()
}

/// Dot products along the last axis: `x`, `y` of shape `[.., k]` give `[..]`. The inner
/// dimension costs no communication.
///
/// Cost: 1 round, `B` bytes per output element from each party.
pub fn dot<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    y: &ArithShare<R>,
) -> Result<ArithShare<R>, Error> {
    let (shape, k) = dot_shape(x, y)?;
    let z = local_dots(x, y, shape.numel(), k);
    reshare(p, z, shape)
}

/// Fixed-point [`dot`] with fused truncation by `f` bits (range as [`mul_fixed`], applied
/// to each sum).
///
/// Cost: 3 rounds, `B + w` bytes per output element from each party.
pub fn dot_fixed<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    y: &ArithShare<R>,
) -> Result<ArithShare<R>, Error> {
    let (shape, k) = dot_shape(x, y)?;
    let z = local_dots(x, y, shape.numel(), k);
    let f = p.fixed().frac_bits();
    additive_trunc(p, z, shape, f)
}

fn matmul_dims<R: Ring>(
    x: &ArithShare<R>,
    y: &ArithShare<R>,
) -> Result<(usize, usize, usize), Error> {
    match (x.shape().dims(), y.shape().dims()) {
        (&[m, k], &[k2, n]) if k == k2 => Ok((m, k, n)),
        _ => Err(Error::InvalidShape("matmul: need [m, k] x [k, n]")),
    }
}

fn local_matmul<R: Ring>(
    x: &ArithShare<R>,
    y: &ArithShare<R>,
    m: usize,
    k: usize,
    n: usize,
) -> Vec<R> {
    // z_i = x_i (y_i + y_{i+1}) + x_{i+1} y_i: two ring GEMMs.
    let ysum: Vec<R> = y
        .this()
        .iter()
        .zip(y.next())
        .map(|(a, b)| a.wrapping_add(*b))
        .collect();
    let mut z = alloc::vec![R::ZERO; m * n];
    gemm_acc(m, k, n, x.this(), &ysum, &mut z);
    gemm_acc(m, k, n, x.next(), y.this(), &mut z);
    z
}

/// Matrix product `[m, k] x [k, n] -> [m, n]` of two secret matrices. Communication is
/// independent of `k`.
///
/// Cost: 1 round, `B` bytes per output element from each party.
pub fn matmul<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    y: &ArithShare<R>,
) -> Result<ArithShare<R>, Error> {
    let (m, k, n) = matmul_dims(x, y)?;
    let z = local_matmul(x, y, m, k, n);
    reshare(p, z, Shape::new(&[m, n])?)
}

/// Fixed-point [`matmul`] with fused truncation by `f` bits.
///
/// Cost: 3 rounds, `B + w` bytes per output element from each party.
pub fn matmul_fixed<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    y: &ArithShare<R>,
) -> Result<ArithShare<R>, Error> {
    let (m, k, n) = matmul_dims(x, y)?;
    let z = local_matmul(x, y, m, k, n);
    let f = p.fixed().frac_bits();
    additive_trunc(p, z, Shape::new(&[m, n])?, f)
}

/// `[x * c]` for public reals `c` (one per element): encodes `c`, multiplies locally and
/// truncates by `f` bits.
///
/// Cost: as [`trunc`]: 2 rounds, 17 bytes per element in total for `Z_{2^64}`.
pub fn mul_public_fixed<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    c: &[f64],
) -> Result<ArithShare<R>, Error> {
    if c.len() != x.len() {
        return Err(Error::LengthMismatch {
            what: "mul_public_fixed",
            expected: x.len(),
            got: c.len(),
        });
    }
    let mut enc = alloc::vec![R::ZERO; c.len()];
    p.fixed().encode_slice(c, &mut enc)?;
    let prod = x.mul_public(&enc)?;
    let f = p.fixed().frac_bits();
    trunc(p, &prod, f)
}

/// `[x * c]` for one public real `c`, truncated by `f` bits (cost as [`trunc`]).
pub fn mul_public_scalar_fixed<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    c: f64,
) -> Result<ArithShare<R>, Error> {
    let enc: R = p.fixed().encode(c)?;
    let prod = x.mul_public_scalar(enc);
    let f = p.fixed().frac_bits();
    trunc(p, &prod, f)
}
