//! `cipherdm train`, `eval-classifier`, `evaluate` and `results`: training and
//! measuring the shipped models.

use std::path::{Path, PathBuf};

use cipherdm_models::classifier::Classifier;
use cipherdm_models::guidance::parse_guidance;
use cipherdm_models::plain::Nonlinearity;
use cipherdm_models::shipped;

use crate::error::CliError;

/// Where `cipherdm train` writes when `--out` is not given: the shipped weights' folder
/// of a checkout, relative to the current directory.
pub const DEFAULT_WEIGHTS_DIR: &str = "models/weights";

/// `cipherdm eval-classifier`: test-set accuracy of the shipped classifier.
pub fn eval_classifier() -> Result<(), CliError> {
    let acc = Classifier::shipped()?.test_accuracy()?;
    println!("classifier test accuracy: {:.2} %", 100.0 * acc);
    Ok(())
}

/// The options of `cipherdm train`.
#[derive(Clone, Debug, Default)]
pub struct TrainOptions {
    /// Optimiser steps (default per model).
    pub steps: Option<usize>,
    /// Batch size.
    pub batch: usize,
    /// Peak learning rate (default per model).
    pub lr: Option<f64>,
    /// Seed of initialisation, batches, timesteps and noise.
    pub seed: u64,
    /// Output file or folder (default: the shipped location under [`DEFAULT_WEIGHTS_DIR`]).
    pub out: Option<PathBuf>,
    /// Weights to continue from.
    pub init: Option<PathBuf>,
    /// Weigh every timestep's diffusion loss equally instead of min-SNR-5.
    pub uniform_loss: bool,
}

/// `cipherdm train` (needs the `train` feature).
pub fn train(model: &str, options: TrainOptions) -> Result<(), CliError> {
    #[cfg(feature = "train")]
    {
        let TrainOptions {
            steps,
            batch,
            lr,
            seed,
            out,
            init,
            uniform_loss,
        } = options;
        use cipherdm_models::classifier;
        use cipherdm_models::mnist::{Mnist, Split};
        use cipherdm_models::model::Model;
        use cipherdm_models::train::{TrainConfig, train_classifier, train_diffusion};
        use cipherdm_models::unet2d;
        use cipherdm_models::weights::Weights;
        let default = |name: &str| Path::new(DEFAULT_WEIGHTS_DIR).join(name);
        let start = std::time::Instant::now();
        let data = Mnist::load(Split::Train)?;
        let cfg = |default_steps: usize, default_lr: f64| TrainConfig {
            steps: steps.unwrap_or(default_steps),
            batch,
            lr: lr.unwrap_or(default_lr),
            ema: 0.999,
            seed,
            checkpoint_every: 200,
            log_every: if steps.is_some_and(|s| s < 1000) {
                10
            } else {
                100
            },
            min_snr_gamma: (!uniform_loss).then_some(cipherdm_models::train::MIN_SNR_GAMMA),
        };
        match model {
            "tiny" | "tiny-unaliased" => {
                let m = shipped::architecture(model)?;
                let init = init.map(|p| Weights::load(&m.graph, p)).transpose()?;
                let out = out.unwrap_or_else(|| default(&format!("cipherdm-{model}.safetensors")));
                let mut save = |step: usize, w: &Weights<f32>| {
                    eprintln!("checkpoint at step {step}: {}", out.display());
                    w.save(&m.graph, &out)
                };
                let data = data.filter(&[0, 1]);
                let w = train_diffusion(&m, &data, &cfg(3000, 1e-3), init.as_ref(), &mut save)?;
                w.save(&m.graph, &out)?;
                eprintln!(
                    "wrote {} after {:.0} s",
                    out.display(),
                    start.elapsed().as_secs_f64()
                );
            }
            "mnist" => {
                let config = unet2d::Config::mnist();
                let m = Model::unet2d(config.clone())?;
                let init = init.map(|p| m.load_weights(p)).transpose()?;
                let out = out.unwrap_or_else(|| default("mnist"));
                std::fs::create_dir_all(&out).map_err(|e| CliError::io(&out, e))?;
                config.save(&out)?;
                let file = out.join("diffusion_pytorch_model.safetensors");
                let mut save = |step: usize, w: &Weights<f32>| {
                    eprintln!("checkpoint at step {step}: {}", file.display());
                    w.save(&m.graph, &file)
                };
                let w = train_diffusion(&m, &data, &cfg(1800, 7e-4), init.as_ref(), &mut save)?;
                w.save(&m.graph, out.join("diffusion_pytorch_model.safetensors"))?;
                eprintln!(
                    "wrote {} after {:.0} s",
                    out.display(),
                    start.elapsed().as_secs_f64()
                );
            }
            "classifier" => {
                let g = classifier::graph(true)?;
                let w = train_classifier(&g, &data, &cfg(6000, 2e-3))?;
                let out = out.unwrap_or_else(|| default("classifier.safetensors"));
                w.save(&g, &out)?;
                eprintln!(
                    "wrote {} after {:.0} s",
                    out.display(),
                    start.elapsed().as_secs_f64()
                );
            }
            other => {
                return Err(CliError::Usage(format!(
                    "unknown model `{other}` (tiny, tiny-unaliased, mnist, classifier)"
                )));
            }
        }
        Ok(())
    }
    #[cfg(not(feature = "train"))]
    {
        let _ = (model, options);
        Err(CliError::Usage(
            "this build has no training backend: rebuild with `--features train`".into(),
        ))
    }
}

/// `cipherdm evaluate`: samples `samples` digits from `model` (shipped weights or
/// `weights`) with 50-step DDIM under `profile`, score-guided with strength `eta`, and
/// prints their accuracy, macro F1 and classifier-FD as `cipherdm results` computes them;
/// writes the first 50 as a grid when `png` is given.
pub fn evaluate(
    model: &str,
    weights: Option<&Path>,
    samples: usize,
    profile: &str,
    guidance: &str,
    steps: usize,
    png: Option<&Path>,
) -> Result<(), CliError> {
    let score = parse_guidance(guidance)?;
    if steps == 0 || steps > 1000 {
        return Err(CliError::Usage(format!("--steps {steps}: 1 to 1000")));
    }
    let nonlinearity: Nonlinearity = profile.parse()?;
    let (m, w) = shipped::load(model, weights)?;
    let mut classifier = Classifier::shipped()?;
    let mut study = cipherdm_models::results::Study::new(&m, &w, samples, &mut classifier)?;
    let (row, x0) = study.row_with_steps(profile, nonlinearity, score, steps)?;
    let g = score.map_or("no guidance".into(), |g| g.to_string());
    println!(
        "{model} {profile} {g} {steps} steps: accuracy {:.3}  F1 {:.3}  classifier-FD {:.2}  ({samples} samples, {:.0} s)",
        row.accuracy, row.f1, row.frechet, row.seconds
    );
    if let Some(png) = png {
        cipherdm_models::image::write_grid(png, &x0.batch_slice(0, samples.min(50))?, 10)?;
    }
    Ok(())
}

/// `cipherdm results`: defined in [`cipherdm_models::results`].
pub fn results(
    samples: usize,
    models: &str,
    out: &Path,
    tables: cipherdm_models::results::Tables,
) -> Result<(), CliError> {
    Ok(cipherdm_models::results::run(samples, models, out, tables)?)
}
