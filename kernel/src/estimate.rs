//! The cost model: bytes and rounds of every protocol as a function of its shape, with
//! no arithmetic and no messages. Each function mirrors one protocol's structure (the
//! same sub-protocol calls in the same order), for `Z_{2^64}` with `f` fraction bits.
//! Bytes are summed over the three parties; rounds are per party (all parties count the
//! same). Tests in `cipherdm-models` check the sums over whole U-Net forwards against the
//! measured counters, exactly.
//!
//! ```
//! use cipherdm_kernel::estimate;
//! // A fused fixed-point product: 2 rounds, 36 bytes per element in total.
//! assert_eq!(estimate::mul_fixed(1000, 18), estimate::Estimate { bytes: 36_000, rounds: 2 });
//! ```

use crate::approx::{Approximation, Function, Piecewise, Profile, entry};
use crate::error::Error;

/// Ring element bytes.
const B: u64 = 8;
/// Ring bits.
const K: u32 = 64;

/// Bytes (over the three parties) and rounds of a protocol call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Estimate {
    /// Payload bytes sent, summed over the parties.
    pub bytes: u64,
    /// Communication rounds.
    pub rounds: u64,
}

impl Estimate {
    /// Parallel composition: two pieces of work that run in the same rounds
    /// ([`Branch::join`](crate::rounds::Branch::join)): bytes add, rounds are the larger.
    ///
    /// ```
    /// use cipherdm_kernel::estimate::{self, Estimate};
    /// let both = estimate::mul_fixed(10, 18).beside(estimate::mul(10));
    /// assert_eq!(both, Estimate { bytes: 360 + 240, rounds: 2 });
    /// ```
    pub fn beside(self, o: Estimate) -> Estimate {
        Estimate {
            bytes: self.bytes + o.bytes,
            rounds: self.rounds.max(o.rounds),
        }
    }

    /// The same work done `k` times one after another.
    ///
    /// ```
    /// use cipherdm_kernel::estimate::Estimate;
    /// let e = Estimate { bytes: 10, rounds: 2 };
    /// assert_eq!(e.times(3), Estimate { bytes: 30, rounds: 6 });
    /// ```
    pub fn times(self, k: u64) -> Estimate {
        Estimate {
            bytes: self.bytes * k,
            rounds: self.rounds * k,
        }
    }
}

impl core::ops::Add for Estimate {
    type Output = Estimate;
    /// Sequential composition.
    fn add(self, o: Estimate) -> Estimate {
        Estimate {
            bytes: self.bytes + o.bytes,
            rounds: self.rounds + o.rounds,
        }
    }
}

impl core::ops::AddAssign for Estimate {
    fn add_assign(&mut self, o: Estimate) {
        *self = *self + o;
    }
}

impl core::iter::Sum for Estimate {
    fn sum<I: Iterator<Item = Estimate>>(it: I) -> Estimate {
        it.fold(Estimate::default(), |a, b| a + b)
    }
}

const fn est(bytes: u64, rounds: u64) -> Estimate {
    Estimate { bytes, rounds }
}

const FREE: Estimate = est(0, 0);

fn packed(bits: u32) -> u64 {
    bits.div_ceil(8) as u64
}

/// [`mul`](crate::protocols::mul) (and `matmul`/`dot` per output, `reshare`).
pub fn mul(n: usize) -> Estimate {
    est(3 * B * n as u64, 1)
}

/// [`open`](crate::protocols::open).
pub fn open(n: usize) -> Estimate {
    est(3 * B * n as u64, 1)
}

/// [`share_input`](crate::protocols::share_input).
pub fn share_input(n: usize) -> Estimate {
    est(B * n as u64, 1)
}

/// [`trunc`](crate::protocols::trunc()) by `bits` of a replicated input.
pub fn trunc(n: usize, bits: u32) -> Estimate {
    if bits == 0 {
        return FREE;
    }
    est((B + 3 * packed(bits)) * n as u64, 2)
}

/// [`additive_trunc`](crate::protocols::trunc::additive_trunc) by `bits` (a product's
/// truncation; `bits = 0` is a plain resharing).
pub fn additive_trunc(n: usize, bits: u32) -> Estimate {
    if bits == 0 {
        return mul(n);
    }
    est((3 * B + 4 * packed(bits)) * n as u64, 2)
}

/// [`mul_fixed`](crate::protocols::mul_fixed), `matmul_fixed` per output element.
pub fn mul_fixed(n: usize, f: u32) -> Estimate {
    additive_trunc(n, f)
}

/// Fraction bits of public coefficients (as the polynomial engine).
pub fn coefficient_bits(f: u32) -> u32 {
    (K - f - 16).min(48)
}

/// `mul_public_scalar_precise` (a truncation by the coefficient bits).
pub fn mul_public_scalar_precise(n: usize, f: u32) -> Estimate {
    trunc(n, coefficient_bits(f))
}

/// [`msb_bits`](crate::protocols::msb_bits) of width `bits` (and `msb` with 64).
pub fn msb_bits(n: usize, bits: u32) -> Estimate {
    let w = n.div_ceil(64) as u64;
    let k = bits as u64;
    let c = k - 1;
    let mut levels = 0;
    let mut count = c;
    while count > 1 {
        count = count.div_ceil(2);
        levels += 1;
    }
    // Lead input (k planes), generate level (k - 1 ANDs at each party), c - 1 tree
    // combinations of 2 ANDs each.
    est(B * w * (k + 3 * c + 6 * (c - 1)), 2 + levels)
}

/// [`b2a`](crate::protocols::b2a).
pub fn b2a(n: usize) -> Estimate {
    est(3 * B * n as u64, 2)
}

/// [`relu`](crate::protocols::relu).
pub fn relu(n: usize) -> Estimate {
    msb_bits(n, K) + b2a(n) + mul(n)
}

/// [`clamp`](crate::protocols::clamp).
pub fn clamp(n: usize) -> Estimate {
    msb_bits(2 * n, K) + b2a(2 * n) + mul(2 * n)
}

/// `below_thresholds`: `j` thresholds, comparison width `width`.
pub fn below_thresholds(n: usize, j: usize, width: u32) -> Estimate {
    negative(j * n, width)
}

/// [`negative`](crate::protocols::sign::negative): `[x < 0]` of `bits`-bit values as
/// arithmetic bits.
pub fn negative(n: usize, bits: u32) -> Estimate {
    use crate::protocols::sign::{blocks, tree_gates, tree_levels};
    let nb = blocks(bits) as u64;
    let gates = tree_gates(blocks(bits)) as u64;
    let (n64, w) = (n as u64, n.div_ceil(64) as u64);
    let tables = 4 * nb * n64 + 8 * w;
    let dealt = 8 * gates * w;
    let beaver = 2 * 2 * 8 * gates * w;
    let opening = 4 * 8 * w;
    let core = est(tables + dealt + beaver, 1 + tree_levels(blocks(bits)));
    core.beside(b2a(n)) + est(opening, 1)
}

/// Comparison width of the approximations.
pub fn approx_compare_bits(f: u32) -> u32 {
    (f + 15).min(K)
}

/// `powers`: the levels of products that compute `v^i` for every needed `i`.
pub fn powers(n: usize, needed: &[bool], f: u32) -> Estimate {
    crate::protocols::poly::power_levels(needed)
        .iter()
        .filter(|level| !level.is_empty())
        .map(|level| mul_fixed(level.len() * n, f))
        .sum()
}

/// `piecewise` on `n` elements.
pub fn piecewise(n: usize, pw: &Piecewise, f: u32) -> Estimate {
    let nb = pw.breaks.len();
    // The selection bits run beside the variable change and the powers.
    let selection = if nb > 0 {
        below_thresholds(n, nb, approx_compare_bits(f))
    } else {
        FREE
    };
    let m = pw.scale / crate::fixed::pow2(pw.eval_shift as i32);
    let variable = if m != 1.0 {
        match (1..=30).find(|&j| m == 1.0 / crate::fixed::pow2(j)) {
            Some(j) => trunc(n, j as u32),
            None => mul_public_scalar_precise(n, f),
        }
    } else {
        FREE
    };
    if crate::protocols::poly::paterson_stockmeyer_applies(pw) {
        let polynomial = variable
            + powers(n, &[false, true, true, true, true], f)
            + trunc(n, f)
            + additive_trunc(n, coefficient_bits(f));
        return selection.beside(polynomial) + mul(n);
    }
    let deg = pw.degree();
    let mut needed = alloc::vec![false; deg + 1];
    for piece in pw.pieces {
        for (i, &c) in piece.iter().enumerate() {
            needed[i] |= c != 0.0;
        }
    }
    let div = crate::fixed::pow2(pw.eval_shift as i32);
    let pure_shift = (pw.shift == 0.0 && deg >= 2 && needed[2])
        .then(|| (1..=30).find(|&j| pw.scale / div == 1.0 / crate::fixed::pow2(j)))
        .flatten();
    let polynomial = match pure_shift {
        // v beside v² (from x), then the powers' levels after the first.
        Some(j) => {
            let later: Estimate = crate::protocols::poly::power_levels(&needed)
                .iter()
                .skip(1)
                .filter(|level| !level.is_empty())
                .map(|level| mul_fixed(level.len() * n, f))
                .sum();
            trunc(n, j as u32).beside(additive_trunc(n, f + 2 * j as u32)) + later
        }
        None => variable + powers(n, &needed, f),
    };
    selection.beside(polynomial) + additive_trunc(n, coefficient_bits(f))
}

/// `compound_exp` on `n` elements.
pub fn compound_exp(n: usize, squarings: u32, f: u32) -> Estimate {
    let mut total =
        below_thresholds(n, 1, approx_compare_bits(f)).beside(trunc(n, squarings)) + mul(n);
    for _ in 0..squarings {
        total += mul_fixed(n, f);
    }
    total
}

/// [`approximate`](crate::protocols::approximate): `function` under `profile`.
pub fn approximate(
    n: usize,
    profile: Profile,
    function: Function,
    f: u32,
) -> Result<Estimate, Error> {
    Ok(match &entry(profile, function)?.approx {
        Approximation::Piecewise(pw) => piecewise(n, pw, f),
        Approximation::CompoundExp { squarings, .. } => compound_exp(n, *squarings, f),
    })
}

/// [`max`](crate::protocols::max) along rows of length `len` (comparison width `bits`).
pub fn max(rows: usize, len: usize, bits: u32) -> Estimate {
    let mut total = FREE;
    let mut m = len;
    while m > 1 {
        let pairs = rows * (m / 2);
        total += negative(pairs, bits) + mul(pairs);
        m = m.div_ceil(2);
    }
    total
}

/// Number of powers of four strictly inside `(2^lo, 2^hi)` used by the normalisation.
fn normalise_thresholds(lo: i32, hi: i32) -> usize {
    let e0 = lo.div_euclid(2) * 2;
    (e0 / 2 + 1..)
        .map(|j| 2 * j)
        .take_while(|&e| e < hi)
        .count()
}

fn normalise(n: usize, lo: i32, hi: i32, f: u32) -> Estimate {
    let k = normalise_thresholds(lo, hi);
    if k == 0 {
        return mul_public_scalar_precise(n, f);
    }
    let width = ((f as i32 + hi + 1) as u32).min(K);
    if n > crate::protocols::inverse::SCALED_COPIES_MAX_ELEMENTS {
        return below_thresholds(n, k, width) + mul_fixed(n, f);
    }
    below_thresholds(n, k, width).beside(trunc((k + 1) * n, coefficient_bits(f))) + mul(k * n)
}

/// The quintic first guess of `reciprocal` / `rsqrt` on `[1, 4)`: `x²`, then `x³` beside
/// the truncation of `B`, then one truncation of `A + x³·B`.
fn first_guess(n: usize, f: u32) -> Estimate {
    mul_fixed(n, f) + mul_fixed(n, f).beside(trunc(n, f)) + additive_trunc(n, coefficient_bits(f))
}

/// [`reciprocal`](crate::protocols::reciprocal) on `[2^lo, 2^hi)`.
pub fn reciprocal(n: usize, lo: i32, hi: i32, f: u32) -> Estimate {
    normalise(n, lo, hi, f) + first_guess(n, f) + mul_fixed(2 * n, f) + mul_fixed(n, f)
}

/// The parts of `rsqrt` before its Newton factor: normalisation, quintic, `y²` beside
/// `s·y`.
fn rsqrt_parts(n: usize, lo: i32, hi: i32, f: u32) -> Estimate {
    normalise(n, lo, hi, f) + first_guess(n, f) + mul_fixed(2 * n, f)
}

/// The scaled Newton factor of `rsqrt` (a product truncated by `f + 20` bits).
fn newton_factor(n: usize, f: u32) -> Estimate {
    additive_trunc(n, f + 20)
}

/// [`rsqrt`](crate::protocols::rsqrt) on `[2^lo, 2^hi)`.
pub fn rsqrt(n: usize, lo: i32, hi: i32, f: u32) -> Estimate {
    rsqrt_parts(n, lo, hi, f) + newton_factor(n, f) + additive_trunc(n, f + 1)
}

/// [`softmax`](crate::protocols::softmax) over `rows` rows of length `len`.
pub fn softmax(rows: usize, len: usize, profile: Profile, f: u32) -> Result<Estimate, Error> {
    let hi = (usize::BITS - (len - 1).leading_zeros()) as i32 + 1;
    Ok(max(rows, len, approx_compare_bits(f))
        + approximate(rows * len, profile, Function::Exp, f)?
        + reciprocal(rows, -1, hi.min(13), f)
        + mul_fixed(rows * len, f))
}

/// Centring (and down-scaling) of GroupNorm / LayerNorm over `rows` rows of `len`.
fn centre(rows: usize, len: usize, d: f64, f: u32) -> Estimate {
    let scale = if d == 1.0 {
        FREE
    } else {
        mul_public_scalar_precise(rows * len, f)
    };
    mul_public_scalar_precise(rows, f) + scale
}

/// The variance (divided by `2^q ≥ len` in its truncation) and its rsqrt parts.
fn variance_parts(rows: usize, len: usize, f: u32) -> Estimate {
    let q = usize::BITS - (len - 1).leading_zeros();
    additive_trunc(rows, f + q) + rsqrt_parts(rows, -(f as i32), 13, f)
}

/// [`group_norm`](crate::protocols::group_norm) of `(nb, c, hw)` with `groups` groups.
pub fn group_norm(nb: usize, c: usize, hw: usize, groups: usize, d: f64, f: u32) -> Estimate {
    let (rows, len) = (nb * groups, c / groups * hw);
    centre(rows, len, d, f)
        + variance_parts(rows, len, f)
        + mul_fixed(nb * c, f).beside(newton_factor(rows, f))
        + additive_trunc(nb * c, f + 1)
        + mul_fixed(nb * c * hw, f)
}

/// [`layer_norm`](crate::protocols::layer_norm) over `rows` rows of `len`.
pub fn layer_norm(rows: usize, len: usize, affine: bool, d: f64, f: u32) -> Estimate {
    let affine = if affine {
        mul_fixed(rows * len, f)
    } else {
        FREE
    };
    centre(rows, len, d, f)
        + variance_parts(rows, len, f).beside(affine)
        + newton_factor(rows, f)
        + additive_trunc(rows, f + 1)
        + mul_fixed(rows * len, f)
}

/// [`nn::conv2d`](crate::nn::conv2d) and [`nn::dense`](crate::nn::dense): one
/// truncation per output element.
pub fn linear_layer(outputs: usize, f: u32) -> Estimate {
    mul_fixed(outputs, f)
}

/// [`nn::attention`](crate::nn::attention): `nq` query positions over `nk` key
/// positions, `nb` items of `c` channels, `heads` heads; with
/// [`nn::attention_chunked`](crate::nn::attention_chunked)'s `max_scores` (`usize::MAX`:
/// one chunk).
#[allow(clippy::too_many_arguments)]
pub fn attention(
    nb: usize,
    c: usize,
    nq: usize,
    nk: usize,
    heads: usize,
    profile: Profile,
    f: u32,
    max_scores: usize,
) -> Result<Estimate, Error> {
    let d = c.checked_div(heads).unwrap_or(0);
    let scale = match crate::nn::score_shift(d) {
        Some(_) => FREE,
        None => trunc(nb * c * nq, f),
    };
    let shift = crate::nn::score_shift(d).unwrap_or(0);
    let mut total = scale;
    let chunks = crate::nn::attention_chunks(nb * heads * nq, nk, max_scores);
    // Equal chunks cost the same: estimate each distinct row count once.
    let mut at = 0;
    while at < chunks.len() {
        let rows = chunks[at];
        let same = chunks[at..].iter().take_while(|&&r| r == rows).count();
        let one = additive_trunc(rows * nk, f + shift) + softmax(rows, nk, profile, f)?;
        total += one.times(same as u64);
        at += same;
    }
    Ok(total + mul_fixed(nb * c * nq, f))
}

/// [`nn::global_mean_pool`](crate::nn::global_mean_pool) and [`nn::scale`](crate::nn::scale)
/// (a public scaling of `n` elements).
pub fn public_scale(n: usize, f: u32) -> Estimate {
    trunc(n, f)
}

/// `linear_combination_fixed` of `n`-element tensors.
pub fn linear_combination(n: usize, f: u32) -> Estimate {
    trunc(n, f)
}
