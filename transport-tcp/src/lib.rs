//! Framed, encrypted TCP links between the three cipherdm parties and their clients.
//!
//! - [`frame`]: frame headers (sequence number, length) checked against what the
//!   protocol expects before any payload byte is stored;
//! - [`link`]: the bytes of one link — frames sealed into Noise records — with bounded
//!   receive buffers, independent of how the socket is driven;
//! - [`channel`]: connect with retry and back-off, the Noise `IK` handshake with pinned
//!   keys (or the benchmark-only plaintext mode), blocking control messages;
//! - [`opening`]: the responder's first phase on non-blocking sockets, with a deadline
//!   per connection and limits per address and in total (slow connections are pushed out
//!   with a busy reply);
//! - [`hello`]: the session handshake (version, session id, roles, ring, fixed point,
//!   model) whose mismatches name both values;
//! - [`transport`]: [`TcpTransport`], the kernel's `Transport` on a mio event loop;
//! - [`loopback`]: three parties on 127.0.0.1 in one process, for tests and benches;
//! - [`keys`]: static key pairs and their text form ([`hex`]);
//! - [`deploy`]: `deploy.toml`, the deployment's parties, clients, keys and limits,
//!   checked field by field.

pub mod channel;
pub mod deploy;
pub mod error;
pub mod frame;
pub mod hello;
pub mod hex;
pub mod keys;
pub mod link;
pub mod loopback;
pub mod opening;
pub mod transport;

pub use channel::{Channel, LinkConfig, Mode};
pub use deploy::{ConfigError, DeployConfig};
pub use error::LinkError;
pub use keys::{KeyPair, PublicKey};
pub use transport::{TcpTransport, WireStats};
