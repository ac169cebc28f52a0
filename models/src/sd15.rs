//! Stable Diffusion 1.5's U-Net: the `unet2d_condition` graph of SD 1.5's published
//! config (64×64×4 latents, channels 320/640/1280/1280, two ResNets per level,
//! `Transformer2DModel`s with self-attention, cross-attention over 77 text tokens of width
//! 768 and a GEGLU feed-forward, 8 heads, GroupNorm 32; 859,520,964 parameters). No
//! weights are shipped: cost runs deal seeded random weights per layer
//! (`init::DealtWeights`, `stepbench --model sd15`), and a real SD-1.5 `unet` folder loads
//! through `unet2d_condition::Config::load` and `Weights::load`.

use crate::error::ModelError;
use crate::unet2d_condition::Config;
use cipherdm_kernel::graph::Graph;

/// Latent channels.
pub const LATENT_CHANNELS: usize = 4;
/// Latent side.
pub const LATENT_SIZE: usize = 64;
/// Text tokens.
pub const TOKENS: usize = 77;
/// Text embedding width.
pub const CONTEXT_DIM: usize = 768;

/// SD 1.5's time features of timestep `t` (`Timesteps(320, flip_sin_to_cos=True,
/// freq_shift=0)`).
pub fn time_features(t: f64) -> Vec<f64> {
    Config::sd15().time_features(t)
}

/// The SD-1.5-sized U-Net graph ([`Config::sd15`], 77 tokens): inputs `x` (4, 64, 64),
/// `time` (320 sinusoidal features) and `context` (768, 77, 1).
pub fn graph() -> Result<Graph, ModelError> {
    crate::unet2d_condition::graph(&Config::sd15(), TOKENS)
}
