//! The polynomial engine: powers in log depth, public coefficients applied before a single
//! truncation, and piecewise polynomials whose segment tests are one batched comparison.
//!
//! # Piecewise evaluation
//!
//! With breaks `t_1 < … < t_J` and pieces `P_0 … P_J`, let `c_j = [x < t_j]` (one
//! [`msb_bits`](super::msb_bits) call over all `J·n` differences `x - t_j`, then one [`b2a`](super::b2a)). Then
//!
//! `f(x) = P_J(v) + Σ_j c_j · (P_{j-1}(v) - P_j(v))`
//!
//! telescopes to the piece containing `x`, *exactly in the ring*: pieces that overflow
//! far from their segment cancel out. Every coefficient is encoded with `g` fraction bits
//! (`g = min(k - f - 16, 48)`, 30 for `Z_{2^64}`, f = 18), each product `coefficient ×
//! power` and `bit × difference polynomial` is formed locally at scale `f + g`, and one
//! additive truncation by `g` bits yields the result: the `J` products cost one
//! resharing, not `J`.
//!
//! Input range: `|x| < 2^13` (the comparisons run in `f + 15` bits and the result must
//! fit at scale `f + g`).
//!
//! Cost (`Z_{2^64}`, f = 18, per element): `J` comparisons of 39 bytes, `J` bit
//! injections of 24 bytes, one variable change `v = (scale·x + shift)/2^s` (17–18 bytes,
//! skipped when it is the identity), one fixed-point product of 33 bytes per power
//! `v^2…v^d` the pieces use, and 36 bytes for the final truncation. Rounds: 7 + 2 for the
//! selection bits, 2 for the variable change, 3 per power level (`ceil(log2 d)` levels),
//! 3 for the combination.

use alloc::vec;
use alloc::vec::Vec;

use super::arith::mul_fixed_async;
use super::trunc::{additive_trunc_async, trunc_async};
use crate::approx::{Approximation, Function, Piecewise, Profile, entry};
use crate::error::Error;
use crate::party::Party;
use crate::ring::Ring;
use crate::rounds::Branch;
use crate::share::ArithShare;
use crate::transport::Transport;

/// Fraction bits of public coefficients in the engine: `min(k - f - 16, 48)`.
pub fn coefficient_bits<R: Ring>(frac_bits: u32) -> u32 {
    (R::BITS - frac_bits - 16).min(48)
}

/// Width of the comparisons the approximations run: `min(k, f + 15)`, valid for
/// `|x - t| < 2^14`.
pub fn approx_compare_bits<R: Ring>(frac_bits: u32) -> u32 {
    (frac_bits + 15).min(R::BITS)
}

/// `round(v · 2^bits)` as a ring element, or [`Error::InvalidParameter`] when it does not
/// fit in `[-2^(k-2), 2^(k-2))` or `v` is not finite.
pub fn encode_scaled<R: Ring>(v: f64, bits: u32) -> Result<R, Error> {
    let s = v * crate::fixed::pow2(bits as i32);
    let limit = crate::fixed::pow2(R::BITS as i32 - 2);
    if !s.is_finite() || s >= limit || s < -limit {
        return Err(Error::InvalidParameter(
            "public constant out of range for its scale",
        ));
    }
    Ok(R::from_i128(crate::fixed::round_to_i128(s)))
}

/// `[c·x]` for a public real `c` encoded with [`coefficient_bits`] fraction bits (rather
/// than `f`), so that constants such as `1/7` keep their precision. Requires
/// `|c·x| < 2^13`.
///
/// Cost: 2 rounds, as [`trunc`](super::trunc()) by `g` bits (18 bytes per element in `Z_{2^64}`).
pub fn mul_public_scalar_precise<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    c: f64,
) -> Result<ArithShare<R>, Error> {
    p.run(async |br| mul_public_scalar_precise_async(br, x, c).await)
}

/// [`mul_public_scalar_precise`] in a [`Branch`].
pub async fn mul_public_scalar_precise_async<R: Ring>(
    br: &mut Branch<'_>,
    x: &ArithShare<R>,
    c: f64,
) -> Result<ArithShare<R>, Error> {
    let g = coefficient_bits::<R>(br.fixed().frac_bits());
    let enc: R = encode_scaled(c, g)?;
    trunc_async(br, &x.mul_public_scalar(enc), g).await
}

/// `v^i` for every `i` with `needed[i]` (and the intermediate powers they need), in
/// `ceil(log2 d)` levels of one batched [`mul_fixed`](super::mul_fixed) each: `v^i = v^a · v^(i-a)` with
/// `a` the largest power of two below `i`. Entry `i` of the result is `Some` for every
/// computed power; `v^1` is `v` itself.
///
/// Cost: 3 rounds per level, 33 bytes per computed power and element (`Z_{2^64}`).
pub fn powers<R: Ring, T: Transport>(
    p: &mut Party<T>,
    v: &ArithShare<R>,
    needed: &[bool],
) -> Result<Vec<Option<ArithShare<R>>>, Error> {
    p.run(async |br| powers_async(br, v, needed).await)
}

/// [`powers`] in a [`Branch`].
pub async fn powers_async<R: Ring>(
    p: &mut Branch<'_>,
    v: &ArithShare<R>,
    needed: &[bool],
) -> Result<Vec<Option<ArithShare<R>>>, Error> {
    powers_given_square(p, v, None, needed).await
}

/// [`powers_async`] with `v²` already known (it then skips the first level).
async fn powers_given_square<R: Ring>(
    p: &mut Branch<'_>,
    v: &ArithShare<R>,
    square: Option<ArithShare<R>>,
    needed: &[bool],
) -> Result<Vec<Option<ArithShare<R>>>, Error> {
    let d = needed.len().saturating_sub(1).max(1);
    let mut out: Vec<Option<ArithShare<R>>> = vec![None; d + 1];
    out[1] = Some(v.clone());
    let skip_first = square.is_some() && d >= 2;
    if skip_first {
        out[2] = square;
    }
    // Level L computes the powers in (2^(L-1), 2^L]; both factors come from lower levels.
    for (l, level) in power_levels(needed).into_iter().enumerate() {
        if l == 0 && skip_first {
            continue;
        }
        if !level.is_empty() {
            let get = |out: &[Option<ArithShare<R>>], i: usize| {
                out[i]
                    .clone()
                    .ok_or(Error::Inconsistent("power computed out of order"))
            };
            let mut left = Vec::with_capacity(level.len());
            let mut right = Vec::with_capacity(level.len());
            for &i in &level {
                let (a, b) = split_power(i);
                left.push(get(&out, a)?);
                right.push(get(&out, b)?);
            }
            let l = ArithShare::concat(&left.iter().collect::<Vec<_>>());
            let r = ArithShare::concat(&right.iter().collect::<Vec<_>>());
            let prod = mul_fixed_async(p, &l, &r).await?;
            for (k, &i) in level.iter().enumerate() {
                let s = prod.slice(k * v.len(), v.len())?;
                out[i] = Some(s.reshape(v.shape().clone())?);
            }
        }
    }
    Ok(out)
}

/// `v^i = v^a · v^(i-a)` with `a` the largest power of two below `i`.
fn split_power(i: usize) -> (usize, usize) {
    let a = 1usize << (usize::BITS - 1 - (i - 1).leading_zeros());
    (a, i - a)
}

/// The powers [`powers`] computes, level by level (level `L` holds the wanted powers in
/// `(2^(L-1), 2^L]`, each the product of two lower ones): `needed` plus the intermediate
/// powers they need. Shared with the cost model.
pub fn power_levels(needed: &[bool]) -> Vec<Vec<usize>> {
    let d = needed.len().saturating_sub(1).max(1);
    let mut want = vec![false; d + 1];
    want[1] = true;
    for (i, &w) in needed.iter().enumerate().skip(2) {
        want[i] = w;
    }
    for i in (2..=d).rev() {
        if want[i] {
            let (a, b) = split_power(i);
            want[a] = true;
            want[b] = true;
        }
    }
    let mut levels = Vec::new();
    let mut top = 1;
    while top < d {
        levels.push((top + 1..=(2 * top).min(d)).filter(|&i| want[i]).collect());
        top *= 2;
    }
    levels
}

/// `[x < t_j]` as integer shares for every public threshold `t_j` (ring-encoded) and
/// every element, threshold-major (`t_0` for all elements, then `t_1`, …): one
/// [`negative`](super::sign::negative) call of width `width` over all differences
/// (5 rounds for the approximations' 33 bits).
pub fn below_thresholds<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    thresholds: &[R],
    width: u32,
) -> Result<ArithShare<R>, Error> {
    p.run(async |br| below_thresholds_async(br, x, thresholds, width).await)
}

/// [`below_thresholds`] in a [`Branch`].
pub async fn below_thresholds_async<R: Ring>(
    p: &mut Branch<'_>,
    x: &ArithShare<R>,
    thresholds: &[R],
    width: u32,
) -> Result<ArithShare<R>, Error> {
    let me = p.id();
    let diffs: Vec<ArithShare<R>> = thresholds
        .iter()
        .map(|t| x.add_public_scalar(me, t.wrapping_neg()))
        .collect();
    let all = ArithShare::concat(&diffs.iter().collect::<Vec<_>>());
    super::sign::negative_async(p, &all, width).await
}

/// Secure evaluation of a piecewise polynomial; see the [module docs](self).
pub fn piecewise<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    pw: &Piecewise,
) -> Result<ArithShare<R>, Error> {
    p.run(async |br| piecewise_async(br, x, pw).await)
}

/// [`piecewise`] in a [`Branch`].
pub async fn piecewise_async<R: Ring>(
    p: &mut Branch<'_>,
    x: &ArithShare<R>,
    pw: &Piecewise,
) -> Result<ArithShare<R>, Error> {
    let n = x.len();
    let f = p.fixed().frac_bits();
    let g = coefficient_bits::<R>(f);
    let me = p.id();
    let nb = pw.breaks.len();
    if pw.pieces.len() != nb + 1 {
        return Err(Error::InvalidParameter(
            "a piecewise table needs breaks + 1 pieces",
        ));
    }

    // 1. Selection bits c_j = [x < t_j], one comparison call, one injection call — in
    //    the same rounds as 2. and 3., which do not depend on them.
    let ts: Vec<R> = pw
        .breaks
        .iter()
        .map(|&t| encode_scaled(t, f))
        .collect::<Result<_, _>>()?;
    let selection = async |br: &mut Branch<'_>| {
        if ts.is_empty() {
            Ok(None)
        } else {
            below_thresholds_async(br, x, &ts, approx_compare_bits::<R>(f))
                .await
                .map(Some)
        }
    };

    // 2. The evaluation variable v = (scale·x + shift) / 2^s.
    let variable = async |br: &mut Branch<'_>| -> Result<ArithShare<R>, Error> {
        let div = crate::fixed::pow2(pw.eval_shift as i32);
        let (m, shift) = (pw.scale / div, pw.shift / div);
        let mut v = if m == 1.0 {
            x.clone()
        } else if let Some(j) = (1..=30).find(|&j| m == 1.0 / crate::fixed::pow2(j)) {
            trunc_async(br, x, j as u32).await?
        } else {
            mul_public_scalar_precise_async(br, x, m).await?
        };
        if shift != 0.0 {
            v = v.add_public_scalar(me, encode_scaled(shift, f)?);
        }
        Ok(v)
    };

    if paterson_stockmeyer_applies(pw) {
        let (bits, y) = p
            .join(selection, async |br| {
                let v = variable(br).await?;
                paterson_stockmeyer(br, &v, pw.pieces[1], pw.eval_shift).await
            })
            .await?;
        let c = bits.ok_or(Error::Inconsistent("one break means one selection bit"))?;
        // (1 - c)·P(v): exactly zero wherever c = 1, whatever P(v).
        return y.sub(&super::arith::mul_async(p, &c, &y).await?);
    }

    // 3. Powers of v used by any piece.
    let deg = pw.degree();
    let mut needed = vec![false; deg + 1];
    for piece in pw.pieces {
        for (i, &c) in piece.iter().enumerate() {
            needed[i] |= c != 0.0;
        }
    }
    // A pure shift `v = x/2^j` (CipherDM's SiLU and Mish): `v²` comes from `x` in the
    // same rounds as `v` (one truncation by `f + 2j`), so the powers need one level less.
    let div = crate::fixed::pow2(pw.eval_shift as i32);
    let pure_shift = (pw.shift == 0.0 && deg >= 2 && needed[2])
        .then(|| (1..=30).find(|&j| pw.scale / div == 1.0 / crate::fixed::pow2(j)))
        .flatten();
    let (bits, pows) = p
        .join(selection, async |br| match pure_shift {
            Some(j) => {
                let (v, v2) = br
                    .join(
                        async |a| trunc_async(a, x, j as u32).await,
                        async |b| {
                            let z = super::arith::local_products(x, x);
                            additive_trunc_async(b, z, x.shape().clone(), f + 2 * j as u32).await
                        },
                    )
                    .await?;
                powers_given_square(br, &v, Some(v2), &needed).await
            }
            None => {
                let v = variable(br).await?;
                powers_async(br, &v, &needed).await
            }
        })
        .await?;

    // Coefficients in v at g bits (constant term at f + g bits).
    let enc_piece = |piece: &[f64]| -> Result<Vec<R>, Error> {
        let mut out = vec![R::ZERO; deg + 1];
        for (i, &c) in piece.iter().enumerate() {
            let cv = c * crate::fixed::pow2((pw.eval_shift as usize * i) as i32);
            out[i] = encode_scaled(cv, if i == 0 { f + g } else { g })?;
        }
        Ok(out)
    };
    let pieces: Vec<Vec<R>> = pw
        .pieces
        .iter()
        .map(|pc| enc_piece(pc))
        .collect::<Result<_, _>>()?;
    // Difference polynomials Q_j = P_{j-1} - P_j.
    let diffs: Vec<Vec<R>> = (1..=nb)
        .map(|j| {
            pieces[j - 1]
                .iter()
                .zip(&pieces[j])
                .map(|(a, b)| a.wrapping_sub(*b))
                .collect()
        })
        .collect();

    // 4. z = P_J(v) + Σ_j c_j·Q_j(v), additive at scale f + g; one truncation.
    let (cst_this, cst_next) = (me.index() == 0, me.index() == 2);
    let eval_rep = |coef: &[R], e: usize| -> (R, R) {
        let (mut t, mut nx) = (R::ZERO, R::ZERO);
        for (i, c) in coef.iter().enumerate().skip(1) {
            if let Some(pw_i) = &pows.get(i).and_then(|o| o.as_ref()) {
                t = t.wrapping_add(c.wrapping_mul(pw_i.this()[e]));
                nx = nx.wrapping_add(c.wrapping_mul(pw_i.next()[e]));
            }
        }
        if cst_this {
            t = t.wrapping_add(coef[0]);
        }
        if cst_next {
            nx = nx.wrapping_add(coef[0]);
        }
        (t, nx)
    };
    let last = &pieces[nb];
    let mut z = Vec::with_capacity(n);
    for e in 0..n {
        let (mut acc, _) = eval_rep(last, e);
        if let Some(c) = &bits {
            for (j, q) in diffs.iter().enumerate() {
                let (qt, qn) = eval_rep(q, e);
                let (ct, cn) = (c.this()[j * n + e], c.next()[j * n + e]);
                acc = acc
                    .wrapping_add(ct.wrapping_mul(qt))
                    .wrapping_add(ct.wrapping_mul(qn))
                    .wrapping_add(cn.wrapping_mul(qt));
            }
        }
        z.push(acc);
    }
    additive_trunc_async(p, z, x.shape().clone(), g).await
}

/// Whether [`piecewise`] evaluates `pw` by Paterson–Stockmeyer: one break, zero below it,
/// one polynomial of degree 5 to 7 above it (the shape of a cut-off exp). Shared with
/// the cost model.
pub fn paterson_stockmeyer_applies(pw: &Piecewise) -> bool {
    pw.breaks.len() == 1
        && pw.pieces.len() == 2
        && pw.pieces[0].iter().all(|&c| c == 0.0)
        && (6..=8).contains(&pw.pieces[1].len())
}

/// `P(v)` for `P` of degree ≤ 7 as `A(v) + v⁴·B(v)` with `A`, `B` cubics: powers
/// `v², v³, v⁴` (3 products instead of 6), `B` truncated once, `v⁴·B` formed locally
/// beside `A` and truncated with it. The caller then applies the selection bit `c` by
/// one exact ring product, `(1 - c)·P(v)`: wherever `c = 1` the result is exactly zero,
/// whatever `P(v)` (far below the break `P` may even overflow).
///
/// Cost: 3 products (2 levels), a truncation by `f`, a product truncation by the
/// coefficient bits, one ring product: 99 + 17 + 36 + 24 = 176 bytes per element after the
/// selection bits and the variable change (the generic path: 234).
async fn paterson_stockmeyer<R: Ring>(
    p: &mut Branch<'_>,
    v: &ArithShare<R>,
    poly: &[f64],
    eval_shift: u32,
) -> Result<ArithShare<R>, Error> {
    let f = p.fixed().frac_bits();
    let g = coefficient_bits::<R>(f);
    let me = p.id();
    let shape = v.shape().clone();
    let pows = powers_async(p, v, &[false, true, true, true, true]).await?;
    let coef = |i: usize| -> Result<R, Error> {
        let c = poly.get(i).copied().unwrap_or(0.0);
        encode_scaled(c * crate::fixed::pow2((eval_shift as usize * i) as i32), g)
    };
    // a_k + a_{k+1}·v + a_{k+2}·v² + a_{k+3}·v³ at scale f + g (replicated, local).
    let cubic = |k: usize| -> Result<ArithShare<R>, Error> {
        let c0 = coef(k)?.shl(f);
        let mut acc = ArithShare::from_public(me, &vec![c0; v.len()], shape.clone())?;
        for (i, pw_i) in pows.iter().enumerate().take(4).skip(1) {
            let pw_i = pw_i
                .as_ref()
                .ok_or(Error::Inconsistent("power computed out of order"))?;
            acc.add_assign(&pw_i.mul_public_scalar(coef(k + i)?))?;
        }
        Ok(acc)
    };
    let b = trunc_async(p, &cubic(4)?, f).await?; // scale g
    let a = cubic(0)?; // scale f + g
    let v4 = pows[4]
        .as_ref()
        .ok_or(Error::Inconsistent("power computed out of order"))?;
    let z: Vec<R> = super::arith::local_products(v4, &b)
        .into_iter()
        .zip(a.this())
        .map(|(x, y)| x.wrapping_add(*y))
        .collect();
    additive_trunc_async(p, z, shape, g).await
}

/// `(1 + x/2^s)^(2^s)` for `x >= cutoff`, zero below (the precise exp of "Secure Inference
/// for Diffusion Models via Unconditional Scores" (Song et al.), `s = 8`, cutoff -14). For
/// `x ≤ 0`.
///
/// Cost: one comparison (7 rounds, 39 bytes), [`b2a`](super::b2a) (2, 24), a truncation by `s` bits
/// (2, 17), the selection product (1, 24) and `s` squarings (3 rounds, 33 bytes each).
pub fn compound_exp<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    cutoff: f64,
    squarings: u32,
) -> Result<ArithShare<R>, Error> {
    p.run(async |br| compound_exp_async(br, x, cutoff, squarings).await)
}

/// [`compound_exp`] in a [`Branch`]: the comparison and the first truncation share
/// their rounds.
pub async fn compound_exp_async<R: Ring>(
    p: &mut Branch<'_>,
    x: &ArithShare<R>,
    cutoff: f64,
    squarings: u32,
) -> Result<ArithShare<R>, Error> {
    let f = p.fixed().frac_bits();
    let me = p.id();
    let enc: R = encode_scaled(cutoff, f)?;
    let (c, y) = p
        .join(
            async |br| {
                below_thresholds_async(br, x, &[enc], approx_compare_bits::<R>(f))
                    .await?
                    .reshape(x.shape().clone())
            },
            async |br| trunc_async(br, x, squarings).await,
        )
        .await?;
    let y = y.add_public_scalar(me, R::ONE.shl(f));
    let mut z = y.sub(&super::arith::mul_async(p, &c, &y).await?)?;
    for _ in 0..squarings {
        z = mul_fixed_async(p, &z, &z).await?;
    }
    Ok(z)
}

/// Evaluates `function` under `profile` on fixed-point shares (elementwise). The error
/// against the plaintext evaluator of the same [`entry`] is a few fixed-point LSBs plus
/// the rounding of the coefficients (tests bound it per entry); the error against the
/// exact function is the entry's `max_error` on top.
///
/// Input range: `|x| < 2^13`; exp: `-2^13 < x ≤ 0`.
pub fn approximate<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    profile: Profile,
    function: Function,
) -> Result<ArithShare<R>, Error> {
    p.run(async |br| approximate_async(br, x, profile, function).await)
}

/// [`approximate`] in a [`Branch`].
pub async fn approximate_async<R: Ring>(
    br: &mut Branch<'_>,
    x: &ArithShare<R>,
    profile: Profile,
    function: Function,
) -> Result<ArithShare<R>, Error> {
    match &entry(profile, function)?.approx {
        Approximation::Piecewise(pw) => piecewise_async(br, x, pw).await,
        Approximation::CompoundExp { cutoff, squarings } => {
            compound_exp_async(br, x, *cutoff, *squarings).await
        }
    }
}

/// SiLU `x·σ(x)` under `profile`; see [`approximate`].
pub fn silu<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    profile: Profile,
) -> Result<ArithShare<R>, Error> {
    approximate(p, x, profile, Function::Silu)
}

/// GeLU `x·Φ(x)` under `profile`; see [`approximate`].
pub fn gelu<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    profile: Profile,
) -> Result<ArithShare<R>, Error> {
    approximate(p, x, profile, Function::Gelu)
}

/// Mish `x·tanh(softplus(x))` under `profile`; see [`approximate`].
pub fn mish<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    profile: Profile,
) -> Result<ArithShare<R>, Error> {
    approximate(p, x, profile, Function::Mish)
}

/// `e^x` for `x ≤ 0` under `profile`; see [`approximate`].
pub fn exp<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    profile: Profile,
) -> Result<ArithShare<R>, Error> {
    approximate(p, x, profile, Function::Exp)
}

/// The logistic sigmoid (only [`Profile::Accurate`] defines it); see [`approximate`].
pub fn sigmoid<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    profile: Profile,
) -> Result<ArithShare<R>, Error> {
    approximate(p, x, profile, Function::Sigmoid)
}
