//! Reciprocal and reciprocal square root of positive fixed-point values with a stated
//! input range `[2^lo, 2^hi)`.
//!
//! # Method
//!
//! 1. **Normalise by a power of four.** One batched comparison of `x` against every
//!    `4^j` inside the range gives bits `c_j = [x < 4^j]`; after bit injection the
//!    factors `a = 4^-E` and `s = 2^-E` (`4^E ≤ x < 4^(E+1)`) are *linear* in the bits
//!    (telescoping sums of public powers of two), so they cost nothing more. Then
//!    `x_n = x·a ∈ [1, 4)` (one product).
//! 2. **Initial guess** on `[1, 4)`: a quintic (relative error 3.7e-3 for `1/x`, 8.5e-4
//!    for `1/√x`), evaluated with one truncation (see [`piecewise`]).
//! 3. **Newton, once:** `y ← y·(2 - x_n·y)` (2 products) or `y ← y·(3 - x_n·y²)/2` (3
//!    products): relative error below 1.4e-5 (reciprocal) and 1.1e-6 (rsqrt) before
//!    fixed-point rounding. (A cubic and two steps reach the same accuracy with 6 more
//!    rounds.)
//! 4. **Denormalise:** `1/x = a·y`, `1/√x = s·y` (one product).
//!
//! Cost (`Z_{2^64}`, f = 18): `K = ` number of powers of four strictly inside the range
//! comparisons of width `f + hi + 1` and `K` bit injections, then the normalising
//! product, the quintic's powers and truncation, the Newton step (2 or 3 products) and
//! the denormalising product. Measured (`opbench`): `1/x` on `[2^-4, 2^7)` (K = 5) 573
//! bytes per element and 33 rounds; `1/√x` on `[2^-7, 2^7)` (K = 7) 715 bytes, 36 rounds.
//!
//! Range: `-f ≤ lo < hi ≤ 13` so that every factor is an exact fixed-point power of two.
//! Inputs outside the range give wrong results (not errors): the protocol cannot see them.

use alloc::vec::Vec;

use super::arith::{local_products, mul_fixed};
use super::poly::{below_thresholds, encode_scaled, piecewise};
use super::trunc::additive_trunc;
use crate::approx::Piecewise;
use crate::error::Error;
use crate::party::Party;
use crate::ring::Ring;
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

static RECIP_PIECES: [&[f64]; 1] = [RECIP_QUINTIC];
static RSQRT_PIECES: [&[f64]; 1] = [RSQRT_QUINTIC];

/// A single piece (no break): a plain polynomial with one truncation, evaluated on
/// `x_n ∈ [1, 4)` itself (powers up to `4^5`, far inside the fixed-point range), so no
/// change of variable costs a truncation.
fn polynomial(pieces: &'static [&'static [f64]]) -> Piecewise {
    Piecewise {
        breaks: &[],
        pieces,
        scale: 1.0,
        shift: 0.0,
        eval_shift: 0,
    }
}

/// `[x·y / 2^bits]` from the local products, one truncation.
fn mul_trunc<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    y: &ArithShare<R>,
    bits: u32,
) -> Result<ArithShare<R>, Error> {
    additive_trunc(p, local_products(x, y), x.shape().clone(), bits)
}

/// An input scaled into `[1, 4)` by `a = 4^-E`, with `s = 2^-E`.
struct Normalised<R: Ring> {
    xn: ArithShare<R>,
    a: ArithShare<R>,
    s: ArithShare<R>,
}

/// Scales `x` into `[1, 4)`; see the [module docs](self).
fn normalise<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    lo: i32,
    hi: i32,
) -> Result<Normalised<R>, Error> {
    let f = p.fixed().frac_bits() as i32;
    if !(-f <= lo && lo < hi && hi <= 13) {
        return Err(Error::InvalidParameter(
            "reciprocal/rsqrt range needs -f <= lo < hi <= 13",
        ));
    }
    let n = x.len();
    let me = p.id();
    // Even exponents 2j strictly inside (lo, hi), and the one at or below lo.
    let e0 = lo.div_euclid(2) * 2;
    let exps: Vec<i32> = (e0 / 2 + 1..)
        .map(|j| 2 * j)
        .take_while(|&e| e < hi)
        .collect();
    let e_top = exps.last().copied().unwrap_or(e0);
    let pow2 = |e: i32| crate::fixed::pow2(e);
    // a = 4^-E = 2^-e_top + Σ_j c_j (2^-e_{j-1} - 2^-e_j), c_j = [x < 2^e_j]; same for s.
    let mut a = ArithShare::from_public(
        me,
        &alloc::vec![encode_scaled::<R>(pow2(-e_top), f as u32)?; n],
        x.shape().clone(),
    )?;
    let mut s = ArithShare::from_public(
        me,
        &alloc::vec![encode_scaled::<R>(pow2(-e_top / 2), f as u32)?; n],
        x.shape().clone(),
    )?;
    if !exps.is_empty() {
        let ts: Vec<R> = exps
            .iter()
            .map(|&e| encode_scaled(pow2(e), f as u32))
            .collect::<Result<_, _>>()?;
        let width = ((f + hi + 1) as u32).min(R::BITS);
        let c = below_thresholds(p, x, &ts, width)?;
        let mut prev = e0;
        for (j, &e) in exps.iter().enumerate() {
            let cj = c.slice(j * n, n)?.reshape(x.shape().clone())?;
            let wa: R = encode_scaled(pow2(-prev) - pow2(-e), f as u32)?;
            let ws: R = encode_scaled(pow2(-prev / 2) - pow2(-e / 2), f as u32)?;
            a.add_assign(&cj.mul_public_scalar(wa))?;
            s.add_assign(&cj.mul_public_scalar(ws))?;
            prev = e;
        }
    }
    let xn = mul_fixed(p, x, &a)?;
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
    let Normalised { xn, a, .. } = normalise(p, x, lo, hi)?;
    let mut y = piecewise(p, &xn, &polynomial(&RECIP_PIECES))?;
    let two: R = R::from_u64(2).shl(p.fixed().frac_bits());
    let e = mul_fixed(p, &xn, &y)?.neg().add_public_scalar(p.id(), two);
    y = mul_fixed(p, &y, &e)?;
    mul_fixed(p, &y, &a)
}

/// `1/√x` for `x ∈ [2^lo, 2^hi)`; see the [module docs](self). Relative error about
/// 1e-6 plus a few LSB of the result.
pub fn rsqrt<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    lo: i32,
    hi: i32,
) -> Result<ArithShare<R>, Error> {
    let Normalised { xn, s, .. } = normalise(p, x, lo, hi)?;
    let f = p.fixed().frac_bits();
    let mut y = piecewise(p, &xn, &polynomial(&RSQRT_PIECES))?;
    let three: R = R::from_u64(3).shl(f);
    let y2 = mul_fixed(p, &y, &y)?;
    let e = mul_fixed(p, &xn, &y2)?
        .neg()
        .add_public_scalar(p.id(), three);
    // y·(3 - x·y²)/2: the halving folds into the truncation.
    y = mul_trunc(p, &y, &e, f + 1)?;
    mul_fixed(p, &y, &s)
}
