//! Criterion benches of the nonlinear protocols on the baselines' shapes and input
//! distributions (the SPU baseline ops b–d and g of docs/BENCHMARKS.md), three parties over the
//! in-memory transport. Bytes per element and max error against f64 are printed once per
//! bench, outside the timing.

use cipherdm_bench::{bytes_per_element, deal_fixed, max_error, normal, timed, uniform};
use cipherdm_kernel::approx::Profile;
use cipherdm_kernel::protocols as pr;
use cipherdm_kernel::share::ArithShare;
use cipherdm_kernel::{Error, Party, Shape};
use cipherdm_transport_mem::MemTransport;
use criterion::{Criterion, criterion_group, criterion_main};
use std::time::Duration;

type Op = fn(&mut Party<MemTransport>, &ArithShare<u64>) -> Result<ArithShare<u64>, Error>;

/// Benches `op` on `x` (shape `shape`), printing bytes/element, rounds and max error.
fn bench_unary(c: &mut Criterion, name: &str, x: &[f64], shape: Shape, want: &[f64], op: Op) {
    let xs = deal_fixed(x, shape, 1);
    let m = timed(xs.clone(), 1, op);
    eprintln!(
        "{name}: {:.1} bytes/element, {} rounds, max abs error vs f64 {:.3e}",
        bytes_per_element(&m.costs, x.len()),
        m.costs[0].rounds,
        max_error(&m.outputs, want)
    );
    let mut g = c.benchmark_group("nonlinear");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    g.bench_function(name, |b| {
        b.iter_custom(|iters| timed(xs.clone(), iters, op).elapsed)
    });
    g.finish();
}

fn silu(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

fn exp_recip_rsqrt(c: &mut Criterion) {
    let n = 100_000;
    // Baseline c1 draws U(-8, 4); every tabulated exp is the softmax exponent, defined
    // for x <= 0, so we bench U(-8, 0).
    let x = uniform(n, -8.0, 0.0, 1);
    let want: Vec<f64> = x.iter().map(|v| v.exp()).collect();
    let sh = Shape::vector(n);
    bench_unary(c, "exp_accurate_1e5", &x, sh.clone(), &want, |p, a| {
        pr::exp(p, a, Profile::Accurate)
    });
    bench_unary(c, "exp_cipherdm_1e5", &x, sh.clone(), &want, |p, a| {
        pr::exp(p, a, Profile::CipherDm)
    });
    bench_unary(c, "exp_loose_1e5", &x, sh.clone(), &want, |p, a| {
        pr::exp(p, a, Profile::Loose)
    });
    bench_unary(c, "exp_precise_1e5", &x, sh.clone(), &want, |p, a| {
        pr::exp(p, a, Profile::Precise)
    });

    let x = uniform(n, 0.1, 100.0, 2);
    let want: Vec<f64> = x.iter().map(|v| 1.0 / v).collect();
    bench_unary(c, "reciprocal_1e5", &x, sh.clone(), &want, |p, a| {
        pr::reciprocal(p, a, -4, 7)
    });
    let x = uniform(n, 0.01, 100.0, 3);
    let want: Vec<f64> = x.iter().map(|v| 1.0 / v.sqrt()).collect();
    bench_unary(c, "rsqrt_1e5", &x, sh, &want, |p, a| pr::rsqrt(p, a, -7, 7));
}

fn silu_profiles(c: &mut Criterion) {
    let n = 100_000;
    let x: Vec<f64> = normal(n, 4).iter().map(|v| 4.0 * v).collect();
    let want: Vec<f64> = x.iter().map(|&v| silu(v)).collect();
    let sh = Shape::vector(n);
    bench_unary(c, "silu_accurate_1e5", &x, sh.clone(), &want, |p, a| {
        pr::silu(p, a, Profile::Accurate)
    });
    bench_unary(c, "silu_cipherdm_1e5", &x, sh.clone(), &want, |p, a| {
        pr::silu(p, a, Profile::CipherDm)
    });
    bench_unary(c, "silu_precise_1e5", &x, sh.clone(), &want, |p, a| {
        pr::silu(p, a, Profile::Precise)
    });
    bench_unary(c, "silu_loose_1e5", &x, sh, &want, |p, a| {
        pr::silu(p, a, Profile::Loose)
    });
}

fn softmax(c: &mut Criterion) {
    let (rows, n) = (1024, 256);
    let x: Vec<f64> = normal(rows * n, 5).iter().map(|v| 2.0 * v).collect();
    let mut want = Vec::with_capacity(x.len());
    for r in x.chunks(n) {
        let m = r.iter().cloned().fold(f64::MIN, f64::max);
        let s: f64 = r.iter().map(|v| (v - m).exp()).sum();
        want.extend(r.iter().map(|v| (v - m).exp() / s));
    }
    let sh = Shape::new(&[rows, n]).unwrap();
    bench_unary(
        c,
        "softmax_accurate_1024x256",
        &x,
        sh.clone(),
        &want,
        |p, a| pr::softmax(p, a, Profile::Accurate),
    );
    bench_unary(c, "softmax_loose_1024x256", &x, sh, &want, |p, a| {
        pr::softmax(p, a, Profile::Loose)
    });
}

fn group_norm_silu(c: &mut Criterion) {
    let (ch, hw, groups) = (64, 32 * 32, 32);
    let x: Vec<f64> = normal(ch * hw, 6).iter().map(|v| 3.0 * v + 1.0).collect();
    let gamma: Vec<f64> = normal(ch, 7).iter().map(|v| 1.0 + 0.1 * v).collect();
    let beta: Vec<f64> = normal(ch, 8).iter().map(|v| 0.1 * v).collect();
    let len = ch / groups * hw;
    let mut want = Vec::with_capacity(x.len());
    for (gi, v) in x.chunks(len).enumerate() {
        let mean = v.iter().sum::<f64>() / len as f64;
        let var = v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / len as f64;
        for (k, a) in v.iter().enumerate() {
            let c = gi * (ch / groups) + k / hw;
            want.push(silu((a - mean) / (var + 1e-6).sqrt() * gamma[c] + beta[c]));
        }
    }
    let xs = deal_fixed(&x, Shape::new(&[1, ch, 32, 32]).unwrap(), 1);
    let gs = deal_fixed(&gamma, Shape::vector(ch), 2);
    let bs = deal_fixed(&beta, Shape::vector(ch), 3);
    let inputs = || [0, 1, 2].map(|i| (xs[i].clone(), gs[i].clone(), bs[i].clone()));
    let op = |p: &mut Party<MemTransport>,
              (a, g, b): &(ArithShare<u64>, ArithShare<u64>, ArithShare<u64>)| {
        let y = pr::group_norm(p, a, groups, g, b, 1e-6, 1.0)?;
        pr::silu(p, &y, Profile::Accurate)
    };
    let m = timed(inputs(), 1, op);
    eprintln!(
        "group_norm32_silu: {:.1} bytes/element, {} rounds, max abs error vs f64 {:.3e}",
        bytes_per_element(&m.costs, x.len()),
        m.costs[0].rounds,
        max_error(&m.outputs, &want)
    );
    let mut g = c.benchmark_group("nonlinear");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    g.bench_function("group_norm32_silu_1x64x32x32", |b| {
        b.iter_custom(|iters| timed(inputs(), iters, op).elapsed)
    });
    g.finish();
}

fn compare_bounded(c: &mut Criterion) {
    let n = 1_000_000;
    let x = normal(n, 9);
    let y = normal(n, 10);
    let xs = deal_fixed(&x, Shape::vector(n), 11);
    let ys = deal_fixed(&y, Shape::vector(n), 12);
    let inputs = || [0, 1, 2].map(|i| (xs[i].clone(), ys[i].clone()));
    let op = |p: &mut Party<MemTransport>, (a, b): &(ArithShare<u64>, ArithShare<u64>)| {
        pr::msb_bits(p, &a.sub(b)?, 33)
    };
    let m = timed(inputs(), 1, op);
    eprintln!(
        "lt_33bit_1e6: {:.1} bytes/element, {} rounds",
        bytes_per_element(&m.costs, n),
        m.costs[0].rounds
    );
    let mut g = c.benchmark_group("nonlinear");
    g.sample_size(10);
    g.bench_function("lt_33bit_1e6", |b| {
        b.iter_custom(|iters| timed(inputs(), iters, op).elapsed)
    });
    g.finish();
}

criterion_group!(
    benches,
    compare_bounded,
    exp_recip_rsqrt,
    silu_profiles,
    softmax,
    group_norm_silu
);
criterion_main!(benches);
