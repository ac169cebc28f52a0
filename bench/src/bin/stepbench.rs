//! `stepbench`: one secure U-Net forward (or a whole sample with `--steps N`), three
//! parties in one process over the memory transport. Prints a per-layer table (party
//! 0's time and rounds, bytes summed over the three parties), the totals, and a last,
//! machine-readable line:
//! `total,<seconds>,<bytes summed over parties>,<rounds>,<peak RSS bytes per party>`
//! (peak RSS of the whole process divided by three: the parties share one process).

use std::process::ExitCode;
use std::time::Instant;

use cipherdm_kernel::FixedPoint;
use cipherdm_kernel::exec::{LayerRecord, merge_records};
use cipherdm_models::ModelError;
use cipherdm_models::cli::{parse_profile, peak_rss_bytes};
use cipherdm_models::commands::shipped_model;
use cipherdm_models::schedule::{DdimConfig, initial_noise};
use cipherdm_models::secure::backend::public;
use cipherdm_models::secure::session::{owner_weight_shares, user_label_shares};
use cipherdm_models::secure::{
    GuidanceRequest, PartyWeights, SampleRequest, Sampler, SecureBackend, sample_in_process,
};
use cipherdm_transport_mem::{MemConfig, run3_with};
use clap::Parser;
use rand_chacha::ChaCha12Rng;
use rand_core::SeedableRng;

#[derive(Parser)]
#[command(about = "Secure U-Net forward / sample cost, per layer")]
struct Args {
    /// `tiny` or `mnist`.
    #[arg(long, default_value = "tiny")]
    model: String,
    /// Approximation profile.
    #[arg(long, default_value = "cipherdm")]
    approx: String,
    /// 0: one forward; N: a whole N-step DDIM sample (with score guidance η = 0.1).
    #[arg(long, default_value_t = 0)]
    steps: usize,
    /// Batch size.
    #[arg(long, default_value_t = 1)]
    batch: usize,
}

fn main() -> ExitCode {
    cipherdm_models::cli::tune_allocator();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(a: Args) -> Result<(), ModelError> {
    let (model, weights) = shipped_model(&a.model)?;
    let profile = parse_profile(&a.approx)?;
    let fixed = FixedPoint::default();
    let mut rng = ChaCha12Rng::seed_from_u64(1);
    let sets = owner_weight_shares(&model, &weights, fixed, &mut rng)?;
    let labels: Vec<usize> = (0..a.batch).map(|i| i % model.classes()).collect();
    let cfg = MemConfig::default();
    let start = Instant::now();
    let mut online: Option<f64> = None;
    let (layers, bytes, rounds) = if a.steps == 0 {
        let label_shares = user_label_shares(&model, &labels, fixed, &mut rng)?;
        let [c, h, w] = model.image_shape();
        let x = initial_noise(0, vec![a.batch, c, h, w]);
        let [s0, s1, s2] = sets;
        let [l0, l1, l2] = label_shares;
        let out = run3_with(&cfg, [(s0, l0), (s1, l1), (s2, l2)], |p, (ws, l)| {
            let run = || -> Result<(Vec<LayerRecord>, u64, u64), ModelError> {
                let xs = public(p, x.data(), x.shape())?;
                let mut b = SecureBackend::new(p, &model.graph, ws, profile)?;
                b.forward(&model, xs, 501, l)?;
                let records = b.take_records();
                let c = *p.costs().total();
                Ok((records, c.bytes_total(), c.rounds))
            };
            Ok(run())
        });
        let mut parts = Vec::new();
        for r in out {
            parts.push(r.map_err(ModelError::from)??);
        }
        let bytes: u64 = parts.iter().map(|p| p.1).sum();
        let rounds = parts.iter().map(|p| p.2).max().unwrap_or(0);
        // Per-layer bytes summed over the parties; rounds and time are party 0's.
        let mut layers = parts[0].0.clone();
        for other in &parts[1..] {
            for (l, o) in layers.iter_mut().zip(&other.0) {
                let rounds = l.cost.rounds;
                l.cost += o.cost;
                l.cost.rounds = rounds;
            }
        }
        (layers, bytes, rounds)
    } else {
        let req = SampleRequest {
            model: model.clone(),
            profile,
            labels,
            sampler: Sampler::Ddim(DdimConfig {
                steps: a.steps,
                ..DdimConfig::cipherdm()
            }),
            guidance: GuidanceRequest::Score(0.1),
            seed: 0,
        };
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
    println!(
        "{:<44} {:<16} {:<20} {:>9} {:>13} {:>7}",
        "layer", "op", "shape", "ms", "bytes", "rounds"
    );
    let merged = merge_records(&layers);
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
    Ok(())
}
