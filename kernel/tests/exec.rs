//! The streaming executor on its own, without the models crate: a small graph with a
//! convolution, GroupNorm, SiLU, self-attention and a skip concatenation runs through
//! `exec::run` on shares over the memory transport and matches an exact f64 evaluation
//! written here; the graph cost model equals the measured counters; errors keep their
//! kind and name their layer.

mod common;

use cipherdm_kernel::approx::Profile;
use cipherdm_kernel::exec::{
    self, Backend, Chunking, MemoryWeights, SecureBackend, cost, public_share,
};
use cipherdm_kernel::graph::{Activation, Graph, GraphBuilder, Node, Op};
use cipherdm_kernel::nn::{im2col_gather, im2col_index};
use cipherdm_kernel::protocols as pr;
use cipherdm_kernel::{Error, PartyId, Shape, TransportError};
use cipherdm_transport_mem::{Fault, FaultKind, MemConfig, run3_with};
use common::{cfg, deal, enc};
use rand_core::Rng;

/// x (2, 6, 6) → conv 3×3 → GroupNorm(2) → SiLU → self-attention (2 heads) → concat
/// with the conv output (a U-Net skip) → 1×1 conv.
fn small_graph() -> Graph {
    let mut g = GraphBuilder::new();
    let x = g.input("x", vec![2, 6, 6]);
    let c1 = g.conv("c1", x, 4, 3).unwrap();
    let n = g.group_norm("gn", c1, 2, 1e-5).unwrap();
    let a = g.act("silu", n, Activation::Silu);
    let at = g.attention("attn", a, a, a, 2).unwrap();
    let cat = g.concat("skip", &[at, c1]).unwrap();
    let out = g.conv("out", cat, 2, 1).unwrap();
    g.finish(out)
}

/// Random weights in ±0.5 (GroupNorm scales near 1), as reals.
fn weights(graph: &Graph) -> Vec<(String, Vec<usize>, Vec<f64>)> {
    let mut rng = common::rng(5);
    let mut uniform = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
    graph
        .weights
        .iter()
        .map(|w| {
            let n: usize = w.shape.iter().product();
            let v: Vec<f64> = if w.name == "gn.weight" {
                (0..n).map(|_| 1.0 + 0.2 * uniform()).collect()
            } else {
                (0..n).map(|_| uniform()).collect()
            };
            (w.name.clone(), w.shape.clone(), v)
        })
        .collect()
}

/// An exact f64 evaluation of the ops the small graph uses: `(shape with batch, data)`.
struct Plain<'w> {
    weights: &'w [(String, Vec<usize>, Vec<f64>)],
}

type Value = (Vec<usize>, Vec<f64>);

impl Plain<'_> {
    fn w(&self, name: &str) -> &[f64] {
        &self.weights.iter().find(|w| w.0 == name).unwrap().2
    }
}

impl Backend for Plain<'_> {
    type Value = Value;
    type Error = Error;

    fn eval(&mut self, node: &Node, x: &[&Value]) -> Result<Value, Error> {
        let (s, d) = x[0];
        let mut out_shape = vec![s[0]];
        out_shape.extend_from_slice(&node.shape);
        let data = match &node.op {
            Op::Conv2d(c) => {
                let (cin, h, w) = (s[1], s[2], s[3]);
                let (cout, ho, wo) = (node.shape[0], node.shape[1], node.shape[2]);
                let wt = self.w(&c.weight);
                let k = ((wt.len() / (cout * cin)) as f64).sqrt() as usize;
                let g = c.geometry();
                let idx = im2col_index([cin, h, w], k, &g, [ho, wo]);
                let mut col = vec![0.0; cin * k * k * ho * wo];
                im2col_gather(d, &idx, 0.0, &mut col);
                let bias = c.bias.as_deref().map(|b| self.w(b));
                let (kk, n) = (cin * k * k, ho * wo);
                let mut y = vec![0.0; cout * n];
                for o in 0..cout {
                    for p in 0..n {
                        let dot: f64 = (0..kk).map(|r| wt[o * kk + r] * col[r * n + p]).sum();
                        y[o * n + p] = dot + bias.map_or(0.0, |b| b[o]);
                    }
                }
                y
            }
            Op::GroupNorm {
                groups,
                eps,
                scale,
                bias,
            } => {
                let (c, hw) = (s[1], s[2] * s[3]);
                let per = c / groups * hw;
                let (gamma, beta) = (self.w(scale), self.w(bias));
                let mut y = d.clone();
                for (gi, chunk) in y.chunks_mut(per).enumerate() {
                    let mean = chunk.iter().sum::<f64>() / per as f64;
                    let var = chunk.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / per as f64;
                    for (j, v) in chunk.iter_mut().enumerate() {
                        let ch = gi * (c / groups) + j / hw;
                        *v = (*v - mean) / (var + eps).sqrt() * gamma[ch] + beta[ch];
                    }
                }
                y
            }
            Op::Act(Activation::Silu) => d.iter().map(|v| v / (1.0 + (-v).exp())).collect(),
            Op::Attention { heads } => {
                let (c, n) = (s[1], s[2] * s[3]);
                let dh = c / heads;
                let (q, k, v) = (d, &x[1].1, &x[2].1);
                let mut y = vec![0.0; c * n];
                for h in 0..*heads {
                    let chans = h * dh..(h + 1) * dh;
                    for i in 0..n {
                        let scores: Vec<f64> = (0..n)
                            .map(|j| {
                                chans
                                    .clone()
                                    .map(|ch| q[ch * n + i] * k[ch * n + j])
                                    .sum::<f64>()
                                    / (dh as f64).sqrt()
                            })
                            .collect();
                        let m = scores.iter().copied().fold(f64::MIN, f64::max);
                        let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                        let z: f64 = e.iter().sum();
                        for ch in chans.clone() {
                            y[ch * n + i] = (0..n).map(|j| e[j] / z * v[ch * n + j]).sum();
                        }
                    }
                }
                y
            }
            Op::Concat => x.iter().flat_map(|v| v.1.iter().copied()).collect(),
            _ => return Err(Error::InvalidParameter("op not in the small graph")),
        };
        Ok((out_shape, data))
    }
}

fn input() -> Vec<f64> {
    (0..72)
        .map(|i| ((i * 29 % 17) as f64 - 8.0) / 5.0)
        .collect()
}

/// Each party's weight shares, dealt from the reals.
fn weight_shares(ws: &[(String, Vec<usize>, Vec<f64>)]) -> [MemoryWeights<u64>; 3] {
    let mut out: [MemoryWeights<u64>; 3] = Default::default();
    for (i, (name, shape, v)) in ws.iter().enumerate() {
        let shares = deal(&enc(v), Shape::new(shape).unwrap(), 100 + i as u64);
        for (p, s) in out.iter_mut().zip(shares) {
            p.insert(name, s);
        }
    }
    out
}

#[test]
fn secure_run_of_a_small_graph_matches_the_exact_evaluation_and_the_cost_model() {
    secure_run_matches(Chunking::NONE);
}

/// Attention one score row at a time (7 scores give one row of 36 keys) and activations in
/// calls of 13 elements: the same results, more rounds, and the cost model still exact.
#[test]
fn chunked_secure_run_matches_the_exact_evaluation_and_the_cost_model() {
    secure_run_matches(Chunking {
        max_attention_scores: 7,
        max_activation_elements: 13,
    });
    secure_run_matches(Chunking {
        max_attention_scores: 36 * 5,
        max_activation_elements: 50,
    });
}

fn secure_run_matches(chunking: Chunking) {
    let graph = small_graph();
    let ws = weights(&graph);
    let x = input();
    let (_, want) = exec::run(
        &graph,
        &mut Plain { weights: &ws },
        vec![("x", (vec![1, 2, 6, 6], x.clone()))],
    )
    .unwrap();
    let profile = Profile::Accurate;
    let out = run3_with(&cfg(), weight_shares(&ws), |p, mine| {
        let xs = public_share(p, &x, &[1, 2, 6, 6])?;
        let before = *p.costs().total();
        let mut backend = SecureBackend::new(p, &graph, mine, profile)?.with_chunking(chunking);
        let y = backend.run(&graph, vec![("x", xs)])?;
        let records = backend.take_records();
        let spent = p.costs().total().since(&before);
        let opened = pr::open(p, &y)?;
        Ok((opened, records, spent))
    });
    let fx = cipherdm_kernel::FixedPoint::default();
    let estimate = cost::forward_chunked(&graph, 1, profile, fx.frac_bits(), chunking).unwrap();
    let mut bytes = 0;
    for (i, r) in out.into_iter().enumerate() {
        let (opened, records, spent) = r.unwrap_or_else(|e| panic!("party {i}: {e}"));
        let got: Vec<f64> = opened.iter().map(|&v| fx.decode(v)).collect();
        // The Accurate profile is within 1e-3 per nonlinearity; fixed point adds ~1e-5
        // per layer. 0.02 absolute on outputs of scale ~1 bounds both with room.
        let err = want
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(err < 0.02, "party {i}: secure vs exact differs by {err}");
        // Layer by layer, rounds equal the graph cost model's.
        assert_eq!(records.len(), estimate.len());
        for (r, e) in records.iter().zip(&estimate) {
            assert_eq!((r.name.as_str(), r.op), (e.name.as_str(), e.op));
            assert_eq!(r.cost.rounds, e.cost.rounds, "rounds of {}", r.name);
        }
        assert_eq!(
            spent.rounds,
            estimate.iter().map(|e| e.cost.rounds).sum::<u64>()
        );
        bytes += spent.bytes_total();
    }
    // The estimate counts bytes over all three parties.
    assert_eq!(bytes, estimate.iter().map(|e| e.cost.bytes).sum::<u64>());
}

#[test]
fn a_lost_peer_inside_a_layer_keeps_its_kind_and_names_the_layer() {
    let graph = small_graph();
    let ws = weights(&graph);
    let x = input();
    let mem = MemConfig {
        faults: vec![Fault {
            from: PartyId::P1,
            to: PartyId::P0,
            nth: 6,
            kind: FaultKind::Close,
        }],
        ..cfg()
    };
    let out = run3_with(&mem, weight_shares(&ws), |p, mine| {
        let xs = public_share(p, &x, &[1, 2, 6, 6])?;
        let mut backend = SecureBackend::new(p, &graph, mine, Profile::Accurate)?;
        backend.run(&graph, vec![("x", xs)])
    });
    let e = out[0]
        .as_ref()
        .expect_err("party 0 loses its link to party 1");
    assert!(
        matches!(e, Error::Layer { .. }),
        "a failure inside a layer names the layer: {e:?}"
    );
    assert!(
        matches!(
            e.transport(),
            Some(TransportError::Closed { .. } | TransportError::Timeout { .. })
        ),
        "kind kept: {e:?}"
    );
}

#[test]
fn malformed_graphs_and_missing_inputs_are_graph_errors() {
    let graph = small_graph();
    let ws = weights(&graph);
    let mut plain = Plain { weights: &ws };
    let missing = exec::run(&graph, &mut plain, vec![]);
    assert!(matches!(missing, Err(Error::Graph { .. })), "{missing:?}");
    let mut bad = graph.clone();
    bad.nodes[1].inputs = vec![5];
    let forward = exec::run(&bad, &mut plain, vec![("x", (vec![1, 2, 6, 6], input()))]);
    assert!(matches!(forward, Err(Error::Graph { .. })), "{forward:?}");
    assert!(matches!(
        cost::forward(&bad, 1, Profile::Accurate, 18),
        Err(Error::Graph { .. })
    ));
    let mut no_output = graph;
    no_output.output = 99;
    assert!(no_output.validate().is_err());
}

#[test]
fn architecture_hash_follows_every_field_of_the_graph() {
    let graph = small_graph();
    let h = graph.architecture_hash();
    assert_eq!(h, small_graph().architecture_hash());
    let mut eps = graph.clone();
    if let Op::GroupNorm { eps: e, .. } = &mut eps.nodes[2].op {
        *e = 1e-6;
    }
    let mut renamed = graph.clone();
    renamed.nodes[3].name = "act".into();
    let mut heads = graph.clone();
    heads.nodes[4].op = Op::Attention { heads: 4 };
    for other in [eps, renamed, heads] {
        assert_ne!(other.architecture_hash(), h);
    }
    assert!(graph.canonical_bytes().starts_with(b"CDMGRAPH"));
}
