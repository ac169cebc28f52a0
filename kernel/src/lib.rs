//! # cipherdm-kernel
//!
//! The protocol kernel of cipherdm: three-party replicated secret sharing (ABY3,
//! semi-honest, honest majority) over `Z_{2^64}` or `Z_{2^128}`, fixed-point arithmetic,
//! pseudo-random secret sharing and the secure protocols diffusion sampling needs.
//! `#![no_std]` + `alloc`; the host plugs its own [`Transport`].
//!
//! Layers, bottom to top: [`ring`] → [`fixed`] → [`share`] → [`prss`] →
//! [`transport`] / [`party`] (with [`cost`] counters) → [`protocols`] (with their
//! [`approx`] tables and [`estimate`]s) → [`nn`] layers → the model [`graph`] format and
//! its streaming executor [`exec`] (the graph interpreter, the secure backend, weight
//! sources, per-layer records and the graph cost model).
//!
//! Feature `std` (default) adds OS entropy for fresh session keys
//! ([`party::session_entropy`]) and a monotonic clock for layer times
//! ([`exec::monotonic_nanos`]); without it the kernel builds for bare-metal targets such
//! as `thumbv7em-none-eabihf`.
//!
//! ```
//! use cipherdm_kernel::{fixed::FixedPoint, share, shape::Shape};
//! use rand_chacha::ChaCha12Rng;
//! use rand_core::SeedableRng;
//!
//! // A dealer splits a fixed-point vector into three replicated shares...
//! let fx = FixedPoint::default();
//! let x: Vec<u64> = [1.5, -2.0].iter().map(|&v| fx.encode(v).unwrap()).collect();
//! let mut rng = ChaCha12Rng::from_seed([7; 32]);
//! let shares = share::share_locally(&x, Shape::vector(2), &mut rng).unwrap();
//! // ...any one of which is uniformly random; all three reconstruct the secret.
//! let back = share::reconstruct([&shares[0], &shares[1], &shares[2]]).unwrap();
//! assert_eq!(fx.decode(back[1]), -2.0);
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod approx;
pub mod cost;
pub mod error;
pub mod estimate;
pub mod exec;
pub mod fixed;
pub mod graph;
pub mod nn;
pub mod party;
pub mod protocols;
pub mod prss;
pub mod ring;
pub mod rounds;
pub mod shape;
pub mod share;
pub mod transport;

pub use error::{Error, TransportError};
pub use fixed::FixedPoint;
pub use party::Party;
pub use ring::Ring;
pub use shape::Shape;
pub use share::ArithShare;
pub use transport::{PartyId, Transport};
