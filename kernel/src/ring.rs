//! The rings shares live in: `Z_{2^64}` (`u64`, the default) and `Z_{2^128}` (`u128`).
//!
//! Every operation wraps modulo `2^BITS`; nothing in this module can overflow or panic.
//! Bytes on the wire are little-endian whatever the host's endianness, so parties on
//! different architectures agree on every message and every PRSS draw.

use core::fmt::Debug;
use core::hash::Hash;
use core::ops::{BitAnd, BitOr, BitXor, Not};

use rand_core::Rng;

/// An element of `Z_{2^k}` for `k = BITS`, stored as an unsigned integer.
///
/// Arithmetic methods are all wrapping. Shifts take the shift amount modulo nothing:
/// callers pass `bits < BITS` (protocols check their parameters before using them).
///
/// ```
/// use cipherdm_kernel::ring::Ring;
/// let x = u64::MAX; // -1 in Z_{2^64}
/// assert_eq!(Ring::wrapping_add(x, 2u64), 1);
/// assert!(x.msb());
/// assert_eq!(x.sar(60), u64::MAX);
/// ```
pub trait Ring:
    Copy
    + Default
    + Eq
    + Ord
    + Hash
    + Debug
    + Send
    + Sync
    + 'static
    + BitAnd<Output = Self>
    + BitOr<Output = Self>
    + BitXor<Output = Self>
    + Not<Output = Self>
{
    /// Number of bits `k` of the ring `Z_{2^k}`.
    const BITS: u32;
    /// Bytes of one element on the wire (`BITS / 8`).
    const BYTES: usize;
    /// Additive identity.
    const ZERO: Self;
    /// Multiplicative identity.
    const ONE: Self;

    /// `self + rhs mod 2^k`.
    fn wrapping_add(self, rhs: Self) -> Self;
    /// `self - rhs mod 2^k`.
    fn wrapping_sub(self, rhs: Self) -> Self;
    /// `self * rhs mod 2^k`.
    fn wrapping_mul(self, rhs: Self) -> Self;
    /// `-self mod 2^k`.
    fn wrapping_neg(self) -> Self;
    /// Left shift by `bits < BITS`.
    fn shl(self, bits: u32) -> Self;
    /// Logical right shift by `bits < BITS`.
    fn shr(self, bits: u32) -> Self;
    /// Arithmetic right shift by `bits < BITS` (two's complement interpretation).
    fn sar(self, bits: u32) -> Self;
    /// Most significant bit, the sign bit in the two's complement reading.
    fn msb(self) -> bool;
    /// `self mod 2^bits` (keeps the low `bits` bits; `bits >= BITS` keeps everything).
    fn low_bits(self, bits: u32) -> Self;
    /// `0` or `1`.
    fn from_bool(b: bool) -> Self;
    /// Embeds a `u64` (zero-extends, or truncates for rings narrower than 64 bits).
    fn from_u64(v: u64) -> Self;
    /// Embeds a signed integer modulo `2^k`.
    fn from_i128(v: i128) -> Self;
    /// The two's complement reading of `self` as a signed integer, sign-extended to `i128`.
    fn to_i128(self) -> i128;
    /// Writes `self` as `BYTES` little-endian bytes into `out[..BYTES]`.
    fn write_le(self, out: &mut [u8]);
    /// Reads `BYTES` little-endian bytes from `bytes[..BYTES]`.
    fn read_le(bytes: &[u8]) -> Self;
    /// Reads up to `BYTES` little-endian bytes, zero-extending (used for packed values).
    fn read_le_partial(bytes: &[u8]) -> Self;
    /// A uniformly random element.
    fn random<G: Rng + ?Sized>(rng: &mut G) -> Self;

    /// Fills `out` with uniformly random elements drawn in bulk (4 KiB of keystream at a
    /// time). Both parties of a PRSS pair call it with the same lengths, so they agree.
    fn fill_random<G: Rng + ?Sized>(rng: &mut G, out: &mut [Self]) {
        let mut buf = [0u8; 4096];
        let per = buf.len() / Self::BYTES;
        for chunk in out.chunks_mut(per) {
            let bytes = &mut buf[..chunk.len() * Self::BYTES];
            rng.fill_bytes(bytes);
            for (v, b) in chunk.iter_mut().zip(bytes.chunks_exact(Self::BYTES)) {
                *v = Self::read_le(b);
            }
        }
    }
}

macro_rules! impl_ring {
    ($t:ty, $s:ty, $bits:expr) => {
        impl Ring for $t {
            const BITS: u32 = $bits;
            const BYTES: usize = $bits / 8;
            const ZERO: Self = 0;
            const ONE: Self = 1;

            #[inline(always)]
            fn wrapping_add(self, rhs: Self) -> Self {
                <$t>::wrapping_add(self, rhs)
            }
            #[inline(always)]
            fn wrapping_sub(self, rhs: Self) -> Self {
                <$t>::wrapping_sub(self, rhs)
            }
            #[inline(always)]
            fn wrapping_mul(self, rhs: Self) -> Self {
                <$t>::wrapping_mul(self, rhs)
            }
            #[inline(always)]
            fn wrapping_neg(self) -> Self {
                <$t>::wrapping_neg(self)
            }
            #[inline(always)]
            fn shl(self, bits: u32) -> Self {
                self.wrapping_shl(bits)
            }
            #[inline(always)]
            fn shr(self, bits: u32) -> Self {
                self.wrapping_shr(bits)
            }
            #[inline(always)]
            fn sar(self, bits: u32) -> Self {
                (self as $s).wrapping_shr(bits) as $t
            }
            #[inline(always)]
            fn msb(self) -> bool {
                (self >> ($bits - 1)) != 0
            }
            #[inline(always)]
            fn low_bits(self, bits: u32) -> Self {
                if bits >= $bits {
                    self
                } else {
                    self & ((1 << bits) - 1)
                }
            }
            #[inline(always)]
            fn from_bool(b: bool) -> Self {
                b as $t
            }
            #[inline(always)]
            fn from_u64(v: u64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn from_i128(v: i128) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_i128(self) -> i128 {
                (self as $s) as i128
            }
            #[inline(always)]
            fn write_le(self, out: &mut [u8]) {
                out[..Self::BYTES].copy_from_slice(&self.to_le_bytes());
            }
            #[inline(always)]
            fn read_le(bytes: &[u8]) -> Self {
                let mut a = [0u8; $bits / 8];
                a.copy_from_slice(&bytes[..Self::BYTES]);
                <$t>::from_le_bytes(a)
            }
            #[inline(always)]
            fn read_le_partial(bytes: &[u8]) -> Self {
                let mut a = [0u8; $bits / 8];
                let n = bytes.len().min(Self::BYTES);
                a[..n].copy_from_slice(&bytes[..n]);
                <$t>::from_le_bytes(a)
            }
            #[inline(always)]
            fn random<G: Rng + ?Sized>(rng: &mut G) -> Self {
                let mut a = [0u8; $bits / 8];
                rng.fill_bytes(&mut a);
                <$t>::from_le_bytes(a)
            }
        }
    };
}

impl_ring!(u64, i64, 64);
impl_ring!(u128, i128, 128);

/// Serialises ring elements as consecutive little-endian words.
pub fn encode_slice<R: Ring>(values: &[R], out: &mut [u8]) {
    debug_assert_eq!(out.len(), values.len() * R::BYTES);
    for (c, v) in out.chunks_exact_mut(R::BYTES).zip(values) {
        v.write_le(c);
    }
}

/// Parses consecutive little-endian words; `bytes.len()` must be `out.len() * R::BYTES`.
pub fn decode_slice<R: Ring>(bytes: &[u8], out: &mut [R]) {
    debug_assert_eq!(bytes.len(), out.len() * R::BYTES);
    for (v, c) in out.iter_mut().zip(bytes.chunks_exact(R::BYTES)) {
        *v = R::read_le(c);
    }
}

/// Bytes needed to carry a value of `bits` bits (`ceil(bits / 8)`).
pub const fn packed_bytes(bits: u32) -> usize {
    bits.div_ceil(8) as usize
}

/// Serialises the low `bits` bits of each value in `packed_bytes(bits)` bytes (higher
/// bits are cleared, so nothing beyond `bits` leaves the party).
pub fn pack_low<R: Ring>(values: &[R], bits: u32, out: &mut [u8]) {
    debug_assert_eq!(out.len(), values.len() * packed_bytes(bits));
    // Widths as constants, so every copy is a fixed-size move rather than a call.
    match packed_bytes(bits) {
        1 => pack_fixed::<R, 1>(values, bits, out),
        2 => pack_fixed::<R, 2>(values, bits, out),
        3 => pack_fixed::<R, 3>(values, bits, out),
        4 => pack_fixed::<R, 4>(values, bits, out),
        5 => pack_fixed::<R, 5>(values, bits, out),
        6 => pack_fixed::<R, 6>(values, bits, out),
        7 => pack_fixed::<R, 7>(values, bits, out),
        8 => pack_fixed::<R, 8>(values, bits, out),
        w => {
            let mut tmp = [0u8; 16];
            for (c, v) in out.chunks_exact_mut(w).zip(values) {
                v.low_bits(bits).write_le(&mut tmp);
                c.copy_from_slice(&tmp[..w]);
            }
        }
    }
}

fn pack_fixed<R: Ring, const W: usize>(values: &[R], bits: u32, out: &mut [u8]) {
    let mut tmp = [0u8; 16];
    for (c, v) in out.chunks_exact_mut(W).zip(values) {
        v.low_bits(bits).write_le(&mut tmp);
        c.copy_from_slice(&tmp[..W]);
    }
}

/// Parses values written by [`pack_low`], masking each to its low `bits` bits (so a
/// malicious sender cannot smuggle high bits in).
pub fn unpack_low<R: Ring>(bytes: &[u8], bits: u32, out: &mut [R]) {
    debug_assert_eq!(bytes.len(), out.len() * packed_bytes(bits));
    match packed_bytes(bits) {
        1 => unpack_fixed::<R, 1>(bytes, bits, out),
        2 => unpack_fixed::<R, 2>(bytes, bits, out),
        3 => unpack_fixed::<R, 3>(bytes, bits, out),
        4 => unpack_fixed::<R, 4>(bytes, bits, out),
        5 => unpack_fixed::<R, 5>(bytes, bits, out),
        6 => unpack_fixed::<R, 6>(bytes, bits, out),
        7 => unpack_fixed::<R, 7>(bytes, bits, out),
        8 => unpack_fixed::<R, 8>(bytes, bits, out),
        w => {
            for (v, c) in out.iter_mut().zip(bytes.chunks_exact(w)) {
                *v = R::read_le_partial(c).low_bits(bits);
            }
        }
    }
}

fn unpack_fixed<R: Ring, const W: usize>(bytes: &[u8], bits: u32, out: &mut [R]) {
    let mut tmp = [0u8; 16];
    for (v, c) in out.iter_mut().zip(bytes.chunks_exact(W)) {
        tmp[..W].copy_from_slice(c);
        *v = R::read_le(&tmp[..R::BYTES]).low_bits(bits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_reading_and_shifts() {
        let m1 = u64::MAX;
        assert_eq!(m1.to_i128(), -1);
        assert_eq!(Ring::sar(m1 << 4, 4), m1);
        assert_eq!(Ring::shr(m1, 60), 15);
        assert_eq!((1u128 << 127).to_i128(), i128::MIN);
        assert_eq!(u64::from_i128(-5).to_i128(), -5);
        assert_eq!(Ring::low_bits(0xffu64, 4), 0xf);
        assert_eq!(Ring::low_bits(0xffu64, 64), 0xff);
    }

    #[test]
    fn pack_round_trip_masks_high_bits() {
        let v = [0x1234_5678_9abc_def0u64, u64::MAX];
        let mut b = [0u8; 6];
        pack_low(&v, 18, &mut b);
        let mut out = [0u64; 2];
        unpack_low(&b, 18, &mut out);
        assert_eq!(out, [v[0] & 0x3ffff, 0x3ffff]);
        assert_eq!(b[5], 0x03, "bits above 18 are cleared before sending");
        // A hostile sender sets bits above 18 inside the 3 bytes: they are dropped.
        let hostile = [0xffu8; 3];
        let mut one = [0u64; 1];
        unpack_low(&hostile, 18, &mut one);
        assert_eq!(one[0], 0x3ffff);
    }

    #[test]
    fn slice_codec_round_trip() {
        let v = [1u128, u128::MAX, 1 << 100];
        let mut b = [0u8; 48];
        encode_slice(&v, &mut b);
        let mut out = [0u128; 3];
        decode_slice(&b, &mut out);
        assert_eq!(v, out);
    }
}
