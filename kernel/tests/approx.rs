//! Approximation tables and their secure evaluation: every profile's documented error
//! against the exact function, and the secure result against the plaintext evaluator of
//! the same approximation over inputs spanning every segment and its boundaries.

mod common;

use cipherdm_kernel::approx::{self, Approximation, Entry, Function, Profile};
use cipherdm_kernel::protocols::{self as pr};
use cipherdm_kernel::{FixedPoint, Shape};
use cipherdm_transport_mem::run3_with;
use common::*;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// erf by Abramowitz–Stegun 7.1.26 is too coarse (1.5e-7 is fine for 1e-4-level checks,
/// but we want the tables' figures to 3 digits): use a series / continued fraction.
fn erf(x: f64) -> f64 {
    if x.abs() < 3.0 {
        // Maclaurin series, converges fast for |x| < 3.
        let mut sum = x;
        let mut term = x;
        let mut n = 0.0;
        loop {
            n += 1.0;
            term *= -x * x / n;
            let add = term / (2.0 * n + 1.0);
            sum += add;
            if add.abs() < 1e-17 {
                break;
            }
        }
        2.0 / std::f64::consts::PI.sqrt() * sum
    } else {
        // erfc continued fraction (Lentz) for |x| >= 3.
        let z = x.abs();
        let mut f = z;
        let (mut c, mut d) = (z, 0.0);
        for k in 1..200 {
            let a = k as f64 / 2.0;
            d = z + a * d;
            d = 1.0 / d;
            c = z + a / c;
            let delta = c * d;
            f *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        let erfc = (-z * z).exp() / f / std::f64::consts::PI.sqrt();
        (1.0 - erfc).copysign(x)
    }
}

fn exact(f: Function, x: f64) -> f64 {
    match f {
        Function::Silu => x * sigmoid(x),
        Function::Gelu => 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
        Function::Mish => {
            let sp = if x > 30.0 { x } else { x.exp().ln_1p() };
            x * sp.tanh()
        }
        Function::Exp => x.exp(),
        Function::Sigmoid => sigmoid(x),
    }
}

fn grid(e: &Entry) -> Vec<f64> {
    let lo = e.domain.0.max(-40.0);
    let hi = e.domain.1.min(40.0);
    let n = ((hi - lo) / 1e-4) as usize;
    let mut xs: Vec<f64> = (0..=n)
        .map(|i| lo + (hi - lo) * i as f64 / n as f64)
        .collect();
    if let Approximation::Piecewise(pw) = &e.approx {
        for &t in pw.breaks {
            xs.extend([t - 1e-9, t, t + 1e-9]);
        }
    }
    xs
}

#[test]
fn every_profile_meets_its_documented_error() {
    for e in approx::all() {
        let worst = grid(e)
            .iter()
            .map(|&x| (e.eval(x) - exact(e.function, x)).abs())
            .fold(0.0, f64::max);
        assert!(
            worst <= e.max_error * 1.01 && worst >= e.max_error * 0.98,
            "{:?} {:?}: measured {worst:.4e}, documented {:.4e}",
            e.profile,
            e.function,
            e.max_error
        );
    }
}

#[test]
fn accurate_profile_meets_the_issue_bounds_and_beats_spu() {
    for f in [Function::Silu, Function::Gelu, Function::Mish] {
        assert!(approx::entry(Profile::Accurate, f).unwrap().max_error <= 1e-3);
    }
    assert!(
        approx::entry(Profile::Accurate, Function::Exp)
            .unwrap()
            .max_error
            <= 1e-4
    );
    // SPU's SiLU reached 2.6e-3 on the baseline inputs.
    assert!(
        approx::entry(Profile::Accurate, Function::Silu)
            .unwrap()
            .max_error
            < 2.6e-3
    );
}

#[test]
fn cipherdm_exp_chebyshev_and_monomial_forms_agree() {
    let mono = approx::chebyshev_to_monomial(approx::CHEXP_CHEBYSHEV);
    // The monomial digits printed by "Secure Inference for Diffusion Models via Unconditional
    // Scores" (Song et al., Appendix A).
    for (a, b) in mono.iter().zip(approx::CHEXP_SEED2_MONOMIAL) {
        assert!((a - b).abs() < 2e-8, "{a} vs {b} (Song et al., Appendix A)");
    }
    // And as functions, against the Chebyshev recurrence itself.
    for i in 0..=1400 {
        let x = -14.0 + i as f64 / 100.0;
        let u = x / 7.0 + 1.0;
        let (mut t0, mut t1) = (1.0, u);
        let mut cheb = approx::CHEXP_CHEBYSHEV[0] + approx::CHEXP_CHEBYSHEV[1] * u;
        for c in &approx::CHEXP_CHEBYSHEV[2..] {
            let t2 = 2.0 * u * t1 - t0;
            cheb += c * t2;
            (t0, t1) = (t1, t2);
        }
        let table = approx::entry(Profile::CipherDm, Function::Exp)
            .unwrap()
            .eval(x);
        assert!((cheb - table).abs() < 1e-9, "x = {x}");
    }
}

#[test]
fn missing_table_cells_are_typed_errors() {
    for (p, f) in [
        (Profile::CipherDm, Function::Gelu),
        (Profile::Loose, Function::Mish),
        (Profile::Precise, Function::Sigmoid),
    ] {
        assert!(matches!(
            approx::entry(p, f),
            Err(cipherdm_kernel::Error::InvalidParameter(_))
        ));
    }
}

/// Inputs spanning every segment, each break ±1 LSB (and the break itself when it is
/// representable), and random values.
fn secure_inputs(e: &Entry, fx: FixedPoint) -> Vec<u64> {
    let (lo, hi) = (e.domain.0.max(-20.0), e.domain.1.min(20.0));
    let mut xs: Vec<u64> = (0..=400)
        .map(|i| fx.encode(lo + (hi - lo) * i as f64 / 400.0).unwrap())
        .collect();
    let mut g = rng(5);
    xs.extend((0..600).map(|_| {
        let u = rand_core::Rng::next_u64(&mut g) as f64 / u64::MAX as f64;
        fx.encode::<u64>(lo + (hi - lo) * u).unwrap()
    }));
    let breaks: Vec<f64> = match &e.approx {
        Approximation::Piecewise(pw) => pw.breaks.to_vec(),
        Approximation::CompoundExp { cutoff, .. } => vec![*cutoff],
    };
    for &t in &breaks {
        let te: u64 = fx.encode(t).unwrap();
        xs.extend([te.wrapping_sub(1), te.wrapping_add(1)]);
        if fx.decode(te) == t {
            xs.push(te);
        }
    }
    // The secure protocol compares against the *encoded* break: an input equal to the
    // encoding of a break that fixed point cannot represent (e.g. -5.4) sits on
    // different sides of the break in the two evaluators, so leave it out.
    xs.retain(|&x| {
        breaks.iter().all(|&t| {
            let te: u64 = fx.encode(t).unwrap();
            x != te || fx.decode(te) == t
        })
    });
    // Large magnitudes inside the documented input range |x| < 2^13.
    for v in [-8000.0, -1000.0, 1000.0, 8000.0] {
        if v >= e.domain.0 && v <= e.domain.1 {
            xs.push(fx.encode(v).unwrap());
        }
    }
    xs
}

/// Secure vs plaintext evaluator of the same approximation: the tolerance is stated per
/// kind (fixed point f = 18: LSB 3.8e-6).
fn tolerance(e: &Entry) -> f64 {
    match e.approx {
        // 8 squarings amplify one LSB of (1 + x/256) by 256 (relative).
        Approximation::CompoundExp { .. } => 2e-3,
        // A few LSB per power times the coefficients; Accurate Mish's off-centre
        // full-basis pieces reach ~1.2e-4, the others stay below 5e-5.
        Approximation::Piecewise(_) => 2e-4,
    }
}

#[test]
fn secure_approximations_match_their_plaintext_evaluators() {
    let fx = FixedPoint::default();
    for e in approx::all() {
        let xs = secure_inputs(e, fx);
        let n = xs.len();
        let shares = deal(&xs, Shape::vector(n), 3);
        let (profile, function) = (e.profile, e.function);
        let out = ok3(run3_with(&cfg(), shares, move |p, s| {
            let y = pr::approximate(p, &s, profile, function)?;
            pr::open(p, &y)
        }));
        let mut worst = (0.0, 0.0);
        for (x, y) in xs.iter().zip(&out[0]) {
            let xd = fx.decode(*x);
            if profile == Profile::Accurate {
                // End to end against the exact function: the issue's bounds.
                let bound = if function == Function::Exp {
                    1e-4
                } else {
                    1e-3
                };
                let err = (fx.decode(*y) - exact(function, xd)).abs();
                assert!(err <= bound, "{function:?} at {xd}: {err:.3e} vs exact");
            }
            let err = (fx.decode(*y) - e.eval(xd)).abs();
            if err > worst.0 {
                worst = (err, xd);
            }
        }
        eprintln!(
            "{profile:?} {function:?}: worst secure error {:.3e} at x = {}",
            worst.0, worst.1
        );
        assert!(
            worst.0 <= tolerance(e),
            "{profile:?} {function:?}: secure error {:.3e} at x = {}",
            worst.0,
            worst.1
        );
    }
}
