//! The `cipherdm` tool's commands, as library functions (so tests can call them).

use std::path::{Path, PathBuf};

use cipherdm_kernel::approx::Profile;

use cipherdm_kernel::exec::run;
use crate::classifier;
use crate::error::ModelError;

use crate::mnist::{Mnist, Split};
use crate::model::{Model, PlainDenoiser};
use crate::plain::{Nonlinearity, PlainBackend};
use crate::schedule::{Condition, DdimConfig, Guidance, Schedule, ddim, initial_noise};
use crate::tensor::Tensor;
use crate::unet2d;
use crate::weights::Weights;

/// The folder of the weights the project ships (`models/weights`).
pub fn weights_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("weights")
}

/// Path of the shipped `cipherdm-tiny` weights.
pub fn tiny_path() -> PathBuf {
    weights_dir().join("cipherdm-tiny.safetensors")
}

/// Path of the shipped `mnist` diffusers folder.
pub fn mnist_dir() -> PathBuf {
    weights_dir().join("mnist")
}

/// Path of the shipped classifier weights.
pub fn classifier_path() -> PathBuf {
    weights_dir().join("classifier.safetensors")
}

/// A model's architecture by name (`tiny` or `mnist`), without weights: what a server
/// needs besides its share file.
pub fn model_architecture(name: &str) -> Result<Model, ModelError> {
    match name {
        "tiny" => Model::tiny(),
        // The architecture is compiled in, so a server binary needs no checkout.
        "mnist" => Model::unet2d(
            serde_json::from_str(include_str!("../weights/mnist/config.json"))
                .map_err(|e| ModelError::format("mnist config.json", e.to_string()))?,
        ),
        other => Err(ModelError::Config(format!(
            "unknown model `{other}` (tiny, mnist)"
        ))),
    }
}

/// A shipped diffusion model by name (`tiny` or `mnist`) with its weights.
pub fn shipped_model(name: &str) -> Result<(Model, Weights<f64>), ModelError> {
    load_model(name, None)
}

/// A diffusion model by name with weights from `path` (a safetensors file for `tiny`, a
/// diffusers folder for `mnist`), or the shipped weights when `path` is `None`.
pub fn load_model(name: &str, path: Option<&Path>) -> Result<(Model, Weights<f64>), ModelError> {
    match name {
        "tiny" => {
            let m = Model::tiny()?;
            let w = m.load_weights(path.map_or_else(tiny_path, Path::to_path_buf))?;
            Ok((m, w))
        }
        "mnist" => {
            let dir = path.map_or_else(mnist_dir, Path::to_path_buf);
            let m = Model::unet2d(unet2d::Config::load(&dir)?)?;
            let w = m.load_weights(&dir)?;
            Ok((m, w))
        }
        other => Err(ModelError::Config(format!(
            "unknown model `{other}` (tiny or mnist)"
        ))),
    }
}

/// Parses `exact` or a profile name.
pub fn parse_nonlinearity(s: &str) -> Result<Nonlinearity, ModelError> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "exact" => Nonlinearity::Exact,
        "cipherdm" => Nonlinearity::Approx(Profile::CipherDm),
        "precise" => Nonlinearity::Approx(Profile::Precise),
        "loose" => Nonlinearity::Approx(Profile::Loose),
        "accurate" => Nonlinearity::Approx(Profile::Accurate),
        other => {
            return Err(ModelError::Config(format!(
                "unknown profile `{other}` (exact, cipherdm, precise, loose, accurate)"
            )));
        }
    })
}

/// Parses a comma-separated list of labels, each below `classes`.
pub fn parse_labels(s: &str, classes: usize) -> Result<Vec<usize>, ModelError> {
    s.split(',')
        .map(|p| {
            let v: usize = p
                .trim()
                .parse()
                .map_err(|_| ModelError::Config(format!("label `{p}` is not a number")))?;
            if v >= classes {
                return Err(ModelError::Config(format!("label {v} out of 0..{classes}")));
            }
            Ok(v)
        })
        .collect()
}

/// Samples `labels` with DDIM in plaintext and writes a PNG grid; returns the samples.
#[allow(clippy::too_many_arguments)]
pub fn sample_plain(
    model: &Model,
    weights: &Weights<f64>,
    nonlinearity: Nonlinearity,
    labels: &[usize],
    guidance_eta: f64,
    steps: usize,
    seed: u64,
) -> Result<Tensor<f64>, ModelError> {
    let mut net = PlainDenoiser::new(model.clone(), weights.clone(), nonlinearity)?;
    let mut exact = PlainDenoiser::new(model.clone(), weights.clone(), Nonlinearity::Exact)?;
    let [c, h, w] = model.image_shape();
    let x_t = initial_noise(seed, vec![labels.len(), c, h, w]);
    let conds: Vec<Condition> = labels.iter().map(|&l| Condition::Class(l)).collect();
    let cfg = DdimConfig {
        steps,
        ..DdimConfig::cipherdm()
    };
    let guidance = if guidance_eta > 0.0 {
        Guidance::Score {
            eta: guidance_eta,
            reference: &mut exact,
        }
    } else {
        Guidance::None
    };
    ddim(
        &Schedule::cipherdm(),
        &cfg,
        &mut net,
        x_t,
        &conds,
        guidance,
        seed,
    )
}

/// The shipped classifier's predictions and penultimate features for a batch of images
/// in `[-1, 1]`.
pub struct Classifier {
    logits: PlainBackend<f32>,
    features: PlainBackend<f32>,
    head: cipherdm_kernel::graph::Graph,
    body: cipherdm_kernel::graph::Graph,
}

impl Classifier {
    /// Loads the shipped classifier.
    pub fn shipped() -> Result<Self, ModelError> {
        let head = classifier::graph(true)?;
        let body = classifier::graph(false)?;
        let w: Weights<f32> = Weights::load(&head, classifier_path())?;
        let mut wb = Weights::default();
        for spec in &body.weights {
            wb.insert(spec.name.clone(), w.get(&spec.name)?.clone());
        }
        Ok(Self {
            logits: PlainBackend::new(w, Nonlinearity::Exact),
            features: PlainBackend::new(wb, Nonlinearity::Exact),
            head,
            body,
        })
    }

    /// Predicted classes of `x` `(B, 1, 28, 28)`.
    pub fn predict(&mut self, x: &Tensor<f32>) -> Result<Vec<usize>, ModelError> {
        self.predict_among(x, classifier::CLASSES)
    }

    /// Predicted classes among `0..classes` (the binary task of `cipherdm-tiny` is
    /// "0 or 1", not ten-way).
    pub fn predict_among(
        &mut self,
        x: &Tensor<f32>,
        classes: usize,
    ) -> Result<Vec<usize>, ModelError> {
        let l = run(&self.head, &mut self.logits, vec![("x", x.clone())])?;
        let k = classes.clamp(1, classifier::CLASSES);
        Ok(l.data()
            .chunks(classifier::CLASSES)
            .map(|r| (0..k).fold(0, |b, i| if r[i] > r[b] { i } else { b }))
            .collect())
    }

    /// Penultimate features of `x`, `B × 64` values.
    pub fn features(&mut self, x: &Tensor<f32>) -> Result<Vec<f64>, ModelError> {
        let f = run(&self.body, &mut self.features, vec![("x", x.clone())])?;
        Ok(f.data().iter().map(|&v| v as f64).collect())
    }
}

/// `cipherdm eval-classifier`: test-set accuracy of the shipped classifier.
pub fn eval_classifier() -> Result<(), ModelError> {
    let acc = classifier_test_accuracy()?;
    println!("classifier test accuracy: {:.2} %", 100.0 * acc);
    Ok(())
}

/// Accuracy of the shipped classifier on the 10,000 MNIST test digits.
pub fn classifier_test_accuracy() -> Result<f64, ModelError> {
    let mut c = Classifier::shipped()?;
    let test = Mnist::load(Split::Test)?;
    let mut hits = 0;
    for start in (0..test.len()).step_by(500) {
        let idx: Vec<usize> = (start..(start + 500).min(test.len())).collect();
        let p = c.predict(&test.batch(&idx))?;
        hits += idx
            .iter()
            .zip(p)
            .filter(|(i, p)| test.labels[**i] as usize == *p)
            .count();
    }
    Ok(hits as f64 / test.len() as f64)
}

/// `cipherdm train` (needs the `train` feature).
pub fn train(
    model: &str,
    steps: Option<usize>,
    batch: usize,
    lr: Option<f64>,
    seed: u64,
    out: Option<PathBuf>,
    init: Option<PathBuf>,
) -> Result<(), ModelError> {
    #[cfg(feature = "train")]
    {
        use crate::train::{TrainConfig, train_classifier, train_diffusion};
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
        };
        match model {
            "tiny" => {
                let m = Model::tiny()?;
                let init = init.map(|p| Weights::load(&m.graph, p)).transpose()?;
                let out = out.unwrap_or_else(tiny_path);
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
                let out = out.unwrap_or_else(mnist_dir);
                std::fs::create_dir_all(&out).map_err(|e| ModelError::io(&out, e))?;
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
                let out = out.unwrap_or_else(classifier_path);
                w.save(&g, &out)?;
                eprintln!(
                    "wrote {} after {:.0} s",
                    out.display(),
                    start.elapsed().as_secs_f64()
                );
            }
            other => {
                return Err(ModelError::Config(format!(
                    "unknown model `{other}` (tiny, mnist, classifier)"
                )));
            }
        }
        Ok(())
    }
    #[cfg(not(feature = "train"))]
    {
        let _ = (model, steps, batch, lr, seed, out, init);
        Err(ModelError::Config(
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
    eta: f64,
    png: Option<&Path>,
) -> Result<(), ModelError> {
    if !(0.0..=10.0).contains(&eta) {
        return Err(ModelError::Config(format!(
            "guidance η must be in [0, 10], got {eta}"
        )));
    }
    let nonlinearity = parse_nonlinearity(profile)?;
    let (m, w) = load_model(model, weights)?;
    let mut classifier = Classifier::shipped()?;
    let mut study = crate::results::Study::new(&m, &w, samples, &mut classifier)?;
    let (row, x0) = study.row(profile, nonlinearity, eta)?;
    println!(
        "{model} {profile} η={eta}: accuracy {:.3}  F1 {:.3}  classifier-FD {:.2}  ({samples} samples, {:.0} s)",
        row.accuracy, row.f1, row.frechet, row.seconds
    );
    if let Some(png) = png {
        crate::image::write_grid(png, &x0.batch_slice(0, samples.min(50))?, 10)?;
    }
    Ok(())
}

/// `cipherdm results`: defined in [`crate::results`].
pub fn results(samples: usize, models: &str, out: &Path) -> Result<(), ModelError> {
    crate::results::run(samples, models, out)
}

#[cfg(test)]
mod architecture_tests {
    use super::*;

    #[test]
    fn compiled_in_architectures_match_the_shipped_models() {
        for name in ["tiny", "mnist"] {
            let (shipped, _) = shipped_model(name).unwrap();
            let built = model_architecture(name).unwrap();
            assert_eq!(
                built.graph.architecture_hash(),
                shipped.graph.architecture_hash(),
                "{name}"
            );
        }
        assert!(model_architecture("sd").is_err());
    }
}
