//! Criterion benches of the kernel core, three parties over the in-memory transport:
//! fixed-point multiplication (mul + truncation) on 10^6 N(0,1) elements and a
//! 256x256x256 secret x secret matrix product, the shapes of baselines a and e.

use cipherdm_bench::{deal_fixed, normal, timed};
use cipherdm_kernel::protocols as pr;
use cipherdm_kernel::{FixedPoint, Shape, share};
use criterion::{Criterion, criterion_group, criterion_main};

fn report_bytes(name: &str, costs: &[cipherdm_kernel::cost::Cost; 3], elems: usize, rounds: u64) {
    let total: u64 = costs.iter().map(|c| c.bytes_total()).sum();
    eprintln!(
        "{name}: {} bytes/element summed over parties, {} rounds",
        total as f64 / elems as f64,
        rounds
    );
}

fn mul_trunc(c: &mut Criterion) {
    let n = 1_000_000;
    let x = normal(n, 1);
    let y = normal(n, 2);
    let xs = deal_fixed(&x, Shape::vector(n), 3);
    let ys = deal_fixed(&y, Shape::vector(n), 4);
    let inputs = || [0, 1, 2].map(|i| (xs[i].clone(), ys[i].clone()));

    // Accuracy and bytes once, outside the timing.
    let m = timed(inputs(), 1, |p, (a, b)| pr::mul_fixed(p, a, b));
    let fx = FixedPoint::default();
    let z = share::reconstruct([&m.outputs[0], &m.outputs[1], &m.outputs[2]]).unwrap();
    let err = z
        .iter()
        .zip(x.iter().zip(&y))
        .map(|(zi, (a, b))| (fx.decode(*zi) - a * b).abs())
        .fold(0.0, f64::max);
    report_bytes("mul_fixed 1e6", &m.costs, n, m.costs[0].rounds);
    eprintln!("mul_fixed 1e6: max abs error vs f64 {err:.3e}");
    let m = timed(inputs(), 1, |p, (a, b)| {
        let prod = pr::mul(p, a, b)?;
        pr::trunc_fixed(p, &prod)
    });
    report_bytes("mul then trunc 1e6", &m.costs, n, m.costs[0].rounds);

    let mut g = c.benchmark_group("kernel");
    g.sample_size(10);
    g.bench_function("mul_fixed_1e6", |b| {
        b.iter_custom(|iters| timed(inputs(), iters, |p, (a, b)| pr::mul_fixed(p, a, b)).elapsed)
    });
    g.bench_function("mul_then_trunc_1e6", |b| {
        b.iter_custom(|iters| {
            timed(inputs(), iters, |p, (a, b)| {
                let prod = pr::mul(p, a, b)?;
                pr::trunc_fixed(p, &prod)
            })
            .elapsed
        })
    });
    g.finish();
}

fn matmul(c: &mut Criterion) {
    let d = 256;
    let x = normal(d * d, 5);
    let y = normal(d * d, 6);
    let sh = Shape::new(&[d, d]).unwrap();
    let xs = deal_fixed(&x, sh.clone(), 7);
    let ys = deal_fixed(&y, sh, 8);
    let inputs = || [0, 1, 2].map(|i| (xs[i].clone(), ys[i].clone()));

    let m = timed(inputs(), 1, |p, (a, b)| pr::matmul_fixed(p, a, b));
    let fx = FixedPoint::default();
    let z = share::reconstruct([&m.outputs[0], &m.outputs[1], &m.outputs[2]]).unwrap();
    let mut err: f64 = 0.0;
    for i in 0..d {
        for j in 0..d {
            let want: f64 = (0..d).map(|t| x[i * d + t] * y[t * d + j]).sum();
            err = err.max((fx.decode(z[i * d + j]) - want).abs());
        }
    }
    report_bytes("matmul_fixed 256^3", &m.costs, d * d, m.costs[0].rounds);
    eprintln!("matmul_fixed 256^3: max abs error vs f64 {err:.3e}");

    let mut g = c.benchmark_group("kernel");
    g.sample_size(10);
    g.bench_function("matmul_fixed_256", |b| {
        b.iter_custom(|iters| timed(inputs(), iters, |p, (a, b)| pr::matmul_fixed(p, a, b)).elapsed)
    });
    g.bench_function("matmul_ring_256", |b| {
        b.iter_custom(|iters| timed(inputs(), iters, |p, (a, b)| pr::matmul(p, a, b)).elapsed)
    });
    g.finish();
}

fn compare(c: &mut Criterion) {
    let n = 1_000_000;
    let x = normal(n, 9);
    let y = normal(n, 10);
    let xs = deal_fixed(&x, Shape::vector(n), 11);
    let ys = deal_fixed(&y, Shape::vector(n), 12);
    let inputs = || [0, 1, 2].map(|i| (xs[i].clone(), ys[i].clone()));
    let m = timed(inputs(), 1, |p, (a, b)| pr::lt(p, a, b));
    report_bytes("lt 1e6", &m.costs, n, m.costs[0].rounds);
    let mut g = c.benchmark_group("kernel");
    g.sample_size(10);
    g.bench_function("lt_1e6", |b| {
        b.iter_custom(|iters| timed(inputs(), iters, |p, (a, b)| pr::lt(p, a, b)).elapsed)
    });
    g.finish();
}

criterion_group!(benches, mul_trunc, matmul, compare);
criterion_main!(benches);
