//! Cost counters agree with each protocol's documented rounds and bytes, the declared
//! rounds agree with the causal depth the in-memory transport measures, and scoped labels
//! attribute costs.

mod common;

use cipherdm_kernel::cost::Cost;
use cipherdm_kernel::protocols as pr;
use cipherdm_kernel::share::ArithShare;
use cipherdm_kernel::{Error, Party, PartyId, Shape};
use cipherdm_transport_mem::{MemTransport, run3_with};
use common::*;

const N: usize = 1000;

/// Runs `op` on dealt inputs and returns each party's cost delta, the causal depth the
/// transport measured and the rounds the party's scheduler went through.
fn measure(
    op: impl Fn(&mut Party<MemTransport>, ArithShare<u64>, ArithShare<u64>) -> Result<(), Error> + Sync,
) -> [(Cost, u64, u64); 3] {
    let x: Vec<u64> = (0..N as u64).collect();
    let xs = deal(&x, Shape::new(&[10, 100]).unwrap(), 1);
    let ys = deal(&x, Shape::new(&[10, 100]).unwrap(), 2);
    let inputs = [0, 1, 2].map(|i| (xs[i].clone(), ys[i].clone()));
    ok3(run3_with(&cfg(), inputs, |p, (a, b)| {
        let c0 = *p.costs().total();
        let d0 = p.transport().causal_depth();
        let w0 = p.rounds_waited();
        op(p, a, b)?;
        Ok((
            p.costs().total().since(&c0),
            p.transport().causal_depth() - d0,
            p.rounds_waited() - w0,
        ))
    }))
}

/// Checks bytes per party, declared rounds, the transport's measured causal depth and
/// the scheduler's rounds (every party leaves a protocol in the same round).
fn check(name: &str, got: [(Cost, u64, u64); 3], bytes: [u64; 3], rounds: u64) {
    let measured = got.iter().map(|g| g.1).max().unwrap();
    for (i, (c, _, waited)) in got.iter().enumerate() {
        assert_eq!(c.bytes_total(), bytes[i], "{name}: bytes sent by party {i}");
        assert_eq!(c.rounds, rounds, "{name}: declared rounds at party {i}");
        assert_eq!(*waited, rounds, "{name}: scheduler rounds at party {i}");
    }
    assert_eq!(measured, rounds, "{name}: measured causal depth");
}

#[test]
fn every_protocol_costs_what_its_doc_says() {
    let n = N as u64;
    check(
        "mul",
        measure(|p, a, b| pr::mul(p, &a, &b).map(drop)),
        [8 * n; 3],
        1,
    );
    check(
        "open",
        measure(|p, a, _| pr::open(p, &a).map(drop)),
        [8 * n; 3],
        1,
    );
    check(
        "share_input",
        measure(|p, _, _| {
            let v = vec![1u64; N];
            let mine = (p.id() == PartyId::P1).then_some(&v[..]);
            pr::share_input(p, PartyId::P1, mine, Shape::vector(N)).map(drop)
        }),
        [0, 8 * n, 0],
        1,
    );
    // First truncation of a session: lead is P0 (B + w = 11 bytes), the others w = 3.
    check(
        "trunc",
        measure(|p, a, _| pr::trunc(p, &a, 18).map(drop)),
        [11 * n, 3 * n, 3 * n],
        2,
    );
    // A product's truncation adds the pair's swap (B = 8 bytes each).
    check(
        "mul_fixed",
        measure(|p, a, b| pr::mul_fixed(p, &a, &b).map(drop)),
        [11 * n, 11 * n, 14 * n],
        2,
    );
    check(
        "mul_public_fixed",
        measure(|p, a, _| pr::mul_public_fixed(p, &a, &vec![0.5; N]).map(drop)),
        [11 * n, 3 * n, 3 * n],
        2,
    );
    // matmul [10,100] x [100,10]: communication per output element only (100 outputs).
    let mm = |p: &mut Party<MemTransport>, a: ArithShare<u64>, b: ArithShare<u64>| {
        let bt = b.reshape(Shape::new(&[100, 10])?)?;
        pr::matmul(p, &a, &bt).map(drop)
    };
    check("matmul", measure(mm), [8 * 100; 3], 1);
    let mmf = |p: &mut Party<MemTransport>, a: ArithShare<u64>, b: ArithShare<u64>| {
        let bt = b.reshape(Shape::new(&[100, 10])?)?;
        pr::matmul_fixed(p, &a, &bt).map(drop)
    };
    check("matmul_fixed", measure(mmf), [1100, 1100, 1400], 2);
    check(
        "dot",
        measure(|p, a, b| pr::dot(p, &a, &b).map(drop)),
        [8 * 10; 3],
        1,
    );
    check(
        "dot_fixed",
        measure(|p, a, b| pr::dot_fixed(p, &a, &b).map(drop)),
        [110, 110, 140],
        2,
    );
    check(
        "local ops",
        measure(|_, a, b| a.add(&b)?.sub(&a.neg()).map(drop)),
        [0; 3],
        0,
    );
}

#[test]
fn lead_rotation_balances_truncation_traffic() {
    let got = measure(|p, a, _| {
        for _ in 0..3 {
            pr::trunc(p, &a, 18)?;
        }
        Ok(())
    });
    for (c, _, _) in got {
        assert_eq!(c.bytes_total(), (11 + 3 + 3) * N as u64);
    }
}

#[test]
fn scopes_attribute_costs_to_labels() {
    let per_party = ok3(run3_with(&cfg(), [(), (), ()], |p, ()| {
        let a = ArithShare::<u64>::zeros(Shape::vector(10));
        p.scope("layer1", |p| -> Result<(), Error> {
            pr::mul(p, &a, &a)?;
            p.scope("inner", |p| pr::open(p, &a).map(drop))
        })?;
        pr::open(p, &a)?;
        let l = p.costs();
        Ok((
            *l.label("layer1").unwrap(),
            *l.label("layer1/inner").unwrap(),
            *l.total(),
        ))
    }));
    for (outer, inner, total) in per_party {
        assert_eq!(outer.bytes_total(), 80); // the mul only: inner costs go to the inner label
        assert_eq!(inner.bytes_total(), 80);
        assert_eq!(inner.opened_to, [10, 10, 10]);
        assert_eq!(total.rounds, 1 + 3); // set-up + mul + two opens
        assert_eq!(total.opened_to, [20, 20, 20]);
    }
}

#[test]
fn boolean_and_nonlinear_ops_cost_what_their_docs_say() {
    let n = N as u64;
    let words = N.div_ceil(64) as u64;
    // Bounded MSB over 33 bits: the lead inputs 33 planes; every party sends the AND
    // gates: 32 generate planes + 2·(16 + 8 + 4 + 2 + 1) tree planes.
    let and_bytes = (32 + 2 * 31) * words * 8;
    check(
        "msb_bits(33)",
        measure(|p, a, _| pr::msb_bits(p, &a, 33).map(drop)),
        [33 * words * 8 + and_bytes, and_bytes, and_bytes],
        7,
    );
    let zero_bits = || {
        cipherdm_kernel::protocols::boolean::BoolShare::from_components(
            1,
            N,
            vec![0; N.div_ceil(64)],
            vec![0; N.div_ceil(64)],
        )
    };
    check(
        "b2a",
        measure(|p, _, _| pr::b2a::<u64, _>(p, &zero_bits()?, Shape::vector(N)).map(drop)),
        [8 * n; 3],
        2,
    );
    check(
        "select",
        measure(|p, a, b| {
            let a = a.reshape(Shape::vector(N))?;
            let b = b.reshape(Shape::vector(N))?;
            pr::select(p, &zero_bits()?, &a, &b).map(drop)
        }),
        [16 * n; 3],
        3,
    );
    // ReLU = msb (8) + b2a (2) + mul (1) = 11 declared rounds; the transport measures 10
    // because the parties that receive nothing in a round run ahead (a composition can
    // pipeline, so measured ≤ declared).
    let full_and = (63 + 2 * 62) * words * 8;
    let got = measure(|p, a, _| pr::relu(p, &a).map(drop));
    let bytes = [
        64 * words * 8 + full_and + 16 * n,
        full_and + 16 * n,
        full_and + 16 * n,
    ];
    for (i, (c, _, waited)) in got.iter().enumerate() {
        assert_eq!(c.bytes_total(), bytes[i], "relu bytes, party {i}");
        assert_eq!(c.rounds, 11, "relu declared rounds");
        assert_eq!(*waited, 11, "relu scheduler rounds, party {i}");
    }
    let depth = got.iter().map(|g| g.1).max().unwrap();
    assert!((9..=11).contains(&depth), "relu measured depth {depth}");
}
