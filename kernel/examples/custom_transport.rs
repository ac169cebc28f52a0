//! A host system plugging its own transport into the kernel and computing a secure dot
//! product.
//!
//! The "host" here owns a message bus made of std channels (standing in for whatever
//! RPC or socket layer an existing MPC system has). It implements the kernel's
//! four-method `Transport` trait for it, starts three parties on threads, and has party 0
//! contribute a private vector `a` and party 1 a private vector `b`. Everybody learns
//! `a · b` and nothing else.
//!
//! Run: `cargo run --release -p cipherdm-kernel --example custom_transport`

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::Duration;

use cipherdm_kernel::protocols as pr;
use cipherdm_kernel::{FixedPoint, Party, PartyId, Shape, Transport, TransportError};
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
