//! MSB and comparisons reconstruct to the plaintext result, exactly, including ±0,
//! equal inputs and the edges of the range; costs match the rustdoc.

mod common;

use cipherdm_kernel::protocols::{self as pr, boolean};
use cipherdm_kernel::{Ring, Shape};
use cipherdm_transport_mem::run3_with;
use common::*;
use proptest::prelude::*;

fn secure_msb<R: Ring>(x: &[R]) -> Vec<R> {
    let xs = deal(x, Shape::vector(x.len()), 17);
    let out = ok3(run3_with(&cfg(), xs, |p, s| {
        let b = pr::msb(p, &s)?;
        boolean::open_bool::<R, _>(p, &b)
    }));
    assert!(out[0] == out[1] && out[1] == out[2]);
    out[0].clone()
}

#[test]
fn msb_exact_on_edges_and_random_values() {
    let mut x: Vec<u64> = vec![
        0,
        1,
        u64::MAX,
        1 << 63,
        (1 << 63) - 1,
        1 << 62,
        (1 << 62) - 1,
        3 << 62,
    ];
    let mut g = rng(8);
    x.extend((0..5000).map(|_| rand_core::Rng::next_u64(&mut g)));
    let got = secure_msb(&x);
    for (v, m) in x.iter().zip(&got) {
        assert_eq!(*m, v >> 63, "msb of {v:#x}");
    }
    let y: Vec<u128> = vec![0, 1, u128::MAX, 1 << 127, (1 << 127) - 1, 12345 << 100];
    let got = secure_msb(&y);
    for (v, m) in y.iter().zip(&got) {
        assert_eq!(*m, v >> 127);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn lt_gt_against_plaintext(pairs in prop::collection::vec((any::<i64>(), any::<i64>()), 1..200)) {
        // Inputs in the documented range [-2^62, 2^62), with some ties.
        let x: Vec<u64> = pairs.iter().map(|p| (p.0 >> 2) as u64).collect();
        let y: Vec<u64> = pairs.iter().enumerate().map(|(i, p)| if i % 5 == 0 { (p.0 >> 2) as u64 } else { (p.1 >> 2) as u64 }).collect();
        let n = x.len();
        let xs = deal(&x, Shape::vector(n), 1);
        let ys = deal(&y, Shape::vector(n), 2);
        let c = y.clone();
        let inputs = [0, 1, 2].map(|i| (xs[i].clone(), ys[i].clone()));
        let out = ok3(run3_with(&cfg(), inputs, move |p, (a, b)| {
            let l = pr::lt(p, &a, &b)?;
            let g = pr::gt(p, &a, &b)?;
            let lp = pr::lt_public(p, &a, &c)?;
            Ok((boolean::open_bool::<u64, _>(p, &l)?, boolean::open_bool::<u64, _>(p, &g)?, boolean::open_bool::<u64, _>(p, &lp)?))
        }));
        for i in 0..n {
            let (a, b) = (x[i] as i64, y[i] as i64);
            prop_assert_eq!(out[0].0[i], (a < b) as u64);
            prop_assert_eq!(out[0].1[i], (a > b) as u64);
            prop_assert_eq!(out[0].2[i], (a < b) as u64);
        }
    }
}

#[test]
fn msb_costs_match_the_doc() {
    let n = 6400usize;
    let x: Vec<u64> = (0..n as u64).collect();
    let xs = deal(&x, Shape::vector(n), 3);
    let out = ok3(run3_with(&cfg(), xs, |p, s| {
        let c0 = *p.costs().total();
        let d0 = p.transport().causal_depth();
        pr::msb(p, &s)?;
        Ok((
            p.costs().total().since(&c0),
            p.transport().causal_depth() - d0,
        ))
    }));
    let words = (n / 64) as u64;
    for (i, (c, _)) in out.iter().enumerate() {
        let input = if i == 0 { 64 * words * 8 } else { 0 };
        assert_eq!(c.bytes_total(), input + 187 * words * 8, "party {i}");
        assert_eq!(c.rounds, 8);
    }
    assert_eq!(out.iter().map(|o| o.1).max(), Some(8));
}

#[test]
fn a2b_recovers_every_bit() {
    let mut x: Vec<u64> = vec![
        0,
        1,
        u64::MAX,
        1 << 63,
        (1 << 63) - 1,
        0x5555_5555_5555_5555,
    ];
    let mut g = rng(21);
    x.extend((0..700).map(|_| rand_core::Rng::next_u64(&mut g)));
    let xs = deal(&x, Shape::vector(x.len()), 4);
    let out = ok3(run3_with(&cfg(), xs, |p, s| {
        let b = pr::a2b(p, &s)?;
        boolean::open_bool::<u64, _>(p, &b)
    }));
    assert_eq!(out[0], x);
    let y: Vec<u128> = vec![0, 1, u128::MAX, 1 << 127, 0xdead_beef << 70];
    let ys = deal(&y, Shape::vector(y.len()), 5);
    let out = ok3(run3_with(&cfg(), ys, |p, s| {
        let b = pr::a2b(p, &s)?;
        boolean::open_bool::<u128, _>(p, &b)
    }));
    assert_eq!(out[0], y);
}

#[test]
fn negative_in_five_rounds_matches_the_sign_at_every_width() {
    use cipherdm_kernel::protocols::sign;
    for bits in [2u32, 5, 6, 17, 33, 64] {
        let half: i128 = 1i128 << (bits - 1);
        let mut g = rng(u64::from(bits));
        let mut vals: Vec<i128> = vec![0, -1, 1, half - 1, -half, -half + 1, half - 2];
        vals.extend((0..700).map(|_| {
            let r = rand_core::Rng::next_u64(&mut g) as i128;
            r.rem_euclid(2 * half) - half
        }));
        let xs: Vec<u64> = vals.iter().map(|&v| v as u64).collect();
        let shares = deal(&xs, Shape::vector(xs.len()), 9);
        let out = ok3(run3_with(&cfg(), shares, move |p, s| {
            let before = p.costs().total().rounds;
            let waited = p.rounds_waited();
            let b = sign::negative(p, &s, bits)?;
            let declared = p.costs().total().rounds - before;
            let went = p.rounds_waited() - waited;
            Ok((pr::open(p, &b)?, declared, went))
        }));
        let levels = sign::tree_levels(sign::blocks(bits));
        let want_rounds = (1 + levels).max(2) + 1;
        for (i, o) in out.iter().enumerate() {
            assert_eq!(
                o.1, want_rounds,
                "{bits} bits: declared rounds at party {i}"
            );
            assert_eq!(
                o.2, want_rounds,
                "{bits} bits: scheduler rounds at party {i}"
            );
        }
        for (v, b) in vals.iter().zip(&out[0].0) {
            assert_eq!(*b, u64::from(*v < 0), "{bits} bits: [{v} < 0]");
        }
    }
}
