//! Softmax along the last axis, and GroupNorm / LayerNorm with the variance down-scaling of
//! "Secure Inference for Diffusion Models via Unconditional Scores" (Song et al.).
//!
//! **Softmax** (CipherDM's recipe, the stabilisation of Song et al.): subtract the row
//! maximum ([`max`]), exponentiate with a profile's exp (entries below its
//! cut-off become exactly zero), sum each row locally, take *one*
//! [`reciprocal`] per row and multiply. Row sums lie in
//! `[e(0), n]` (`e(0) ≈ 0.95` for CipherDM's exp), so the reciprocal range is
//! `[2^-1, 2^(ceil(log2 n) + 1))`. Input range: `|x| < 2^12`.
//!
//! **Normalisation** over contiguous rows: `y = (x - mean)/d`, `var' = mean(y²)`,
//! `out = y·rsqrt(var' + max(ε/d², 2^-f))`, which equals `(x - mean)/√(var + ε)` for any
//! `d ≠ 0` (Song et al., Appendix A): a larger `d` keeps `Σ y²` inside the fixed-point range
//! for long rows or large activations. The rsqrt range is `[2^-f, 2^13)`: `var/d²` must
//! stay below 8192. Per element: the centring is free, the scaling by `1/d` (if `d ≠ 1`)
//! one truncation (18 bytes), the final product 33 bytes; the per-row statistics are
//! amortised over the row.

use alloc::vec::Vec;

use super::arith::{local_products, mul_fixed};
use super::inverse::{reciprocal, rsqrt};
use super::poly::{approx_compare_bits, encode_scaled, exp, mul_public_scalar_precise};
use super::reduce::max;
use super::trunc::additive_trunc;
use crate::approx::Profile;
use crate::error::Error;
use crate::party::Party;
use crate::ring::Ring;
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
    let n = x.shape().last_dim();
    if n == 0 || x.is_empty() {
        return Err(Error::InvalidShape("softmax needs a non-empty last axis"));
    }
    let f = p.fixed().frac_bits();
    let m = max(p, x, approx_compare_bits::<R>(f))?;
    let m = broadcast(&m, n, x.shape().clone())?;
    let e = exp(p, &x.sub(&m)?, profile)?;
    let sums = row_sums(&e, n)?;
    let hi = (usize::BITS - (n - 1).leading_zeros()) as i32 + 1;
    let r = reciprocal(p, &sums, -1, hi.min(13))?;
    mul_fixed(p, &e, &broadcast(&r, n, x.shape().clone())?)
}

/// `(x - mean)/√(var + eps)` over consecutive rows of `len` elements, with down-scaling
/// factor `d` (see the [module docs](self)). Returns the normalised tensor and, per row,
/// the factor `1/√(var' + ε')` (for callers that fold an affine scale into it).
fn normalize_rows<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    len: usize,
    eps: f64,
    d: f64,
) -> Result<(ArithShare<R>, ArithShare<R>), Error> {
    if len == 0 || !x.len().is_multiple_of(len) {
        return Err(Error::InvalidShape(
            "normalisation rows must divide the tensor",
        ));
    }
    if !(d.is_finite() && d >= 1.0 && eps.is_finite() && eps >= 0.0) {
        return Err(Error::InvalidParameter(
            "normalisation needs d >= 1 and eps >= 0",
        ));
    }
    let f = p.fixed().frac_bits();
    let me = p.id();
    let rows = x.len() / len;
    let mean = mul_public_scalar_precise(p, &row_sums(x, len)?, 1.0 / len as f64)?;
    let centred = x.sub(&broadcast(&mean, len, x.shape().clone())?)?;
    let y = if d == 1.0 {
        centred
    } else {
        mul_public_scalar_precise(p, &centred, 1.0 / d)?
    };
    // Σ y² per row: local products summed, one truncation per row.
    let ssq = run_sums(&local_products(&y, &y), len);
    let ssq = additive_trunc(p, ssq, Shape::vector(rows), f)?;
    let var = mul_public_scalar_precise(p, &ssq, 1.0 / len as f64)?;
    let floor = crate::fixed::pow2(-(f as i32));
    let eps_enc: R = encode_scaled((eps / (d * d)).max(floor), f)?;
    let r = rsqrt(p, &var.add_public_scalar(me, eps_enc), -(f as i32), 13)?;
    Ok((y, r))
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
    let len = x.shape().last_dim();
    let (y, r) = normalize_rows(p, x, len, eps, d)?;
    let out = mul_fixed(p, &y, &broadcast(&r, len, x.shape().clone())?)?;
    match affine {
        None => Ok(out),
        Some((g, b)) => {
            if g.len() != len || b.len() != len {
                return Err(Error::LengthMismatch {
                    what: "layer_norm affine",
                    expected: len,
                    got: g.len(),
                });
            }
            let rows = x.len() / len;
            let tile = |s: &ArithShare<R>| {
                let t = |v: &[R]| (0..rows).flat_map(|_| v.iter().copied()).collect();
                ArithShare::from_components(t(s.this()), t(s.next()), x.shape().clone())
            };
            mul_fixed(p, &out, &tile(g)?)?.add(&tile(b)?)
        }
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
    let cg = c / groups;
    let (y, r) = normalize_rows(p, x, cg * hw, eps, d)?;
    // Per (batch, channel): r of its group times gamma.
    let pick = |s: &[R]| {
        (0..nb * c)
            .map(|i| s[(i / c) * groups + (i % c) / cg])
            .collect()
    };
    let r_nc = ArithShare::from_components(pick(r.this()), pick(r.next()), Shape::vector(nb * c))?;
    let tile = |s: &ArithShare<R>| {
        let t = |v: &[R]| (0..nb).flat_map(|_| v.iter().copied()).collect();
        ArithShare::from_components(t(s.this()), t(s.next()), Shape::vector(nb * c))
    };
    let scale = mul_fixed(p, &r_nc, &tile(gamma)?)?;
    let out = mul_fixed(p, &y, &broadcast(&scale, hw, x.shape().clone())?)?;
    out.add(&broadcast(&tile(beta)?, hw, x.shape().clone())?)
}
