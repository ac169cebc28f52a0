//! Diffusion models for cipherdm: U-Nets defined once as kernel graphs
//! ([`cipherdm_kernel::graph`]) and evaluated by several backends; weights, schedulers
//! and samplers (plain and secure), share files, MNIST data and evaluation metrics.
//!
//! - [`model`]: a diffusion model = a graph + its public inputs; [`shipped`]: the
//!   models the project ships, compiled in;
//! - [`tiny`]: the exact port of CipherDM's binary-MNIST U-Net (Zhao et al., 2024);
//!   [`unet2d`]: diffusers' `UNet2DModel`; [`sd15`]: a Stable-Diffusion-1.5-sized graph
//!   for cost estimates; [`classifier`]: the evaluation CNN;
//! - [`plain`]: `plain` (exact) and `plain-approx` (kernel approximation tables)
//!   backends, on the kernel's graph interpreter [`cipherdm_kernel::exec::run`];
//! - [`weights`]: safetensors loading checked against a graph; [`init`]: seeded random
//!   initialisation (cost runs, `init-model`); [`tensor`]: the
//!   plaintext tensor;
//! - [`schedule`]: linear-beta schedule, DDPM and DDIM, classifier-free guidance and the
//!   score guidance of "Secure Inference for Diffusion Models via Unconditional Scores"
//!   (Song et al.);
//! - [`guidance`]: the score-guidance family (the paper's and the error-cancelling
//!   correction) and the owner's per-step tensors;
//! - [`secure`]: the same samplers on shares, share files, and the owner / user /
//!   servers roles in one process;
//! - [`mnist`], [`metrics`], [`image`], [`results`]: data, F1 / Fréchet distance, PNG
//!   grids, the results tables;
//! - [`host`]: what the command-line tool and the benches share (allocator tuning,
//!   peak memory, per-layer tables);
//! - `train` (cargo feature `train`): the candle autodiff backend over the same graphs.
//!
//! No command-line, terminal or daemon code lives here: that is the `cipherdm-cli`
//! crate's.

pub mod classifier;
pub mod diffusers_config;
pub mod error;
pub mod guidance;
pub mod host;
pub mod image;
pub mod init;
pub mod metrics;
pub mod mnist;
pub mod model;
pub mod plain;
pub mod results;
pub mod schedule;
pub mod sd15;
pub mod secure;
pub mod shipped;
pub mod tensor;
pub mod tiny;
#[cfg(feature = "train")]
pub mod train;
pub mod unet2d;
pub mod unet2d_condition;
pub mod weights;

pub use error::ModelError;
pub use tensor::{Float, Tensor};
pub use weights::Weights;
