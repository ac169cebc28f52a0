//! Reciprocal and reciprocal square root of positive fixed-point values with a stated
//! input range `[2^lo, 2^hi)`.
//!
//! # Method
//!
//! 1. **Normalise by a power of four.** One batched comparison of `x` against every
//!    `4^j` inside the range gives bits `c_j = [x < 4^j]`; after bit injection the
//!    factors `a = 4^-E` and `s = 2^-E` (`4^E ≤ x < 4^(E+1)`) are *linear* in the bits
//!    (telescoping sums of public powers of two), so they cost nothing more. For calls of
//!    up to [`SCALED_COPIES_MAX_ELEMENTS`] elements (per-row statistics), the scaled
//!    copies `x·(4^-e_{j-1} − 4^-e_j)` are truncated in the same rounds as the
//!    comparison, so `x_n = x·a ∈ [1, 4)` is then one exact ring product of bits and
//!    values (1 round, no truncation); larger calls take the fixed-point product `x·a`
//!    (2 rounds, but no `K + 1` truncations of every element).
//! 2. **Initial guess** on `[1, 4)`: a quintic (relative error 3.7e-3 for `1/x`, 8.5e-4
//!    for `1/√x`) as `A(x) + x³·B(x)`: three products in two levels and one final
//!    truncation (6 rounds).
//! 3. **Newton, once, with the denormalisation folded in:** `1/x = (a·y)·(2 − x_n·y)`,
//!    where `a·y` and `x_n·y` share a round (2 products deep); `1/√x = (s·y)·(3 −
//!    x_n·y²)/2`, where `y²` and `s·y` share a round (3 products deep). Relative error
//!    below 1.4e-5 (reciprocal) and 1.1e-6 (rsqrt) before fixed-point rounding.
//!
//! Cost (`Z_{2^64}`, f = 18): `K = ` number of powers of four strictly inside the range
//! comparisons of width `f + hi + 1` ([`negative`](super::sign::negative), arithmetic bits) beside `K + 1` truncations,
//! one ring product per element and threshold, the quintic's powers and truncation, then
//! 2 (reciprocal) or 3 (rsqrt) levels of products. Rounds: 6 + 6 + 4 = 16 (reciprocal),
//! 18 (rsqrt); [`estimate`](crate::estimate) has the bytes.
//!
//! Range: `-f ≤ lo < hi ≤ 13` so that every factor is an exact fixed-point power of two.
//! Inputs outside the range give wrong results (not errors, and nothing is revealed):
//! the protocol cannot see them.

use alloc::vec::Vec;

use super::arith::{local_products, mul_async, mul_fixed_async};
use super::poly::{
    below_thresholds_async, coefficient_bits, encode_scaled, mul_public_scalar_precise_async,
};
use super::trunc::{additive_trunc_async, trunc_async};
use crate::error::Error;
use crate::party::Party;
use crate::ring::Ring;
use crate::rounds::Branch;
use crate::shape::Shape;
use crate::share::ArithShare;
use crate::transport::Transport;

/// Quintic fits on `[1, 4]` (ours: least squares of the relative error on 4,000
/// Chebyshev nodes): `1/x` within 3.7e-3 and `1/√x` within 8.5e-4, relative.
const RECIP_QUINTIC: &[f64] = &[
    2.9374361289313247,
    -3.4140263177152956,
    2.016289797745794,
    -0.6409819834890477,
    0.1044753161020044,
    -0.006850838709503463,
];
const RSQRT_QUINTIC: &[f64] = &[
    1.904208984763956,
    -1.5112249154382498,
    0.8221187286980441,
    -0.2543814649223944,
    0.04112479051340419,
    -0.002696255404163722,
];

/// `q(x) = A(x) + x³·B(x)` for a quintic `q` on `x ∈ [1, 4)` (`A`, `B` quadratics): `x²`;
/// then `x³` beside `B`, truncated once to the coefficient scale; then `A + x³·B`
/// formed locally and truncated once. 3 rounds of products instead of the 4 of
/// [`powers`](super::poly::powers) and a truncation: 6 rounds.
async fn quintic<R: Ring>(
    br: &mut Branch<'_>,
    x: &ArithShare<R>,
    c: &[f64],
) -> Result<ArithShare<R>, Error> {
    if c.len() != 6 {
        return Err(Error::Inconsistent("a quintic has six coefficients"));
    }
    let f = br.fixed().frac_bits();
    let g = coefficient_bits::<R>(f);
    let me = br.id();
    let (n, shape) = (x.len(), x.shape().clone());
    let x2 = mul_fixed_async(br, x, x).await?;
    // c0 + c1·x + c2·x² at scale f + g (replicated, local).
    let quadratic = |c0: f64, c1: f64, c2: f64| -> Result<ArithShare<R>, Error> {
        let mut acc = ArithShare::from_public(
            me,
            &alloc::vec![encode_scaled::<R>(c0, f + g)?; n],
            shape.clone(),
        )?;
        acc.add_assign(&x.mul_public_scalar(encode_scaled(c1, g)?))?;
        acc.add_assign(&x2.mul_public_scalar(encode_scaled(c2, g)?))?;
        Ok(acc)
    };
    let b_full = quadratic(c[3], c[4], c[5])?;
    let (x3, b) = br
        .join(
            async |a| mul_fixed_async(a, &x2, x).await,
            async |b| trunc_async(b, &b_full, f).await, // scale g
        )
        .await?;
    let a = quadratic(c[0], c[1], c[2])?;
    let z: Vec<R> = local_products(&x3, &b)
        .into_iter()
        .zip(a.this())
        .map(|(u, v)| u.wrapping_add(*v))
        .collect();
    additive_trunc_async(br, z, shape, g).await
}

/// `[x·y / 2^bits]` from the local products, one truncation.
async fn mul_trunc<R: Ring>(
    br: &mut Branch<'_>,
    x: &ArithShare<R>,
    y: &ArithShare<R>,
    bits: u32,
) -> Result<ArithShare<R>, Error> {
    additive_trunc_async(br, local_products(x, y), x.shape().clone(), bits).await
}

/// An input scaled into `[1, 4)` by `a = 4^-E`, with `s = 2^-E`.
pub(crate) struct Normalised<R: Ring> {
    /// `x·a ∈ [1, 4)`.
    pub(crate) xn: ArithShare<R>,
    /// `a = 4^-E`.
    pub(crate) a: ArithShare<R>,
    /// `s = 2^-E`.
    pub(crate) s: ArithShare<R>,
}

/// Up to this many elements, the normalisation truncates scaled copies of the input
/// beside its comparison and then needs one exact product (a round less than the
/// fixed-point product after it, for `K + 1` truncations of every element: right for
/// GroupNorm's and the softmax's per-row statistics). Shared with the cost model.
pub const SCALED_COPIES_MAX_ELEMENTS: usize = 4096;

/// `a += Σ_j c_j·(2^-e_{j-1} − 2^-e_j)` and `s` likewise with `2^-e/2`: the normalising
/// factors, linear in the comparison bits `c` (threshold-major).
#[allow(clippy::too_many_arguments)]
fn add_factors<R: Ring>(
    c: &ArithShare<R>,
    exps: &[i32],
    e0: i32,
    f: u32,
    n: usize,
    shape: &Shape,
    a: &mut ArithShare<R>,
    s: &mut ArithShare<R>,
) -> Result<(), Error> {
    let pow2 = |e: i32| crate::fixed::pow2(e);
    let mut prev = e0;
    for (j, &e) in exps.iter().enumerate() {
        let cj = c.slice(j * n, n)?.reshape(shape.clone())?;
        let wa: R = encode_scaled(pow2(-prev) - pow2(-e), f)?;
        let ws: R = encode_scaled(pow2(-prev / 2) - pow2(-e / 2), f)?;
        a.add_assign(&cj.mul_public_scalar(wa))?;
        s.add_assign(&cj.mul_public_scalar(ws))?;
        prev = e;
    }
    Ok(())
}

/// Scales `x` into `[1, 4)`; see the [module docs](self).
pub(crate) async fn normalise<R: Ring>(
    br: &mut Branch<'_>,
    x: &ArithShare<R>,
    lo: i32,
    hi: i32,
) -> Result<Normalised<R>, Error> {
    let f = br.fixed().frac_bits() as i32;
    if !(-f <= lo && lo < hi && hi <= 13) {
        return Err(Error::InvalidParameter(
            "reciprocal/rsqrt range needs -f <= lo < hi <= 13",
        ));
    }
    let n = x.len();
    let me = br.id();
    let shape = x.shape().clone();
    // Even exponents 2j strictly inside (lo, hi), and the one at or below lo.
    let e0 = lo.div_euclid(2) * 2;
    let exps: Vec<i32> = (e0 / 2 + 1..)
        .map(|j| 2 * j)
        .take_while(|&e| e < hi)
        .collect();
    let e_top = exps.last().copied().unwrap_or(e0);
    let pow2 = |e: i32| crate::fixed::pow2(e);
    let constant = |v: f64| -> Result<ArithShare<R>, Error> {
        ArithShare::from_public(
            me,
            &alloc::vec![encode_scaled::<R>(v, f as u32)?; n],
            shape.clone(),
        )
    };
    // a = 4^-E = 2^-e_top + Σ_j c_j (2^-e_{j-1} - 2^-e_j), c_j = [x < 2^e_j]; same for s.
    let mut a = constant(pow2(-e_top))?;
    let mut s = constant(pow2(-e_top / 2))?;
    if exps.is_empty() {
        let xn = mul_public_scalar_precise_async(br, x, pow2(-e_top)).await?;
        return Ok(Normalised { xn, a, s });
    }
    let ts: Vec<R> = exps
        .iter()
        .map(|&e| encode_scaled(pow2(e), f as u32))
        .collect::<Result<_, _>>()?;
    // The factors of the telescoping sum, the constant one first.
    let mut factors = alloc::vec![pow2(-e_top)];
    let mut prev = e0;
    for &e in &exps {
        factors.push(pow2(-prev) - pow2(-e));
        prev = e;
    }
    let width = ((f + hi + 1) as u32).min(R::BITS);
    let g = coefficient_bits::<R>(f as u32);
    if n > SCALED_COPIES_MAX_ELEMENTS {
        // Many elements: bytes matter more than the round the copies would save.
        let c = below_thresholds_async(br, x, &ts, width).await?;
        add_factors(&c, &exps, e0, f as u32, n, &shape, &mut a, &mut s)?;
        let xn = mul_fixed_async(br, x, &a).await?;
        return Ok(Normalised { xn, a, s });
    }
    let (c, scaled) = br
        .join(
            async |b| below_thresholds_async(b, x, &ts, width).await,
            async |b| {
                // x·factor_j for every j, one truncation by the coefficient bits.
                let mut copies = Vec::with_capacity(factors.len());
                for &w in &factors {
                    copies.push(x.mul_public_scalar(encode_scaled::<R>(w, g)?));
                }
                let all = ArithShare::concat(&copies.iter().collect::<Vec<_>>());
                trunc_async(b, &all, g).await
            },
        )
        .await?;
    add_factors(&c, &exps, e0, f as u32, n, &shape, &mut a, &mut s)?;
    // x_n = x·2^-e_top + Σ_j c_j·(x·factor_j): exact products of integer bits.
    let k = exps.len();
    let bits = c.reshape(Shape::vector(k * n))?;
    let terms = mul_async(br, &bits, &scaled.slice(n, k * n)?).await?;
    let mut xn = scaled.slice(0, n)?.reshape(shape.clone())?;
    for j in 0..k {
        xn.add_assign(&terms.slice(j * n, n)?.reshape(shape.clone())?)?;
    }
    Ok(Normalised { xn, a, s })
}

/// `1/x` for `x ∈ [2^lo, 2^hi)`; see the [module docs](self) for method, cost and range.
/// Relative error about 1e-5 plus a few LSB of the result.
pub fn reciprocal<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    lo: i32,
    hi: i32,
) -> Result<ArithShare<R>, Error> {
    p.run(async |br| reciprocal_async(br, x, lo, hi).await)
}

/// [`reciprocal`] in a [`Branch`].
pub async fn reciprocal_async<R: Ring>(
    br: &mut Branch<'_>,
    x: &ArithShare<R>,
    lo: i32,
    hi: i32,
) -> Result<ArithShare<R>, Error> {
    let Normalised { xn, a, .. } = normalise(br, x, lo, hi).await?;
    let y = quintic(br, &xn, RECIP_QUINTIC).await?;
    let two: R = R::from_u64(2).shl(br.fixed().frac_bits());
    // (a·y)·(2 − x_n·y): both first products in one round.
    let n = y.len();
    let firsts = mul_fixed_async(
        br,
        &ArithShare::concat(&[&a, &xn]),
        &ArithShare::concat(&[&y, &y]),
    )
    .await?;
    let ay = firsts.slice(0, n)?.reshape(y.shape().clone())?;
    let e = firsts
        .slice(n, n)?
        .reshape(y.shape().clone())?
        .neg()
        .add_public_scalar(br.id(), two);
    mul_fixed_async(br, &ay, &e).await
}

/// `1/√x` for `x ∈ [2^lo, 2^hi)`; see the [module docs](self). Relative error about
/// 1e-6 plus a few LSB of the result.
pub fn rsqrt<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    lo: i32,
    hi: i32,
) -> Result<ArithShare<R>, Error> {
    p.run(async |br| rsqrt_async(br, x, lo, hi).await)
}

/// [`rsqrt`] in a [`Branch`].
pub async fn rsqrt_async<R: Ring>(
    br: &mut Branch<'_>,
    x: &ArithShare<R>,
    lo: i32,
    hi: i32,
) -> Result<ArithShare<R>, Error> {
    let parts = rsqrt_parts(br, x, lo, hi).await?;
    let e = parts.newton_factor(br, 1.0).await?;
    let f = br.fixed().frac_bits();
    // (s·y)·(3 − x_n·y²)/2: the halving folds into the truncation.
    mul_trunc(br, &parts.sy, &e, f + 1).await
}

/// `1/√x = (s·y)·(3 − x_n·y²)/2` before its last two product levels, so that a caller
/// can run its own products beside them (GroupNorm multiplies `s·y` into the
/// normalised values while the Newton factor is formed).
pub(crate) struct RsqrtParts<R: Ring> {
    /// `s·y`, the denormalised initial guess.
    pub(crate) sy: ArithShare<R>,
    xn: ArithShare<R>,
    y2: ArithShare<R>,
}

impl<R: Ring> RsqrtParts<R> {
    /// The Newton factor times a public `scale`, `scale·(3 − x_n·y²)` (one product; the
    /// scale rides in the product's truncation, encoded with 20 fraction bits).
    pub(crate) async fn newton_factor(
        &self,
        br: &mut Branch<'_>,
        scale: f64,
    ) -> Result<ArithShare<R>, Error> {
        const SCALE_BITS: u32 = 20;
        let f = br.fixed().frac_bits();
        let three: R = encode_scaled(3.0 * scale, f)?;
        let c: R = encode_scaled(scale, SCALE_BITS)?;
        let z: Vec<R> = local_products(&self.xn, &self.y2)
            .into_iter()
            .map(|v| v.wrapping_mul(c))
            .collect();
        Ok(
            additive_trunc_async(br, z, self.xn.shape().clone(), f + SCALE_BITS)
                .await?
                .neg()
                .add_public_scalar(br.id(), three),
        )
    }
}

/// Normalisation, the quintic, and `y²` beside `s·y`; see [`RsqrtParts`].
pub(crate) async fn rsqrt_parts<R: Ring>(
    br: &mut Branch<'_>,
    x: &ArithShare<R>,
    lo: i32,
    hi: i32,
) -> Result<RsqrtParts<R>, Error> {
    let Normalised { xn, s, .. } = normalise(br, x, lo, hi).await?;
    let y = quintic(br, &xn, RSQRT_QUINTIC).await?;
    let n = y.len();
    let shape = y.shape().clone();
    let firsts = mul_fixed_async(
        br,
        &ArithShare::concat(&[&y, &s]),
        &ArithShare::concat(&[&y, &y]),
    )
    .await?;
    let y2 = firsts.slice(0, n)?.reshape(shape.clone())?;
    let sy = firsts.slice(n, n)?.reshape(shape)?;
    Ok(RsqrtParts { sy, xn, y2 })
}
