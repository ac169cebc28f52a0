//! The transformer ops a Stable-Diffusion-style U-Net needs — LayerNorm over channels,
//! self- and cross-attention (keys from a text map of another length), GEGLU (split,
//! GeLU, elementwise product) — on small shapes: secure equals `plain-approx` layer by
//! layer, and the cost model equals the measured counters.

mod common;

use cipherdm_kernel::approx::Profile;
use cipherdm_kernel::exec::SecureBackend;
use cipherdm_kernel::exec::cost;
use cipherdm_kernel::exec::run;
use cipherdm_kernel::exec::{Chunking, MemoryWeights};
use cipherdm_kernel::graph::{Activation, Graph, GraphBuilder};
use cipherdm_kernel::share::share_locally;
use cipherdm_kernel::{FixedPoint, Shape};
use cipherdm_models::plain::{Nonlinearity, PlainBackend};
use cipherdm_models::{Tensor, Weights};
use cipherdm_transport_mem::{MemConfig, run3_with};
use common::{PlainRecorder, SecureRecorder};
use rand_chacha::ChaCha12Rng;
use rand_core::{Rng, SeedableRng};

const C: usize = 8;
const CTX: usize = 6;

/// x (C, 4, 4) and a text map (CTX, 5, 1): LayerNorm, self-attention, LayerNorm,
/// cross-attention, LayerNorm, GEGLU feed-forward, residuals.
fn block() -> Graph {
    let mut g = GraphBuilder::new();
    let x = g.input("x", vec![C, 4, 4]);
    let ctx = g.input("context", vec![CTX, 5, 1]);
    let h = g.layer_norm("norm1", x, 1e-5).unwrap();
    let q = g.linear_1x1("attn1.to_q", h, C, false).unwrap();
    let k = g.linear_1x1("attn1.to_k", h, C, false).unwrap();
    let v = g.linear_1x1("attn1.to_v", h, C, false).unwrap();
    let a = g.attention("attn1", q, k, v, 2).unwrap();
    let a = g.linear_1x1("attn1.to_out", a, C, true).unwrap();
    let x = g.add("res1", x, a).unwrap();
    let h = g.layer_norm("norm2", x, 1e-5).unwrap();
    let q = g.linear_1x1("attn2.to_q", h, C, false).unwrap();
    let k = g.linear_1x1("attn2.to_k", ctx, C, false).unwrap();
    let v = g.linear_1x1("attn2.to_v", ctx, C, false).unwrap();
    let a = g.attention("attn2", q, k, v, 2).unwrap();
    let a = g.linear_1x1("attn2.to_out", a, C, true).unwrap();
    let x = g.add("res2", x, a).unwrap();
    let h = g.layer_norm("norm3", x, 1e-5).unwrap();
    let h = g.linear_1x1("ff.proj", h, 4 * C, true).unwrap();
    let val = g.split("ff.value", h, 0, 2 * C).unwrap();
    let gate = g.split("ff.gate", h, 2 * C, 2 * C).unwrap();
    let gate = g.act("ff.gelu", gate, Activation::Gelu);
    let h = g.mul("ff.geglu", val, gate).unwrap();
    let h = g.linear_1x1("ff.out", h, C, true).unwrap();
    let x = g.add("res3", x, h).unwrap();
    g.finish(x)
}

fn normal(g: &mut ChaCha12Rng, n: usize, s: f64) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let u1 = ((g.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
            let u2 = (g.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            s * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        })
        .collect()
}

fn weights(graph: &Graph) -> Weights<f64> {
    let mut g = ChaCha12Rng::seed_from_u64(4);
    let mut w = Weights::default();
    for spec in &graph.weights {
        let n: usize = spec.shape.iter().product();
        let v = if spec.name.ends_with(".weight") && spec.shape.len() == 1 {
            normal(&mut g, n, 0.1).iter().map(|v| 1.0 + v).collect()
        } else {
            let fan_in = spec.shape.get(1).copied().unwrap_or(1) as f64;
            normal(&mut g, n, 1.0 / fan_in.sqrt())
        };
        w.insert(
            spec.name.clone(),
            Tensor::new(spec.shape.clone(), v).unwrap(),
        );
    }
    w
}

#[test]
fn transformer_ops_match_plain_approx_and_the_cost_model() {
    let graph = block();
    let w = weights(&graph);
    let b = 2;
    let mut g = ChaCha12Rng::seed_from_u64(9);
    let x = Tensor::new(vec![b, C, 4, 4], normal(&mut g, b * C * 16, 1.0)).unwrap();
    let ctx = Tensor::new(vec![b, CTX, 5, 1], normal(&mut g, b * CTX * 5, 1.0)).unwrap();
    secure_matches_plain_approx(
        &graph,
        &w,
        vec![("x", x), ("context", ctx)],
        Chunking::NONE,
        5e-3,
    );
}

/// A small Stable-Diffusion-shaped U-Net (diffusers' `UNet2DConditionModel` with SD's
/// block types: 8×8×4 latents, channels 8/16, a 5-token prompt of width 8; the weights
/// diffusers saved in `tests/fixtures/diffusers/cond_small`), with a secret prompt
/// embedding, attention and activations in small chunks: secure equals `plain-approx`
/// layer by layer, and the chunked cost model equals the measured counters.
#[test]
fn small_sd_shaped_unet_matches_plain_approx_layer_by_layer_in_chunks() {
    use cipherdm_models::unet2d_condition::{Config, graph};
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/diffusers/cond_small"
    );
    let cfg = Config::load(dir).unwrap();
    let graph = graph(&cfg, 5).unwrap();
    let w: Weights<f64> =
        Weights::load(&graph, format!("{dir}/diffusion_pytorch_model.safetensors")).unwrap();
    let mut g = ChaCha12Rng::seed_from_u64(11);
    let x = Tensor::new(vec![1, 4, 8, 8], normal(&mut g, 4 * 64, 1.0)).unwrap();
    let ctx = Tensor::new(vec![1, 8, 5, 1], normal(&mut g, 8 * 5, 1.0)).unwrap();
    let feats = cfg.time_features(501.0);
    let time = Tensor::new(vec![1, feats.len()], feats).unwrap();
    secure_matches_plain_approx(
        &graph,
        &w,
        vec![("x", x), ("context", ctx), ("time", time)],
        Chunking {
            max_attention_scores: 3 * 64 + 5,
            max_activation_elements: 100,
        },
        5e-3,
    );
}

/// Runs `graph` in `plain-approx` (Accurate) and securely on dealt weights and inputs
/// with `chunking`; every layer's secure output must be within `tolerance` (relative to
/// the layer's scale) of the plain one, and every layer's bytes and rounds must equal the
/// cost model's.
fn secure_matches_plain_approx(
    graph: &Graph,
    w: &Weights<f64>,
    inputs: Vec<(&'static str, Tensor<f64>)>,
    chunking: Chunking,
    tolerance: f64,
) {
    let profile = Profile::Accurate;
    let b = inputs[0].1.shape()[0];
    let mut plain = PlainBackend::new(w.clone(), Nonlinearity::Approx(profile));
    let mut rec = PlainRecorder {
        inner: &mut plain,
        values: Vec::new(),
    };
    run(graph, &mut rec, inputs.clone()).unwrap();
    let want = rec.values;

    let fixed = FixedPoint::default();
    let mut rng = ChaCha12Rng::seed_from_u64(5);
    let mut sets: [MemoryWeights<u64>; 3] = Default::default();
    for spec in &graph.weights {
        let data = w.get(&spec.name).unwrap().data();
        let enc: Vec<u64> = data.iter().map(|&v| fixed.encode(v).unwrap()).collect();
        let shares = share_locally(&enc, Shape::new(&spec.shape).unwrap(), &mut rng).unwrap();
        for (s, sh) in sets.iter_mut().zip(shares) {
            s.insert(&spec.name, sh);
        }
    }
    let deal = |t: &Tensor<f64>, rng: &mut ChaCha12Rng| {
        let enc: Vec<u64> = t.data().iter().map(|&v| fixed.encode(v).unwrap()).collect();
        share_locally(&enc, Shape::new(t.shape()).unwrap(), rng).unwrap()
    };
    let mut dealt: [Vec<(&'static str, cipherdm_kernel::ArithShare<u64>)>; 3] = Default::default();
    for (name, t) in &inputs {
        for (d, sh) in dealt.iter_mut().zip(deal(t, &mut rng)) {
            d.push((name, sh));
        }
    }
    let [s0, s1, s2] = sets;
    let [d0, d1, d2] = dealt;
    let out = run3_with(
        &MemConfig::default(),
        [(s0, d0), (s1, d1), (s2, d2)],
        |p, (ws, xs)| {
            let mut values = Vec::new();
            let mut layer_costs = Vec::new();
            {
                let inner = SecureBackend::new(p, graph, ws, profile)
                    .unwrap()
                    .with_chunking(chunking);
                let mut rec = SecureRecorder {
                    inner,
                    values: &mut values,
                };
                run(graph, &mut rec, xs).unwrap();
                // Each layer's cost without the test's openings (the opens come after the
                // record is taken).
                for r in rec.inner.records() {
                    layer_costs.push((r.name.clone(), r.cost));
                }
            }
            Ok((values, layer_costs))
        },
    );
    let parts: Vec<_> = out.into_iter().map(|r| r.unwrap()).collect();
    let got = &parts[0].0;
    assert_eq!(got.len(), want.len());
    for ((name, wv), gv) in want.iter().zip(got) {
        let (err, scale) = common::relative_error(wv, gv);
        // Accurate GeLU/exp (≤ 1e-3 absolute) plus fixed point; plain-approx keeps
        // LayerNorm's rsqrt and softmax's reciprocal exact.
        assert!(
            err < tolerance,
            "first divergent layer `{name}`: {err:.2e} of scale {scale:.2}"
        );
    }
    // The cost model, layer by layer: bytes over the parties, rounds.
    let est = cost::forward_chunked(graph, b, profile, fixed.frac_bits(), chunking).unwrap();
    assert_eq!(est.len(), parts[0].1.len());
    for (i, e) in est.iter().enumerate() {
        let bytes: u64 = parts.iter().map(|p| p.1[i].1.bytes_total()).sum();
        assert_eq!(e.name, parts[0].1[i].0);
        assert_eq!(
            (e.cost.bytes, e.cost.rounds),
            (bytes, parts[0].1[i].1.rounds),
            "layer `{}`",
            e.name
        );
    }
}
