//! Benchmark helpers for cipherdm: shared by the criterion benches in `benches/`.
//!
//! Inputs have the shapes and distributions of the SPU 0.9.5 and MP-SPDZ baseline ops
//! (docs/BENCHMARKS.md), drawn from a seeded RNG.

use std::time::{Duration, Instant};

pub mod sd;

use cipherdm_kernel::cost::Cost;
use cipherdm_kernel::share::{self, ArithShare};
use cipherdm_kernel::{Error, FixedPoint, Party, Shape};
use cipherdm_transport_mem::{MemConfig, MemTransport, run3_with};
use cipherdm_transport_tcp::loopback::{self, LoopbackConfig};
use cipherdm_transport_tcp::{LinkConfig, Mode, TcpTransport};
use rand_chacha::ChaCha12Rng;
use rand_core::{Rng, SeedableRng};

/// `n` samples of `N(0, 1)` (Box–Muller on a seeded ChaCha stream).
pub fn normal(n: usize, seed: u64) -> Vec<f64> {
    let mut g = ChaCha12Rng::seed_from_u64(seed);
    let mut u = || (g.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    (0..n)
        .map(|_| {
            let (a, b) = (u().max(f64::MIN_POSITIVE), u());
            (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
        })
        .collect()
}

/// A dealer's fixed-point sharing of `values` (benchmarks start from shared inputs, as
/// the baselines do).
pub fn deal_fixed(values: &[f64], shape: Shape, seed: u64) -> [ArithShare<u64>; 3] {
    let fx = FixedPoint::default();
    let enc: Vec<u64> = values
        .iter()
        .map(|&v| fx.encode(v).expect("bench inputs in range"))
        .collect();
    let mut g = ChaCha12Rng::seed_from_u64(seed);
    share::share_locally(&enc, shape, &mut g).expect("shape matches")
}

/// What one timed run measured.
pub struct Measured<Out> {
    /// Wall time of `iters` calls, from party 0's clock (set-up excluded).
    pub elapsed: Duration,
    /// Each party's cost over the timed calls.
    pub costs: [Cost; 3],
    /// Each party's last output.
    pub outputs: [Out; 3],
}

/// One party's timed calls: elapsed time, cost and last output.
type PartyTiming<Out> = (Duration, Cost, Out);

/// Calls `op` `iters` times on one party and times it.
fn time_party<T: cipherdm_kernel::Transport, In, Out>(
    p: &mut Party<T>,
    input: &In,
    iters: u64,
    op: &impl Fn(&mut Party<T>, &In) -> Result<Out, Error>,
) -> Result<PartyTiming<Out>, Error> {
    let c0 = *p.costs().total();
    let t0 = Instant::now();
    let mut out = op(p, input)?;
    for _ in 1..iters {
        out = op(p, input)?;
    }
    Ok((t0.elapsed(), p.costs().total().since(&c0), out))
}

/// The three parties' timings as one measurement (time from party 0's clock).
fn measured<Out, E: core::fmt::Debug>(res: [Result<PartyTiming<Out>, E>; 3]) -> Measured<Out> {
    let [a, b, c] = res.map(|r| r.expect("benchmark party failed"));
    Measured {
        elapsed: a.0,
        costs: [a.1, b.1, c.1],
        outputs: [a.2, b.2, c.2],
    }
}

/// Runs `op` `iters` times on each party's input, after the session set-up, and times it.
pub fn timed<In, Out, F>(inputs: [In; 3], iters: u64, op: F) -> Measured<Out>
where
    In: Send,
    Out: Send,
    F: Fn(&mut Party<MemTransport>, &In) -> Result<Out, Error> + Sync,
{
    let cfg = MemConfig {
        seed: Some(1),
        ..MemConfig::default()
    };
    measured(run3_with(&cfg, inputs, |p, input| {
        time_party(p, &input, iters, &op)
    }))
}

/// [`timed`] over loopback TCP: real sockets and the full link handshake, encrypted or
/// (to measure what encryption costs) plaintext.
pub fn timed_tcp<In, Out, F>(inputs: [In; 3], iters: u64, mode: Mode, op: F) -> Measured<Out>
where
    In: Send,
    Out: Send,
    F: Fn(&mut Party<TcpTransport>, &In) -> Result<Out, Error> + Sync,
{
    let cfg = loopback_config(mode);
    measured(loopback::run3_with(&cfg, inputs, |p, input| {
        Ok(time_party(p, &input, iters, &op)?)
    }))
}

/// `n` samples of `U(lo, hi)` from a seeded ChaCha stream.
pub fn uniform(n: usize, lo: f64, hi: f64, seed: u64) -> Vec<f64> {
    let mut g = ChaCha12Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| lo + (hi - lo) * ((g.next_u64() >> 11) as f64 / (1u64 << 53) as f64))
        .collect()
}

/// Total bytes per element over the three parties.
pub fn bytes_per_element(costs: &[Cost; 3], elements: usize) -> f64 {
    costs.iter().map(|c| c.bytes_total()).sum::<u64>() as f64 / elements as f64
}

/// Opens a result dealt by [`timed`] and returns the max abs error against `want`.
pub fn max_error(outputs: &[ArithShare<u64>; 3], want: &[f64]) -> f64 {
    let fx = FixedPoint::default();
    let z = share::reconstruct([&outputs[0], &outputs[1], &outputs[2]]).expect("consistent");
    z.iter()
        .zip(want)
        .map(|(a, b)| (fx.decode(*a) - b).abs())
        .fold(0.0, f64::max)
}

/// What one secure forward measured.
pub struct Forward {
    /// Party 0's per-layer records, with bytes summed over the three parties.
    pub layers: Vec<cipherdm_kernel::exec::LayerRecord>,
    /// Each party's total cost.
    pub costs: [Cost; 3],
    /// Wall time of the forward (after the session set-up and input sharing).
    pub elapsed: Duration,
}

impl Forward {
    /// Bytes summed over the parties.
    pub fn bytes(&self) -> u64 {
        self.costs.iter().map(Cost::bytes_total).sum()
    }

    /// Rounds (the largest count over the parties).
    pub fn rounds(&self) -> u64 {
        self.costs.iter().map(|c| c.rounds).max().unwrap_or(0)
    }

    /// The most bytes any party sent on one link.
    pub fn max_link_bytes(&self) -> u64 {
        self.costs
            .iter()
            .flat_map(|c| c.bytes_sent)
            .max()
            .unwrap_or(0)
    }
}

/// Where [`secure_forward_on`] runs its three parties.
#[derive(Clone, Copy, Debug)]
pub enum Links<'a> {
    /// The memory transport (optionally with a simulated network).
    Mem(&'a MemConfig),
    /// Loopback TCP with the full link handshake, encrypted or plaintext.
    Tcp(Mode),
}

impl<'a> Links<'a> {
    /// The links a `--transport` option names: `mem` (over `cfg`), `tcp` (encrypted) or
    /// `tcp-plain`.
    pub fn parse(name: &str, cfg: &'a MemConfig) -> Result<Self, BenchError> {
        match name {
            "mem" => Ok(Links::Mem(cfg)),
            "tcp" => Ok(Links::Tcp(Mode::Encrypted)),
            "tcp-plain" => Ok(Links::Tcp(Mode::Plaintext)),
            other => Err(BenchError::Usage(format!(
                "unknown transport `{other}` (mem, tcp, tcp-plain)"
            ))),
        }
    }
}

/// Loopback links in `mode` with the default fixed point and a fixed PRSS seed (benchmarks
/// compare runs, so their randomness is reproducible).
pub fn loopback_config(mode: Mode) -> LoopbackConfig {
    LoopbackConfig {
        link: LinkConfig {
            mode,
            ..LinkConfig::default()
        },
        fixed: FixedPoint::default(),
        seed: Some(1),
    }
}

/// Why a benchmark run failed: the model or its protocols, or (TCP) the loopback links.
#[derive(Debug)]
#[non_exhaustive]
pub enum BenchError {
    /// A model, weight or kernel error (a closed link during a forward included).
    Model(cipherdm_models::ModelError),
    /// The loopback links could not be set up.
    Loopback(loopback::LoopbackError),
    /// A bad option.
    Usage(String),
}

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BenchError::Model(e) => write!(f, "{e}"),
            BenchError::Loopback(e) => write!(f, "{e}"),
            BenchError::Usage(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for BenchError {}

impl From<cipherdm_models::ModelError> for BenchError {
    fn from(e: cipherdm_models::ModelError) -> Self {
        BenchError::Model(e)
    }
}

impl From<loopback::LoopbackError> for BenchError {
    fn from(e: loopback::LoopbackError) -> Self {
        BenchError::Loopback(e)
    }
}

/// One party's forward: records, cost and time after the set-up.
type PartyForward = (Vec<cipherdm_kernel::exec::LayerRecord>, Cost, Duration);

fn forward_party<T: cipherdm_kernel::Transport>(
    p: &mut Party<T>,
    model: &cipherdm_models::model::Model,
    x: &cipherdm_models::tensor::Tensor<f64>,
    ws: cipherdm_kernel::exec::MemoryWeights<u64>,
    labels: ArithShare<u64>,
    profile: cipherdm_kernel::approx::Profile,
) -> Result<PartyForward, cipherdm_models::ModelError> {
    use cipherdm_kernel::exec::{SecureBackend, monotonic_nanos, public_share};
    let xs = public_share(p, x.data(), x.shape())?;
    let c0 = *p.costs().total();
    let t0 = Instant::now();
    let mut b = SecureBackend::new(p, &model.graph, ws, profile)?.with_clock(monotonic_nanos);
    cipherdm_models::secure::forward(&mut b, model, xs, 501, labels)?;
    let records = b.take_records();
    Ok((records, p.costs().total().since(&c0), t0.elapsed()))
}

/// One secure forward of `model` at timestep 501 on a batch of `batch` images (labels
/// cycle through the classes), weights and labels freshly shared, over `cfg`.
pub fn secure_forward(
    model: &cipherdm_models::model::Model,
    weights: &cipherdm_models::Weights<f64>,
    profile: cipherdm_kernel::approx::Profile,
    batch: usize,
    cfg: &MemConfig,
) -> Result<Forward, BenchError> {
    secure_forward_on(model, weights, profile, batch, Links::Mem(cfg))
}

/// [`secure_forward`] over the chosen links.
pub fn secure_forward_on(
    model: &cipherdm_models::model::Model,
    weights: &cipherdm_models::Weights<f64>,
    profile: cipherdm_kernel::approx::Profile,
    batch: usize,
    links: Links<'_>,
) -> Result<Forward, BenchError> {
    use cipherdm_models::secure::session::{owner_weight_shares, user_label_shares};
    let fixed = match links {
        Links::Mem(cfg) => cfg.fixed,
        Links::Tcp(_) => FixedPoint::default(),
    };
    let mut rng = ChaCha12Rng::seed_from_u64(1);
    let sets = owner_weight_shares(model, weights, fixed, &mut rng)?;
    let labels: Vec<usize> = (0..batch).map(|i| i % model.classes()).collect();
    let label_shares = user_label_shares(model, &labels, fixed, &mut rng)?;
    let [c, h, w] = model.image_shape();
    let x = cipherdm_models::schedule::initial_noise(0, vec![batch, c, h, w]);
    let [s0, s1, s2] = sets;
    let [l0, l1, l2] = label_shares;
    let inputs = [(s0, l0), (s1, l1), (s2, l2)];
    let mut parts = Vec::new();
    match links {
        Links::Mem(cfg) => {
            let out = run3_with(cfg, inputs, |p, (ws, l)| {
                Ok(forward_party(p, model, &x, ws, l, profile))
            });
            for r in out {
                parts.push(r.map_err(cipherdm_models::ModelError::from)??);
            }
        }
        Links::Tcp(mode) => {
            let cfg = loopback_config(mode);
            let out = loopback::run3_with(&cfg, inputs, |p, (ws, l)| {
                Ok(forward_party(p, model, &x, ws, l, profile))
            });
            for r in out {
                parts.push(r??);
            }
        }
    }
    Ok(combine_parts(parts))
}

/// The three parties' records as one [`Forward`]: per-layer bytes summed over the
/// parties; rounds and time are party 0's.
fn combine_parts(parts: Vec<PartyForward>) -> Forward {
    let mut layers = parts[0].0.clone();
    for other in &parts[1..] {
        for (l, o) in layers.iter_mut().zip(&other.0) {
            let rounds = l.cost.rounds;
            l.cost += o.cost;
            l.cost.rounds = rounds;
        }
    }
    Forward {
        layers,
        costs: [parts[0].1, parts[1].1, parts[2].1],
        elapsed: parts.iter().map(|p| p.2).max().unwrap_or_default(),
    }
}
