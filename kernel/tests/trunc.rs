//! Truncation: >= 10^6 random inputs plus the edges of the documented range
//! `[-2^(k-2), 2^(k-2))`, never more than 1 LSB of error, and unbiased rounding.

mod common;

use cipherdm_kernel::protocols as pr;
use cipherdm_kernel::{Ring, Shape};
use cipherdm_transport_mem::run3_with;
use common::*;
use proptest::prelude::*;

/// Runs `trunc` by `m` bits and returns `result - floor(x / 2^m)` per element.
fn trunc_errors<R: Ring>(x: &[R], m: u32) -> Vec<i128> {
    let xs = deal(x, Shape::vector(x.len()), 99);
    let out = ok3(run3_with(&cfg(), xs, move |p, s| pr::trunc(p, &s, m)));
    let got = open3(&out);
    x.iter()
        .zip(&got)
        .map(|(xi, gi)| gi.to_i128() - (xi.to_i128() >> m))
        .collect()
}

fn edges(k: u32, m: u32) -> Vec<i128> {
    let lo = -(1i128 << (k - 2));
    let hi = (1i128 << (k - 2)) - 1;
    let p = 1i128 << m;
    vec![
        lo,
        lo + 1,
        hi,
        hi - 1,
        0,
        1,
        -1,
        p,
        -p,
        p - 1,
        -p + 1,
        p + 1,
        -p - 1,
        lo + p,
        hi - p,
    ]
}

#[test]
fn a_million_random_inputs_within_one_lsb() {
    let k = 64;
    let m = 18;
    let mut g = rng(2024);
    let mut x: Vec<u64> = edges(k, m).into_iter().map(|v| v as u64).collect();
    // Uniform over the whole documented range [-2^62, 2^62).
    x.extend((0..1_000_000).map(|_| ((g.next_u64() as i64) >> 1) as u64));
    // Small magnitudes (typical activations), where a biased rounding would show.
    x.extend((0..100_000).map(|_| ((g.next_u64() as i64) >> 30) as u64));
    let errs = trunc_errors(&x, m);
    let bad = errs.iter().filter(|&&e| e != 0 && e != 1).count();
    assert_eq!(bad, 0, "{bad} elements off by more than one LSB");
    // Stochastic rounding: result - x/2^m has mean ~0 (bias at most 2^-m LSB).
    let mean: f64 = errs
        .iter()
        .zip(&x)
        .map(|(&e, &xi)| e as f64 - ((xi as i64 & ((1 << m) - 1)) as f64) / (1u64 << m) as f64)
        .sum::<f64>()
        / x.len() as f64;
    assert!(mean.abs() < 2e-3, "rounding bias {mean} LSB");
}

#[test]
fn edges_for_every_shift_in_both_rings() {
    for m in [1, 2, 8, 18, 31, 40, 61, 62] {
        let x: Vec<u64> = edges(64, m).into_iter().map(|v| v as u64).collect();
        let errs = trunc_errors(&x, m);
        assert!(errs.iter().all(|&e| e == 0 || e == 1), "m = {m}: {errs:?}");
    }
    let mut g = rng(3);
    for m in [1, 18, 40, 64, 100, 126] {
        let mut x: Vec<u128> = edges(128, m).into_iter().map(|v| v as u128).collect();
        x.extend((0..2000).map(|_| {
            let v = ((g.next_u64() as u128) << 64 | g.next_u64() as u128) as i128 >> 1;
            v as u128
        }));
        let errs = trunc_errors(&x, m);
        assert!(errs.iter().all(|&e| e == 0 || e == 1), "u128 m = {m}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn random_shift_and_inputs(m in 1u32..=62, raw in prop::collection::vec(any::<i64>(), 1..64)) {
        let x: Vec<u64> = raw.iter().map(|&v| (v >> 1) as u64).collect();
        let errs = trunc_errors(&x, m);
        prop_assert!(errs.iter().all(|&e| e == 0 || e == 1));
    }
}
