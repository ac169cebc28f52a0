//! Model graphs: a list of ops in evaluation order, each producing one value, with named
//! weights. Written once per architecture and evaluated by every backend through
//! [`run`](crate::exec::run).
//!
//! Values are NCHW feature maps `(B, C, H, W)` or vectors `(B, N)`; shapes recorded here
//! exclude the batch axis. Weights are referred to by name and stored in the *canonical*
//! layouts below; [`WeightSpec::stored`] says how the file lays them out, and the loader
//! converts.
//!
//! | op | weight (canonical) |
//! |---|---|
//! | conv | `(Cout, Cin, kh, kw)` |
//! | dense | `(out, in)` |
//! | group norm | scale `(C)`, bias `(C)` |
//!
//! The graph is streaming-friendly: [`Graph::last_uses`] says when each value dies, so an
//! executor keeps only live values (the U-Net skips) and can fetch each layer's weights
//! just before the layer runs.
//!
//! A graph's identity — what share files and session handshakes compare — is
//! [`Graph::architecture_hash`], SHA-256 of the canonical, versioned byte encoding
//! [`Graph::canonical_bytes`] (never of `Debug` output, which is not a stable format).
//!
//! ```
//! use cipherdm_kernel::graph::{Activation, GraphBuilder};
//! let mut g = GraphBuilder::new();
//! let x = g.input("x", vec![1, 4, 4]);
//! let c = g.conv("conv", x, 2, 3).unwrap();
//! let y = g.act("act", c, Activation::Silu);
//! let graph = g.finish(y);
//! assert_eq!(graph.nodes[y].shape, vec![2, 4, 4]);
//! assert_eq!(graph.parameter_count(), 2 * 1 * 3 * 3 + 2);
//! ```

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use crate::error::Error;

/// Index of a value (= of the node that produces it).
pub type ValueId = usize;

/// An elementwise nonlinearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `x·σ(x)`.
    Silu,
    /// `x·Φ(x)`.
    Gelu,
    /// `max(x, 0)` (plaintext-only models such as the classifier).
    Relu,
}

/// A 2-D convolution; transposed convolutions are convolutions with input dilation.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv2d {
    /// Weight name, `(Cout, Cin, kh, kw)`.
    pub weight: String,
    /// Bias name, `(Cout)`.
    pub bias: Option<String>,
    /// Stride, both axes.
    pub stride: usize,
    /// Padding `(low, high)` of the (dilated) input, per spatial axis (H then W).
    pub padding: [(usize, usize); 2],
    /// Input (lhs) dilation: 2 inserts one zero between input pixels (a stride-2
    /// transposed convolution), 1 is a plain convolution.
    pub lhs_dilation: usize,
}

impl Conv2d {
    /// Stride, padding and dilation as the [`nn`](crate::nn) layers take them.
    pub fn geometry(&self) -> crate::nn::ConvGeometry {
        crate::nn::ConvGeometry {
            stride: self.stride,
            padding: self.padding,
            lhs_dilation: self.lhs_dilation,
        }
    }
}

/// One operation.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A named graph input of the given per-sample shape.
    Input(String),
    /// 2-D convolution of one NCHW input.
    Conv2d(Conv2d),
    /// `x·Wᵀ + b` on a `(B, in)` input.
    Dense {
        /// Weight name, `(out, in)`.
        weight: String,
        /// Bias name, `(out)`.
        bias: Option<String>,
    },
    /// GroupNorm over `(C/groups)·H·W` elements per group, with affine scale and bias.
    GroupNorm {
        /// Number of groups (divides C).
        groups: usize,
        /// Added to the variance.
        eps: f64,
        /// Scale name, `(C)`.
        scale: String,
        /// Bias name, `(C)`.
        bias: String,
    },
    /// LayerNorm over the channels at each position (a transformer's per-token
    /// normalisation on an NCHW map whose positions are the tokens).
    LayerNorm {
        /// Added to the variance.
        eps: f64,
        /// Scale name, `(C)`.
        scale: String,
        /// Bias name, `(C)`.
        bias: String,
    },
    /// Elementwise nonlinearity.
    Act(Activation),
    /// `a · b` elementwise (same shapes), e.g. the gate of GEGLU.
    Mul,
    /// `a + b`; `b` may be `(B, C)` against an NCHW `a` (broadcast over H, W).
    Add,
    /// Multiplication by a public constant.
    Scale(f64),
    /// Concatenation of the inputs along the channel axis, in input order.
    Concat,
    /// Channels `start..start + len`.
    Split {
        /// First channel.
        start: usize,
        /// Number of channels.
        len: usize,
    },
    /// Dot-product attention of the `H·W` positions of `q` `(B, C, H, W)` over the
    /// positions of `k` and `v` (both `(B, C, H', W')`: the same map for self-attention,
    /// e.g. text tokens for cross-attention), with `heads` heads of `C/heads` channels and
    /// scores scaled by `(C/heads)^-1/2`. The output has `q`'s shape.
    Attention {
        /// Number of heads (divides C).
        heads: usize,
    },
    /// Nearest-neighbour upsampling by 2.
    Upsample2,
    /// Mean over H and W: `(B, C, H, W)` to `(B, C)`.
    GlobalMeanPool,
    /// `(B, C, H, W)` to `(B, C·H·W)`, row-major.
    Flatten,
}

impl Op {
    /// Whether `n` inputs suit this op.
    pub fn accepts_inputs(&self, n: usize) -> bool {
        match self {
            Op::Input(_) => n == 0,
            Op::Add | Op::Mul => n == 2,
            Op::Attention { .. } => n == 3,
            Op::Concat => n >= 1,
            _ => n == 1,
        }
    }
}

/// A node: an op applied to earlier values.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Layer name, for cost reports (the weight prefix where there is one).
    pub name: String,
    /// The operation.
    pub op: Op,
    /// Its inputs.
    pub inputs: Vec<ValueId>,
    /// Per-sample output shape.
    pub shape: Vec<usize>,
}

/// How a weight is laid out in its file, relative to the canonical layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// As the graph uses it.
    Canonical,
    /// Flax conv kernel `(kh, kw, Cin, Cout)`.
    Hwio,
    /// Transposed matrix: flax dense kernel `(in, out)` or an embedding table `(classes, C)`.
    Transposed,
    /// A linear `(out, in)` matrix used as a 1×1 convolution.
    Linear1x1,
}

impl Stored {
    /// The file shape of a weight whose canonical shape is `canonical`.
    pub fn file_shape(self, canonical: &[usize]) -> Vec<usize> {
        match (self, canonical) {
            (Stored::Hwio, [o, i, h, w]) => vec![*h, *w, *i, *o],
            (Stored::Transposed, [o, i]) => vec![*i, *o],
            (Stored::Linear1x1, [o, i, 1, 1]) => vec![*o, *i],
            _ => canonical.to_vec(),
        }
    }

    /// Reorders `file` data (in file layout) into the canonical layout.
    pub fn to_canonical<T: Copy>(self, canonical: &[usize], file: &[T]) -> Vec<T> {
        match (self, canonical) {
            (Stored::Hwio, [o, i, h, w]) => {
                let (o, i, h, w) = (*o, *i, *h, *w);
                let mut out = Vec::with_capacity(file.len());
                for oc in 0..o {
                    for ic in 0..i {
                        for y in 0..h {
                            for x in 0..w {
                                out.push(file[((y * w + x) * i + ic) * o + oc]);
                            }
                        }
                    }
                }
                out
            }
            (Stored::Transposed, [o, i]) => {
                let (o, i) = (*o, *i);
                (0..o * i).map(|k| file[(k % i) * o + k / i]).collect()
            }
            _ => file.to_vec(),
        }
    }

    /// Reorders canonical data back into the file layout (inverse of
    /// [`to_canonical`](Self::to_canonical)).
    pub fn to_file<T: Copy + Default>(self, canonical: &[usize], data: &[T]) -> Vec<T> {
        match (self, canonical) {
            (Stored::Hwio, [o, i, h, w]) => {
                let (o, i, h, w) = (*o, *i, *h, *w);
                let mut out = vec![T::default(); data.len()];
                for (k, v) in data.iter().enumerate() {
                    let (oc, ic, y, x) = (k / (i * h * w), (k / (h * w)) % i, (k / w) % h, k % w);
                    out[((y * w + x) * i + ic) * o + oc] = *v;
                }
                out
            }
            (Stored::Transposed, [o, i]) => {
                let (o, i) = (*o, *i);
                (0..o * i).map(|k| data[(k % o) * i + k / o]).collect()
            }
            _ => data.to_vec(),
        }
    }
}

/// A weight the graph needs.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightSpec {
    /// Name in the weight file.
    pub name: String,
    /// Canonical shape.
    pub shape: Vec<usize>,
    /// File layout.
    pub stored: Stored,
}

/// A model graph. Build one with [`GraphBuilder`].
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    /// Nodes in evaluation order.
    pub nodes: Vec<Node>,
    /// Every weight, in first-use order.
    pub weights: Vec<WeightSpec>,
    /// The output value.
    pub output: ValueId,
}

impl Graph {
    /// Total number of weight values.
    pub fn parameter_count(&self) -> usize {
        self.weights
            .iter()
            .map(|w| w.shape.iter().product::<usize>())
            .sum()
    }

    /// The spec of weight `name`.
    pub fn weight(&self, name: &str) -> Option<&WeightSpec> {
        self.weights.iter().find(|w| w.name == name)
    }

    /// For every value, the index of the last node that reads it (the output lives to
    /// the end).
    pub fn last_uses(&self) -> Vec<usize> {
        let mut last: Vec<usize> = (0..self.nodes.len()).collect();
        for (i, n) in self.nodes.iter().enumerate() {
            for &v in &n.inputs {
                if let Some(l) = last.get_mut(v) {
                    *l = i;
                }
            }
        }
        if let Some(l) = last.get_mut(self.output) {
            *l = usize::MAX;
        }
        last
    }

    /// Checks that every node's inputs are earlier values in the number its op takes,
    /// and that the output is a value: what [`exec::run`](crate::exec::run) relies on.
    pub fn validate(&self) -> Result<(), Error> {
        for (i, n) in self.nodes.iter().enumerate() {
            if !n.op.accepts_inputs(n.inputs.len()) {
                return Err(graph_error(
                    &n.name,
                    format!("{} inputs do not suit {}", n.inputs.len(), n.op.kind_name()),
                ));
            }
            if n.inputs.iter().any(|&v| v >= i) {
                return Err(graph_error(
                    &n.name,
                    "reads a value not computed before it".into(),
                ));
            }
        }
        if self.output >= self.nodes.len() {
            return Err(graph_error(
                "output",
                "the graph output is not a value".into(),
            ));
        }
        Ok(())
    }

    /// Names and per-sample shapes of the graph inputs.
    pub fn inputs(&self) -> Vec<(&str, &[usize])> {
        self.nodes
            .iter()
            .filter_map(|n| match &n.op {
                Op::Input(name) => Some((name.as_str(), n.shape.as_slice())),
                _ => None,
            })
            .collect()
    }
}

impl Activation {
    /// A short name, for cost tables.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Silu => "silu",
            Activation::Gelu => "gelu",
            Activation::Relu => "relu",
        }
    }
}

impl Op {
    /// A short name of the op kind, for cost tables (e.g. `conv2d`, `silu`).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Op::Input(_) => "input",
            Op::Conv2d(_) => "conv2d",
            Op::Dense { .. } => "dense",
            Op::GroupNorm { .. } => "group_norm",
            Op::LayerNorm { .. } => "layer_norm",
            Op::Mul => "mul",
            Op::Act(a) => a.name(),
            Op::Add => "add",
            Op::Scale(_) => "scale",
            Op::Concat => "concat",
            Op::Split { .. } => "split",
            Op::Attention { .. } => "attention",
            Op::Upsample2 => "upsample2",
            Op::GlobalMeanPool => "global_mean_pool",
            Op::Flatten => "flatten",
        }
    }
}

/// An [`Error::Graph`] about node (or weight) `node`.
pub(crate) fn graph_error(node: &str, detail: String) -> Error {
    Error::Graph {
        node: node.to_string(),
        detail,
    }
}

mod builder;
mod encode;

pub use builder::GraphBuilder;
pub use encode::{GRAPH_ENCODING_VERSION, GRAPH_MAGIC};
