//! Secure sampling: the model graph evaluated on ABY3 shares by three servers.
//!
//! - [`forward`]: one secure forward of a diffusion model on the kernel's
//!   [`SecureBackend`](cipherdm_kernel::exec::SecureBackend) (one batched protocol call
//!   per layer, weights fetched per layer from a
//!   [`WeightSource`](cipherdm_kernel::exec::WeightSource), per-layer cost records);
//! - [`share_file`]: the owner's share files and their layer-by-layer reader;
//! - [`guidance_file`]: the owner's per-job guidance shares for a deployment;
//! - [`sampler`]: DDIM / DDPM on shares with classifier-free and score guidance;
//! - [`session`]: owner, user and three servers in one process over the memory transport.

pub mod forward;
pub mod guidance_file;
pub mod sampler;
pub mod session;
pub mod share_file;

pub use forward::forward;
pub use sampler::{SecureGuidance, StepFlow, StepReport, secure_ddim, secure_ddpm};
pub use session::{
    GuidanceRequest, PartyWeights, SampleOutcome, SampleRequest, Sampler, ServerJob, ServerOutput,
    sample_in_process, serve_sample, user_rng,
};
pub use share_file::{ShareFileError, ShareFileSource, compare_splits, write_share_files};
