//! Every kernel protocol and secure layer at two or three sizes (criterion group
//! `sizes`, names `<protocol>/<size>`), three parties over the memory transport, inputs
//! already shared. `cargo bench -p cipherdm-bench --bench sizes -- <filter>`.

use cipherdm_bench::{deal_fixed, normal, timed, uniform};
use cipherdm_kernel::approx::Profile;
use cipherdm_kernel::nn::{self, ConvGeometry};
use cipherdm_kernel::protocols as pr;
use cipherdm_kernel::share::ArithShare;
use cipherdm_kernel::{Error, Party, PartyId, Shape};
use cipherdm_transport_mem::MemTransport;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

type Shares = Vec<ArithShare<u64>>;
type Op = dyn Fn(&mut Party<MemTransport>, &Shares) -> Result<ArithShare<u64>, Error> + Sync;

/// Deals `inputs` (values, shape) and benches `op` on them as `group/name/size`.
fn bench(c: &mut Criterion, name: &str, size: &str, inputs: &[(Vec<f64>, Vec<usize>)], op: &Op) {
    let mut per_party: [Shares; 3] = Default::default();
    for (i, (v, s)) in inputs.iter().enumerate() {
        for (q, sh) in deal_fixed(v, Shape::new(s).unwrap(), 50 + i as u64)
            .into_iter()
            .enumerate()
        {
            per_party[q].push(sh);
        }
    }
    let mut g = c.benchmark_group("sizes");
    g.sample_size(10);
    g.bench_function(BenchmarkId::new(name, size), |b| {
        b.iter_custom(|iters| timed(per_party.clone(), iters, |p, s| op(p, s)).elapsed)
    });
    g.finish();
}

fn vec_inputs(n: usize, k: usize, scale: f64) -> Vec<(Vec<f64>, Vec<usize>)> {
    (0..k)
        .map(|i| {
            (
                normal(n, 7 + i as u64).iter().map(|v| scale * v).collect(),
                vec![n],
            )
        })
        .collect()
}

fn arithmetic(c: &mut Criterion) {
    for n in [10_000, 100_000, 1_000_000] {
        let size = n.to_string();
        let two = vec_inputs(n, 2, 1.0);
        bench(c, "mul", &size, &two, &|p, s| pr::mul(p, &s[0], &s[1]));
        bench(c, "mul_fixed", &size, &two, &|p, s| {
            pr::mul_fixed(p, &s[0], &s[1])
        });
        bench(c, "trunc_fixed", &size, &two[..1], &|p, s| {
            pr::trunc_fixed(p, &s[0])
        });
        bench(c, "open", &size, &two[..1], &|p, s| {
            pr::open(p, &s[0])?;
            Ok(s[0].clone())
        });
        bench(c, "share_input", &size, &two[..1], &|p, s| {
            let v = (p.id() == PartyId::P0).then(|| s[0].this().to_vec());
            pr::share_input(p, PartyId::P0, v.as_deref(), s[0].shape().clone())
        });
        bench(c, "linear_combination", &size, &two, &|p, s| {
            pr::linear_combination_fixed(p, &[(0.5, &s[0]), (-1.5, &s[1])])
        });
    }
    for m in [64, 128, 256] {
        let inputs = [
            (normal(m * m, 1), vec![m, m]),
            (normal(m * m, 2), vec![m, m]),
        ];
        bench(c, "matmul_fixed", &format!("{m}^3"), &inputs, &|p, s| {
            pr::matmul_fixed(p, &s[0], &s[1])
        });
    }
}

fn boolean(c: &mut Criterion) {
    for n in [10_000, 100_000, 1_000_000] {
        let size = n.to_string();
        let two = vec_inputs(n, 2, 1.0);
        bench(c, "lt", &size, &two, &|p, s| {
            let b = pr::lt(p, &s[0], &s[1])?;
            pr::b2a(p, &b, s[0].shape().clone())
        });
        bench(c, "relu", &size, &two[..1], &|p, s| pr::relu(p, &s[0]));
        bench(c, "clamp", &size, &two[..1], &|p, s| {
            pr::clamp(p, &s[0], -1.0, 1.0)
        });
    }
}

fn nonlinear(c: &mut Criterion) {
    for n in [1_000, 10_000, 100_000] {
        let size = n.to_string();
        let x = vec_inputs(n, 1, 4.0);
        for (name, profile) in [
            ("accurate", Profile::Accurate),
            ("cipherdm", Profile::CipherDm),
        ] {
            bench(c, &format!("silu_{name}"), &size, &x, &move |p, s| {
                pr::silu(p, &s[0], profile)
            });
        }
        bench(c, "gelu_accurate", &size, &x, &|p, s| {
            pr::gelu(p, &s[0], Profile::Accurate)
        });
        let neg = [(uniform(n, -8.0, 0.0, 3), vec![n])];
        bench(c, "exp_accurate", &size, &neg, &|p, s| {
            pr::exp(p, &s[0], Profile::Accurate)
        });
        let pos = [(uniform(n, 0.1, 100.0, 4), vec![n])];
        bench(c, "reciprocal", &size, &pos, &|p, s| {
            pr::reciprocal(p, &s[0], -4, 7)
        });
        bench(c, "rsqrt", &size, &pos, &|p, s| pr::rsqrt(p, &s[0], -4, 7));
    }
    for (rows, cols) in [(64, 64), (196, 196), (1024, 256)] {
        let x = [(
            normal(rows * cols, 5).iter().map(|v| 2.0 * v).collect(),
            vec![rows, cols],
        )];
        bench(
            c,
            "softmax_accurate",
            &format!("{rows}x{cols}"),
            &x,
            &|p, s| pr::softmax(p, &s[0], Profile::Accurate),
        );
    }
}

fn layers(c: &mut Criterion) {
    for (ch, hw) in [(16, 14), (16, 28), (64, 32)] {
        let size = format!("{ch}x{hw}x{hw}");
        let x = (normal(ch * hw * hw, 1), vec![1, ch, hw, hw]);
        let gamma = (vec![1.0; ch], vec![ch]);
        let beta = (vec![0.0; ch], vec![ch]);
        bench(
            c,
            "group_norm",
            &size,
            &[x.clone(), gamma, beta],
            &|p, s| pr::group_norm(p, &s[0], 8, &s[1], &s[2], 1e-6, 1.0),
        );
        let w = (
            normal(ch * ch * 9, 2).iter().map(|v| 0.05 * v).collect(),
            vec![ch, ch, 3, 3],
        );
        let g = ConvGeometry {
            stride: 1,
            padding: [(1, 1), (1, 1)],
            lhs_dilation: 1,
        };
        bench(c, "conv2d_3x3", &size, &[x, w], &move |p, s| {
            nn::conv2d(p, &s[0], &s[1], None, &g)
        });
    }
    for hw in [7, 14] {
        let shape = vec![1, 32, hw, hw];
        let n = 32 * hw * hw;
        let qkv: Vec<_> = (0..3).map(|i| (normal(n, 10 + i), shape.clone())).collect();
        bench(
            c,
            "attention_accurate",
            &format!("32x{hw}x{hw}"),
            &qkv,
            &|p, s| nn::attention(p, &s[0], &s[1], &s[2], 1, Profile::Accurate),
        );
    }
}

criterion_group!(benches, arithmetic, boolean, nonlinear, layers);
criterion_main!(benches);
