//! Bit-sliced boolean shares and their gates: XOR (free) and AND (one round).
//!
//! A [`BoolShare`] of `n` elements of `bits` bits stores one *plane* per bit position:
//! `words = ceil(n / 64)` words whose bit `j % 64` of word `j / 64` is bit `p` of element
//! `j`. One AND of two words evaluates 64 gates. Shares are replicated over XOR:
//! `x = x_0 ⊕ x_1 ⊕ x_2`, party `i` holding `(x_i, x_{i+1})` for every word, exactly like
//! [`ArithShare`](crate::share::ArithShare) over `Z_2`.
//!
//! Costs: XOR 0 rounds; [`and`] 1 round and 8 bytes per 64 gates from each party.

use alloc::vec::Vec;

use crate::error::Error;
use crate::party::Party;
use crate::ring::Ring;
use crate::rounds::Branch;
use crate::transport::Transport;

/// One party's view of `n` secret-shared `bits`-bit values in bit-sliced form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoolShare {
    bits: u32,
    n: usize,
    this: Vec<u64>,
    next: Vec<u64>,
}

/// Words per plane for `n` elements.
pub const fn words_for(n: usize) -> usize {
    n.div_ceil(64)
}

impl BoolShare {
    /// A share from plane-major component words (`bits * words_for(n)` each).
    pub fn from_components(
        bits: u32,
        n: usize,
        this: Vec<u64>,
        next: Vec<u64>,
    ) -> Result<Self, Error> {
        let len = bits as usize * words_for(n);
        if this.len() != len || next.len() != len {
            return Err(Error::LengthMismatch {
                what: "boolean share components",
                expected: len,
                got: this.len(),
            });
        }
        Ok(BoolShare {
            bits,
            n,
            this,
            next,
        })
    }

    /// Bits per element.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Component `x_i` (plane-major words).
    pub fn this(&self) -> &[u64] {
        &self.this
    }

    /// Component `x_{i+1}` (plane-major words).
    pub fn next(&self) -> &[u64] {
        &self.next
    }

    /// Plane `p` as `(this, next)` word slices.
    pub fn plane(&self, p: u32) -> (&[u64], &[u64]) {
        let w = words_for(self.n);
        let r = p as usize * w..(p as usize + 1) * w;
        (&self.this[r.clone()], &self.next[r])
    }

    /// `NOT x` (every bit of every element flipped), local: party 0 flips its `this`
    /// component and party 2 its `next` component, so the public constant enters once.
    pub fn not(mut self, me: crate::transport::PartyId) -> Self {
        let w = words_for(self.n);
        let tail = if self.n.is_multiple_of(64) {
            u64::MAX
        } else {
            (1u64 << (self.n % 64)) - 1
        };
        let flip = |v: &mut Vec<u64>| {
            for (j, word) in v.iter_mut().enumerate() {
                *word ^= if j % w == w - 1 { tail } else { u64::MAX };
            }
        };
        match me.index() {
            0 => flip(&mut self.this),
            2 => flip(&mut self.next),
            _ => {}
        }
        self
    }

    /// `x ⊕ y`, local.
    pub fn xor(&self, other: &Self) -> Result<Self, Error> {
        if self.bits != other.bits || self.n != other.n {
            return Err(Error::LengthMismatch {
                what: "xor",
                expected: self.this.len(),
                got: other.this.len(),
            });
        }
        let x = |a: &[u64], b: &[u64]| a.iter().zip(b).map(|(p, q)| p ^ q).collect();
        Ok(BoolShare {
            bits: self.bits,
            n: self.n,
            this: x(&self.this, &other.this),
            next: x(&self.next, &other.next),
        })
    }
}

/// Transposes a 64×64 bit matrix in place: afterwards bit `j` of `a[p]` is what bit `p`
/// of `a[j]` was. Six rounds of masked swaps (192 word operations instead of 4096).
pub fn transpose64(a: &mut [u64; 64]) {
    let mut j = 32usize;
    let mut m: u64 = 0x0000_0000_ffff_ffff;
    while j != 0 {
        let mut k = 0;
        while k < 64 {
            let t = ((a[k] >> j) ^ a[k + j]) & m;
            a[k + j] ^= t;
            a[k] ^= t << j;
            k = (k + j + 1) & !j;
        }
        j >>= 1;
        m ^= m << j;
    }
}

/// Bit-slices `values` into `bits` planes (plane-major), keeping the low `bits` bits.
pub fn slice_bits<R: Ring>(values: &[R], bits: u32) -> Vec<u64> {
    let w = words_for(values.len());
    let mut out = alloc::vec![0u64; bits as usize * w];
    let mut block = [0u64; 64];
    for (word, chunk) in values.chunks(64).enumerate() {
        for half in 0..bits.div_ceil(64) {
            block.fill(0);
            for (b, v) in block.iter_mut().zip(chunk) {
                *b = v.shr(64 * half).to_i128() as u64;
            }
            transpose64(&mut block);
            let planes = (64 * half)..bits.min(64 * (half + 1));
            for p in planes {
                out[p as usize * w + word] = block[(p - 64 * half) as usize];
            }
        }
    }
    out
}

/// The inverse of [`slice_bits`]: `n` values from `bits` planes.
pub fn unslice_bits<R: Ring>(planes: &[u64], bits: u32, n: usize) -> Vec<R> {
    let w = words_for(n);
    (0..n)
        .map(|j| {
            let (word, bit) = (j / 64, j % 64);
            (0..bits).fold(R::ZERO, |acc, p| {
                let b = (planes[p as usize * w + word] >> bit) & 1;
                acc | R::from_u64(b).shl(p)
            })
        })
        .collect()
}

/// ANDs of word pairs: `x[j] & y[j]` for every gate word `j`, on replicated XOR shares
/// given as `(this, next)` component slices. Re-randomised with a PRSS zero share.
///
/// Cost: 1 round, 8 bytes per 64 gates from each party.
pub fn and<T: Transport>(
    p: &mut Party<T>,
    x: (&[u64], &[u64]),
    y: (&[u64], &[u64]),
) -> Result<(Vec<u64>, Vec<u64>), Error> {
    p.run(async |br| and_async(br, x, y).await)
}

/// [`and`] in a [`Branch`].
pub async fn and_async(
    br: &mut Branch<'_>,
    x: (&[u64], &[u64]),
    y: (&[u64], &[u64]),
) -> Result<(Vec<u64>, Vec<u64>), Error> {
    let start = br.round();
    let n = x.0.len();
    if x.1.len() != n || y.0.len() != n || y.1.len() != n {
        return Err(Error::LengthMismatch {
            what: "and",
            expected: n,
            got: y.0.len(),
        });
    }
    let mut z: Vec<u64> = (0..n)
        .map(|j| (x.0[j] & (y.0[j] ^ y.1[j])) ^ (x.1[j] & y.0[j]))
        .collect();
    let a: Vec<u64> = br.prss().draw_with_prev(n);
    let b: Vec<u64> = br.prss().draw_with_next(n);
    for ((zj, aj), bj) in z.iter_mut().zip(&a).zip(&b) {
        *zj ^= aj ^ bj;
    }
    let me = br.id();
    br.send_ring(me.prev(), &z)?;
    let next = br.recv_ring(me.next(), n)?.await;
    br.finish_rounds(start, 1).await?;
    Ok((z, next))
}

/// Opens a boolean share to every party (for tests and public results): 1 round,
/// 8 bytes per 64 bits per plane from each party.
pub fn open_bool<R: Ring, T: Transport>(p: &mut Party<T>, x: &BoolShare) -> Result<Vec<R>, Error> {
    p.run(async |br| open_bool_async(br, x).await)
}

/// [`open_bool`] in a [`Branch`].
pub async fn open_bool_async<R: Ring>(p: &mut Branch<'_>, x: &BoolShare) -> Result<Vec<R>, Error> {
    let start = p.round();
    let me = p.id();
    p.send_ring(me.next(), x.this())?;
    let missing: Vec<u64> = p.recv_ring(me.prev(), x.this.len())?.await;
    p.finish_rounds(start, 1).await?;
    for q in crate::transport::PartyId::ALL {
        p.count_opened(q, x.n);
    }
    let planes: Vec<u64> = (0..missing.len())
        .map(|j| x.this[j] ^ x.next[j] ^ missing[j])
        .collect();
    Ok(unslice_bits(&planes, x.bits, x.n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slicing_round_trips_and_matches_the_definition() {
        let v: Vec<u128> = (0..150u128)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834))
            .collect();
        for bits in [1, 7, 64, 65, 128] {
            let planes = slice_bits(&v, bits);
            let w = words_for(v.len());
            for (j, x) in v.iter().enumerate() {
                for p in 0..bits {
                    let got = (planes[p as usize * w + j / 64] >> (j % 64)) & 1;
                    assert_eq!(
                        got as u128,
                        (x >> p) & 1,
                        "bits {bits}, element {j}, plane {p}"
                    );
                }
            }
            let back: Vec<u128> = unslice_bits(&planes, bits, v.len());
            let mask = if bits == 128 {
                u128::MAX
            } else {
                (1u128 << bits) - 1
            };
            assert!(back.iter().zip(&v).all(|(a, b)| *a == b & mask));
        }
    }
}
