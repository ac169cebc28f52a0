//! The streaming layer executor: runs a [`Graph`] node by node on any [`Backend`].
//!
//! - [`run`] — the one graph interpreter: every value is dropped right after its last
//!   use, so memory holds the live activations (U-Net skips) and one layer's working set.
//! - [`SecureBackend`] — evaluates nodes on replicated shares with the [`nn`](crate::nn)
//!   layers and the approximation protocols, one batched protocol call per layer,
//!   fetching each layer's weight shares from a [`WeightSource`] when the layer runs and
//!   recording a [`LayerRecord`] per layer (time through a host-supplied [`Clock`]).
//! - [`cost`] — the graph cost model: bytes and rounds of a secure forward from the
//!   graph alone.
//!
//! Plaintext backends (f32/f64, exact or approximate nonlinearities) live with the model
//! definitions in `cipherdm-models`; they implement the same [`Backend`] trait.
//!
//! ```
//! use cipherdm_kernel::exec::{Backend, run};
//! use cipherdm_kernel::graph::{GraphBuilder, Node, Op};
//! use cipherdm_kernel::Error;
//!
//! // A toy backend on plain numbers: `Scale` multiplies, `Add` adds.
//! struct Numbers;
//! impl Backend for Numbers {
//!     type Value = f64;
//!     type Error = Error;
//!     fn eval(&mut self, node: &Node, x: &[&f64]) -> Result<f64, Error> {
//!         match node.op {
//!             Op::Scale(c) => Ok(x[0] * c),
//!             Op::Add => Ok(x[0] + x[1]),
//!             _ => Err(Error::InvalidParameter("unsupported op")),
//!         }
//!     }
//! }
//! let mut g = GraphBuilder::new();
//! let x = g.input("x", vec![1]);
//! let y = g.scale("twice", x, 2.0);
//! let z = g.add("sum", x, y).unwrap();
//! let graph = g.finish(z);
//! assert_eq!(run(&graph, &mut Numbers, vec![("x", 1.5)]).unwrap(), 4.5);
//! ```

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::cost::Cost;
use crate::error::Error;
use crate::graph::{Graph, Node, Op, graph_error};
use crate::ring::Ring;
use crate::shape::Shape;
use crate::share::ArithShare;

pub mod cost;
mod secure;

pub use secure::{Observer, SecureBackend, public_share};

/// Something that evaluates graph nodes: the plaintext backends, the training backend
/// and the [`SecureBackend`].
pub trait Backend {
    /// A batched value (activation).
    type Value;
    /// The backend's error type.
    type Error: From<Error>;

    /// Evaluates one non-input node on its input values. Weights are the backend's
    /// business: it looks them up by the names in `node.op`.
    fn eval(&mut self, node: &Node, inputs: &[&Self::Value]) -> Result<Self::Value, Self::Error>;
}

/// Runs `graph` on `backend`. `inputs` supplies each [`Op::Input`] by name. Every value is
/// dropped right after its last use, so memory holds only live activations.
///
/// Fails with [`Error::Graph`] when the graph is malformed ([`Graph::validate`]) or an
/// input is missing; a backend's own errors pass through unchanged.
pub fn run<B: Backend>(
    graph: &Graph,
    backend: &mut B,
    mut inputs: Vec<(&str, B::Value)>,
) -> Result<B::Value, B::Error> {
    graph.validate()?;
    let last = graph.last_uses();
    let mut values: Vec<Option<B::Value>> = (0..graph.nodes.len()).map(|_| None).collect();
    for (i, node) in graph.nodes.iter().enumerate() {
        let v = match &node.op {
            Op::Input(name) => {
                let at = inputs
                    .iter()
                    .position(|(n, _)| n == name)
                    .ok_or_else(|| graph_error(name, "graph input was not supplied".into()))?;
                inputs.swap_remove(at).1
            }
            _ => {
                let args = node
                    .inputs
                    .iter()
                    .map(|&v| values.get(v).and_then(Option::as_ref))
                    .collect::<Option<Vec<&B::Value>>>()
                    .ok_or_else(|| {
                        graph_error(&node.name, "reads a value that is not live".into())
                    })?;
                backend.eval(node, &args)?
            }
        };
        values[i] = Some(v);
        for &v in &node.inputs {
            if last[v] == i {
                values[v] = None;
            }
        }
    }
    let out = values.get_mut(graph.output).and_then(Option::take);
    out.ok_or_else(|| {
        graph_error(
            "output",
            format!("value {} was never computed", graph.output),
        )
        .into()
    })
}

/// How a secure forward trades rounds for memory: the attention layers evaluate their
/// score matrices in chunks of at most `max_attention_scores` scores
/// ([`nn::attention_chunked`](crate::nn::attention_chunked)), and the elementwise
/// activations (SiLU, GeLU, ReLU) run on at most `max_activation_elements` elements at a
/// time. Each chunk runs after the previous one, so rounds grow with the number of
/// chunks; bytes do not change. The cost model ([`cost::forward_chunked`]) takes the
/// same value, so estimates stay exact.
///
/// ```
/// use cipherdm_kernel::exec::Chunking;
/// let c = Chunking::for_working_memory(1 << 30);
/// assert!(c.max_attention_scores > 1 << 20);
/// assert_eq!(Chunking::NONE.max_attention_scores, usize::MAX);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunking {
    /// Most scores (score rows × keys, over items and heads) evaluated at once.
    pub max_attention_scores: usize,
    /// Most elements of one activation call.
    pub max_activation_elements: usize,
}

impl Chunking {
    /// Every layer in one call (fewest rounds).
    pub const NONE: Chunking = Chunking {
        max_attention_scores: usize::MAX,
        max_activation_elements: usize::MAX,
    };

    /// A party's working memory per score of an attention chunk, in bytes, measured on
    /// the `Accurate` softmax of 4,096-long rows (the scores, the max tree's comparison
    /// tables, the exp's intermediates and the probabilities, with the allocator's slack).
    pub const BYTES_PER_SCORE: usize = 800;

    /// A party's working memory per element of an activation call, in bytes, measured
    /// the same way on SiLU.
    pub const BYTES_PER_ACTIVATION: usize = 500;

    /// Chunks whose working set fits `bytes` of one party's memory.
    pub fn for_working_memory(bytes: usize) -> Chunking {
        Chunking {
            max_attention_scores: (bytes / Self::BYTES_PER_SCORE).max(1),
            max_activation_elements: (bytes / Self::BYTES_PER_ACTIVATION).max(1),
        }
    }

    /// The element counts of the calls an activation of `n` elements is cut into.
    pub fn activation_chunks(&self, n: usize) -> Vec<usize> {
        crate::nn::attention_chunks(n, 1, self.max_activation_elements)
    }
}

impl Default for Chunking {
    fn default() -> Self {
        Chunking::NONE
    }
}

/// A monotonic clock the host supplies for per-layer times, in nanoseconds since any fixed
/// point (the kernel has no `std::time`). [`no_clock`] reads 0; with the `std` feature,
/// [`monotonic_nanos`] reads the operating system's monotonic clock.
pub type Clock = fn() -> u64;

/// A clock that always reads 0 (hosts without a timer): layer times are recorded as 0.
pub fn no_clock() -> u64 {
    0
}

/// The operating system's monotonic clock, in nanoseconds since its first reading
/// (feature `std`).
#[cfg(feature = "std")]
pub fn monotonic_nanos() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_nanos() as u64
}

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
