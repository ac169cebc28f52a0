//! A host system plugging its own transport into the kernel: a secure dot product, then a
//! three-layer network defined as a kernel graph and run on shares by the streaming
//! executor.
//!
//! The "host" here owns a message bus made of std channels (standing in for whatever
//! RPC or socket layer an existing MPC system has). It implements the kernel's
//! four-method `Transport` trait for it and starts three parties on threads.
//! 1. Party 0 contributes a private vector `a`, party 1 a private vector `b`; everybody
//!    learns `a · b` and nothing else.
//! 2. Party 0 (the model owner) secret-shares the weights of `dense → SiLU → dense`,
//!    party 1 (the user) its input; the executor runs the graph layer by layer on shares
//!    and only the output is opened.
//!
//! Run: `cargo run --release -p cipherdm-kernel --example custom_transport`

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::Duration;

use cipherdm_kernel::approx::Profile;
use cipherdm_kernel::exec::{MemoryWeights, SecureBackend};
use cipherdm_kernel::graph::{Activation, Graph, GraphBuilder};
use cipherdm_kernel::protocols as pr;
use cipherdm_kernel::{Error, FixedPoint, Party, PartyId, Shape, Transport, TransportError};
use rand_chacha::ChaCha12Rng;
use rand_core::SeedableRng;

/// The host's link layer: one channel per ordered pair of parties.
struct HostBus {
    out: [Option<Sender<Vec<u8>>>; 3],
    inbox: [Option<Receiver<Vec<u8>>>; 3],
}

impl Transport for HostBus {
    fn send(&mut self, to: PartyId, msg: &[u8]) -> Result<(), TransportError> {
        let tx = self.out[to.index()]
            .as_ref()
            .ok_or(TransportError::BadPeer {
                peer: to.index() as u8,
            })?;
        tx.send(msg.to_vec())
            .map_err(|_| TransportError::Closed { peer: to })
    }

    fn recv(&mut self, from: PartyId, buf: &mut [u8]) -> Result<(), TransportError> {
        let rx = self.inbox[from.index()]
            .as_ref()
            .ok_or(TransportError::BadPeer {
                peer: from.index() as u8,
            })?;
        let msg = rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|e| match e {
                RecvTimeoutError::Timeout => TransportError::Timeout {
                    peer: from,
                    after_ms: 5000,
                },
                RecvTimeoutError::Disconnected => TransportError::Closed { peer: from },
            })?;
        // The kernel always says how long the message must be: check, never trust.
        if msg.len() != buf.len() {
            return Err(TransportError::Desync {
                peer: from,
                expected: buf.len(),
                got: msg.len(),
            });
        }
        buf.copy_from_slice(&msg);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), TransportError> {
        Ok(())
    }
}

fn buses() -> Vec<HostBus> {
    let mut buses: Vec<HostBus> = (0..3)
        .map(|_| HostBus {
            out: Default::default(),
            inbox: Default::default(),
        })
        .collect();
    for from in 0..3 {
        for to in 0..3 {
            if from != to {
                let (tx, rx) = channel();
                buses[from].out[to] = Some(tx);
                buses[to].inbox[from] = Some(rx);
            }
        }
    }
    buses
}

/// The user's private input to the network.
const INPUT: [f64; 4] = [0.3, -1.2, 0.8, 2.0];

/// The embedder's network: 4 inputs → dense 3 → SiLU → dense 2.
fn network() -> Result<Graph, Error> {
    let mut g = GraphBuilder::new();
    let x = g.input("x", vec![4]);
    let h = g.dense("fc1", x, 3)?;
    let h = g.act("act", h, Activation::Silu);
    let y = g.dense("fc2", h, 2)?;
    Ok(g.finish(y))
}

/// The owner's weights, by name, in the graph's canonical layouts.
fn owner_weights() -> Vec<(&'static str, Vec<f64>)> {
    vec![
        (
            "fc1.weight",
            vec![
                0.5, -0.25, 0.75, 1.0, -0.5, 0.25, 0.5, -1.0, 0.1, 0.2, 0.3, 0.4,
            ],
        ),
        ("fc1.bias", vec![0.1, -0.2, 0.3]),
        ("fc2.weight", vec![1.0, -1.0, 0.5, 0.25, 0.75, -0.5]),
        ("fc2.bias", vec![0.0, 0.5]),
    ]
}

/// The same network in plaintext, for the check.
fn plaintext(x: &[f64]) -> Vec<f64> {
    let w: Vec<Vec<f64>> = owner_weights().into_iter().map(|(_, v)| v).collect();
    let dense = |x: &[f64], w: &[f64], b: &[f64]| -> Vec<f64> {
        b.iter()
            .enumerate()
            .map(|(o, bo)| {
                bo + x
                    .iter()
                    .enumerate()
                    .map(|(i, xi)| w[o * x.len() + i] * xi)
                    .sum::<f64>()
            })
            .collect()
    };
    let h: Vec<f64> = dense(x, &w[0], &w[1])
        .iter()
        .map(|v| v / (1.0 + (-v).exp()))
        .collect();
    dense(&h, &w[2], &w[3])
}

/// One party's part of the secure forward: the owner (party 0) shares the weights, the
/// user (party 1) its input; the executor fetches each layer's shares when it runs.
fn secure_network<T: Transport>(p: &mut Party<T>, input: &[f64]) -> Result<Vec<f64>, Error> {
    let graph = network()?;
    let owner = p.id() == PartyId::P0;
    let mut weights = MemoryWeights::default();
    for (spec, (name, values)) in graph.weights.iter().zip(owner_weights()) {
        let shape = Shape::new(&spec.shape)?;
        let mine = owner.then_some(&values[..]);
        weights.insert(name, pr::share_input_fixed(p, PartyId::P0, mine, shape)?);
    }
    let mine = (p.id() == PartyId::P1).then_some(input);
    let x = pr::share_input_fixed(p, PartyId::P1, mine, Shape::new(&[1, 4])?)?;
    let mut backend = SecureBackend::new(p, &graph, weights, Profile::Accurate)?;
    let y = backend.run(&graph, vec![("x", x)])?;
    let records = if owner { backend.records() } else { &[] };
    for r in records {
        println!(
            "layer {:<4} {:<6} {:>6} bytes {:>3} rounds (party 0)",
            r.name,
            r.op,
            r.cost.bytes_total(),
            r.cost.rounds
        );
    }
    let opened = pr::open(p, &y)?;
    Ok(opened.iter().map(|&v| p.fixed().decode(v)).collect())
}

fn main() {
    let a = [0.5, -1.25, 2.0, 3.5];
    let b = [4.0, 0.75, -0.5, 1.0];
    let handles: Vec<_> = buses()
        .into_iter()
        .enumerate()
        .map(|(i, bus)| {
            std::thread::spawn(move || -> Result<f64, cipherdm_kernel::Error> {
                let me = PartyId::new(i).expect("three parties");
                // Fresh entropy per session in production (e.g. from the OS); fixed here.
                let mut entropy = ChaCha12Rng::seed_from_u64(1000 + i as u64);
                let mut p = Party::setup(me, bus, FixedPoint::default(), &mut entropy)?;
                let shape = Shape::vector(4);
                let x = pr::share_input_fixed::<u64, _>(
                    &mut p,
                    PartyId::P0,
                    (i == 0).then_some(&a[..]),
                    shape.clone(),
                )?;
                let y = pr::share_input_fixed::<u64, _>(
                    &mut p,
                    PartyId::P1,
                    (i == 1).then_some(&b[..]),
                    shape,
                )?;
                let d = pr::dot_fixed(&mut p, &x, &y)?;
                let opened = pr::open(&mut p, &d)?;
                let net = secure_network(&mut p, &INPUT)?;
                let want = plaintext(&INPUT);
                for (g, w) in net.iter().zip(&want) {
                    assert!((g - w).abs() < 1e-2, "network output {g}, plaintext {w}");
                }
                if i == 0 {
                    println!("network output {net:?} (plaintext {want:?})");
                }
                let c = p.costs().total();
                println!(
                    "party {i}: sent {} bytes in {} rounds",
                    c.bytes_total(),
                    c.rounds
                );
                Ok(p.fixed().decode(opened[0]))
            })
        })
        .collect();
    let want: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
    for h in handles {
        let got = h.join().expect("party thread").expect("protocol");
        println!("a · b = {got} (plaintext {want})");
        assert!((got - want).abs() < 1e-4);
    }
}
