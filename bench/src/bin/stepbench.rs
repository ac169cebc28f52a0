//! `stepbench`: one secure U-Net forward (or a whole sample with `--steps N`), three
//! parties in one process over the memory transport. Prints a per-layer table (party
//! 0's time and rounds, bytes summed over the three parties), the totals, and a last,
//! machine-readable line:
//! `total,<seconds>,<bytes summed over parties>,<rounds>,<peak RSS bytes per party>`
//! (peak RSS of the whole process divided by three: the parties share one process).

use std::process::ExitCode;
use std::time::Instant;

use cipherdm_bench::sd::{TextStep, chunking_for, text_model, text_step};
use cipherdm_bench::{BenchError, Links, secure_forward, secure_forward_on};
use cipherdm_kernel::FixedPoint;
use cipherdm_kernel::approx::Profile;
use cipherdm_kernel::exec::merge_records;
use cipherdm_kernel::exec::{Chunking, LayerRecord, cost};
use cipherdm_kernel::graph::Graph;
use cipherdm_models::guidance::parse_guidance;
use cipherdm_models::host::{parse_bytes, peak_rss_bytes};
use cipherdm_models::schedule::DdimConfig;
use cipherdm_models::secure::session::owner_weight_shares;
use cipherdm_models::secure::{
    GuidanceRequest, PartyWeights, SampleRequest, Sampler, sample_in_process,
};
use cipherdm_models::shipped;
use cipherdm_models::unet2d_condition;
use cipherdm_transport_mem::{MemConfig, Network};
use clap::Parser;
use rand_chacha::ChaCha12Rng;
use rand_core::SeedableRng;

#[derive(Parser)]
#[command(about = "Secure U-Net forward / sample cost, per layer")]
struct Args {
    /// `tiny`, `tiny-unaliased`, `mnist`, `sd15` (Stable Diffusion 1.5's U-Net with
    /// randomly initialised weights dealt layer by layer and a secret 77-token prompt
    /// embedding; `--batch 2` adds the null prompt and classifier-free guidance), or a
    /// diffusers `UNet2DConditionModel` config.json (or its folder), run the same way.
    #[arg(long, default_value = "tiny")]
    model: String,
    /// Memory budget of the three parties together (e.g. `8GiB`), text-conditioned
    /// models: attention and activations run in chunks sized from it. Without it,
    /// every layer is one call.
    #[arg(long)]
    memory: Option<String>,
    /// Approximation profile.
    #[arg(long, default_value = "cipherdm")]
    approx: String,
    /// 0: one forward; N: a whole N-step DDIM sample (with `--guidance`).
    #[arg(long, default_value_t = 0)]
    steps: usize,
    /// Score guidance of a whole sample (`none`, `correction:γ[:t_min]`, `paper:η[:weight]`);
    /// every member costs the servers the same.
    #[arg(long, default_value_t = cipherdm_models::guidance::ScoreGuidance::DEFAULT.to_string())]
    guidance: String,
    /// Batch size.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Simulated network: `none`, `lan` (3 Gbps, 0.3 ms RTT) or `wan` (400 Mbps, 4 ms
    /// RTT), the settings of "Secure Inference for Diffusion Models via Unconditional
    /// Scores" (Song et al.). With one forward, also prints the time model's prediction.
    #[arg(long, default_value = "none")]
    net: String,
    /// Links of a single forward: `mem`, `tcp` (loopback, encrypted) or `tcp-plain`
    /// (loopback without encryption). A whole sample over TCP is `cipherdm client sample`.
    #[arg(long, default_value = "mem")]
    transport: String,
}

fn main() -> ExitCode {
    cipherdm_models::host::tune_allocator();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(a: Args) -> Result<(), BenchError> {
    let profile: cipherdm_kernel::approx::Profile = a
        .approx
        .parse()
        .map_err(|e| BenchError::Usage(format!("--approx {}: {e}", a.approx)))?;
    let chunking = match &a.memory {
        Some(m) => chunking_for(parse_bytes(m)?),
        None => Chunking::NONE,
    };
    if let Some((graph, cfg)) = text_model(&a.model, cipherdm_models::sd15::TOKENS)? {
        return text_step_bench(&a, &graph, &cfg, profile, chunking);
    }
    if a.memory.is_some() {
        return Err(BenchError::Usage(
            "--memory applies to text-conditioned models (the shipped models fit any budget)"
                .into(),
        ));
    }
    let (model, weights) = shipped::model(&a.model)?;
    let network = match a.net.as_str() {
        "none" => None,
        "lan" => Some(Network::lan()),
        "wan" => Some(Network::wan()),
        other => {
            return Err(BenchError::Usage(format!(
                "unknown network `{other}` (none, lan, wan)"
            )));
        }
    };
    if a.transport != "mem" && (a.steps > 0 || network.is_some()) {
        return Err(BenchError::Usage(
            "--transport tcp measures one forward without --net; a whole sample over TCP is `cipherdm client sample`".into(),
        ));
    }
    let labels: Vec<usize> = (0..a.batch).map(|i| i % model.classes()).collect();
    let cfg = MemConfig {
        network,
        ..MemConfig::default()
    };
    let start = Instant::now();
    let mut online: Option<f64> = None;
    let (layers, bytes, rounds) = if a.steps == 0 {
        if let Some(net) = network {
            // The model's prediction needs the compute time: one run without the network.
            let plain = secure_forward(&model, &weights, profile, a.batch, &MemConfig::default())?;
            let f = secure_forward(&model, &weights, profile, a.batch, &cfg)?;
            let predicted = net.predict(plain.elapsed, f.rounds(), f.max_link_bytes());
            println!(
                "network {}: measured {:.3} s, model {:.3} s (compute {:.3} s + {} rounds × {:?} + {} B / {:.0} MB/s)",
                a.net,
                f.elapsed.as_secs_f64(),
                predicted.as_secs_f64(),
                plain.elapsed.as_secs_f64(),
                f.rounds(),
                net.latency,
                f.max_link_bytes(),
                net.bandwidth / 1e6
            );
            (f.layers.clone(), f.bytes(), f.rounds())
        } else {
            let links = Links::parse(&a.transport, &cfg)?;
            let f = secure_forward_on(&model, &weights, profile, a.batch, links)?;
            (f.layers.clone(), f.bytes(), f.rounds())
        }
    } else {
        let req = SampleRequest {
            model: model.clone(),
            profile,
            labels,
            sampler: Sampler::Ddim(DdimConfig {
                steps: a.steps,
                ..DdimConfig::cipherdm()
            }),
            guidance: match parse_guidance(&a.guidance)? {
                Some(g) => GuidanceRequest::Score(g),
                None => GuidanceRequest::None,
            },
            seed: 0,
        };
        let mut rng = ChaCha12Rng::seed_from_u64(1);
        let sets = owner_weight_shares(&model, &weights, FixedPoint::default(), &mut rng)?;
        let out = sample_in_process(
            &req,
            PartyWeights::Memory(Box::new(sets)),
            Some(&weights),
            &cfg,
            &|_| {},
        )?;
        online = Some(out.wall.as_secs_f64());
        let bytes = out.costs.iter().map(|c| c.bytes_total()).sum();
        let rounds = out.costs.iter().map(|c| c.rounds).max().unwrap_or(0);
        // `layers` are party 0's: scale its bytes to the three parties' sum (the protocols
        // rotate their lead, so the parties' traffic is balanced).
        let mut layers = out.layers;
        for l in &mut layers {
            for b in &mut l.cost.bytes_sent {
                *b *= 3;
            }
        }
        (layers, bytes, rounds)
    };
    let secs = start.elapsed().as_secs_f64();
    report(&a, &layers, secs, bytes, rounds, online);
    Ok(())
}

/// `--model sd15`: one secure step of the SD-1.5-sized U-Net, with the cost model's
/// estimate beside it.
fn text_step_bench(
    a: &Args,
    graph: &Graph,
    cfg: &unet2d_condition::Config,
    profile: Profile,
    chunking: Chunking,
) -> Result<(), BenchError> {
    if a.steps > 0 || a.net != "none" {
        return Err(BenchError::Usage(
            "--model sd15 runs one step without --net (see costmodel for network projections)"
                .into(),
        ));
    }
    let step = TextStep {
        graph,
        time: cfg.time_features(501.0),
        profile,
        batch: a.batch,
        guidance_scale: 7.5,
        chunking,
        seed: 1,
        progress: true,
    };
    let cfg = MemConfig::default();
    let links = Links::parse(&a.transport, &cfg)?;
    let f = FixedPoint::default().frac_bits();
    let est = cost::forward_chunked(graph, a.batch, profile, f, chunking)
        .map_err(cipherdm_models::ModelError::from)?;
    let (est_bytes, est_rounds) = est
        .iter()
        .fold((0, 0), |(b, r), l| (b + l.cost.bytes, r + l.cost.rounds));
    let start = Instant::now();
    let run = text_step(&step, links)?;
    let secs = start.elapsed().as_secs_f64();
    report(a, &run.layers, secs, run.bytes(), run.rounds(), None);
    let chunks = if chunking == Chunking::NONE {
        "every layer in one call".to_string()
    } else {
        format!(
            "attention chunks of at most {} scores, activation calls of at most {} elements",
            chunking.max_attention_scores, chunking.max_activation_elements
        )
    };
    println!(
        "cost model: {:.1} MB, {est_rounds} rounds (the network layers; at batch 2 the measured figures add the guidance combination); {chunks}",
        est_bytes as f64 / 1e6,
    );
    Ok(())
}

/// Prints the per-layer and per-op tables and the totals.
fn report(
    a: &Args,
    layers: &[LayerRecord],
    secs: f64,
    bytes: u64,
    rounds: u64,
    online: Option<f64>,
) {
    println!(
        "{:<44} {:<16} {:<20} {:>9} {:>13} {:>7}",
        "layer", "op", "shape", "ms", "bytes", "rounds"
    );
    let merged = merge_records(layers);
    for r in &merged {
        println!(
            "{:<44} {:<16} {:<20} {:>9.2} {:>13} {:>7}",
            r.name,
            r.op,
            format!("{:?}", r.shape),
            r.nanos as f64 / 1e6,
            r.cost.bytes_total(),
            r.cost.rounds
        );
    }
    // By op kind.
    let mut kinds: Vec<(&str, f64, u64, u64)> = Vec::new();
    for r in &merged {
        match kinds.iter_mut().find(|k| k.0 == r.op) {
            Some(k) => {
                k.1 += r.nanos as f64 / 1e6;
                k.2 += r.cost.bytes_total();
                k.3 += r.cost.rounds;
            }
            None => kinds.push((
                r.op,
                r.nanos as f64 / 1e6,
                r.cost.bytes_total(),
                r.cost.rounds,
            )),
        }
    }
    println!();
    println!("{:<16} {:>10} {:>14} {:>8}", "op", "ms", "bytes", "rounds");
    for k in &kinds {
        println!("{:<16} {:>10.1} {:>14} {:>8}", k.0, k.1, k.2, k.3);
    }
    let peak = peak_rss_bytes().unwrap_or(0) / 3;
    println!(
        "model {} profile {} batch {} steps {}: {secs:.3} s, {:.1} MB summed over parties, {rounds} rounds",
        a.model,
        a.approx,
        a.batch,
        a.steps.max(1),
        bytes as f64 / 1e6
    );
    if let Some(o) = online {
        println!(
            "servers' online time {o:.3} s (the rest is the owner's plaintext unconditional trajectory and the splits)"
        );
    }
    println!("total,{secs:.4},{bytes},{rounds},{peak}");
}
