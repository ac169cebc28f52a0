//! U-Nets defined once as graphs, evaluated by several backends; weights, schedulers and
//! samplers, MNIST data and evaluation metrics.
//!
//! - [`graph`]: the op graph and its builder; [`backend::run`] evaluates it on any
//!   [`backend::Backend`].
//! - [`plain`]: `plain` (exact) and `plain-approx` (kernel approximation tables) backends.
//! - [`tiny`]: the exact port of CipherDM's binary-MNIST U-Net;
//!   [`unet2d`]: a diffusers-style class-conditional U-Net; [`classifier`]: the evaluation CNN.
//! - [`weights`]: safetensors loading checked against a graph.
//! - [`schedule`]: linear-beta schedule, DDPM and DDIM, classifier-free and score guidance.
//! - [`mnist`], [`metrics`], [`image`]: data, F1 / Fréchet distance, PNG grids.
//! - `train` (cargo feature `train`): the candle autodiff backend over the same graphs.

pub mod backend;
pub mod classifier;
pub mod cli;
pub mod commands;
pub mod deploy;
pub mod error;
pub mod graph;
pub mod image;
pub mod metrics;
pub mod mnist;
pub mod model;
pub mod plain;
pub mod results;
pub mod schedule;
pub mod sd15;
pub mod secure;
pub mod tensor;
pub mod tiny;
#[cfg(feature = "train")]
pub mod train;
pub mod unet2d;
pub mod weights;

pub use error::ModelError;
pub use tensor::{Float, Tensor};
pub use weights::Weights;
