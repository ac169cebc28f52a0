//! PRSS correlations hold, and what a party receives during the protocols looks uniformly
//! random (so no share or secret travels in the clear), even when the secrets — and in
//! some tests the shares themselves — are extremely regular.
//!
//! The tests are statistical: Pearson chi-square statistics over 256 cells (255 degrees
//! of freedom) against [`CHI2_LIMIT`]. They look at what each party receives from each
//! peer, not at how many transport messages carry it (several messages to one peer in
//! one round may be merged), and every test also shows that its statistic does fire on
//! data that is not masked. Everything is seeded, so a run is reproducible.

mod common;

use cipherdm_kernel::protocols as pr;
use cipherdm_kernel::protocols::boolean::{self, BoolShare};
use cipherdm_kernel::prss::Prss;
use cipherdm_kernel::share::ArithShare;
use cipherdm_kernel::{FixedPoint, Party, PartyId, Shape, Transport, TransportError};
use cipherdm_transport_mem::{MemTransport, mesh};
use common::*;
use rand_core::{CryptoRng, Rng, TryCryptoRng, TryRng};
use std::convert::Infallible;
use std::time::Duration;

#[test]
fn prss_zero_shares_sum_to_zero_and_random_shares_are_consistent() {
    // Keys k_0, k_1, k_2; party i holds (k_i, k_{i+1}).
    let keys = [[1u8; 32], [2u8; 32], [3u8; 32]];
    let mut prss: Vec<Prss> = (0..3)
        .map(|i| Prss::from_keys(keys[i], keys[(i + 1) % 3], [9u8; 32]))
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

/// What one party received, message by message, with the sender.
type Received = Vec<(PartyId, Vec<u8>)>;

/// Elements per test vector.
const N: usize = 40_000;

/// `N` copies of the fixed-point encoding of `v`.
fn constant(v: f64) -> Vec<u64> {
    vec![FixedPoint::default().encode::<u64>(v).unwrap(); N]
}

/// Runs `op` on the three parties with recording transports, on a dealt sharing of
/// `values` (dealer seed `5 + seed`, PRSS entropy `entropy(party)`); returns, per party,
/// what it received during `op` (not during set-up) and what `op` returned. `op` may
/// clear `p.transport_mut().received` to record only its last part.
fn record_entropy<O, F, G, E>(values: &[u64], seed: u64, entropy: E, op: F) -> [(Received, O); 3]
where
    O: Send,
    F: Fn(&mut Party<Recording>, ArithShare<u64>) -> O + Sync,
    G: CryptoRng,
    E: Fn(PartyId) -> G + Sync,
{
    let fx = FixedPoint::default();
    let shares = deal(values, Shape::vector(values.len()), 5 + seed);
    let ts = mesh(Duration::from_secs(30), &[]);
    let (op, entropy) = (&op, &entropy);
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
                    let mut g = entropy(me);
                    let mut p = Party::setup(me, rec, fx, &mut g).unwrap();
                    p.transport_mut().received.clear();
                    let out = op(&mut p, x);
                    (p.into_transport().received, out)
                })
            })
            .collect();
        let mut it = hs.into_iter().map(|h| h.join().unwrap());
        [it.next().unwrap(), it.next().unwrap(), it.next().unwrap()]
    })
}

/// [`record_entropy`] with seeded PRSS entropy (`40 + seed + party`).
fn record_with<O, F>(values: &[u64], seed: u64, op: F) -> [(Received, O); 3]
where
    O: Send,
    F: Fn(&mut Party<Recording>, ArithShare<u64>) -> O + Sync,
{
    record_entropy(values, seed, |me| rng(40 + seed + me.index() as u64), op)
}

/// Set-up entropy whose every byte string is the party's block `K_i` repeated, so
/// that the test knows every PRSS key whatever order set-up draws its contributions
/// in: the pair `(i-1, i)` gets `K_{i-1} ⊕ K_i`, the common key `K_0 ⊕ K_1 ⊕ K_2`.
struct KnownEntropy([u8; 32]);

impl TryRng for KnownEntropy {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for (j, b) in dst.iter_mut().enumerate() {
            *b = self.0[j % 32];
        }
        Ok(())
    }
}

impl TryCryptoRng for KnownEntropy {}

/// The blocks `K_0, K_1, K_2` of [`KnownEntropy`].
const KNOWN_BLOCKS: [[u8; 32]; 3] = [[0x0b; 32], [0x16; 32], [0x21; 32]];

/// [`record_with`] on the highly regular secret "all equal to 1.0", discarding outputs.
fn record<F>(op: F) -> [Received; 3]
where
    F: Fn(&mut Party<Recording>, ArithShare<u64>) + Sync,
{
    record_with(&constant(1.0), 0, op).map(|(r, ())| r)
}

/// A sharing of the public `values` with components `(values, 0, 0)`: the shares are
/// as regular as the secret, so only the protocol's own masks can make messages uniform.
fn public_share(p: &Party<Recording>, values: &[u64]) -> ArithShare<u64> {
    ArithShare::from_public(p.id(), values, Shape::vector(values.len())).unwrap()
}

/// Everything received from `peer`, concatenated in arrival order.
fn from_peer(msgs: &Received, peer: PartyId) -> Vec<u8> {
    msgs.iter()
        .filter(|(from, _)| *from == peer)
        .flat_map(|(_, b)| b.iter().copied())
        .collect()
}

/// The distinct senders of `msgs`, in id order.
fn senders(msgs: &Received) -> Vec<PartyId> {
    let mut s: Vec<PartyId> = msgs.iter().map(|(from, _)| *from).collect();
    s.sort();
    s.dedup();
    s
}

fn histogram(bytes: &[u8]) -> [u64; 256] {
    let mut hist = [0u64; 256];
    for &b in bytes {
        hist[b as usize] += 1;
    }
    hist
}

/// Pearson chi-square statistic of a byte histogram against the uniform distribution.
fn chi_square(bytes: &[u8]) -> f64 {
    let e = bytes.len() as f64 / 256.0;
    histogram(bytes)
        .iter()
        .map(|&o| (o as f64 - e).powi(2) / e)
        .sum()
}

/// Two-sample chi-square statistic: do the byte histograms of `a` and `b` come from the
/// same distribution? 255 degrees of freedom when every cell is occupied.
fn two_sample_chi_square(a: &[u8], b: &[u8]) -> f64 {
    let (ha, hb) = (histogram(a), histogram(b));
    let (ka, kb) = (
        (b.len() as f64 / a.len() as f64).sqrt(),
        (a.len() as f64 / b.len() as f64).sqrt(),
    );
    ha.iter()
        .zip(&hb)
        .filter(|(x, y)| **x + **y > 0)
        .map(|(&x, &y)| (ka * x as f64 - kb * y as f64).powi(2) / (x + y) as f64)
        .sum()
}

/// 255 degrees of freedom: mean 255, sd 22.6. `P(chi2_255 > 400) = 1.7e-8`, the
/// false-alarm rate of one statistic on truly uniform bytes (the runs are seeded, so a
/// given build either always passes or always fails).
const CHI2_LIMIT: f64 = 400.0;

/// Fewest bytes a statistic is computed on: at least 50 expected per cell.
const MIN_SAMPLE: usize = 12_800;

fn assert_uniform(what: &str, bytes: &[u8]) {
    assert!(
        bytes.len() >= MIN_SAMPLE,
        "{what}: only {} bytes, too few for the test",
        bytes.len()
    );
    let chi = chi_square(bytes);
    assert!(chi < CHI2_LIMIT, "{what}: chi-square {chi}");
}

/// Uniform bytes overall and in each of the 8 byte positions of the 64-bit words
/// (ring elements or bit-sliced words), so that no byte of a word escapes its mask.
fn assert_uniform_words(what: &str, bytes: &[u8]) {
    assert_eq!(bytes.len() % 8, 0, "{what}: not whole 64-bit words");
    assert_uniform(what, bytes);
    for lane in 0..8 {
        let l: Vec<u8> = bytes.chunks_exact(8).map(|w| w[lane]).collect();
        assert_uniform(&format!("{what}, byte {lane} of each word"), &l);
    }
}

/// Checks every byte party `i` received, per peer, as 64-bit words; returns the total.
fn assert_all_words_uniform(what: &str, got: &[Received; 3]) -> usize {
    let mut total = 0;
    for (i, msgs) in got.iter().enumerate() {
        for peer in senders(msgs) {
            let bytes = from_peer(msgs, peer);
            assert_uniform_words(&format!("{what}: party {i} from {peer:?}"), &bytes);
            total += bytes.len();
        }
    }
    total
}

/// Statistics of the joint distribution of paired values `(a_j, b_j)` (one from each
/// peer): the 16×16 histogram of their low nibbles (256 cells), and the low bytes of
/// `a_j + b_j` and of `a_j - b_j`. All three are chi-square with 255 degrees of freedom
/// when the pair is jointly uniform.
fn joint_statistics(a: &[u64], b: &[u64]) -> [f64; 3] {
    assert_eq!(a.len(), b.len());
    let cells: Vec<u8> = a
        .iter()
        .zip(b)
        .map(|(x, y)| (((x & 15) << 4) | (y & 15)) as u8)
        .collect();
    let sums: Vec<u8> = a
        .iter()
        .zip(b)
        .map(|(x, y)| x.wrapping_add(*y) as u8)
        .collect();
    let diffs: Vec<u8> = a
        .iter()
        .zip(b)
        .map(|(x, y)| x.wrapping_sub(*y) as u8)
        .collect();
    [chi_square(&cells), chi_square(&sums), chi_square(&diffs)]
}

fn assert_jointly_uniform(what: &str, a: &[u64], b: &[u64]) {
    assert!(a.len() >= MIN_SAMPLE, "{what}: too few pairs");
    let names = ["low-nibble pairs", "a + b", "a - b"];
    for (stat, name) in joint_statistics(a, b).iter().zip(names) {
        assert!(*stat < CHI2_LIMIT, "{what}: {name}: chi-square {stat}");
    }
}

/// The joint statistics do fire on pairs that are each uniform but related.
fn joint_statistics_can_fail() {
    let mut g = rng(99);
    let t: Vec<u64> = (0..N).map(|_| g.next_u64()).collect();
    let same = joint_statistics(&t, &t);
    assert!(same[0] > 50.0 * CHI2_LIMIT && same[2] > 50.0 * CHI2_LIMIT);
    let neg: Vec<u64> = t.iter().map(|v| v.wrapping_neg()).collect();
    assert!(joint_statistics(&t, &neg)[1] > 50.0 * CHI2_LIMIT);
    // A message masked by t and another revealing t plus a bit of the secret.
    let leak: Vec<u64> = t.iter().map(|v| v.wrapping_add(1)).collect();
    assert!(joint_statistics(&t, &leak)[2] > 50.0 * CHI2_LIMIT);
    // Each side alone is uniform: only the joint view catches the relation.
    assert!(chi_square(&t.iter().map(|v| *v as u8).collect::<Vec<_>>()) < CHI2_LIMIT);
}

/// Little-endian `u64`s of a byte string.
fn words(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Bytes of the fixed-point encodings of `v`, unmasked: what a leak would look like.
fn plain(v: f64) -> Vec<u8> {
    constant(v).iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Truncation by 18 bits sends full ring elements (8 bytes each) and packed 18-bit
/// values (3 bytes each). What one peer sent one party, split by the layouts the
/// protocol uses for `n` elements: `8n` (ring elements), `8n + 3n` (ring elements then
/// packed values) or `3n` (packed values). Returns the ring elements and the packed
/// values' low 16 bits (their top byte has 2 live bits, so it is checked apart).
fn trunc_layout(what: &str, bytes: &[u8], n: usize) -> (Vec<u64>, Vec<u64>, Vec<u8>) {
    let (full, packed): (&[u8], &[u8]) = match bytes.len() {
        l if l == n * 8 => (bytes, &[]),
        l if l == n * 11 => bytes.split_at(n * 8),
        l if l == n * 3 => (&[], bytes),
        l => panic!("{what}: unexpected {l} bytes for {n} elements"),
    };
    let low = packed
        .chunks_exact(3)
        .map(|c| u64::from(c[0]) | (u64::from(c[1]) << 8))
        .collect();
    let top = packed.chunks_exact(3).map(|c| c[2]).collect();
    (words(full), low, top)
}

/// Checks one peer's truncation bytes: ring elements uniform words, packed values'
/// low two bytes uniform, top byte within 18 bits and its bit 16 unbiased. Returns the
/// bytes that should be uniform.
fn assert_trunc_bytes(what: &str, bytes: &[u8], n: usize) -> Vec<u8> {
    let (full, low, top) = trunc_layout(what, bytes, n);
    let mut uniform: Vec<u8> = full.iter().flat_map(|w| w.to_le_bytes()).collect();
    if !full.is_empty() {
        assert_uniform_words(&format!("{what} (ring elements)"), &uniform);
    }
    if !low.is_empty() {
        let lb: Vec<u8> = low
            .iter()
            .flat_map(|v| [*v as u8, (*v >> 8) as u8])
            .collect();
        assert_uniform(&format!("{what} (packed, low bytes)"), &lb);
        assert!(
            top.iter().all(|&t| t < 4),
            "{what}: packed values exceed 18 bits"
        );
        let ones = top.iter().filter(|&&t| t & 1 == 1).count() as f64 / top.len() as f64;
        assert!((ones - 0.5).abs() < 0.02, "{what}: bit 16 biased: {ones}");
        uniform.extend(lb);
    }
    uniform
}

#[test]
fn messages_received_during_mul_are_uniform_bytes() {
    let got = record(|p, x| {
        pr::mul(p, &x, &x).unwrap();
    });
    let total = assert_all_words_uniform("mul", &got);
    assert_eq!(
        total,
        3 * N * 8,
        "each party receives one ring element per product"
    );
    // Public shares (x, 0, 0): the local products are constants (x² at party 0, 0
    // elsewhere), so only the PRSS zero sharing can make the messages uniform.
    let got = record(|p, _| {
        let x = public_share(p, &constant(1.0));
        pr::mul(p, &x, &x).unwrap();
    });
    assert_all_words_uniform("mul of public shares", &got);
    // The test can fail: the shares themselves are far from uniform bytes.
    let plain: Vec<u8> = (0..N as u64)
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
    let mut peers = 0;
    for (i, msgs) in got.iter().enumerate() {
        for from in senders(msgs) {
            // Each protocol's part is checked apart: `mul_fixed` then `trunc`, by length.
            for (k, (_, bytes)) in msgs.iter().filter(|(f, _)| *f == from).enumerate() {
                assert_trunc_bytes(&format!("party {i}, message {k} from {from:?}"), bytes, N);
            }
            peers += 1;
        }
    }
    assert!(peers >= 3);
}

#[test]
fn messages_received_during_truncation_of_a_public_value_are_uniform() {
    // Components (x, 0, 0): the pair's part of the split is B = 0, the lead's A = x.
    let got = record(|p, _| {
        let x = public_share(p, &constant(1.0));
        pr::trunc(p, &x, 18).unwrap();
    });
    let mut peers = 0;
    for (i, msgs) in got.iter().enumerate() {
        for from in senders(msgs) {
            assert_trunc_bytes(
                &format!("party {i} from {from:?}"),
                &from_peer(msgs, from),
                N,
            );
            peers += 1;
        }
    }
    assert!(
        peers >= 2,
        "the middle party hears both peers, the lead one"
    );
}

/// Truncation parties that hear from both peers: the lead's successor receives the
/// masked term `T0 - ρ` and `a' = msb(A') + s` from the lead and `t2 = λ - b·s` from the
/// third party; the lead receives `e1` and `e2` (masked by `μ`, `ν`) from the other two.
/// Every pair of received value vectors (ring elements and packed values, from one peer
/// or from both) must look jointly uniform. Returns how many parties were checked.
fn check_truncation_joint_view(got: &[Received; 3], what: &str) -> usize {
    let mut found = 0;
    for (i, msgs) in got.iter().enumerate() {
        let from = senders(msgs);
        if from.len() < 2 {
            continue;
        }
        let mut vectors: Vec<(String, Vec<u64>)> = Vec::new();
        for &f in &from {
            let (full, low, _) = trunc_layout(what, &from_peer(msgs, f), N);
            for (kind, v) in [("ring elements", full), ("packed values", low)] {
                if !v.is_empty() {
                    assert_eq!(v.len(), N, "{what}: party {i}: {kind} from {f:?}");
                    vectors.push((format!("{kind} from {f:?}"), v));
                }
            }
        }
        for (j, (name_a, a)) in vectors.iter().enumerate() {
            for (name_b, b) in &vectors[j + 1..] {
                let label = format!("{what}: party {i}, ({name_a}, {name_b})");
                assert_jointly_uniform(&label, a, b);
            }
        }
        found += 1;
    }
    assert!(found >= 1, "{what}: some party hears both peers");
    found
}

#[test]
fn truncation_joint_views_are_uniform() {
    let got = record(|p, x| {
        pr::trunc(p, &x, 18).unwrap();
    });
    check_truncation_joint_view(&got, "trunc, dealt shares");
    let got = record(|p, _| {
        let x = public_share(p, &constant(-3.5));
        pr::trunc(p, &x, 18).unwrap();
    });
    check_truncation_joint_view(&got, "trunc, public shares");
    // A product truncated from its additive sharing: the swap joins the pair's view.
    let got = record(|p, _| {
        let x = public_share(p, &constant(-3.5));
        pr::mul_fixed(p, &x, &x).unwrap();
    });
    check_truncation_joint_view(&got, "mul_fixed, public shares");
    joint_statistics_can_fail();
}

/// A one-plane boolean sharing of a public plane (`true` everywhere when `ones`):
/// components `(plane, 0, 0)`.
fn public_plane(me: PartyId, n: usize, ones: bool) -> BoolShare {
    let w = boolean::words_for(n);
    let zero = BoolShare::from_components(1, n, vec![0; w], vec![0; w]).unwrap();
    if ones { zero.not(me) } else { zero }
}

#[test]
fn messages_received_during_bit_injection_are_uniform_bytes() {
    // From a comparison's output (b = 0 everywhere, shares as the comparison leaves them).
    let got = record(|p, x| {
        let b = pr::msb(p, &x).unwrap();
        p.transport_mut().received.clear();
        pr::b2a::<u64, _>(p, &b, Shape::vector(N)).unwrap();
    });
    let total = assert_all_words_uniform("b2a of msb", &got);
    assert!(
        total >= 2 * N * 8,
        "b2a sends at least two ring elements per bit"
    );
    // From a public all-ones plane: every share component is constant.
    let got = record(|p, _| {
        let b = public_plane(p.id(), N, true);
        pr::b2a::<u64, _>(p, &b, Shape::vector(N)).unwrap();
    });
    assert_all_words_uniform("b2a of public ones", &got);
    // The statistic can fail: the injected bits themselves (0 or 1 in a ring element).
    let bits: Vec<u8> = (0..N as u64).flat_map(|j| (j & 1).to_le_bytes()).collect();
    assert!(chi_square(&bits) > 100.0 * CHI2_LIMIT);
}

/// In bit injection the party `L+2` receives `e = a - r` from the lead and
/// `±r - σ` from `L+1`: the same `r` in both, so only `σ` keeps the pair uniform.
fn check_bit_injection_joint_view(got: &[Received; 3], what: &str) {
    let mut found = 0;
    for (i, msgs) in got.iter().enumerate() {
        let from = senders(msgs);
        if from.len() != 2 {
            continue;
        }
        let a = words(&from_peer(msgs, from[0]));
        let b = words(&from_peer(msgs, from[1]));
        assert_eq!(
            (a.len(), b.len()),
            (N, N),
            "{what}: one ring element per bit"
        );
        assert_jointly_uniform(&format!("{what}: party {i}"), &a, &b);
        found += 1;
    }
    assert_eq!(found, 1, "{what}: exactly one party hears both peers");
}

#[test]
fn bit_injection_third_party_view_is_jointly_uniform() {
    for ones in [false, true] {
        let got = record(move |p, _| {
            let b = public_plane(p.id(), N, ones);
            pr::b2a::<u64, _>(p, &b, Shape::vector(N)).unwrap();
        });
        check_bit_injection_joint_view(&got, &format!("b2a of public {ones}"));
    }
    let got = record(|p, x| {
        let b = pr::msb(p, &x).unwrap();
        p.transport_mut().received.clear();
        pr::b2a::<u64, _>(p, &b, Shape::vector(N)).unwrap();
    });
    check_bit_injection_joint_view(&got, "b2a of msb");
    joint_statistics_can_fail();
}

#[test]
fn messages_received_during_comparisons_are_uniform_words() {
    // Full-width msb on dealt shares, and on shares as regular as the secret.
    let got = record(|p, x| {
        pr::msb(p, &x).unwrap();
    });
    let total = assert_all_words_uniform("msb", &got);
    assert!(
        total >= 3 * 63 * (N / 64) * 8,
        "at least the first AND level"
    );
    let got = record(|p, _| {
        let x = public_share(p, &constant(1.0));
        pr::msb(p, &x).unwrap();
    });
    assert_all_words_uniform("msb of public shares", &got);
    // The narrow comparison the approximations use (33 bits for f = 18).
    let got = record(|p, x| {
        pr::msb_bits(p, &x, 33).unwrap();
    });
    assert_all_words_uniform("msb_bits(33)", &got);
    let got = record(|p, _| {
        let x = public_share(p, &constant(-3.5));
        pr::msb_bits(p, &x, 33).unwrap();
    });
    assert_all_words_uniform("msb_bits(33) of public shares", &got);
    // The 5-round sign: block tables, dealt triples, Beaver openings, the random bit's
    // injection and the final opening shares.
    let got = record(|p, x| {
        pr::sign::negative(p, &x, 33).unwrap();
    });
    assert_all_words_uniform("negative(33)", &got);
    let got = record(|p, _| {
        let x = public_share(p, &constant(-3.5));
        pr::sign::negative(p, &x, 33).unwrap();
    });
    assert_all_words_uniform("negative(33) of public shares", &got);
    // The test can fail: the lead's unmasked bit planes of its local sum.
    let planes = boolean::slice_bits(&constant(1.0), 64);
    let bytes: Vec<u8> = planes.iter().flat_map(|w| w.to_le_bytes()).collect();
    assert!(chi_square(&bytes) > 100.0 * CHI2_LIMIT);
}

#[test]
fn messages_received_during_and_are_uniform_words() {
    // Public planes: every component is all-zero or all-one words, so the local AND
    // terms are constants and only the PRSS zero sharing can hide them.
    let n = 64 * N;
    for (x1, y1) in [(true, true), (true, false), (false, false)] {
        let got = record(move |p, _| {
            let x = public_plane(p.id(), n, x1);
            let y = public_plane(p.id(), n, y1);
            boolean::and(p, (x.this(), x.next()), (y.this(), y.next())).unwrap();
        });
        let total = assert_all_words_uniform(&format!("and({x1}, {y1})"), &got);
        assert_eq!(total, 3 * N * 8, "one word per 64 gates per party");
    }
    // The test can fail: all-one words.
    let ones = vec![0xffu8; N * 8];
    assert!(chi_square(&ones) > 100.0 * CHI2_LIMIT);
}

#[test]
fn messages_received_during_output_resharing_are_uniform_and_the_user_view_is_fresh() {
    // Public shares (x, 0, 0): handing the components out as they are would give the
    // user two zero components.
    let got = record_with(&constant(1.0), 0, |p, _| {
        let x = public_share(p, &constant(1.0));
        pr::output_to_client(p, &x).unwrap()
    });
    let received: [Received; 3] = [got[0].0.clone(), got[1].0.clone(), got[2].0.clone()];
    assert_all_words_uniform("output_to_client", &received);
    // The user's view: party i's pair is (z_i, z_{i+1}); consistent, z_0, z_1 uniform
    // and jointly uniform, and the sum is the output.
    let outs: Vec<&(Vec<u64>, Vec<u64>)> = got.iter().map(|(_, o)| o).collect();
    for (i, out) in outs.iter().enumerate() {
        assert_eq!(out.1, outs[(i + 1) % 3].0, "pairs must agree");
    }
    let (z0, z1, z2) = (&outs[0].0, &outs[1].0, &outs[2].0);
    for (name, z) in [("z_0", z0), ("z_1", z1), ("z_2", z2)] {
        let bytes: Vec<u8> = z.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_uniform_words(&format!("user's component {name}"), &bytes);
    }
    assert_jointly_uniform("user's (z_0, z_1)", z0, z1);
    let one = constant(1.0)[0];
    assert!(
        (0..N).all(|j| z0[j].wrapping_add(z1[j]).wrapping_add(z2[j]) == one),
        "the user reconstructs the output"
    );
    // The test can fail: the components as they were before re-randomising.
    let stale: Vec<u8> = constant(1.0)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .chain(vec![0u8; N * 8])
        .collect();
    assert!(chi_square(&stale) > 100.0 * CHI2_LIMIT);
}

/// The "uniform" bytes of everything each party received, per protocol layout.
fn uniform_bytes(got: &[Received; 3], truncation: bool) -> [Vec<u8>; 3] {
    let mut out: [Vec<u8>; 3] = Default::default();
    for (i, msgs) in got.iter().enumerate() {
        for (k, (from, bytes)) in msgs.iter().enumerate() {
            if truncation {
                let what = format!("party {i}, message {k} from {from:?}");
                out[i].extend(assert_trunc_bytes(&what, bytes, N));
            } else {
                out[i].extend_from_slice(bytes);
            }
        }
    }
    out
}

/// Runs `op` on the secret 1.0 and on -3.5 (independent shares and PRSS keys) and
/// checks, per party, that the received bytes of the two runs have the same histogram.
fn assert_same_view_for_two_inputs<F>(what: &str, truncation: bool, op: F)
where
    F: Fn(&mut Party<Recording>, ArithShare<u64>) + Sync,
{
    let a = record_with(&constant(1.0), 0, &op).map(|(r, ())| r);
    let b = record_with(&constant(-3.5), 1, &op).map(|(r, ())| r);
    let (ua, ub) = (uniform_bytes(&a, truncation), uniform_bytes(&b, truncation));
    let mut checked = 0;
    for (i, (ua, ub)) in ua.iter().zip(&ub).enumerate() {
        assert_eq!(ua.len(), ub.len(), "{what}: party {i} traffic differs");
        if ua.is_empty() {
            continue;
        }
        assert!(ua.len() >= MIN_SAMPLE, "{what}: party {i}: too few bytes");
        let chi = two_sample_chi_square(ua, ub);
        assert!(
            chi < CHI2_LIMIT,
            "{what}: party {i}: two-sample chi-square {chi}"
        );
        checked += 1;
    }
    assert!(
        checked >= 2,
        "{what}: at least two parties receive something"
    );
}

#[test]
fn two_secrets_give_indistinguishable_views() {
    assert_same_view_for_two_inputs("mul", false, |p, x| {
        pr::mul(p, &x, &x).unwrap();
    });
    assert_same_view_for_two_inputs("trunc", true, |p, x| {
        pr::trunc(p, &x, 18).unwrap();
    });
    assert_same_view_for_two_inputs("mul_fixed", true, |p, x| {
        pr::mul_fixed(p, &x, &x).unwrap();
    });
    assert_same_view_for_two_inputs("negative(33)", false, |p, x| {
        pr::sign::negative(p, &x, 33).unwrap();
    });
    assert_same_view_for_two_inputs("msb_bits(33)", false, |p, x| {
        pr::msb_bits(p, &x, 33).unwrap();
    });
    // 1.0 gives b = 0 everywhere, -3.5 gives b = 1.
    assert_same_view_for_two_inputs("b2a of msb", false, |p, x| {
        let b = pr::msb(p, &x).unwrap();
        p.transport_mut().received.clear();
        pr::b2a::<u64, _>(p, &b, Shape::vector(N)).unwrap();
    });
    // The statistic can fail: the two secrets' encodings, or the same masked stream
    // with a secret-dependent top byte.
    assert!(two_sample_chi_square(&plain(1.0), &plain(-3.5)) > 100.0 * CHI2_LIMIT);
    let mut g = rng(7);
    let masked: Vec<u8> = (0..N * 8).map(|_| g.next_u64() as u8).collect();
    let leaky: Vec<u8> = masked
        .iter()
        .enumerate()
        .map(|(j, &b)| if j % 8 == 7 { 0xff } else { b })
        .collect();
    assert!(two_sample_chi_square(&masked, &leaky) > 10.0 * CHI2_LIMIT);
}

#[test]
fn truncation_lead_message_is_masked_beyond_what_the_receiver_knows() {
    // The middle party knows ζ (common to all three) and its part B of the split, so a
    // histogram of C alone would look uniform even without ρ (ζ randomises A' = A + ζ).
    // Here the test knows ζ too (known keys) and removes what the lead computes from
    // A' = A + ζ: the rest, C + fixup - ((A + ζ + 2^62) >> 18), is -ρ plus a multiple of
    // 2^46 and must be uniform.
    let (m, k) = (18u32, 64u32);
    let mut g = rng(3);
    let vals: Vec<u64> = (0..N)
        .map(|_| (g.next_u64() % (1 << 24)).wrapping_sub(1 << 23))
        .collect();
    let got = record_entropy(
        &vals,
        0,
        |me| KnownEntropy(KNOWN_BLOCKS[me.index()]),
        |p, _| {
            // Components (x, 0, 0): B is x or 0 depending on who leads.
            let x = public_share(p, &vals);
            pr::trunc(p, &x, m).unwrap()
        },
    );
    let common: [u8; 32] =
        core::array::from_fn(|j| KNOWN_BLOCKS[0][j] ^ KNOWN_BLOCKS[1][j] ^ KNOWN_BLOCKS[2][j]);
    let zeta: Vec<u64> = Prss::from_keys([0; 32], [0; 32], common).draw_common_bits(N, 18);

    // Roles from the traffic: the lead sends ring elements and packed values.
    let mut roles = None;
    for (i, (msgs, _)) in got.iter().enumerate() {
        for from in senders(msgs) {
            let (c, _, _) = trunc_layout("trunc", &from_peer(msgs, from), N);
            if !c.is_empty() {
                roles = Some((from, PartyId::ALL[i], c));
            }
        }
    }
    let (lead, mid, c) = roles.expect("some party receives ring elements");
    assert_eq!(mid, lead.next(), "the lead sends C to its successor");
    // x = A + B with B = component lead+2 of (x, 0, 0).
    let b_is_x = lead.plus(2) == PartyId::P0;
    let split_b = |j: usize| if b_is_x { vals[j] } else { 0 };

    // Self-check that the test's ζ is the protocol's: the rounding bit of element j is
    // e = [(B - ζ) mod 2^m <= x mod 2^m] (it would match for about half the elements
    // with a wrong ζ).
    let y = open3(&[got[0].1.clone(), got[1].1.clone(), got[2].1.clone()]);
    let low = |v: u64| v & ((1 << m) - 1);
    let mut ones = 0usize;
    for j in 0..N {
        let e = y[j].wrapping_sub(((vals[j] as i64) >> m) as u64);
        let want = u64::from(low(split_b(j).wrapping_sub(zeta[j])) <= low(vals[j]));
        assert_eq!(
            e, want,
            "element {j}: rounding bit differs from the one ζ predicts (did set-up's key \
             derivation or the order of the common draws change?)"
        );
        ones += e as usize;
    }
    // With B = 0 and no ζ every bit would be 1 (x mod 2^m >= 0): ζ makes rounding
    // stochastic. Mean of P(e = 1) = (r + 1)/2^m over uniform r is about 1/2.
    let rate = ones as f64 / N as f64;
    assert!((rate - 0.5).abs() < 0.02, "rounding-up rate {rate}");

    let (offset, fixup) = (1u64 << (k - 2), (1u64 << (k - 2 - m)) - 1);
    let residual: Vec<u8> = (0..N)
        .flat_map(|j| {
            let a = vals[j].wrapping_sub(split_b(j)).wrapping_add(zeta[j]);
            let known = a.wrapping_add(offset) >> m;
            c[j].wrapping_add(fixup).wrapping_sub(known).to_le_bytes()
        })
        .collect();
    assert_uniform_words("C without its cleartext part", &residual);
    // The test can fail: without ρ the residual is a multiple of 2^46.
    let no_rho: Vec<u8> = (0..N)
        .flat_map(|_| {
            ((g.next_u64() % (1 << m)) << (k - m))
                .wrapping_neg()
                .to_le_bytes()
        })
        .collect();
    assert!(chi_square(&no_rho) > 100.0 * CHI2_LIMIT);
}
