//! Helpers shared by the kernel's integration tests.
#![allow(dead_code)]

use std::time::Duration;

use cipherdm_kernel::share::{self, ArithShare};
use cipherdm_kernel::{Error, Ring, Shape};
use cipherdm_transport_mem::MemConfig;
use rand_chacha::ChaCha12Rng;
use rand_core::SeedableRng;

/// A reproducible session configuration with a generous timeout.
pub fn cfg() -> MemConfig {
    MemConfig {
        seed: Some(7),
        timeout: Duration::from_secs(60),
        ..MemConfig::default()
    }
}

/// Unwraps the three results of `run3`, naming the failing party.
pub fn ok3<T>(r: [Result<T, Error>; 3]) -> [T; 3] {
    let failures: Vec<String> = r
        .iter()
        .enumerate()
        .filter_map(|(i, x)| x.as_ref().err().map(|e| format!("party {i} failed: {e}")))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("; "));
    r.map(|x| x.unwrap_or_else(|_| unreachable!("checked above")))
}

/// A dealer's sharing of `values` (for tests: no deployment has a dealer holding inputs).
pub fn deal<R: Ring>(values: &[R], shape: Shape, seed: u64) -> [ArithShare<R>; 3] {
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    share::share_locally(values, shape, &mut rng).expect("shape matches")
}

/// Reconstructs three shares, checking their consistency.
pub fn open3<R: Ring>(s: &[ArithShare<R>; 3]) -> Vec<R> {
    share::reconstruct([&s[0], &s[1], &s[2]]).expect("consistent shares")
}

/// A deterministic RNG for test inputs.
pub fn rng(seed: u64) -> ChaCha12Rng {
    ChaCha12Rng::seed_from_u64(seed)
}

/// Default fixed-point encodings of reals (test inputs are in range).
pub fn enc(v: &[f64]) -> Vec<u64> {
    let fx = cipherdm_kernel::FixedPoint::default();
    v.iter().map(|&x| fx.encode(x).unwrap()).collect()
}

/// Default fixed-point decoding.
pub fn dec(v: &[u64]) -> Vec<f64> {
    let fx = cipherdm_kernel::FixedPoint::default();
    v.iter().map(|&x| fx.decode(x)).collect()
}
