//! Selection, ReLU, max/argmax, reciprocal, rsqrt, softmax and normalisation against
//! plaintext references, with stated tolerances.

mod common;

use cipherdm_kernel::Shape;
use cipherdm_kernel::approx::{self, Function, Profile};
use cipherdm_kernel::protocols::{self as pr, boolean::open_bool};
use cipherdm_transport_mem::run3_with;
use common::*;

fn normal(n: usize, seed: u64) -> Vec<f64> {
    let mut g = rng(seed);
    (0..n)
        .map(|_| {
            let u1 = (rand_core::Rng::next_u64(&mut g) >> 11) as f64 / (1u64 << 53) as f64;
            let u2 = (rand_core::Rng::next_u64(&mut g) >> 11) as f64 / (1u64 << 53) as f64;
            (-2.0 * (u1 + 1e-300).ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        })
        .collect()
}

/// Runs `op` on a dealt fixed-point tensor and opens the result.
fn run1(
    x: &[f64],
    shape: Shape,
    op: impl Fn(
        &mut cipherdm_kernel::Party<cipherdm_transport_mem::MemTransport>,
        cipherdm_kernel::ArithShare<u64>,
    ) -> Result<cipherdm_kernel::ArithShare<u64>, cipherdm_kernel::Error>
    + Sync,
) -> Vec<f64> {
    let xs = deal(&enc(x), shape, 11);
    let out = ok3(run3_with(&cfg(), xs, |p, s| {
        let y = op(p, s)?;
        pr::open(p, &y)
    }));
    dec(&out[0])
}

#[test]
fn relu_select_and_b2a_are_exact() {
    let x = [0.0, -0.0, 1.5, -1.5, 1e-5, -4e-6, 8000.0, -8000.0];
    let got = run1(&x, Shape::vector(x.len()), |p, s| pr::relu(p, &s));
    for (a, b) in x.iter().zip(&got) {
        let want = dec(&enc(&[a.max(0.0)]))[0];
        assert_eq!(*b, want, "relu({a})");
    }
    // select(x < y, x, y) = min(x, y), exactly, ties included.
    let xv = [1.0, 2.0, -3.0, 0.5, 7.25];
    let yv = [2.0, 1.0, -3.0, 0.5, -7.25];
    let n = xv.len();
    let xs = deal(&enc(&xv), Shape::vector(n), 1);
    let ys = deal(&enc(&yv), Shape::vector(n), 2);
    let inputs = [0, 1, 2].map(|i| (xs[i].clone(), ys[i].clone()));
    let out = ok3(run3_with(&cfg(), inputs, |p, (a, b)| {
        let c = pr::lt(p, &a, &b)?;
        let bits = pr::b2a::<u64, _>(p, &c, Shape::vector(n))?;
        let m = pr::select(p, &c, &a, &b)?;
        Ok((pr::open(p, &bits)?, pr::open(p, &m)?))
    }));
    for i in 0..n {
        assert_eq!(out[0].0[i], (xv[i] < yv[i]) as u64);
        assert_eq!(dec(&out[0].1)[i], xv[i].min(yv[i]));
    }
}

#[test]
fn le_ge_and_public_forms_on_ties() {
    let xv = [1.0, 2.0, -3.0, 0.0];
    let yv = [1.0, 1.0, 3.0, -0.0];
    let n = xv.len();
    let xs = deal(&enc(&xv), Shape::vector(n), 3);
    let ys = deal(&enc(&yv), Shape::vector(n), 4);
    let c = enc(&yv);
    let inputs = [0, 1, 2].map(|i| (xs[i].clone(), ys[i].clone()));
    let out = ok3(run3_with(&cfg(), inputs, move |p, (a, b)| {
        let mut r = Vec::new();
        for bits in [
            pr::le(p, &a, &b)?,
            pr::ge(p, &a, &b)?,
            pr::le_public(p, &a, &c)?,
            pr::ge_public(p, &a, &c)?,
            pr::gt_public(p, &a, &c)?,
        ] {
            r.push(open_bool::<u64, _>(p, &bits)?);
        }
        Ok(r)
    }));
    for i in 0..n {
        let (x, y) = (xv[i], yv[i]);
        let want = [x <= y, x >= y, x <= y, x >= y, x > y];
        for (k, w) in want.iter().enumerate() {
            assert_eq!(out[0][k][i], *w as u64, "op {k} on ({x}, {y})");
        }
    }
}

#[test]
fn max_and_argmax_with_ties_and_odd_rows() {
    // Rows of 7 (odd), with ties: argmax must return the first maximal index.
    let rows = [
        [1.0, 5.0, 5.0, -2.0, 0.0, 5.0, 4.0],
        [-1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0],
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 9.5],
        [3.0, 2.0, 1.0, 0.0, -1.0, -2.0, -3.0],
    ];
    let x: Vec<f64> = rows.iter().flatten().copied().collect();
    let xs = deal(&enc(&x), Shape::new(&[4, 7]).unwrap(), 5);
    let out = ok3(run3_with(&cfg(), xs, |p, s| {
        let (m, i) = pr::argmax(p, &s, 64)?;
        let m2 = pr::max(p, &s, 33)?;
        Ok((pr::open(p, &m)?, pr::open(p, &i)?, pr::open(p, &m2)?))
    }));
    for (r, row) in rows.iter().enumerate() {
        let best = row.iter().cloned().fold(f64::MIN, f64::max);
        let first = row.iter().position(|&v| v == best).unwrap();
        assert_eq!(dec(&out[0].0)[r], best);
        assert_eq!(out[0].1[r], first as u64, "row {r}");
        assert_eq!(dec(&out[0].2)[r], best);
    }
}

#[test]
fn long_rows_of_ties_give_the_first_maximum_in_six_rounds_per_level() {
    // Rows of 5 take three levels (5 -> 3 -> 2 -> 1), each one comparison (5 rounds)
    // and one selection product.
    let (rows, n) = (3000, 5);
    let mut g = rng(77);
    let x: Vec<f64> = (0..rows * n)
        // Small integers: many ties, so the first-index rule is exercised.
        .map(|_| (rand_core::Rng::next_u64(&mut g) % 7) as f64 - 3.0)
        .collect();
    let xs = deal(&enc(&x), Shape::new(&[rows, n]).unwrap(), 6);
    let out = ok3(run3_with(&cfg(), xs, |p, s| {
        let before = p.costs().total().rounds;
        let (m, i) = pr::argmax(p, &s, 33)?;
        let rounds = p.costs().total().rounds - before;
        Ok((pr::open(p, &m)?, pr::open(p, &i)?, rounds))
    }));
    assert_eq!(out[0].2, 18, "three levels of 6 rounds");
    let maxima = dec(&out[0].0);
    for r in 0..rows {
        let row = &x[r * n..(r + 1) * n];
        let best = row.iter().cloned().fold(f64::MIN, f64::max);
        assert_eq!(maxima[r], best, "row {r}");
        assert_eq!(
            out[0].1[r],
            row.iter().position(|&v| v == best).unwrap() as u64
        );
    }
}

#[test]
fn reciprocal_and_rsqrt_over_their_ranges() {
    // 1/x on [0.1, 100] (range [2^-4, 2^7)) and 1/sqrt(x) on [0.01, 100] ([2^-7, 2^7)),
    // log-spaced plus the range edges.
    let xr: Vec<f64> = (0..=300)
        .map(|i| 0.1 * 1000f64.powf(i as f64 / 300.0))
        .chain([0.0625, 127.9])
        .collect();
    let got = run1(&xr, Shape::vector(xr.len()), |p, s| {
        pr::reciprocal(p, &s, -4, 7)
    });
    for (x, y) in xr.iter().zip(&got) {
        let want = 1.0 / x;
        assert!(
            (y - want).abs() <= 1e-4 * want.max(1.0),
            "1/{x}: got {y}, want {want}"
        );
    }
    // Small calls normalise with scaled copies, large ones with a product: both paths.
    for points in [300, pr::inverse::SCALED_COPIES_MAX_ELEMENTS + 1] {
        let xs: Vec<f64> = (0..=points)
            .map(|i| 0.01 * 10000f64.powf(i as f64 / points as f64))
            .chain([0.0079, 127.9])
            .collect();
        let got = run1(&xs, Shape::vector(xs.len()), |p, s| pr::rsqrt(p, &s, -7, 7));
        for (x, y) in xs.iter().zip(&got) {
            let want = 1.0 / x.sqrt();
            assert!(
                (y - want).abs() <= 2e-4 * want.max(1.0),
                "rsqrt({x}) over {points} points: got {y}, want {want}"
            );
        }
    }
}

#[test]
fn bad_ranges_are_typed_errors() {
    let xs = deal(&enc(&[1.0]), Shape::vector(1), 1);
    let out = run3_with(&cfg(), xs, |p, s| pr::reciprocal(p, &s, 5, 3));
    for r in out {
        assert!(matches!(
            r,
            Err(cipherdm_kernel::Error::InvalidParameter(_))
        ));
    }
}

fn softmax_plain(row: &[f64], exp: impl Fn(f64) -> f64) -> Vec<f64> {
    let m = row.iter().cloned().fold(f64::MIN, f64::max);
    let e: Vec<f64> = row.iter().map(|&v| exp(v - m)).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

#[test]
fn softmax_matches_plaintext_for_each_exp_profile() {
    let (rows, n) = (64, 256);
    let x: Vec<f64> = normal(rows * n, 9).iter().map(|v| 2.0 * v).collect();
    for profile in [
        Profile::Accurate,
        Profile::CipherDm,
        Profile::Loose,
        Profile::Precise,
    ] {
        let got = run1(&x, Shape::new(&[rows, n]).unwrap(), move |p, s| {
            pr::softmax(p, &s, profile)
        });
        let e = approx::entry(profile, Function::Exp).unwrap();
        let mut worst: f64 = 0.0;
        for r in 0..rows {
            // CipherDM's chexp is negative below x ≈ -4.49: a long row of spread logits
            // can push the denominator below the reciprocal's range [1/2, 2n), where the
            // result is meaningless (the plaintext one too). Only its rows are skipped.
            let den: f64 = {
                let row = &x[r * n..(r + 1) * n];
                let m = row.iter().cloned().fold(f64::MIN, f64::max);
                row.iter().map(|v| e.eval(v - m)).sum()
            };
            if den < 0.5 {
                assert_eq!(profile, Profile::CipherDm, "only chexp goes negative");
                continue;
            }
            // Against the same approximation in plaintext.
            let want = softmax_plain(&x[r * n..(r + 1) * n], |v| e.eval(v));
            for (a, b) in got[r * n..(r + 1) * n].iter().zip(&want) {
                worst = worst.max((a - b).abs());
            }
            if profile == Profile::Accurate {
                let exact = softmax_plain(&x[r * n..(r + 1) * n], f64::exp);
                for (a, b) in got[r * n..(r + 1) * n].iter().zip(&exact) {
                    // exp's absolute error (≤ 1e-4 per entry) accumulates in the row
                    // sum: rows dominated by one entry (sum ≈ 2) see ~1e-3.
                    assert!(
                        (a - b).abs() < 2e-3,
                        "accurate softmax vs exact: row {r}: {a} vs {b}"
                    );
                }
            }
        }
        eprintln!("{profile:?}: softmax error {worst:.3e}");
        // Precise's exp is 8 squarings of (1 + x/256): the LSB error of the first
        // truncation is amplified 2^8-fold, up to 2^8 · 2^-18 ≈ 1e-3 of e^x in the worst
        // case (typically a few 1e-4 after normalisation); the polynomial profiles stay
        // within a few LSB.
        let tol = if profile == Profile::Precise {
            1e-3
        } else {
            2e-4
        };
        assert!(worst < tol, "{profile:?}: softmax error {worst:.3e}");
    }
}

#[test]
fn group_norm_and_layer_norm_match_plaintext() {
    let (nb, c, h, w, groups) = (2, 8, 4, 5, 4);
    let x: Vec<f64> = normal(nb * c * h * w, 3)
        .iter()
        .map(|v| 3.0 * v + 1.0)
        .collect();
    let gamma: Vec<f64> = normal(c, 4).iter().map(|v| 1.0 + 0.1 * v).collect();
    let beta: Vec<f64> = normal(c, 5).iter().map(|v| 0.1 * v).collect();
    let xs = deal(&enc(&x), Shape::new(&[nb, c, h, w]).unwrap(), 1);
    let gs = deal(&enc(&gamma), Shape::vector(c), 2);
    let bs = deal(&enc(&beta), Shape::vector(c), 3);
    let inputs = [0, 1, 2].map(|i| (xs[i].clone(), gs[i].clone(), bs[i].clone()));
    for d in [1.0, 4.0] {
        let out = ok3(run3_with(&cfg(), inputs.clone(), move |p, (a, g, b)| {
            let y = pr::group_norm(p, &a, groups, &g, &b, 1e-6, d)?;
            pr::open(p, &y)
        }));
        let got = dec(&out[0]);
        let len = c / groups * h * w;
        for blk in 0..nb * groups {
            let v = &x[blk * len..(blk + 1) * len];
            let mean = v.iter().sum::<f64>() / len as f64;
            let var = v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / len as f64;
            for (k, a) in v.iter().enumerate() {
                let ch = (blk % groups) * (c / groups) + k / (h * w);
                let want = (a - mean) / (var + 1e-6).sqrt() * gamma[ch] + beta[ch];
                let y = got[blk * len + k];
                assert!((y - want).abs() < 1e-3, "d = {d}: got {y}, want {want}");
            }
        }
    }
    // LayerNorm over rows of 20, no affine.
    let got = run1(&x, Shape::new(&[16, 20]).unwrap(), |p, s| {
        pr::layer_norm(p, &s, None, 1e-5, 1.0)
    });
    for r in 0..16 {
        let v = &x[r * 20..(r + 1) * 20];
        let mean = v.iter().sum::<f64>() / 20.0;
        let var = v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / 20.0;
        for (k, a) in v.iter().enumerate() {
            let want = (a - mean) / (var + 1e-5).sqrt();
            assert!((got[r * 20 + k] - want).abs() < 1e-3);
        }
    }
}
