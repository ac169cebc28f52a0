//! Softmax along the last axis, and GroupNorm / LayerNorm with the variance down-scaling of
//! "Secure Inference for Diffusion Models via Unconditional Scores" (Song et al.).
//!
//! **Softmax** (CipherDM's recipe, the stabilisation of Song et al.): subtract the row
//! maximum ([`max`](super::max), a tournament of 5-round comparisons), exponentiate with a profile's exp
//! (entries below its cut-off become exactly zero), sum each row locally, take *one*
//! [`reciprocal`](super::reciprocal) per row and multiply. Row sums lie in
//! `[e(0), n]` (`e(0) ≈ 0.95` for CipherDM's exp), so the reciprocal range is
//! `[2^-1, 2^(ceil(log2 n) + 1))`. Input range: `|x| < 2^12`. The maximum must be exact:
//! an approximate exp is not shift-invariant (CipherDM's is off by 5 % and negative
//! below −4.49), and the secure result has to equal the plaintext-approximate one.
//!
//! **Normalisation** over contiguous rows: `y = (x - mean)/d`, `var' = mean(y²)`,
//! `out = y·rsqrt(var' + max(ε/d², 2^-f))`, which equals `(x - mean)/√(var + ε)` for any
//! `d ≠ 0` (Song et al., Appendix A): a larger `d` keeps `Σ y²` inside the fixed-point range
//! for long rows or large activations. The rsqrt range is `[2^-f, 2^13)`: `var/d²` must
//! stay below 8192 (outside it the result is wrong, nothing is revealed).
//!
//! The statistics take as few rounds as the dependencies allow: the mean is one
//! truncation; `Σ y²` is divided by the power of two `2^q ≥ len` inside its product's
//! truncation (`v = κ·var'`, `κ = len/2^q`), and the public `√κ` this costs rides in
//! the Newton factor of [`rsqrt`](super::inverse::rsqrt), whose last products are left
//! to the caller: GroupNorm multiplies `s·y` by `gamma` beside the Newton factor, then
//! the two per-channel factors, then each element once; LayerNorm multiplies `y` by
//! `gamma` beside the whole statistics. Per element: the centring is free, the scaling
//! by `1/d` (if `d ≠ 1`) one truncation (20 bytes), the final product 36 bytes (LayerNorm
//! with an affine: 72); the per-row statistics are amortised over the row.

use alloc::vec::Vec;

use super::arith::{local_products, mul_fixed_async};
use super::inverse::{RsqrtParts, reciprocal_async, rsqrt_parts};
use super::poly::{
    approx_compare_bits, approximate_async, encode_scaled, mul_public_scalar_precise_async,
};
use super::reduce::max_async;
use super::trunc::additive_trunc_async;
use crate::approx::{Function, Profile};
use crate::error::Error;
use crate::party::Party;
use crate::ring::Ring;
use crate::rounds::Branch;
use crate::shape::Shape;
use crate::share::ArithShare;
use crate::transport::Transport;

/// Repeats each of `rows` values `len` times (row-major broadcast), local.
fn broadcast<R: Ring>(v: &ArithShare<R>, len: usize, shape: Shape) -> Result<ArithShare<R>, Error> {
    let rep = |s: &[R]| {
        s.iter()
            .flat_map(|&a| core::iter::repeat_n(a, len))
            .collect()
    };
    ArithShare::from_components(rep(v.this()), rep(v.next()), shape)
}

/// Sums of consecutive runs of `len` values.
fn run_sums<R: Ring>(v: &[R], len: usize) -> Vec<R> {
    v.chunks(len)
        .map(|c| c.iter().fold(R::ZERO, |a, b| a.wrapping_add(*b)))
        .collect()
}

/// Row sums of a share viewed as rows of `len` elements, local.
fn row_sums<R: Ring>(x: &ArithShare<R>, len: usize) -> Result<ArithShare<R>, Error> {
    let rows = Shape::vector(x.len() / len);
    ArithShare::from_components(run_sums(x.this(), len), run_sums(x.next(), len), rows)
}

/// Softmax along the last axis with `profile`'s exp; see the [module docs](self).
pub fn softmax<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    profile: Profile,
) -> Result<ArithShare<R>, Error> {
    p.run(async |br| softmax_async(br, x, profile).await)
}

/// [`softmax`] in a [`Branch`].
pub async fn softmax_async<R: Ring>(
    br: &mut Branch<'_>,
    x: &ArithShare<R>,
    profile: Profile,
) -> Result<ArithShare<R>, Error> {
    let n = x.shape().last_dim();
    if n == 0 || x.is_empty() {
        return Err(Error::InvalidShape("softmax needs a non-empty last axis"));
    }
    let f = br.fixed().frac_bits();
    let m = max_async(br, x, approx_compare_bits::<R>(f)).await?;
    let m = broadcast(&m, n, x.shape().clone())?;
    let e = approximate_async(br, &x.sub(&m)?, profile, Function::Exp).await?;
    let sums = row_sums(&e, n)?;
    let hi = (usize::BITS - (n - 1).leading_zeros()) as i32 + 1;
    let r = reciprocal_async(br, &sums, -1, hi.min(13)).await?;
    mul_fixed_async(br, &e, &broadcast(&r, n, x.shape().clone())?).await
}

/// `(x − mean)/d` over consecutive rows of `len` elements (the mean in one truncation,
/// the down-scaling, if `d ≠ 1`, in another).
async fn centre<R: Ring>(
    br: &mut Branch<'_>,
    x: &ArithShare<R>,
    len: usize,
    d: f64,
) -> Result<ArithShare<R>, Error> {
    if len == 0 || !x.len().is_multiple_of(len) {
        return Err(Error::InvalidShape(
            "normalisation rows must divide the tensor",
        ));
    }
    let mean = mul_public_scalar_precise_async(br, &row_sums(x, len)?, 1.0 / len as f64).await?;
    let centred = x.sub(&broadcast(&mean, len, x.shape().clone())?)?;
    if d == 1.0 {
        Ok(centred)
    } else {
        mul_public_scalar_precise_async(br, &centred, 1.0 / d).await
    }
}

/// Per row of `len` centred values `y`: the [`RsqrtParts`] of `v + κ·ε'`, where
/// `v = Σ y²/2^q` with `2^q ≥ len` (the division rides in the product's truncation) is
/// `κ·var'` for `κ = len/2^q ∈ (1/2, 1]`. Since `1/√(var' + ε') = √κ/√(v + κ·ε')`, the
/// caller passes `√κ` (returned) as the Newton factor's scale.
async fn variance_parts<R: Ring>(
    br: &mut Branch<'_>,
    y: &ArithShare<R>,
    len: usize,
    eps: f64,
    d: f64,
) -> Result<(RsqrtParts<R>, f64), Error> {
    let f = br.fixed().frac_bits();
    let me = br.id();
    let rows = y.len() / len;
    let q = usize::BITS - (len - 1).leading_zeros();
    let kappa = len as f64 / crate::fixed::pow2(q as i32);
    let ssq = run_sums(&local_products(y, y), len);
    let v = additive_trunc_async(br, ssq, Shape::vector(rows), f + q).await?;
    let floor = crate::fixed::pow2(-(f as i32));
    let eps_enc: R = encode_scaled((kappa * eps / (d * d)).max(floor), f)?;
    let parts = rsqrt_parts(br, &v.add_public_scalar(me, eps_enc), -(f as i32), 13).await?;
    Ok((parts, kappa))
}

/// Checks the normalisation parameters.
fn check_norm(eps: f64, d: f64) -> Result<(), Error> {
    if !(d.is_finite() && d >= 1.0 && eps.is_finite() && eps >= 0.0) {
        return Err(Error::InvalidParameter(
            "normalisation needs d >= 1 and eps >= 0",
        ));
    }
    Ok(())
}

/// LayerNorm over the last axis with optional affine parameters `(gamma, beta)` (one per
/// last-axis position, secret); `d` is the down-scaling factor (1 for none, Song et al.
/// use 8 in their text encoder).
pub fn layer_norm<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    affine: Option<(&ArithShare<R>, &ArithShare<R>)>,
    eps: f64,
    d: f64,
) -> Result<ArithShare<R>, Error> {
    p.run(async |br| layer_norm_async(br, x, affine, eps, d).await)
}

/// [`layer_norm`] in a [`Branch`]: the affine product runs beside the statistics.
pub async fn layer_norm_async<R: Ring>(
    br: &mut Branch<'_>,
    x: &ArithShare<R>,
    affine: Option<(&ArithShare<R>, &ArithShare<R>)>,
    eps: f64,
    d: f64,
) -> Result<ArithShare<R>, Error> {
    check_norm(eps, d)?;
    let len = x.shape().last_dim();
    if let Some((g, b)) = affine
        && (g.len() != len || b.len() != len)
    {
        return Err(Error::LengthMismatch {
            what: "layer_norm affine",
            expected: len,
            got: g.len(),
        });
    }
    let f = br.fixed().frac_bits();
    let y = centre(br, x, len, d).await?;
    let rows = x.len() / len;
    let tile = |s: &ArithShare<R>| {
        let t = |v: &[R]| (0..rows).flat_map(|_| v.iter().copied()).collect();
        ArithShare::from_components(t(s.this()), t(s.next()), x.shape().clone())
    };
    // y·gamma beside the statistics, then one scale per row.
    let ((parts, kappa), scaled) = br
        .join(
            async |a| variance_parts(a, &y, len, eps, d).await,
            async |b| match affine {
                Some((g, _)) => mul_fixed_async(b, &y, &tile(g)?).await,
                None => Ok(y.clone()),
            },
        )
        .await?;
    let e = parts.newton_factor(br, crate::fixed::sqrt(kappa)).await?;
    // (s·y)·e/2 per row, then one product per element.
    let r =
        additive_trunc_async(br, local_products(&parts.sy, &e), e.shape().clone(), f + 1).await?;
    let out = mul_fixed_async(br, &scaled, &broadcast(&r, len, x.shape().clone())?).await?;
    match affine {
        Some((_, b)) => out.add(&tile(b)?),
        None => Ok(out),
    }
}

/// GroupNorm of an NCHW tensor with `groups` groups and a secret per-channel affine
/// `(gamma, beta)`; `d` is the down-scaling factor (Song et al.: `max(√(64·64·30/d_x), 1)` for
/// Stable Diffusion; 1 suits small U-Nets). The affine scale is folded into the per-group
/// factor, so each element costs one product after the statistics.
#[allow(clippy::too_many_arguments)]
pub fn group_norm<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    groups: usize,
    gamma: &ArithShare<R>,
    beta: &ArithShare<R>,
    eps: f64,
    d: f64,
) -> Result<ArithShare<R>, Error> {
    p.run(async |br| group_norm_async(br, x, groups, gamma, beta, eps, d).await)
}

/// [`group_norm`] in a [`Branch`].
#[allow(clippy::too_many_arguments)]
pub async fn group_norm_async<R: Ring>(
    br: &mut Branch<'_>,
    x: &ArithShare<R>,
    groups: usize,
    gamma: &ArithShare<R>,
    beta: &ArithShare<R>,
    eps: f64,
    d: f64,
) -> Result<ArithShare<R>, Error> {
    check_norm(eps, d)?;
    let dims = x.shape().dims();
    if dims.len() != 4 {
        return Err(Error::InvalidShape("group_norm takes an NCHW tensor"));
    }
    let (nb, c, hw) = (dims[0], dims[1], dims[2] * dims[3]);
    if groups == 0 || c % groups != 0 {
        return Err(Error::InvalidShape("channels must divide into groups"));
    }
    if gamma.len() != c || beta.len() != c {
        return Err(Error::LengthMismatch {
            what: "group_norm affine",
            expected: c,
            got: gamma.len(),
        });
    }
    let f = br.fixed().frac_bits();
    let cg = c / groups;
    let y = centre(br, x, cg * hw, d).await?;
    let (parts, kappa) = variance_parts(br, &y, cg * hw, eps, d).await?;
    // Per (batch, channel): the value of its group.
    let pick = |s: &ArithShare<R>| {
        let sel = |v: &[R]| {
            (0..nb * c)
                .map(|i| v[(i / c) * groups + (i % c) / cg])
                .collect()
        };
        ArithShare::from_components(sel(s.this()), sel(s.next()), Shape::vector(nb * c))
    };
    let tile = |s: &ArithShare<R>| {
        let t = |v: &[R]| (0..nb).flat_map(|_| v.iter().copied()).collect();
        ArithShare::from_components(t(s.this()), t(s.next()), Shape::vector(nb * c))
    };
    // (s·y)·gamma beside the Newton factor, then their product halved, then one product
    // per element.
    let (sg, e) = br
        .join(
            async |a| mul_fixed_async(a, &pick(&parts.sy)?, &tile(gamma)?).await,
            async |b| parts.newton_factor(b, crate::fixed::sqrt(kappa)).await,
        )
        .await?;
    let scale = additive_trunc_async(
        br,
        local_products(&sg, &pick(&e)?),
        sg.shape().clone(),
        f + 1,
    )
    .await?;
    let out = mul_fixed_async(br, &y, &broadcast(&scale, hw, x.shape().clone())?).await?;
    out.add(&broadcast(&tile(beta)?, hw, x.shape().clone())?)
}
