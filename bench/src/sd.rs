//! One secure step of a text-conditioned U-Net (Stable-Diffusion-shaped graphs: inputs
//! `x`, `time`, `context`), three parties in one process, weights dealt layer by layer
//! ([`DealtWeights`]), the user's latents and prompt embedding secret-shared, attention
//! in [`Chunking`]'s chunks; with batch 2, classifier-free guidance combines the
//! conditional and the null-prompt predictions on shares.

use std::time::{Duration, Instant};

use cipherdm_kernel::approx::Profile;
use cipherdm_kernel::cost::Cost;
use cipherdm_kernel::exec::{Chunking, LayerRecord, SecureBackend, monotonic_nanos, public_share};
use cipherdm_kernel::graph::Graph;
use cipherdm_kernel::protocols::linear_combination_fixed;
use cipherdm_kernel::{ArithShare, FixedPoint, Party, Shape, Transport};
use cipherdm_models::ModelError;
use cipherdm_models::init::DealtWeights;
use cipherdm_models::unet2d_condition;
use cipherdm_transport_mem::run3_with;
use cipherdm_transport_tcp::loopback;

use crate::{BenchError, Forward, Links, deal_fixed, normal};

/// What to run.
#[derive(Clone, Debug)]
pub struct TextStep<'g> {
    /// The U-Net graph (inputs `x` `(C, S, S)`, `time` `(F)`, `context` `(D, T, 1)`).
    pub graph: &'g Graph,
    /// Public time features of the step's timestep.
    pub time: Vec<f64>,
    /// Approximation profile.
    pub profile: Profile,
    /// 1: the conditional prediction; 2: conditional and null prompt, combined with
    /// classifier-free guidance of scale `guidance_scale`.
    pub batch: usize,
    /// Classifier-free guidance scale (batch 2).
    pub guidance_scale: f64,
    /// Attention chunks.
    pub chunking: Chunking,
    /// Seed of the dealt weights and of the user's inputs.
    pub seed: u64,
    /// Print a progress line per layer (party 0) to standard error.
    pub progress: bool,
}

/// A text-conditioned U-Net named on the command line: `sd15`, or a diffusers
/// `UNet2DConditionModel` config (`config.json` or its folder); `None` for other names.
/// The graph is built for `tokens` prompt tokens.
pub fn text_model(
    name: &str,
    tokens: usize,
) -> Result<Option<(Graph, unet2d_condition::Config)>, ModelError> {
    let cfg = if name == "sd15" {
        unet2d_condition::Config::sd15()
    } else if name.ends_with(".json") || std::path::Path::new(name).join("config.json").is_file() {
        unet2d_condition::Config::load(name)?
    } else {
        return Ok(None);
    };
    Ok(Some((unet2d_condition::graph(&cfg, tokens)?, cfg)))
}

/// Chunks for a memory budget of `bytes` for the three parties of one process: each
/// party gets a third, and a chunk's working set 70 % of that (the rest holds the live
/// activations, the skips and one layer's weights).
pub fn chunking_for(bytes: usize) -> Chunking {
    Chunking::for_working_memory(bytes / 3 / 10 * 7)
}

fn input_shape(g: &Graph, name: &str) -> Result<Vec<usize>, ModelError> {
    g.nodes
        .iter()
        .find(|n| matches!(&n.op, cipherdm_kernel::graph::Op::Input(i) if i == name))
        .map(|n| n.shape.clone())
        .ok_or_else(|| ModelError::Config(format!("the graph has no input `{name}`")))
}

type PartyOut = (Vec<LayerRecord>, Cost, Duration);

fn party_step<T: Transport>(
    p: &mut Party<T>,
    step: &TextStep<'_>,
    x: ArithShare<u64>,
    context: ArithShare<u64>,
) -> Result<PartyOut, ModelError> {
    let b = step.batch;
    let rows: Vec<f64> = (0..b).flat_map(|_| step.time.iter().copied()).collect();
    let time = public_share(p, &rows, &[b, step.time.len()])?;
    let c0 = *p.costs().total();
    let t0 = Instant::now();
    let me = p.id().index();
    let total = step.graph.nodes.len();
    let started = Instant::now();
    let mut backend = SecureBackend::new(
        p,
        step.graph,
        DealtWeights::new(step.graph, step.seed, me, FixedPoint::default()),
        step.profile,
    )?
    .with_clock(monotonic_nanos)
    .with_chunking(step.chunking);
    if step.progress && me == 0 {
        backend = backend.with_observer(Box::new(move |done, r| {
            eprint!(
                "\r[{:>5.1} %] {:>7.1} s  layer {done}/{total} {:<60}",
                100.0 * done as f64 / total as f64,
                started.elapsed().as_secs_f64(),
                r.name
            );
        }));
    }
    let eps = backend.run(
        step.graph,
        vec![("x", x), ("time", time), ("context", context)],
    )?;
    let mut records = backend.take_records();
    drop(backend);
    if b == 2 {
        // ε = ε_null + w·(ε_cond − ε_null), item 0 conditional, item 1 null.
        let half = eps.len() / 2;
        let (cond, null) = (eps.slice(0, half)?, eps.slice(half, half)?);
        let before = *p.costs().total();
        let start = Instant::now();
        let w = step.guidance_scale;
        let out = linear_combination_fixed(p, &[(w, &cond), (1.0 - w, &null)])?;
        records.push(LayerRecord {
            name: "classifier_free_guidance".into(),
            op: "guidance",
            shape: out.shape().dims().to_vec(),
            nanos: start.elapsed().as_nanos() as u64,
            cost: p.costs().total().since(&before),
        });
    }
    if step.progress && me == 0 {
        eprintln!();
    }
    Ok((records, p.costs().total().since(&c0), t0.elapsed()))
}

/// Runs one secure step over `links` and returns its per-layer records (bytes summed over
/// the parties) and costs.
pub fn text_step(step: &TextStep<'_>, links: Links<'_>) -> Result<Forward, BenchError> {
    let b = step.batch;
    if !(1..=2).contains(&b) {
        return Err(BenchError::Usage(format!(
            "--batch {b}: 1 (conditional) or 2 (classifier-free guidance)"
        )));
    }
    let mut xs = input_shape(step.graph, "x")?;
    let mut cs = input_shape(step.graph, "context")?;
    // The user's latents (the same for both items) and prompt embeddings.
    let one: usize = xs.iter().product();
    let mut latents = normal(one, step.seed ^ 0x5eed);
    let mut prompts = normal(cs.iter().product::<usize>() * b, step.seed ^ 0xc0de);
    if b == 2 {
        latents.extend_from_within(..);
    }
    prompts.iter_mut().for_each(|v| *v *= 0.5);
    xs.insert(0, b);
    cs.insert(0, b);
    let x = deal_fixed(
        &latents,
        Shape::new(&xs).map_err(ModelError::from)?,
        step.seed + 1,
    );
    let c = deal_fixed(
        &prompts,
        Shape::new(&cs).map_err(ModelError::from)?,
        step.seed + 2,
    );
    let [x0, x1, x2] = x;
    let [c0, c1, c2] = c;
    let inputs = [(x0, c0), (x1, c1), (x2, c2)];
    let mut parts = Vec::new();
    match links {
        Links::Mem(cfg) => {
            for r in run3_with(cfg, inputs, |p, (x, c)| Ok(party_step(p, step, x, c))) {
                parts.push(r.map_err(ModelError::from)??);
            }
        }
        Links::Tcp(mode) => {
            let cfg = crate::loopback_config(mode);
            for r in loopback::run3_with(&cfg, inputs, |p, (x, c)| Ok(party_step(p, step, x, c))) {
                parts.push(r??);
            }
        }
    }
    Ok(crate::combine_parts(parts))
}
