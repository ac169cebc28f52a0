//! PRSS correlations hold, and what a party receives during `mul` and truncation looks
//! uniformly random (so no share or secret travels in the clear), even when the
//! secrets are extremely regular.

mod common;

use cipherdm_kernel::protocols as pr;
use cipherdm_kernel::prss::Prss;
use cipherdm_kernel::share::ArithShare;
use cipherdm_kernel::{FixedPoint, Party, PartyId, Shape, Transport, TransportError};
use cipherdm_transport_mem::{MemTransport, mesh};
use common::*;
use std::time::Duration;

#[test]
fn prss_zero_shares_sum_to_zero_and_random_shares_are_consistent() {
    // Keys k_0, k_1, k_2; party i holds (k_i, k_{i+1}).
    let keys = [[1u8; 32], [2u8; 32], [3u8; 32]];
    let mut prss: Vec<Prss> = (0..3)
        .map(|i| Prss::from_keys(keys[i], keys[(i + 1) % 3]))
        .collect();
    let zs: Vec<Vec<u64>> = prss.iter_mut().map(|p| p.zero_share(10_000)).collect();
    for ((a, b), c) in zs[0].iter().zip(&zs[1]).zip(&zs[2]) {
        assert_eq!(a.wrapping_add(*b).wrapping_add(*c), 0);
    }
    assert!(
        zs[0].iter().filter(|&&v| v == 0).count() < 3,
        "zero shares are not all zero"
    );
    let rs: Vec<ArithShare<u128>> = prss
        .iter_mut()
        .map(|p| p.random_share(Shape::vector(500)))
        .collect();
    let r = open3(&[rs[0].clone(), rs[1].clone(), rs[2].clone()]);
    assert!(r.iter().filter(|&&v| v == 0).count() < 2);
}

/// A transport wrapper that keeps a copy of every byte received.
struct Recording {
    inner: MemTransport,
    received: Vec<(PartyId, Vec<u8>)>,
}

impl Transport for Recording {
    fn send(&mut self, to: PartyId, msg: &[u8]) -> Result<(), TransportError> {
        self.inner.send(to, msg)
    }
    fn recv(&mut self, from: PartyId, buf: &mut [u8]) -> Result<(), TransportError> {
        self.inner.recv(from, buf)?;
        self.received.push((from, buf.to_vec()));
        Ok(())
    }
    fn flush(&mut self) -> Result<(), TransportError> {
        self.inner.flush()
    }
}

/// Runs `op` on the three parties with recording transports; returns what each received
/// during `op` (not during set-up).
fn record(op: fn(&mut Party<Recording>, ArithShare<u64>) -> ()) -> [Vec<(PartyId, Vec<u8>)>; 3] {
    // Highly regular secrets: all equal to 1.0 in fixed point.
    let fx = FixedPoint::default();
    let v = vec![fx.encode::<u64>(1.0).unwrap(); 40_000];
    let shares = deal(&v, Shape::vector(v.len()), 5);
    let ts = mesh(Duration::from_secs(30), &[]);
    std::thread::scope(|s| {
        let hs: Vec<_> = ts
            .into_iter()
            .zip(shares)
            .map(|(t, x)| {
                s.spawn(move || {
                    let me = t.id();
                    let rec = Recording {
                        inner: t,
                        received: Vec::new(),
                    };
                    let mut g = rng(40 + me.index() as u64);
                    let mut p = Party::setup(me, rec, fx, &mut g).unwrap();
                    p.transport_mut().received.clear();
                    op(&mut p, x);
                    p.into_transport().received
                })
            })
            .collect();
        let mut it = hs.into_iter().map(|h| h.join().unwrap());
        [it.next().unwrap(), it.next().unwrap(), it.next().unwrap()]
    })
}

/// Pearson chi-square statistic of a byte histogram against the uniform distribution.
fn chi_square(bytes: &[u8]) -> f64 {
    let mut hist = [0u64; 256];
    for &b in bytes {
        hist[b as usize] += 1;
    }
    let e = bytes.len() as f64 / 256.0;
    hist.iter().map(|&o| (o as f64 - e).powi(2) / e).sum()
}

/// 255 degrees of freedom: mean 255, sd 22.6; 400 is > 6 sd (false alarm < 1e-9).
const CHI2_LIMIT: f64 = 400.0;

#[test]
fn messages_received_during_mul_are_uniform_bytes() {
    let got = record(|p, x| {
        pr::mul(p, &x, &x).unwrap();
    });
    for (i, msgs) in got.iter().enumerate() {
        assert_eq!(msgs.len(), 1, "party {i} receives one message in mul");
        let bytes = &msgs[0].1;
        assert_eq!(bytes.len(), 40_000 * 8);
        let chi = chi_square(bytes);
        assert!(
            chi < CHI2_LIMIT,
            "party {i}: chi-square {chi} over received bytes"
        );
    }
    // The test can fail: the shares themselves are far from uniform bytes.
    let plain: Vec<u8> = (0..40_000u64)
        .flat_map(|_| (1u64 << 18).to_le_bytes())
        .collect();
    assert!(chi_square(&plain) > 100.0 * CHI2_LIMIT);
}

#[test]
fn messages_received_during_truncation_are_uniform() {
    let got = record(|p, x| {
        pr::mul_fixed(p, &x, &x).unwrap();
        pr::trunc(p, &x, 18).unwrap();
    });
    let mut checked = 0;
    for (i, msgs) in got.iter().enumerate() {
        for (from, bytes) in msgs {
            // Full ring elements (8 bytes each) are uniform bytes. Packed 18-bit values
            // (3 bytes each) have 2 live bits in their top byte: check the low two bytes.
            let n = 40_000;
            let (full, packed): (&[u8], &[u8]) = match bytes.len() {
                l if l == n * 8 => (bytes, &[]),
                l if l == n * 11 => bytes.split_at(n * 8),
                l if l == n * 3 => (&[], bytes),
                l => panic!("party {i}: unexpected {l}-byte message from {from}"),
            };
            if !full.is_empty() {
                let chi = chi_square(full);
                assert!(
                    chi < CHI2_LIMIT,
                    "party {i} from {from}: chi-square {chi} (full)"
                );
            }
            if !packed.is_empty() {
                let low: Vec<u8> = packed.chunks_exact(3).flat_map(|c| [c[0], c[1]]).collect();
                let chi = chi_square(&low);
                assert!(
                    chi < CHI2_LIMIT,
                    "party {i} from {from}: chi-square {chi} (packed)"
                );
                let top: Vec<u8> = packed.chunks_exact(3).map(|c| c[2]).collect();
                assert!(top.iter().all(|&t| t < 4), "packed values exceed 18 bits");
                let ones = top.iter().filter(|&&t| t & 1 == 1).count() as f64 / top.len() as f64;
                assert!((ones - 0.5).abs() < 0.02, "bit 16 biased: {ones}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 6);
}
