//! Fixed-point encoding and decoding round trips (structure-aware): every finite value in
//! range comes back within half an ULP; everything else is an `EncodeError`.
#![no_main]

use arbitrary::Arbitrary;
use cipherdm_kernel::FixedPoint;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Case {
    frac_bits: u8,
    values: Vec<f64>,
    ring128: bool,
}

fuzz_target!(|c: Case| {
    let Some(fx) = FixedPoint::new(c.frac_bits as u32) else {
        assert!(c.frac_bits == 0 || c.frac_bits > 48);
        return;
    };
    let ulp = 1.0 / fx.scale();
    for &v in &c.values {
        if c.ring128 {
            match fx.encode::<u128>(v) {
                Ok(e) => {
                    let back = fx.decode(e);
                    assert!(
                        (back - v).abs() <= ulp / 2.0 + v.abs() * 1e-15,
                        "{v} -> {back}"
                    );
                }
                Err(_) => assert!(!v.is_finite() || v.abs() >= fx.max_abs::<u128>()),
            }
        } else {
            match fx.encode::<u64>(v) {
                Ok(e) => {
                    let back = fx.decode(e);
                    assert!(
                        (back - v).abs() <= ulp / 2.0 + v.abs() * 1e-15,
                        "{v} -> {back}"
                    );
                }
                Err(_) => assert!(!v.is_finite() || v.abs() >= fx.max_abs::<u64>()),
            }
        }
    }
});
