//! A diffusion model = a graph + how its public inputs (time features, label) are made,
//! and [`PlainDenoiser`], which runs it on a plaintext backend.

use std::path::Path;

use crate::error::ModelError;
use crate::guidance::ScoreGuidance;
use crate::plain::{Nonlinearity, PlainBackend};
use crate::schedule::{Condition, DdimConfig, Denoiser, Guidance, Schedule, ddim, initial_noise};
use crate::tensor::{Float, Tensor};
use crate::weights::Weights;
use crate::{tiny, unet2d};
use cipherdm_kernel::exec::run;
use cipherdm_kernel::graph::Graph;

/// The architectures the project ships.
#[derive(Clone, Debug, PartialEq)]
pub enum Architecture {
    /// CipherDM's binary-MNIST U-Net ([`tiny`]) with the given public time features.
    Tiny(tiny::TimeFeatures),
    /// A diffusers `UNet2DModel` ([`unet2d`]).
    UNet2d(Box<unet2d::Config>),
}

/// A diffusion model's graph and input conventions.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// Which architecture.
    pub architecture: Architecture,
    /// Its graph (inputs `x`, `time`, `label`).
    pub graph: Graph,
}

impl Model {
    /// `cipherdm-tiny`: CipherDM's binary-MNIST U-Net, time features included.
    pub fn tiny() -> Result<Self, ModelError> {
        Ok(Self {
            architecture: Architecture::Tiny(tiny::TimeFeatures::CipherDm),
            graph: tiny::graph()?,
        })
    }

    /// `cipherdm-tiny-unaliased`: the same graph fed time features that do not alias
    /// ([`tiny::unaliased_time_features`]).
    pub fn tiny_unaliased() -> Result<Self, ModelError> {
        Ok(Self {
            architecture: Architecture::Tiny(tiny::TimeFeatures::Unaliased),
            graph: tiny::graph()?,
        })
    }

    /// A diffusers-style U-Net from its config.
    pub fn unet2d(config: unet2d::Config) -> Result<Self, ModelError> {
        let graph = unet2d::graph(&config)?;
        Ok(Self {
            architecture: Architecture::UNet2d(Box::new(config)),
            graph,
        })
    }

    /// Number of classes of the label input (0: an unconditional model without one).
    pub fn classes(&self) -> usize {
        match &self.architecture {
            Architecture::Tiny(_) => tiny::CLASSES,
            Architecture::UNet2d(c) => c.num_class_embeds.unwrap_or(0),
        }
    }

    /// Image shape `(C, H, W)`.
    pub fn image_shape(&self) -> [usize; 3] {
        match &self.architecture {
            Architecture::Tiny(_) => [1, 28, 28],
            Architecture::UNet2d(c) => [c.in_channels, c.sample_size, c.sample_size],
        }
    }

    /// The public time features of timestep `t`.
    pub fn time_features(&self, t: f64) -> Vec<f64> {
        match &self.architecture {
            Architecture::Tiny(features) => features.of(t),
            Architecture::UNet2d(c) => unet2d::time_features(c, t),
        }
    }

    /// The label input row of a condition: one-hot, or uniform for [`Condition::Mean`]
    /// (the label enters through a linear embedding, so this is the mean embedding).
    pub fn label_row(&self, c: &Condition) -> Result<Vec<f64>, ModelError> {
        let n = self.classes();
        match *c {
            Condition::Class(k) if k < n => {
                Ok((0..n).map(|i| if i == k { 1.0 } else { 0.0 }).collect())
            }
            Condition::Class(k) => Err(ModelError::Config(format!("class {k} out of 0..{n}"))),
            Condition::Mean => Ok(vec![1.0 / n as f64; n]),
        }
    }

    /// The graph inputs for a batch.
    pub fn inputs<F: Float>(
        &self,
        x: &Tensor<F>,
        t: usize,
        conditions: &[Condition],
    ) -> Result<Vec<(&'static str, Tensor<F>)>, ModelError> {
        let b = conditions.len();
        let feats = self.time_features(t as f64);
        let time: Vec<F> = (0..b)
            .flat_map(|_| feats.iter().map(|&v| F::of(v)))
            .collect();
        let mut label = Vec::with_capacity(b * self.classes());
        for c in conditions {
            label.extend(self.label_row(c)?.into_iter().map(F::of));
        }
        let mut inputs = vec![
            ("x", x.clone()),
            ("time", Tensor::new(vec![b, feats.len()], time)?),
        ];
        if self.classes() > 0 {
            inputs.push(("label", Tensor::new(vec![b, self.classes()], label)?));
        }
        Ok(inputs)
    }

    /// Loads weights: a safetensors file, or a diffusers folder
    /// (`config.json` is read by [`unet2d::Config::load`]; the weights are
    /// `diffusion_pytorch_model.safetensors`).
    pub fn load_weights<F: Float>(&self, path: impl AsRef<Path>) -> Result<Weights<F>, ModelError> {
        let path = path.as_ref();
        let file = if path.is_dir() {
            path.join("diffusion_pytorch_model.safetensors")
        } else {
            path.to_path_buf()
        };
        Weights::load(&self.graph, file)
    }
}

/// A [`Denoiser`] evaluating a [`Model`] on the plaintext backend (`plain` or
/// `plain-approx`) in float type `F`.
#[derive(Clone, Debug)]
pub struct PlainDenoiser<F> {
    model: Model,
    backend: PlainBackend<F>,
}

impl<F: Float> PlainDenoiser<F> {
    /// Checks the weights against the graph.
    pub fn new(
        model: Model,
        weights: Weights<F>,
        nonlinearity: Nonlinearity,
    ) -> Result<Self, ModelError> {
        weights.check(&model.graph)?;
        Ok(Self {
            model,
            backend: PlainBackend::new(weights, nonlinearity),
        })
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The same model and weights with another nonlinearity mode.
    pub fn with_nonlinearity(&self, n: Nonlinearity) -> Self {
        let mut d = self.clone();
        d.backend.set_nonlinearity(n);
        d
    }

    /// One forward pass in `F`.
    pub fn forward(
        &mut self,
        x: &Tensor<F>,
        t: usize,
        conditions: &[Condition],
    ) -> Result<Tensor<F>, ModelError> {
        let inputs = self.model.inputs(x, t, conditions)?;
        run(&self.model.graph, &mut self.backend, inputs)
    }
}

impl<F: Float> Denoiser for PlainDenoiser<F> {
    fn eps(
        &mut self,
        x: &Tensor<f64>,
        t: usize,
        conditions: &[Condition],
    ) -> Result<Tensor<f64>, ModelError> {
        Ok(self.forward(&x.cast(), t, conditions)?.cast())
    }
}

/// Samples `labels` with `steps`-step DDIM in plaintext (CipherDM's schedule) from the
/// public noise of `seed`, with `guidance` (its exact reference is the same weights with
/// exact nonlinearities) when given; returns the samples `(B, C, H, W)`.
#[allow(clippy::too_many_arguments)]
pub fn sample_plain(
    model: &Model,
    weights: &Weights<f64>,
    nonlinearity: Nonlinearity,
    labels: &[usize],
    guidance: Option<ScoreGuidance>,
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
    let guidance = match guidance {
        Some(guidance) => Guidance::Score {
            guidance,
            reference: &mut exact,
        },
        None => Guidance::None,
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
