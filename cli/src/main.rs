//! The `cipherdm` command-line tool.

use std::path::PathBuf;
use std::process::ExitCode;

use cipherdm_cli::{commands, remote, sample};
use cipherdm_models::guidance::ScoreGuidance;
use cipherdm_models::results::Tables;
use clap::{Args, Parser, Subcommand};

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

/// What to draw and how: shared by `sample`, `plain-sample` and `client sample`.
#[derive(Args)]
struct DrawArgs {
    /// The digit to draw.
    #[arg(long, conflicts_with = "labels")]
    label: Option<usize>,
    /// Several digits, comma-separated, one image each (default: every class).
    #[arg(long)]
    labels: Option<String>,
    /// Images per digit, drawn as one batch and written as a grid.
    #[arg(long, default_value_t = 1)]
    grid: usize,
    /// DDIM steps.
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// Approximation profile: `accurate`, `precise`, `loose`, `cipherdm` (plain-sample
    /// also takes `exact`).
    #[arg(long, alias = "profile", default_value = "accurate")]
    approx: String,
    /// Classifier-free guidance weight (instead of score guidance).
    #[arg(long)]
    cfg: Option<f64>,
    /// `ddim` or `ddpm` (1000 steps).
    #[arg(long, default_value = "ddim")]
    sampler: String,
    /// Public seed of the initial noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output PNG.
    #[arg(long, default_value = "digit.png")]
    out: PathBuf,
}

impl DrawArgs {
    fn options(
        self,
        model: String,
        guidance: String,
        weights: Option<PathBuf>,
        shares: Option<PathBuf>,
    ) -> sample::SampleOptions {
        sample::SampleOptions {
            labels: match (self.label, self.labels) {
                (Some(l), _) => l.to_string(),
                (None, Some(ls)) => ls,
                (None, None) => String::new(),
            },
            model,
            grid: self.grid,
            steps: self.steps,
            approx: self.approx,
            guidance,
            cfg: self.cfg,
            sampler: self.sampler,
            seed: self.seed,
            out: self.out,
            weights,
            shares,
        }
    }
}

/// Options of `sample` and `plain-sample`.
#[derive(Args)]
struct SampleArgs {
    /// `tiny` (digits 0/1; CipherDM's U-Net), `tiny-unaliased` (the same with time features
    /// that do not alias) or `mnist` (0–9).
    #[arg(long, default_value = "mnist")]
    model: String,
    #[command(flatten)]
    draw: DrawArgs,
    /// Score guidance, computed by the model owner from the public noise:
    /// `correction:γ[:t_min]` (the error-cancelling correction on the steps with t ≥ t_min), `paper:η[:snr|beta|constant|capped]`
    /// (Song et al.'s unconditional-score guidance; a bare number η means `paper:η:snr`) or
    /// `none`. Default `correction:1:400` with DDIM, none with DDPM (which supports `--cfg` only).
    #[arg(long)]
    guidance: Option<String>,
    /// Weights instead of the shipped ones: a .safetensors file (tiny models) or a diffusers
    /// folder (mnist).
    #[arg(long)]
    weights: Option<PathBuf>,
}

impl SampleArgs {
    fn options(self, shares: Option<PathBuf>) -> sample::SampleOptions {
        let guidance = self.guidance.unwrap_or_else(|| {
            if self.draw.sampler == "ddim" {
                ScoreGuidance::DEFAULT.to_string()
            } else {
                "none".into()
            }
        });
        self.draw
            .options(self.model, guidance, self.weights, shares)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Sample securely: three servers (in this process, over the memory transport)
    /// evaluate the model on secret-shared weights and labels; only the user sees the
    /// image.
    Sample {
        #[command(flatten)]
        args: SampleArgs,
        /// Folder of share files from `share-model` (default: the owner splits the
        /// weights in memory with fresh randomness).
        #[arg(long)]
        shares: Option<PathBuf>,
    },
    /// Sample in plaintext (exact or with an approximation profile): the reference.
    PlainSample {
        #[command(flatten)]
        args: SampleArgs,
    },
    /// The model owner's tool: split weights into three share files, one per server.
    ShareModel {
        /// `tiny`, `tiny-unaliased` or `mnist`.
        #[arg(long, default_value = "mnist")]
        model: String,
        /// Weights instead of the shipped ones.
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Output folder (`<model>.p0.shares` … `<model>.p2.shares`).
        #[arg(long, default_value = "shares")]
        out: PathBuf,
    },
    /// The model owner's guidance shares for one deployment job: the per-step score-guidance
    /// tensors for the job's public noise seed, steps, batch, guidance and profile, one file
    /// per party (copy each into that party's guidance folder).
    ShareGuidance {
        /// `tiny`, `tiny-unaliased` or `mnist`.
        #[arg(long, default_value = "mnist")]
        model: String,
        /// Weights instead of the shipped ones.
        #[arg(long)]
        weights: Option<PathBuf>,
        /// The job's public noise seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// The job's DDIM steps.
        #[arg(long, default_value_t = 50)]
        steps: usize,
        /// The job's batch (labels × grid).
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// The guidance (`correction:γ[:t_min]` or `paper:η[:weight]`).
        #[arg(long, default_value_t = ScoreGuidance::DEFAULT.to_string())]
        guidance: String,
        /// The job's approximation profile.
        #[arg(long, default_value = "accurate")]
        approx: String,
        /// Output folder.
        #[arg(long, default_value = "guidance")]
        out: PathBuf,
    },
    /// Write a randomly initialised diffusers folder (config.json and
    /// diffusion_pytorch_model.safetensors, f32) from a diffusers U-Net config
    /// (`UNet2DConditionModel` or `UNet2DModel`): a stand-in for weights the project cannot
    /// ship, for cost runs. Every config field is honoured or refused by name.
    InitModel {
        /// A diffusers `config.json` (or the folder holding it).
        #[arg(long)]
        config: PathBuf,
        /// Seed of the initialisation.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// Train a model on the shipped MNIST (needs `--features train`).
    Train {
        /// `tiny`, `tiny-unaliased`, `mnist` or `classifier`.
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
        /// Output: a .safetensors file (tiny models, classifier) or a diffusers folder (mnist);
        /// default: the shipped location under models/weights.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue from these weights instead of a fresh initialisation (diffusion models).
        #[arg(long)]
        init: Option<PathBuf>,
        /// Weigh every timestep's ε-loss equally (the DDPM loss) instead of min-SNR-5
        /// (diffusion models).
        #[arg(long)]
        uniform_loss: bool,
    },
    /// Test-set accuracy of the shipped classifier.
    EvalClassifier,
    /// Make a static key pair for a party or a client: writes `<OUT>.key` (secret, mode
    /// 0600) and `<OUT>.pub`, and prints the public key for `deploy.toml`.
    Keygen {
        /// Path prefix of the key files.
        #[arg(long)]
        out: PathBuf,
    },
    /// Run one party of a deployment: serve clients' jobs until SIGTERM.
    Party {
        /// The deployment config.
        #[arg(long, default_value = "deploy.toml")]
        config: PathBuf,
        /// This party's id (0, 1 or 2).
        #[arg(long)]
        id: usize,
        /// Tests only: accept `insecure_seed` in the config, which makes every PRSS key
        /// public. Without this flag such a config is refused.
        #[arg(long)]
        allow_insecure_seed: bool,
    },
    /// The user's side of a deployment.
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// Sample and score one configuration (accuracy, F1, classifier-FD), e.g. to judge
    /// weights you trained: the numbers of one `results` row.
    Evaluate {
        /// `tiny`, `tiny-unaliased` or `mnist`.
        #[arg(long, default_value = "mnist")]
        model: String,
        /// Weights instead of the shipped ones (a file for the tiny models, a diffusers folder for mnist).
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Samples (labels cycle over the model's classes).
        #[arg(long, default_value_t = 100)]
        samples: usize,
        /// `exact` or an approximation profile.
        #[arg(long, default_value = "exact")]
        profile: String,
        /// Score guidance (as for `sample`: `none`, `correction:γ[:t_min]`, `paper:η[:weight]`).
        #[arg(long, default_value = "none")]
        guidance: String,
        /// DDIM steps (CipherDM's spacing).
        #[arg(long, default_value_t = 50)]
        steps: usize,
        /// Also write the first 50 samples as a PNG grid.
        #[arg(long)]
        out: Option<PathBuf>,
    },
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
        /// Also the score-guidance table on `mnist` (the guidance family under three
        /// profiles, and 8- and 4-step rows).
        #[arg(long)]
        guidance_table: bool,
        /// Also the binary-MNIST table on `tiny-unaliased` (the analogue of Song et al.'s
        /// Table 4, with the time and bytes of one secure 50-step sample per row).
        #[arg(long)]
        binary_table: bool,
        /// Guidance table from cached rows only: rows not computed yet are left out.
        #[arg(long)]
        cached_only: bool,
    },
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Sample on the deployment's three parties: share the labels, collect the three
    /// output shares, reconstruct, write the PNG.
    Sample {
        /// The deployment config.
        #[arg(long, default_value = "deploy.toml")]
        config: PathBuf,
        /// Which `[[client]]` (default: the only one).
        #[arg(long)]
        client: Option<String>,
        #[command(flatten)]
        draw: DrawArgs,
        /// Score guidance (`none`, `correction:γ[:t_min]`, `paper:η[:weight]`): the parties need
        /// the owner's guidance shares for this job (`cipherdm share-guidance` with the
        /// same seed, steps, batch, guidance and profile) in their guidance folders.
        #[arg(long, default_value = "none")]
        guidance: String,
        /// Longest wait for a party's next message, in seconds (covers queueing).
        #[arg(long, default_value_t = 600)]
        job_timeout: u64,
        /// Share the labels with a seeded RNG instead of fresh randomness: the servers'
        /// shares become predictable. For reproducibility tests only.
        #[arg(long, hide = true)]
        insecure_share_seed: Option<u64>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cipherdm_models::host::tune_allocator();
    let r = match cli.command {
        Command::Sample { args, shares } => sample::secure_sample(&args.options(shares)),
        Command::PlainSample { args } => sample::plain_sample(&args.options(None)),
        Command::ShareGuidance {
            model,
            weights,
            seed,
            steps,
            batch,
            guidance,
            approx,
            out,
        } => sample::share_guidance(
            &model,
            weights.as_deref(),
            &sample::GuidanceJob {
                seed,
                steps,
                batch,
                guidance,
                approx,
            },
            &out,
        ),
        Command::ShareModel {
            model,
            weights,
            out,
        } => sample::share_model(&model, weights.as_deref(), &out),
        Command::InitModel { config, seed, out } => {
            cipherdm_models::init::init_folder(&config, seed, &out)
                .map(|(class, params)| {
                    println!(
                        "wrote {} ({class}, {params} parameters, seed {seed})",
                        out.display()
                    );
                })
                .map_err(Into::into)
        }
        Command::Train {
            model,
            steps,
            batch,
            lr,
            seed,
            out,
            init,
            uniform_loss,
        } => commands::train(
            &model,
            commands::TrainOptions {
                steps,
                batch,
                lr,
                seed,
                out,
                init,
                uniform_loss,
            },
        ),
        Command::EvalClassifier => commands::eval_classifier(),
        Command::Keygen { out } => remote::keygen(&out),
        Command::Party {
            config,
            id,
            allow_insecure_seed,
        } => remote::party(&config, id, allow_insecure_seed),
        Command::Client {
            command:
                ClientCommand::Sample {
                    config,
                    client,
                    draw,
                    guidance,
                    job_timeout,
                    insecure_share_seed,
                },
        } => {
            let o = draw.options(String::new(), guidance, None, None);
            remote::client_sample(
                &o,
                &config,
                client.as_deref(),
                insecure_share_seed,
                std::time::Duration::from_secs(job_timeout.clamp(1, 86_400)),
            )
        }
        Command::Evaluate {
            model,
            weights,
            samples,
            profile,
            guidance,
            steps,
            out,
        } => commands::evaluate(
            &model,
            weights.as_deref(),
            samples,
            &profile,
            &guidance,
            steps,
            out.as_deref(),
        ),
        Command::Results {
            samples,
            models,
            out,
            guidance_table,
            binary_table,
            cached_only,
        } => commands::results(
            samples,
            &models,
            &out,
            Tables {
                guidance: guidance_table,
                binary: binary_table,
                cached_only,
            },
        ),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
