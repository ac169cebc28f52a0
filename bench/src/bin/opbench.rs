//! `opbench`: the SPU baseline micro-ops of docs/BENCHMARKS.md (a, b, c1–c4, d, e, f, g)
//! with their shapes and input distributions, three parties in one process over the
//! memory transport (or loopback TCP with `--transport tcp`), inputs already shared. One CSV line per op:
//! `op,n,median_seconds,bytes_total,rounds,max_abs_err` (median of `--runs` runs; bytes
//! summed over the parties; error against float64).
//!
//! Differences from the baselines, stated: `c1_exp` draws from U(-8, 0), the domain of
//! our exp tables (softmax arguments); the baselines' U(-8, 4) includes positive inputs.

use std::process::ExitCode;

use cipherdm_bench::{Measured, deal_fixed, normal, timed, timed_tcp, uniform};
use cipherdm_kernel::approx::Profile;
use cipherdm_kernel::nn::{self, ConvGeometry};
use cipherdm_kernel::protocols as pr;
use cipherdm_kernel::share::{self, ArithShare};
use cipherdm_kernel::{Error, FixedPoint, Party, Shape, Transport};
use cipherdm_models::host::tune_allocator;
use cipherdm_transport_mem::MemTransport;
use cipherdm_transport_tcp::{Mode, TcpTransport};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Micro-op benchmarks against the SPU / MP-SPDZ baselines, as CSV")]
struct Args {
    /// Approximation profile of the nonlinear ops.
    #[arg(long, default_value = "accurate")]
    profile: String,
    /// `mem` (three threads, in-memory links), `tcp` (loopback TCP, Noise-encrypted) or
    /// `tcp-plain` (loopback TCP without encryption: to measure what encryption costs).
    #[arg(long, default_value = "mem")]
    transport: String,
    /// Runs per op (the median is printed).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Only ops whose name contains this.
    #[arg(long)]
    only: Option<String>,
}

type Inputs = Vec<ArithShare<u64>>;
type OpFn<T> = dyn Fn(&mut Party<T>, &Inputs) -> Result<ArithShare<u64>, Error> + Sync;

struct Case<T: Transport> {
    name: &'static str,
    n: usize,
    /// Each input: values and shape.
    inputs: Vec<(Vec<f64>, Vec<usize>)>,
    want: Vec<f64>,
    op: Box<OpFn<T>>,
}

fn silu(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

fn cases<T: Transport + 'static>(profile: Profile) -> Vec<Case<T>> {
    let n6 = 1_000_000;
    let n5 = 100_000;
    let mut out = Vec::new();

    let (x, y) = (normal(n6, 1), normal(n6, 2));
    out.push(Case {
        name: "a_mul",
        n: n6,
        want: x.iter().zip(&y).map(|(a, b)| a * b).collect(),
        inputs: vec![(x, vec![n6]), (y, vec![n6])],
        op: Box::new(|p, s| pr::mul_fixed(p, &s[0], &s[1])),
    });

    let (x, y) = (normal(n6, 3), normal(n6, 4));
    out.push(Case {
        name: "b_lt",
        n: n6,
        want: x
            .iter()
            .zip(&y)
            .map(|(a, b)| if a < b { 1.0 } else { 0.0 })
            .collect(),
        inputs: vec![(x, vec![n6]), (y, vec![n6])],
        // The comparison bit as an integer share, scaled to fixed point for the error.
        op: Box::new(|p, s| {
            let bit = pr::lt(p, &s[0], &s[1])?;
            let b = pr::b2a(p, &bit, Shape::vector(s[0].len()))?;
            Ok(b.shl(p.fixed().frac_bits()))
        }),
    });

    let x = uniform(n5, -8.0, 0.0, 5);
    out.push(Case {
        name: "c1_exp",
        n: n5,
        want: x.iter().map(|v| v.exp()).collect(),
        inputs: vec![(x, vec![n5])],
        op: Box::new(move |p, s| pr::exp(p, &s[0], profile)),
    });

    let x = uniform(n5, 0.1, 100.0, 6);
    out.push(Case {
        name: "c2_reciprocal",
        n: n5,
        want: x.iter().map(|v| 1.0 / v).collect(),
        inputs: vec![(x, vec![n5])],
        op: Box::new(|p, s| pr::reciprocal(p, &s[0], -4, 7)),
    });

    let x = uniform(n5, 0.01, 100.0, 7);
    out.push(Case {
        name: "c3_rsqrt",
        n: n5,
        want: x.iter().map(|v| 1.0 / v.sqrt()).collect(),
        inputs: vec![(x, vec![n5])],
        op: Box::new(|p, s| pr::rsqrt(p, &s[0], -7, 7)),
    });

    let x: Vec<f64> = normal(n5, 8).iter().map(|v| 4.0 * v).collect();
    out.push(Case {
        name: "c4_silu",
        n: n5,
        want: x.iter().map(|&v| silu(v)).collect(),
        inputs: vec![(x, vec![n5])],
        op: Box::new(move |p, s| pr::silu(p, &s[0], profile)),
    });

    // SPU's shape, and the rows of Stable Diffusion's 64×64 self-attention (4,096 keys).
    for (name, rows, cols) in [("d_softmax", 1024, 256), ("sd_softmax_4096", 64, 4096)] {
        let x: Vec<f64> = normal(rows * cols, 9).iter().map(|v| 2.0 * v).collect();
        let want = x
            .chunks(cols)
            .flat_map(|r| {
                let m = r.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = r.iter().map(|v| (v - m).exp()).collect();
                let s: f64 = e.iter().sum();
                e.into_iter().map(move |v| v / s)
            })
            .collect();
        out.push(Case {
            name,
            n: rows * cols,
            want,
            inputs: vec![(x, vec![rows, cols])],
            op: Box::new(move |p, s| pr::softmax(p, &s[0], profile)),
        });
    }

    let m = 256;
    let (a, b) = (normal(m * m, 10), normal(m * m, 11));
    let mut want = vec![0.0; m * m];
    for i in 0..m {
        for k in 0..m {
            let av = a[i * m + k];
            for j in 0..m {
                want[i * m + j] += av * b[k * m + j];
            }
        }
    }
    out.push(Case {
        name: "e_matmul",
        n: m * m,
        want,
        inputs: vec![(a, vec![m, m]), (b, vec![m, m])],
        op: Box::new(|p, s| pr::matmul_fixed(p, &s[0], &s[1])),
    });

    let (c, hw) = (64, 32);
    let x = normal(c * hw * hw, 12);
    let w: Vec<f64> = normal(c * c * 9, 13).iter().map(|v| 0.05 * v).collect();
    let g = ConvGeometry {
        stride: 1,
        padding: [(1, 1), (1, 1)],
        lhs_dilation: 1,
    };
    let mut want = vec![0.0; c * hw * hw];
    for o in 0..c {
        for i in 0..c {
            for ky in 0..3 {
                for kx in 0..3 {
                    let wv = w[((o * c + i) * 3 + ky) * 3 + kx];
                    for y in 0..hw {
                        for xx in 0..hw {
                            let (iy, ix) = (y + ky, xx + kx);
                            if iy < 1 || ix < 1 || iy > hw || ix > hw {
                                continue;
                            }
                            want[(o * hw + y) * hw + xx] += wv * x[(i * hw + iy - 1) * hw + ix - 1];
                        }
                    }
                }
            }
        }
    }
    out.push(Case {
        name: "f_conv",
        n: c * hw * hw,
        want,
        inputs: vec![(x, vec![1, c, hw, hw]), (w, vec![c, c, 3, 3])],
        op: Box::new(move |p, s| nn::conv2d(p, &s[0], &s[1], None, &g)),
    });

    let groups = 32;
    let x: Vec<f64> = normal(c * hw * hw, 14)
        .iter()
        .map(|v| 3.0 * v + 1.0)
        .collect();
    let gamma: Vec<f64> = normal(c, 15).iter().map(|v| 1.0 + 0.1 * v).collect();
    let beta: Vec<f64> = normal(c, 16).iter().map(|v| 0.1 * v).collect();
    let per = c / groups * hw * hw;
    let mut want = Vec::with_capacity(x.len());
    for (gi, chunk) in x.chunks(per).enumerate() {
        let mean = chunk.iter().sum::<f64>() / per as f64;
        let var = chunk.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / per as f64;
        for (k, v) in chunk.iter().enumerate() {
            let ch = gi * (c / groups) + k / (hw * hw);
            want.push(silu(
                (v - mean) / (var + 1e-6).sqrt() * gamma[ch] + beta[ch],
            ));
        }
    }
    out.push(Case {
        name: "g_groupnorm_silu",
        n: c * hw * hw,
        want,
        inputs: vec![(x, vec![1, c, hw, hw]), (gamma, vec![c]), (beta, vec![c])],
        op: Box::new(move |p, s| {
            let y = pr::group_norm(p, &s[0], groups, &s[1], &s[2], 1e-6, 1.0)?;
            pr::silu(p, &y, profile)
        }),
    });
    out
}

fn main() -> ExitCode {
    tune_allocator();
    let a = Args::parse();
    let profile = match a.profile.parse::<Profile>() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if a.runs == 0 || a.runs > 100 {
        eprintln!("error: --runs must be 1..=100");
        return ExitCode::FAILURE;
    }
    println!("op,n,median_seconds,bytes_total,rounds,max_abs_err");
    match a.transport.as_str() {
        "mem" => run_cases(&a, cases::<MemTransport>(profile), |i, op| {
            timed(i, 1, |p, s| op(p, s))
        }),
        "tcp" | "tcp-plain" => {
            let mode = if a.transport == "tcp" {
                Mode::Encrypted
            } else {
                eprintln!("warning: plaintext links (benchmark only)");
                Mode::Plaintext
            };
            run_cases(&a, cases::<TcpTransport>(profile), |i, op| {
                timed_tcp(i, 1, mode, |p, s| op(p, s))
            })
        }
        other => {
            eprintln!("error: unknown transport `{other}` (mem, tcp, tcp-plain)");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// Runs every selected case `--runs` times with `time` and prints its CSV line.
fn run_cases<T: Transport>(
    a: &Args,
    cases: Vec<Case<T>>,
    time: impl Fn([Inputs; 3], &OpFn<T>) -> Measured<ArithShare<u64>>,
) {
    for case in cases {
        if a.only.as_deref().is_some_and(|o| !case.name.contains(o)) {
            continue;
        }
        let mut per_party: [Inputs; 3] = Default::default();
        for (i, (v, s)) in case.inputs.iter().enumerate() {
            let shares = deal_fixed(v, Shape::new(s).expect("valid shape"), 100 + i as u64);
            for (q, sh) in shares.into_iter().enumerate() {
                per_party[q].push(sh);
            }
        }
        let mut times = Vec::with_capacity(a.runs);
        let mut last = None;
        for _ in 0..a.runs {
            let m = time(per_party.clone(), &*case.op);
            times.push(m.elapsed.as_secs_f64());
            last = Some(m);
        }
        times.sort_by(f64::total_cmp);
        let m = last.expect("at least one run");
        let bytes: u64 = m.costs.iter().map(|c| c.bytes_total()).sum();
        let rounds = m.costs.iter().map(|c| c.rounds).max().unwrap_or(0);
        let fx = FixedPoint::default();
        let z = share::reconstruct([&m.outputs[0], &m.outputs[1], &m.outputs[2]])
            .expect("consistent shares");
        let err = z
            .iter()
            .zip(&case.want)
            .map(|(a, b)| (fx.decode(*a) - b).abs())
            .fold(0.0, f64::max);
        println!(
            "{},{},{:.4},{},{},{:.3e}",
            case.name,
            case.n,
            times[times.len() / 2],
            bytes,
            rounds,
            err
        );
    }
}
