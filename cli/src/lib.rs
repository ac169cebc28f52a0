//! The `cipherdm` command-line tool and party daemon, as a library so that its tests can
//! drive the commands. Nothing else depends on this crate: embedders use
//! `cipherdm-kernel` (protocols, graphs, the executor) and `cipherdm-models` (diffusion
//! models, samplers, share files).
//!
//! - [`sample`]: `sample`, `plain-sample`, `share-model` and their options;
//! - [`commands`]: `train`, `eval-classifier`, `evaluate`, `results`;
//! - [`remote`]: `keygen`, `party` and `client sample`;
//! - [`deploy`]: the party daemon, the client and the job messages between them (the
//!   `deploy.toml` parser lives in `cipherdm-transport-tcp`, where the fuzzers reach it).

pub mod commands;
pub mod deploy;
pub mod error;
pub mod remote;
pub mod sample;

pub use error::CliError;
