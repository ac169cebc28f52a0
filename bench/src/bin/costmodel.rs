//! `costmodel`: bytes and rounds of one secure U-Net forward from the graph alone (no
//! arithmetic, no messages), per op kind and profile, and the communication time those
//! imply on the LAN and WAN of "Secure Inference for Diffusion Models via Unconditional
//! Scores" (Song et al.). `--model sd15` is Stable Diffusion 1.5's U-Net (measured with
//! `stepbench --model sd15`).

use std::process::ExitCode;
use std::time::Duration;

use cipherdm_bench::sd::{chunking_for, text_model};
use cipherdm_kernel::FixedPoint;
use cipherdm_kernel::approx::Profile;
use cipherdm_kernel::estimate::Estimate;
use cipherdm_kernel::exec::{Chunking, cost};
use cipherdm_models::ModelError;
use cipherdm_models::model::Model;
use cipherdm_models::unet2d::Config;
use cipherdm_transport_mem::Network;
use clap::Parser;

#[derive(Parser)]
#[command(about = "Cost model of a secure U-Net forward: bytes and rounds from the graph")]
struct Args {
    /// `tiny`, `mnist`, `sd15`, or a diffusers `UNet2DConditionModel` config.json (or
    /// its folder).
    #[arg(long, default_value = "sd15")]
    model: String,
    /// Memory budget of three parties in one process (e.g. `8GiB`), as `stepbench
    /// --memory`: attention and activations in chunks, more rounds.
    #[arg(long)]
    memory: Option<String>,
    /// Batch size.
    #[arg(long, default_value_t = 1)]
    batch: usize,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn gb(b: u64) -> f64 {
    b as f64 / 1e9
}

fn comm_time(net: &Network, e: &Estimate) -> Duration {
    // Traffic is balanced over the three parties and their two links each.
    net.predict(Duration::ZERO, e.rounds, e.bytes / 6)
}

fn run(a: Args) -> Result<(), ModelError> {
    let graph = match a.model.as_str() {
        "tiny" => Model::tiny()?.graph,
        "mnist" => Model::unet2d(Config::mnist())?.graph,
        other => match text_model(other, cipherdm_models::sd15::TOKENS)? {
            Some((graph, _)) => graph,
            None => {
                return Err(ModelError::Config(format!(
                    "unknown model `{other}` (tiny, mnist, sd15, or a UNet2DConditionModel config.json)"
                )));
            }
        },
    };
    let chunking = match &a.memory {
        Some(m) => chunking_for(cipherdm_models::host::parse_bytes(m)?),
        None => Chunking::NONE,
    };
    let f = FixedPoint::default().frac_bits();
    println!(
        "{} ({} parameters), batch {}: ESTIMATE from the cost model, one forward",
        a.model,
        graph.parameter_count(),
        a.batch
    );
    println!(
        "{:<10} {:>12} {:>9} {:>14} {:>14}",
        "profile", "GB (3 parties)", "rounds", "LAN comm s", "WAN comm s"
    );
    let mut by_op: Vec<(&'static str, Estimate)> = Vec::new();
    for profile in [
        Profile::CipherDm,
        Profile::Precise,
        Profile::Loose,
        Profile::Accurate,
    ] {
        let layers = match cost::forward_chunked(&graph, a.batch, profile, f, chunking) {
            Ok(l) => l,
            Err(e) => {
                println!(
                    "{:<10} n/a ({e}: the model needs GeLU)",
                    format!("{profile:?}")
                );
                continue;
            }
        };
        let total: Estimate = layers.iter().map(|l| l.cost).sum();
        println!(
            "{:<10} {:>12.1} {:>9} {:>14.1} {:>14.1}",
            format!("{profile:?}"),
            gb(total.bytes),
            total.rounds,
            comm_time(&Network::lan(), &total).as_secs_f64(),
            comm_time(&Network::wan(), &total).as_secs_f64()
        );
        if profile == Profile::Accurate {
            for l in &layers {
                match by_op.iter_mut().find(|o| o.0 == l.op) {
                    Some(o) => o.1 += l.cost,
                    None => by_op.push((l.op, l.cost)),
                }
            }
        }
    }
    println!("\nby op kind (Accurate):");
    for (op, e) in &by_op {
        println!("{op:<16} {:>12.2} GB {:>8} rounds", gb(e.bytes), e.rounds);
    }
    if a.model == "sd15" {
        println!("\nSong et al. measured CrypTen (2 parties), one SD step: 3,696 s and 1,122 GB");
    }
    println!(
        "communication time = rounds × one-way latency + bytes per link / bandwidth; compute is not included"
    );
    Ok(())
}
