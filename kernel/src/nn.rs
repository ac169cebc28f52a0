//! Secure neural-network layers on fixed-point shares of NCHW tensors.
//!
//! Convolution is im2col + ring GEMM on both share components, so the whole batch of a
//! layer becomes one 3-out-of-3 product and *one* fused truncation ([`additive_trunc`]):
//! 3 rounds and 33 bytes per output element in total, independent of the kernel size.
//! Dense layers and the two products of attention work the same way. Layout operations
//! (concatenation, channel split, nearest upsampling, broadcast adds) are local: they
//! apply the same index map to both components and cost nothing.
//!
//! | layer | rounds | bytes per output element, total |
//! |---|---|---|
//! | [`conv2d`], [`dense`] | 3 | 33 |
//! | [`attention`] | scale (2) + scores (3) + softmax + output (3) | see the parts |
//! | [`global_mean_pool`], [`scale`] | 2 | 17 |
//! | [`concat_channels`], [`split_channels`], [`upsample2`], [`add_broadcast`] | 0 | 0 |
//!
//! ```
//! use cipherdm_kernel::{nn, ArithShare, Shape, PartyId};
//! // Nearest upsampling of a public 1×1×1×2 tensor is local.
//! let x = ArithShare::<u64>::from_public(PartyId::P0, &[1, 2], Shape::new(&[1, 1, 1, 2]).unwrap()).unwrap();
//! let y = nn::upsample2(&x).unwrap();
//! assert_eq!(y.shape().dims(), &[1, 1, 2, 4]);
//! assert_eq!(y.this(), &[1, 1, 2, 2, 1, 1, 2, 2]);
//! ```

use alloc::vec::Vec;

use crate::approx::Profile;
use crate::error::Error;
use crate::party::Party;
use crate::protocols::gemm::gemm_acc;
use crate::protocols::trunc::additive_trunc;
use crate::protocols::{mul_public_scalar_fixed, softmax};
use crate::ring::Ring;
use crate::shape::Shape;
use crate::share::ArithShare;
use crate::transport::Transport;

/// Stride, padding and input dilation of a 2-D convolution (square kernel).
///
/// Input dilation `d` inserts `d - 1` zeros between input pixels, which turns a
/// transposed convolution into a plain one (flax's `ConvTranspose`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Output stride.
    pub stride: usize,
    /// `(low, high)` zero padding of the (dilated) input, for H then W.
    pub padding: [(usize, usize); 2],
    /// Input (lhs) dilation; 1 for an ordinary convolution.
    pub lhs_dilation: usize,
}

impl ConvGeometry {
    /// Output `(H, W)` of a `k × k` kernel on an `h × w` input, or `None` if the kernel
    /// does not fit or the geometry is degenerate.
    pub fn output_size(&self, h: usize, w: usize, k: usize) -> Option<(usize, usize)> {
        if self.stride == 0 || self.lhs_dilation == 0 || k == 0 || h == 0 || w == 0 {
            return None;
        }
        let side = |n: usize, (lo, hi): (usize, usize)| {
            let span = (n - 1) * self.lhs_dilation + 1 + lo + hi;
            span.checked_sub(k).map(|r| r / self.stride + 1)
        };
        Some((side(h, self.padding[0])?, side(w, self.padding[1])?))
    }
}

/// `√x` of a public `x ≥ 1` without `std` (Newton from above; exact to the last bit
/// or so for the head widths attention uses).
/// `log2 √d` when `√d` is a power of two (the attention scale then folds into the scores'
/// truncation), else `None`. Shared with the cost model.
pub fn score_shift(d: usize) -> Option<u32> {
    (d.is_power_of_two() && d.trailing_zeros().is_multiple_of(2)).then_some(d.trailing_zeros() / 2)
}

/// `(B, C, H, W)` of a 4-D share.
pub fn nchw<R: Ring>(x: &ArithShare<R>) -> Result<(usize, usize, usize, usize), Error> {
    match *x.shape().dims() {
        [b, c, h, w] => Ok((b, c, h, w)),
        _ => Err(Error::InvalidShape("expected an NCHW tensor")),
    }
}

/// `out += a · b` as a 3-out-of-3 additive share: `a_i (b_i + b_{i+1}) + a_{i+1} b_i`.
fn local_gemm<R: Ring>(
    a: (&[R], &[R]),
    b: (&[R], &[R]),
    m: usize,
    k: usize,
    n: usize,
    out: &mut [R],
) {
    let bsum: Vec<R> =
        b.0.iter()
            .zip(b.1)
            .map(|(x, y)| x.wrapping_add(*y))
            .collect();
    gemm_acc(m, k, n, a.0, &bsum, out);
    gemm_acc(m, k, n, a.1, b.0, out);
}

/// `rows × cols` to `cols × rows`.
fn transpose<R: Ring>(a: &[R], rows: usize, cols: usize) -> Vec<R> {
    let mut t = alloc::vec![R::ZERO; a.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = a[r * cols + c];
        }
    }
    t
}

/// Applies the same local index map to both components.
fn map_components<R: Ring>(
    x: &ArithShare<R>,
    shape: Shape,
    f: impl Fn(&[R]) -> Vec<R>,
) -> Result<ArithShare<R>, Error> {
    ArithShare::from_components(f(x.this()), f(x.next()), shape)
}

/// Source index (into one `(Cin, H, W)` item) of every `(row = (ci, ky, kx),
/// col = (oy, ox))` entry of the im2col matrix, `u32::MAX` where the (dilated, padded)
/// input is zero. Shared with the training backend, which convolves the same way.
pub fn im2col_index(
    [cin, h, w]: [usize; 3],
    k: usize,
    g: &ConvGeometry,
    [ho, wo]: [usize; 2],
) -> Vec<u32> {
    let mut idx = alloc::vec![u32::MAX; cin * k * k * ho * wo];
    let d = g.lhs_dilation;
    let (ph, pw) = (g.padding[0].0, g.padding[1].0);
    for ci in 0..cin {
        for ky in 0..k {
            for kx in 0..k {
                let row = (ci * k + ky) * k + kx;
                for oy in 0..ho {
                    let Some(yd) = (oy * g.stride + ky).checked_sub(ph) else {
                        continue;
                    };
                    if yd % d != 0 || yd / d >= h {
                        continue;
                    }
                    for ox in 0..wo {
                        let Some(xd) = (ox * g.stride + kx).checked_sub(pw) else {
                            continue;
                        };
                        if xd % d != 0 || xd / d >= w {
                            continue;
                        }
                        idx[(row * ho + oy) * wo + ox] = ((ci * h + yd / d) * w + xd / d) as u32;
                    }
                }
            }
        }
    }
    idx
}

/// Fills `out` (one im2col matrix) from `src` (one `(Cin, H, W)` item) through the index
/// map of [`im2col_index`], writing `zero` where the map says the input is padding. Used
/// by the secure convolution on each share component and by the plaintext backends on
/// floats, so every backend convolves with the same geometry.
///
/// ```
/// use cipherdm_kernel::nn::{ConvGeometry, im2col_gather, im2col_index};
/// // A 3×3 kernel over a 1×2×2 input with "same" padding.
/// let g = ConvGeometry { stride: 1, padding: [(1, 1), (1, 1)], lhs_dilation: 1 };
/// let idx = im2col_index([1, 2, 2], 3, &g, [2, 2]);
/// let mut col = vec![0.0; 9 * 4];
/// im2col_gather(&[1.0, 2.0, 3.0, 4.0], &idx, 0.0, &mut col);
/// // The kernel centre (row 4) sees each pixel at its own position.
/// assert_eq!(&col[16..20], &[1.0, 2.0, 3.0, 4.0]);
/// ```
pub fn im2col_gather<T: Copy>(src: &[T], idx: &[u32], zero: T, out: &mut [T]) {
    for (o, &i) in out.iter_mut().zip(idx) {
        *o = if i == u32::MAX { zero } else { src[i as usize] };
    }
}

fn gather<R: Ring>(src: &[R], idx: &[u32], out: &mut [R]) {
    im2col_gather(src, idx, R::ZERO, out);
}

/// 2-D convolution of a secret NCHW input with a secret `(Cout, Cin, k, k)` kernel and an
/// optional secret bias `(Cout)`: im2col per batch item, one ring GEMM per component,
/// one fused truncation for the whole layer.
///
/// Cost: 3 rounds, 33 bytes per output element in total (`Z_{2^64}`).
pub fn conv2d<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    weight: &ArithShare<R>,
    bias: Option<&ArithShare<R>>,
    geometry: &ConvGeometry,
) -> Result<ArithShare<R>, Error> {
    let (nb, cin, h, w) = nchw(x)?;
    let &[cout, wcin, k, k2] = weight.shape().dims() else {
        return Err(Error::InvalidShape(
            "conv2d: kernel must be (Cout, Cin, k, k)",
        ));
    };
    if wcin != cin || k != k2 {
        return Err(Error::InvalidShape(
            "conv2d: kernel does not match the input channels",
        ));
    }
    if (cin * h * w) as u64 >= u32::MAX as u64 {
        return Err(Error::InvalidShape("conv2d: input item too large"));
    }
    let (ho, wo) = geometry.output_size(h, w, k).ok_or(Error::InvalidShape(
        "conv2d: kernel larger than the padded input",
    ))?;
    let (kk, hw) = (cin * k * k, ho * wo);
    let idx = im2col_index([cin, h, w], k, geometry, [ho, wo]);
    let mut z = alloc::vec![R::ZERO; nb * cout * hw];
    let (mut c0, mut c1) = (alloc::vec![R::ZERO; kk * hw], alloc::vec![R::ZERO; kk * hw]);
    let item = cin * h * w;
    for b in 0..nb {
        gather(&x.this()[b * item..(b + 1) * item], &idx, &mut c0);
        gather(&x.next()[b * item..(b + 1) * item], &idx, &mut c1);
        local_gemm(
            (weight.this(), weight.next()),
            (&c0, &c1),
            cout,
            kk,
            hw,
            &mut z[b * cout * hw..(b + 1) * cout * hw],
        );
    }
    let f = p.fixed().frac_bits();
    let y = additive_trunc(p, z, Shape::new(&[nb, cout, ho, wo])?, f)?;
    match bias {
        Some(b) => add_broadcast(&y, b),
        None => Ok(y),
    }
}

/// `x · Wᵀ + b` for a secret `(B, in)` input, a secret `(out, in)` weight and an optional
/// secret bias `(out)`.
///
/// Cost: 3 rounds, 33 bytes per output element in total.
pub fn dense<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    weight: &ArithShare<R>,
    bias: Option<&ArithShare<R>>,
) -> Result<ArithShare<R>, Error> {
    let (&[nb, n], &[out, wn]) = (x.shape().dims(), weight.shape().dims()) else {
        return Err(Error::InvalidShape("dense: need (B, in) and (out, in)"));
    };
    if wn != n {
        return Err(Error::InvalidShape(
            "dense: weight does not match the input width",
        ));
    }
    let wt0 = transpose(weight.this(), out, n);
    let wt1 = transpose(weight.next(), out, n);
    let mut z = alloc::vec![R::ZERO; nb * out];
    local_gemm((x.this(), x.next()), (&wt0, &wt1), nb, n, out, &mut z);
    let f = p.fixed().frac_bits();
    let y = additive_trunc(p, z, Shape::new(&[nb, out])?, f)?;
    match bias {
        None => Ok(y),
        Some(b) => {
            if b.len() != out {
                return Err(Error::LengthMismatch {
                    what: "dense bias",
                    expected: out,
                    got: b.len(),
                });
            }
            let tile = |s: &[R]| (0..nb).flat_map(|_| s.iter().copied()).collect();
            y.add(&map_components(b, y.shape().clone(), tile)?)
        }
    }
}

/// `x + y` where `x` is NCHW (or `(B, C)`) and `y` holds one value per channel, `(C)`, or
/// per batch item and channel, `(B, C)`, broadcast over the spatial positions. Local.
pub fn add_broadcast<R: Ring>(
    x: &ArithShare<R>,
    y: &ArithShare<R>,
) -> Result<ArithShare<R>, Error> {
    let dims = x.shape().dims();
    if dims.len() < 2 {
        return Err(Error::InvalidShape("add_broadcast: need (B, C, ...)"));
    }
    let (nb, c) = (dims[0], dims[1]);
    let spatial = x.len() / (nb * c).max(1);
    let per_item = if y.len() == c {
        false
    } else if y.len() == nb * c {
        true
    } else {
        return Err(Error::LengthMismatch {
            what: "add_broadcast",
            expected: nb * c,
            got: y.len(),
        });
    };
    let expand = |s: &[R]| {
        (0..x.len())
            .map(|i| {
                let (b, ch) = (i / (c * spatial), (i / spatial) % c);
                s[if per_item { b * c + ch } else { ch }]
            })
            .collect()
    };
    x.add(&map_components(y, x.shape().clone(), expand)?)
}

/// Concatenates NCHW tensors along the channel axis, in order. Local.
pub fn concat_channels<R: Ring>(parts: &[&ArithShare<R>]) -> Result<ArithShare<R>, Error> {
    let first = parts
        .first()
        .ok_or(Error::InvalidShape("concat of nothing"))?;
    let (nb, _, h, w) = nchw(first)?;
    let mut channels = 0;
    for part in parts {
        let (b2, c, h2, w2) = nchw(part)?;
        if (b2, h2, w2) != (nb, h, w) {
            return Err(Error::InvalidShape("concat: parts differ in batch or size"));
        }
        channels += c;
    }
    let hw = h * w;
    let join = |pick: fn(&ArithShare<R>) -> &[R]| {
        let mut out = Vec::with_capacity(nb * channels * hw);
        for b in 0..nb {
            for part in parts {
                let per = part.len() / nb.max(1);
                out.extend_from_slice(&pick(part)[b * per..(b + 1) * per]);
            }
        }
        out
    };
    ArithShare::from_components(
        join(ArithShare::this),
        join(ArithShare::next),
        Shape::new(&[nb, channels, h, w])?,
    )
}

/// Channels `start..start + len` of an NCHW tensor. Local.
pub fn split_channels<R: Ring>(
    x: &ArithShare<R>,
    start: usize,
    len: usize,
) -> Result<ArithShare<R>, Error> {
    let (nb, c, h, w) = nchw(x)?;
    if start.checked_add(len).is_none_or(|end| end > c) || len == 0 {
        return Err(Error::InvalidShape("split: channel range out of bounds"));
    }
    let hw = h * w;
    let cut = |s: &[R]| {
        (0..nb)
            .flat_map(|b| {
                s[(b * c + start) * hw..(b * c + start + len) * hw]
                    .iter()
                    .copied()
            })
            .collect()
    };
    map_components(x, Shape::new(&[nb, len, h, w])?, cut)
}

/// Nearest-neighbour upsampling by 2 of an NCHW tensor. Local.
pub fn upsample2<R: Ring>(x: &ArithShare<R>) -> Result<ArithShare<R>, Error> {
    let (nb, c, h, w) = nchw(x)?;
    let (h2, w2) = (2 * h, 2 * w);
    let up = |s: &[R]| {
        (0..nb * c * h2 * w2)
            .map(|i| {
                let (plane, y, xx) = (i / (h2 * w2), (i / w2) % h2, i % w2);
                s[(plane * h + y / 2) * w + xx / 2]
            })
            .collect()
    };
    map_components(x, Shape::new(&[nb, c, h2, w2])?, up)
}

/// Mean over H and W: `(B, C, H, W)` to `(B, C)`. Local sums, one public scaling.
///
/// Cost: as [`mul_public_scalar_fixed`] on `B·C` elements.
pub fn global_mean_pool<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
) -> Result<ArithShare<R>, Error> {
    let (nb, c, h, w) = nchw(x)?;
    let hw = h * w;
    let sums = |s: &[R]| {
        s.chunks(hw)
            .map(|ch| ch.iter().fold(R::ZERO, |a, b| a.wrapping_add(*b)))
            .collect()
    };
    let s = map_components(x, Shape::new(&[nb, c])?, sums)?;
    mul_public_scalar_fixed(p, &s, 1.0 / hw as f64)
}

/// Multiplication by a public real. Cost: as [`mul_public_scalar_fixed`].
pub fn scale<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    c: f64,
) -> Result<ArithShare<R>, Error> {
    mul_public_scalar_fixed(p, x, c)
}

/// Dot-product attention of the `H·W` positions of a secret `q` `(B, C, H, W)` over the
/// `H'·W'` positions of secret `k` and `v` (both `(B, C, H', W')`: `q`'s own map for
/// self-attention, text tokens for cross-attention), with `heads` heads of `d = C/heads`
/// channels: `softmax(qᵀk/√d)` per head (with `profile`'s exp), applied to `v`. Output
/// `(B, C, H, W)`. All score rows in one chunk: [`attention_chunked`] with no limit.
///
/// Cost: the scores (2 rounds, 36 B per score; when `√d` is a power of two the `1/√d`
/// rides in their truncation, otherwise `q` is scaled first: 2 rounds, 17 B per element
/// of `q`), [`softmax`] on `B·heads·n` rows of `n' = H'·W'`, the output product
/// (2 rounds, 36 B per output element).
pub fn attention<R: Ring, T: Transport>(
    p: &mut Party<T>,
    q: &ArithShare<R>,
    k: &ArithShare<R>,
    v: &ArithShare<R>,
    heads: usize,
    profile: Profile,
) -> Result<ArithShare<R>, Error> {
    attention_chunked(p, q, k, v, heads, profile, usize::MAX)
}

/// The row counts of the chunks [`attention_chunked`] evaluates one after another:
/// `rows` score rows of `keys` scores each, at most `max_scores` scores per chunk (at
/// least one row), all chunks full but the last.
///
/// ```
/// use cipherdm_kernel::nn::attention_chunks;
/// assert_eq!(attention_chunks(10, 4, 12), vec![3, 3, 3, 1]);
/// assert_eq!(attention_chunks(10, 4, usize::MAX), vec![10]);
/// assert_eq!(attention_chunks(10, 4, 1), vec![1; 10]);
/// ```
pub fn attention_chunks(rows: usize, keys: usize, max_scores: usize) -> Vec<usize> {
    let per = (max_scores / keys.max(1)).clamp(1, rows.max(1));
    let mut out = alloc::vec![per; rows / per];
    if !rows.is_multiple_of(per) {
        out.push(rows % per);
    }
    out
}

/// [`attention`] with the score matrix evaluated in chunks of at most `max_scores`
/// scores (whole rows; rows of every item and head are cut in order, see
/// [`attention_chunks`]), so that a party's working memory follows `max_scores`, not
/// `B·heads·n·n'`.
///
/// Cost: bytes as [`attention`]; each chunk's score truncation and softmax run after the
/// previous chunk's, so rounds grow with the number of chunks.
pub fn attention_chunked<R: Ring, T: Transport>(
    p: &mut Party<T>,
    q: &ArithShare<R>,
    k: &ArithShare<R>,
    v: &ArithShare<R>,
    heads: usize,
    profile: Profile,
    max_scores: usize,
) -> Result<ArithShare<R>, Error> {
    let (nb, c, h, w) = nchw(q)?;
    let (kb, kc, kh, kw) = nchw(k)?;
    if (kb, kc) != (nb, c) || v.shape() != k.shape() {
        return Err(Error::InvalidShape(
            "attention: k and v must share a shape with q's batch and channels",
        ));
    }
    if heads == 0 || c % heads != 0 {
        return Err(Error::InvalidShape(
            "attention: heads must divide the channels",
        ));
    }
    let (d, n, nk) = (c / heads, h * w, kh * kw);
    let f = p.fixed().frac_bits();
    // 1/√d: a power of two rides in the scores' truncation; otherwise q is scaled first.
    let shift = score_shift(d);
    let q = match shift {
        Some(_) => q.clone(),
        None => mul_public_scalar_fixed(p, q, 1.0 / crate::fixed::sqrt(d as f64))?,
    };
    // Per item and head (`bh`): qᵀ (n × d) and vᵀ (n' × d), row-major, so that a chunk's
    // rows are contiguous; k stays d × n'.
    let per_head = |s: &[R], len: usize| -> Vec<R> {
        let mut t = alloc::vec![R::ZERO; s.len()];
        for bh in 0..nb * heads {
            let at = bh * d * len;
            t[at..at + d * len].copy_from_slice(&transpose(&s[at..at + d * len], d, len));
        }
        t
    };
    let qt = (per_head(q.this(), n), per_head(q.next(), n));
    let vt = (per_head(v.this(), nk), per_head(v.next(), nk));
    drop(q);
    let khead = |bh: usize| bh * d * nk..(bh + 1) * d * nk;
    let mut z = alloc::vec![R::ZERO; nb * c * n];
    let mut r0 = 0;
    for rows in attention_chunks(nb * heads * n, nk, max_scores) {
        // The chunk's rows r0..r0+rows, cut at item-and-head boundaries into segments.
        let segments = || {
            let mut out = Vec::new();
            let mut r = r0;
            while r < r0 + rows {
                let (bh, i) = (r / n, r % n);
                let len = (n - i).min(r0 + rows - r);
                out.push((bh, i, len, r - r0));
                r += len;
            }
            out
        };
        let mut zc = alloc::vec![R::ZERO; rows * nk];
        for (bh, i, len, at) in segments() {
            let rq = (bh * n + i) * d..(bh * n + i + len) * d;
            local_gemm(
                (&qt.0[rq.clone()], &qt.1[rq]),
                (&k.this()[khead(bh)], &k.next()[khead(bh)]),
                len,
                d,
                nk,
                &mut zc[at * nk..(at + len) * nk],
            );
        }
        let scores = additive_trunc(p, zc, Shape::new(&[rows, nk])?, f + shift.unwrap_or(0))?;
        let probs = softmax(p, &scores, profile)?;
        drop(scores);
        // Output rows: P (len × n') · v_hᵀ (n' × d), written channel-major like the input.
        for (bh, i, len, at) in segments() {
            let mut o = alloc::vec![R::ZERO; len * d];
            let rp = at * nk..(at + len) * nk;
            local_gemm(
                (&probs.this()[rp.clone()], &probs.next()[rp]),
                (&vt.0[khead(bh)], &vt.1[khead(bh)]),
                len,
                nk,
                d,
                &mut o,
            );
            let (b, hd) = (bh / heads, bh % heads);
            for j in 0..d {
                let row = (b * c + hd * d + j) * n + i;
                for (t, zv) in z[row..row + len].iter_mut().enumerate() {
                    *zv = o[t * d + j];
                }
            }
        }
        r0 += rows;
    }
    additive_trunc(p, z, Shape::new(&[nb, c, h, w])?, f)
}

/// LayerNorm over the channels of every position of an NCHW share (a transformer's
/// per-token normalisation): a local transpose to `(B·H·W, C)` rows, the row
/// [`layer_norm`](crate::protocols::layer_norm) with affine weights `gamma`, `beta` `(C)`,
/// and back. Costs what the row LayerNorm costs; the transposes are local.
pub fn layer_norm_channels<R: Ring, T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<R>,
    gamma: &ArithShare<R>,
    beta: &ArithShare<R>,
    eps: f64,
) -> Result<ArithShare<R>, Error> {
    let (b, c, h, w) = nchw(x)?;
    let hw = h * w;
    let to_rows = |s: &[R]| -> Vec<R> {
        let mut t = alloc::vec![R::ZERO; s.len()];
        for bi in 0..b {
            for ch in 0..c {
                for pos in 0..hw {
                    t[(bi * hw + pos) * c + ch] = s[(bi * c + ch) * hw + pos];
                }
            }
        }
        t
    };
    let from_rows = |t: &[R]| -> Vec<R> {
        let mut s = alloc::vec![R::ZERO; t.len()];
        for bi in 0..b {
            for ch in 0..c {
                for pos in 0..hw {
                    s[(bi * c + ch) * hw + pos] = t[(bi * hw + pos) * c + ch];
                }
            }
        }
        s
    };
    let rows = map_components(x, Shape::new(&[b * hw, c])?, to_rows)?;
    let y = crate::protocols::layer_norm(p, &rows, Some((gamma, beta)), eps, 1.0)?;
    map_components(&y, x.shape().clone(), from_rows)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sqrt_matches_std() {
        for d in [1.0f64, 2.0, 8.0, 32.0, 64.0, 160.0, 1e6] {
            let got = crate::fixed::sqrt(d);
            assert!(
                (got - d.sqrt()).abs() <= 4.0 * f64::EPSILON * d.sqrt(),
                "{d}: {got}"
            );
        }
    }
}
