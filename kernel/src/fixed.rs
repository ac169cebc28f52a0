//! Fixed-point encoding: a real `v` is the ring element `round(v * 2^f)` in two's
//! complement, with `f` (the fraction bits) a session parameter, 18 by default (SPU's FM64
//! default, so that accuracy comparisons are like for like).
//!
//! # Safe range
//!
//! [`FixedPoint::encode`] accepts `|v| < 2^(k - 2 - f)`: the encoded integer then lies in
//! `[-2^(k-2), 2^(k-2))`, the input range of [`trunc`](crate::protocols::trunc::trunc()) and of the
//! comparison protocols. For `k = 64, f = 18` that is `|v| < 2^44 ≈ 1.8e13`. A product
//! `x * y` before its truncation must also stay in that range: `|x * y| < 2^(k - 2 - 2f)`
//! (`2^26 ≈ 6.7e7` for the default), which is what the fixed-point multiplication
//! protocols document as their input range. NaN, ±∞ and out-of-range values are errors,
//! never clamped.

use core::fmt;

use crate::ring::Ring;

/// Fraction bits used when the session does not choose: SPU's FM64 default.
pub const DEFAULT_FRAC_BITS: u32 = 18;

/// Why a real could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The value was NaN.
    NotANumber,
    /// The value was +∞ or −∞.
    Infinite,
    /// `|value|` was not below `limit`, the bound of the safe range.
    OutOfRange {
        /// The rejected value.
        value: f64,
        /// The exclusive bound on `|value|`.
        limit: f64,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::NotANumber => write!(f, "cannot encode NaN in fixed point"),
            EncodeError::Infinite => write!(f, "cannot encode an infinite value in fixed point"),
            EncodeError::OutOfRange { value, limit } => write!(
                f,
                "value {value} is outside the fixed-point safe range (|v| < {limit})"
            ),
        }
    }
}

impl core::error::Error for EncodeError {}

/// A fixed-point format: `frac_bits` fraction bits in the ring chosen at each call.
///
/// ```
/// use cipherdm_kernel::fixed::FixedPoint;
/// let fx = FixedPoint::default();
/// let e: u64 = fx.encode(-1.5).unwrap();
/// assert_eq!(fx.decode(e), -1.5);
/// assert!(fx.encode::<u64>(f64::NAN).is_err());
/// assert!(fx.encode::<u64>(1e15).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FixedPoint {
    frac_bits: u32,
}

impl Default for FixedPoint {
    fn default() -> Self {
        FixedPoint {
            frac_bits: DEFAULT_FRAC_BITS,
        }
    }
}

impl FixedPoint {
    /// A format with `frac_bits` fraction bits; `None` unless `1 <= frac_bits <= 48`
    /// (larger values leave no integer bits in `Z_{2^64}` once products are formed).
    pub const fn new(frac_bits: u32) -> Option<Self> {
        if frac_bits >= 1 && frac_bits <= 48 {
            Some(FixedPoint { frac_bits })
        } else {
            None
        }
    }

    /// Number of fraction bits `f`.
    pub const fn frac_bits(&self) -> u32 {
        self.frac_bits
    }

    /// `2^f` as a float.
    pub fn scale(&self) -> f64 {
        pow2(self.frac_bits as i32)
    }

    /// The exclusive bound on `|v|` accepted by [`encode`](Self::encode) in ring `R`:
    /// `2^(k - 2 - f)`.
    pub fn max_abs<R: Ring>(&self) -> f64 {
        pow2(R::BITS as i32 - 2 - self.frac_bits as i32)
    }

    /// The exclusive bound on `|x * y|` for a fixed-point product in ring `R`:
    /// `2^(k - 2 - 2f)`.
    pub fn max_abs_product<R: Ring>(&self) -> f64 {
        pow2(R::BITS as i32 - 2 - 2 * self.frac_bits as i32)
    }

    /// `round(v * 2^f)` (ties away from zero) as a ring element.
    pub fn encode<R: Ring>(&self, v: f64) -> Result<R, EncodeError> {
        if v.is_nan() {
            return Err(EncodeError::NotANumber);
        }
        if v.is_infinite() {
            return Err(EncodeError::Infinite);
        }
        let limit = self.max_abs::<R>();
        if v.abs() >= limit {
            return Err(EncodeError::OutOfRange { value: v, limit });
        }
        Ok(R::from_i128(round_to_i128(v * self.scale())))
    }

    /// Encodes every element of `values` into `out` (same length), failing on the first
    /// value outside the safe range.
    pub fn encode_slice<R: Ring>(&self, values: &[f64], out: &mut [R]) -> Result<(), EncodeError> {
        for (o, &v) in out.iter_mut().zip(values) {
            *o = self.encode(v)?;
        }
        Ok(())
    }

    /// The real represented by `x` (two's complement reading divided by `2^f`).
    pub fn decode<R: Ring>(&self, x: R) -> f64 {
        x.to_i128() as f64 / self.scale()
    }
}

/// `2^e` for `-1074 < e < 1024`, without `libm` (usable without `std`).
pub(crate) fn pow2(e: i32) -> f64 {
    f64::from_bits(((e + 1023) as u64) << 52)
}

/// Round half away from zero for `|x| < 2^126`, without `libm`.
pub(crate) fn round_to_i128(x: f64) -> i128 {
    let t = x as i128; // truncates toward zero
    let frac = x - t as f64;
    if frac >= 0.5 {
        t + 1
    } else if frac <= -0.5 {
        t - 1
    } else {
        t
    }
}

/// `√x` for a public `x ≥ 0` without `std` (Newton's method from above: exact to the
/// last bit or two, for the public constants of attention and normalisation).
pub(crate) fn sqrt(x: f64) -> f64 {
    let mut y = x.max(1.0);
    for _ in 0..64 {
        let next = 0.5 * (y + x / y);
        if next >= y {
            break;
        }
        y = next;
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_and_ranges() {
        let fx = FixedPoint::default();
        let half_lsb = 0.5 / fx.scale();
        assert_eq!(fx.encode::<u64>(half_lsb).unwrap(), 1);
        assert_eq!(fx.encode::<u64>(-half_lsb).unwrap(), u64::MAX);
        assert_eq!(fx.encode::<u64>(0.49 / fx.scale()).unwrap(), 0);
        let lim = fx.max_abs::<u64>();
        assert_eq!(lim, (1u64 << 44) as f64);
        assert!(matches!(
            fx.encode::<u64>(lim),
            Err(EncodeError::OutOfRange { .. })
        ));
        assert!(fx.encode::<u64>(-lim + 1.0).is_ok());
        assert_eq!(fx.encode::<u64>(f64::INFINITY), Err(EncodeError::Infinite));
        assert_eq!(
            fx.encode::<u64>(f64::NEG_INFINITY),
            Err(EncodeError::Infinite)
        );
        assert_eq!(fx.encode::<u64>(f64::NAN), Err(EncodeError::NotANumber));
        // The 128-bit ring has a far wider range.
        assert!(fx.encode::<u128>(1e30).is_ok());
        assert_eq!(fx.decode(fx.encode::<u128>(-1e30).unwrap()), -1e30);
        assert_eq!(pow2(-3), 0.125);
        assert!(FixedPoint::new(0).is_none() && FixedPoint::new(49).is_none());
    }
}
