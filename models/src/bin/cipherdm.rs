//! The `cipherdm` command-line tool.

use std::path::PathBuf;
use std::process::ExitCode;

use cipherdm_models::commands;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cipherdm",
    version,
    about = "Secure diffusion sampling with three-party computation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sample digits in plaintext (exact or with an approximation profile) to a PNG grid.
    PlainSample {
        /// `tiny` (digits 0/1) or `mnist` (0–9).
        #[arg(long, default_value = "mnist")]
        model: String,
        /// Digits to draw, comma-separated (one sample each).
        #[arg(long, default_value = "0,1,2,3,4,5,6,7,8,9")]
        labels: String,
        /// `exact`, `cipherdm`, `precise`, `loose` or `accurate`.
        #[arg(long, default_value = "exact")]
        profile: String,
        /// Score-guidance η (0: off).
        #[arg(long, default_value_t = 0.0)]
        guidance: f64,
        /// DDIM steps.
        #[arg(long, default_value_t = 50)]
        steps: usize,
        /// Seed of the initial noise.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output PNG.
        #[arg(long, default_value = "plain-sample.png")]
        out: PathBuf,
        /// Weights instead of the shipped ones: a .safetensors file (tiny) or a
        /// diffusers folder (mnist).
        #[arg(long)]
        weights: Option<PathBuf>,
    },
    /// Train a model on the shipped MNIST (needs `--features train`).
    Train {
        /// `tiny`, `mnist` or `classifier`.
        #[arg(long)]
        model: String,
        /// Optimiser steps (default per model).
        #[arg(long)]
        steps: Option<usize>,
        /// Batch size.
        #[arg(long, default_value_t = 32)]
        batch: usize,
        /// Learning rate (default per model).
        #[arg(long)]
        lr: Option<f64>,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output: a .safetensors file (tiny, classifier) or a diffusers folder (mnist);
        /// default: the shipped location under models/weights.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue from these weights instead of a fresh initialisation (diffusion models).
        #[arg(long)]
        init: Option<PathBuf>,
    },
    /// Test-set accuracy of the shipped classifier.
    EvalClassifier,
    /// Regenerate docs/RESULTS.md (approximation-quality table and PNG grids).
    Results {
        /// Samples per row.
        #[arg(long, default_value_t = 500)]
        samples: usize,
        /// Which models: `tiny`, `mnist` or `both`.
        #[arg(long, default_value = "both")]
        models: String,
        /// Output folder (RESULTS.md and PNGs).
        #[arg(long, default_value = "docs")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::PlainSample {
            model,
            labels,
            profile,
            guidance,
            steps,
            seed,
            out,
            weights,
        } => commands::plain_sample(
            &model,
            &labels,
            &profile,
            guidance,
            steps,
            seed,
            &out,
            weights.as_deref(),
        ),
        Command::Train {
            model,
            steps,
            batch,
            lr,
            seed,
            out,
            init,
        } => commands::train(&model, steps, batch, lr, seed, out, init),
        Command::EvalClassifier => commands::eval_classifier(),
        Command::Results {
            samples,
            models,
            out,
        } => commands::results(samples, &models, &out),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
