//! Deployment: three party processes on separate hosts and the clients that use them.
//!
//! - `deploy.toml` (parties, pinned keys, share files, clients, limits) is parsed by
//!   [`cipherdm_transport_tcp::deploy`];
//! - [`jobs`]: client ↔ party messages and what the parties agree on per job;
//! - [`daemon`]: `cipherdm party`, one server as a long-running process;
//! - [`client`]: `cipherdm client sample`, the user's side.
//!
//! Links are `cipherdm-transport-tcp`'s: Noise `IK` with the config's pinned keys, then
//! the session hello, then the mio data plane.

pub mod client;
pub mod daemon;
pub mod jobs;

pub use client::{Progress, RemoteOutcome, sample_remote};
pub use daemon::run_party;
pub use jobs::JobSpec;
