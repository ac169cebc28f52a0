//! Secure protocols over replicated shares.
//!
//! Each protocol batches a whole tensor into a fixed number of rounds, and is an `async
//! fn` over a [`Branch`](crate::rounds::Branch) (`*_async`) wrapped by a blocking
//! function over a [`Party`](crate::party::Party), so independent protocols can share
//! rounds ([`rounds`](crate::rounds)). What each party receives and why it reveals
//! nothing: [`security`]. Costs below are
//! per element (per *output* element for `dot` and `matmul`), for ring `Z_{2^k}` with
//! `B = k/8` bytes per element and truncation by `m` bits with `w = ceil(m/8)` packed
//! bytes (`B = 8`, `w = 3` for the default `Z_{2^64}`, `f = 18`). "Lead" is the party
//! that plays the asymmetric first role; it rotates 0, 1, 2 from call to call.
//!
//! | protocol | rounds | bytes sent per party per element | total, `Z_{2^64}`, f = 18 |
//! |---|---|---|---|
//! | [`share_input`] | 1 | owner `B`, others 0 | 8 |
//! | [`open`] | 1 | `B` each | 24 |
//! | [`open_to`] | 1 | `B` from the receiver's predecessor | 8 |
//! | add, sub, neg, public add/mul ([`ArithShare`](crate::share::ArithShare)) | 0 | 0 | 0 |
//! | [`mul`], [`dot`], [`matmul`] | 1 | `B` each | 24 |
//! | [`trunc`](trunc()) | 2 | lead `B + w`, others `w` | 17 |
//! | [`mul_fixed`], [`dot_fixed`], [`matmul_fixed`] | 2 | lead and successor `B + w`, the third `B + 2w` | 36 |
//! | [`mul_public_fixed`] | 2 | as `trunc` | 17 |
//! | [`and`](boolean::and) (64 gates per word) | 1 | 8 per word each | 24 per word |
//! | [`msb`], [`lt`], [`gt`], [`le`], [`ge`], `*_public` | 8 | lead `B` + 23.4, others 23.4 | 78 |
//! | [`msb_bits`] (33 bits, values below `2^14`) | 7 | lead 4.1 + 11.8, others 11.8 | 39 |
//! | [`b2a`] | 2 | `B` each | 24 |
//! | [`sign::negative`] (`[x < 0]` as an arithmetic bit, 33 bits) | 5 | lead 32.1 + 0.2, others ≈ 8.7 + 8 | ≈ 66 |
//! | [`select`](select()) | 3 | `2B` each | 48 |
//! | [`relu`] | 11 | as `msb` + `2B` each | 126 |
//! | [`max`], [`argmax`] (per element, whole tree) | 6 per level | `negative` + `B` (+`B`) | ~90 / ~114 |
//! | [`poly::piecewise`] (`J` breaks, `P` powers) | max(5, 2 + 2·levels) + 2 | `J·negative` + `P·(B + 4w/3)` + 16 | e.g. SiLU Accurate ≈ 420 |
//! | [`reciprocal`], [`rsqrt`] | 16 / 18, see [`inverse`] | | see `opbench` |
//! | [`softmax`], [`group_norm`], [`layer_norm`] | see [`norm`] | | |
//!
//! For comparison (SPU 0.9.5 and MP-SPDZ, docs/BENCHMARKS.md): SPU's ABY3 spends 52 bytes and
//! 3 rounds per fixed-point product, MP-SPDZ's Rep3 ring 56 bytes.

pub mod arith;
pub mod boolean;
pub mod compare;
pub mod gemm;
pub mod inverse;
pub mod norm;
pub mod poly;
pub mod reduce;
pub mod security;
pub mod select;
pub mod sign;
pub mod trunc;

pub use arith::*;
pub use compare::{a2b, ge, ge_public, gt, gt_public, le, le_public, lt, lt_public, msb, msb_bits};
pub use inverse::{reciprocal, rsqrt};
pub use norm::{group_norm, layer_norm, softmax};
pub use poly::{approximate, exp, gelu, mish, sigmoid, silu};
pub use reduce::{argmax, max};
pub use select::{b2a, clamp, relu, select};
pub use trunc::{trunc, trunc_fixed};
