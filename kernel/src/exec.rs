//! Pieces of the streaming layer executor that do not depend on a model format.
//!
//! The kernel knows no model graph (that lives in `cipherdm-models`, whose interpreter
//! drives the [`nn`](crate::nn) layers node by node and frees every activation after its
//! last use). What the kernel fixes is how a party obtains weight shares — a
//! [`WeightSource`], asked for one layer's tensors when that layer runs, so the
//! shares can be dropped right after — and what is recorded per layer
//! ([`LayerRecord`]).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::cost::Cost;
use crate::error::Error;
use crate::ring::Ring;
use crate::shape::Shape;
use crate::share::ArithShare;

/// Where a party's weight shares come from: memory, or a share file read layer by layer.
pub trait WeightSource<R: Ring> {
    /// The error of a failed fetch (unknown name, wrong shape, I/O).
    type Error: From<Error>;

    /// This party's shares of weight `name`, whose shape must be `shape`.
    fn fetch(&mut self, name: &str, shape: &Shape) -> Result<ArithShare<R>, Self::Error>;
}

/// Weight shares held in memory (tests, and small models shared in-process).
///
/// ```
/// use cipherdm_kernel::{exec::{MemoryWeights, WeightSource}, ArithShare, Shape};
/// let mut w = MemoryWeights::<u64>::default();
/// w.insert("bias", ArithShare::zeros(Shape::vector(3)));
/// assert!(w.fetch("bias", &Shape::vector(3)).is_ok());
/// assert!(w.fetch("bias", &Shape::vector(4)).is_err());
/// assert!(w.fetch("nope", &Shape::vector(3)).is_err());
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemoryWeights<R: Ring> {
    shares: BTreeMap<String, ArithShare<R>>,
}

impl<R: Ring> MemoryWeights<R> {
    /// Adds (or replaces) a weight.
    pub fn insert(&mut self, name: &str, share: ArithShare<R>) {
        self.shares.insert(name.into(), share);
    }

    /// Number of weights held.
    pub fn len(&self) -> usize {
        self.shares.len()
    }

    /// Whether no weight is held.
    pub fn is_empty(&self) -> bool {
        self.shares.is_empty()
    }
}

impl<R: Ring> WeightSource<R> for MemoryWeights<R> {
    type Error = Error;

    fn fetch(&mut self, name: &str, shape: &Shape) -> Result<ArithShare<R>, Error> {
        let s = self
            .shares
            .get(name)
            .ok_or(Error::InvalidParameter("no weight share of that name"))?;
        if s.shape() != shape {
            return Err(Error::LengthMismatch {
                what: "weight share",
                expected: shape.numel(),
                got: s.len(),
            });
        }
        Ok(s.clone())
    }
}

/// What one layer cost at one party.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerRecord {
    /// Layer name (the weight prefix where there is one).
    pub name: String,
    /// Operation kind, e.g. `conv2d`.
    pub op: &'static str,
    /// Output shape, batch first.
    pub shape: Vec<usize>,
    /// Wall time in nanoseconds (0 where the host has no clock).
    pub nanos: u64,
    /// Bytes, messages, rounds and openings of this layer.
    pub cost: Cost,
}

/// Sums records with the same name and op (one entry per layer over many forwards),
/// keeping first-seen order.
pub fn merge_records(records: &[LayerRecord]) -> Vec<LayerRecord> {
    let mut out: Vec<LayerRecord> = Vec::new();
    for r in records {
        match out.iter_mut().find(|o| o.name == r.name && o.op == r.op) {
            Some(o) => {
                o.nanos += r.nanos;
                o.cost += r.cost;
            }
            None => out.push(r.clone()),
        }
    }
    out
}
