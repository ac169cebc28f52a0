//! Model graphs: a list of ops in evaluation order, each producing one value, with named
//! weights. Written once per architecture and evaluated by every backend through
//! [`run`](crate::backend::run).
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

/// Builds a [`Graph`], checking shapes as it goes.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    nodes: Vec<Node>,
    weights: Vec<WeightSpec>,
    stored: Option<Stored>,
}

fn shape_err(name: &str, msg: String) -> Error {
    Error::Graph {
        node: name.to_string(),
        detail: msg,
    }
}

impl GraphBuilder {
    /// A new, empty builder with PyTorch file layouts (see [`flax_layout`](Self::flax_layout)).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the file layout and names used by later [`conv`](Self::conv),
    /// [`dense`](Self::dense) and [`group_norm`](Self::group_norm) calls: flax (`kernel`
    /// in HWIO / `(in, out)`, norm `scale`) or PyTorch (`weight`, canonical layouts).
    pub fn flax_layout(mut self, flax: bool) -> Self {
        self.stored = flax.then_some(Stored::Hwio);
        self
    }

    fn is_flax(&self) -> bool {
        self.stored == Some(Stored::Hwio)
    }

    /// Per-sample shape of value `v`.
    pub fn shape(&self, v: ValueId) -> &[usize] {
        &self.nodes[v].shape
    }

    fn push(&mut self, name: &str, op: Op, inputs: Vec<ValueId>, shape: Vec<usize>) -> ValueId {
        self.nodes.push(Node {
            name: name.to_string(),
            op,
            inputs,
            shape,
        });
        self.nodes.len() - 1
    }

    /// Declares a weight; declaring the same name twice with the same shape is allowed
    /// (shared weights), with another shape an error.
    pub fn weight(
        &mut self,
        name: &str,
        shape: Vec<usize>,
        stored: Stored,
    ) -> Result<String, Error> {
        if let Some(w) = self.weights.iter().find(|w| w.name == name) {
            if w.shape != shape {
                return Err(shape_err(
                    name,
                    format!("declared as {:?} and {shape:?}", w.shape),
                ));
            }
        } else {
            self.weights.push(WeightSpec {
                name: name.to_string(),
                shape,
                stored,
            });
        }
        Ok(name.to_string())
    }

    /// A graph input.
    pub fn input(&mut self, name: &str, shape: Vec<usize>) -> ValueId {
        self.push(name, Op::Input(name.to_string()), vec![], shape)
    }

    /// A general convolution with weights `{prefix}.weight`/`.bias` (PyTorch) or
    /// `{prefix}.kernel`/`.bias` (flax).
    #[allow(clippy::too_many_arguments)]
    pub fn conv_general(
        &mut self,
        prefix: &str,
        x: ValueId,
        cout: usize,
        k: usize,
        stride: usize,
        padding: [(usize, usize); 2],
        lhs_dilation: usize,
        bias: bool,
    ) -> Result<ValueId, Error> {
        let [cin, h, w] = self.nchw(prefix, x)?;
        let out = |n: usize, (lo, hi): (usize, usize)| -> Result<usize, Error> {
            let dilated = (n.max(1) - 1) * lhs_dilation + 1 + lo + hi;
            if dilated < k || stride == 0 || lhs_dilation == 0 {
                return Err(shape_err(
                    prefix,
                    format!("kernel {k} does not fit input {n}"),
                ));
            }
            Ok((dilated - k) / stride + 1)
        };
        let (ho, wo) = (out(h, padding[0])?, out(w, padding[1])?);
        let (kname, stored) = if self.is_flax() {
            ("kernel", Stored::Hwio)
        } else {
            ("weight", Stored::Canonical)
        };
        let weight = self.weight(&format!("{prefix}.{kname}"), vec![cout, cin, k, k], stored)?;
        let bias = if bias {
            Some(self.weight(&format!("{prefix}.bias"), vec![cout], Stored::Canonical)?)
        } else {
            None
        };
        let op = Op::Conv2d(Conv2d {
            weight,
            bias,
            stride,
            padding,
            lhs_dilation,
        });
        Ok(self.push(prefix, op, vec![x], vec![cout, ho, wo]))
    }

    /// A `k×k` stride-1 convolution with "same" padding and a bias.
    pub fn conv(
        &mut self,
        prefix: &str,
        x: ValueId,
        cout: usize,
        k: usize,
    ) -> Result<ValueId, Error> {
        let p = (k - 1) / 2;
        self.conv_general(prefix, x, cout, k, 1, [(p, k - 1 - p); 2], 1, true)
    }

    /// A 1×1 convolution whose file weight is a linear `(out, in)` matrix (diffusers
    /// attention projections), with bias.
    pub fn linear_1x1(
        &mut self,
        prefix: &str,
        x: ValueId,
        cout: usize,
        bias: bool,
    ) -> Result<ValueId, Error> {
        let [cin, h, w] = self.nchw(prefix, x)?;
        let weight = self.weight(
            &format!("{prefix}.weight"),
            vec![cout, cin, 1, 1],
            Stored::Linear1x1,
        )?;
        let bias = if bias {
            Some(self.weight(&format!("{prefix}.bias"), vec![cout], Stored::Canonical)?)
        } else {
            None
        };
        let op = Op::Conv2d(Conv2d {
            weight,
            bias,
            stride: 1,
            padding: [(0, 0); 2],
            lhs_dilation: 1,
        });
        Ok(self.push(prefix, op, vec![x], vec![cout, h, w]))
    }

    /// A dense layer on a `(B, in)` value: `{prefix}.kernel` `(in, out)` for flax,
    /// `{prefix}.weight` `(out, in)` for PyTorch.
    pub fn dense(&mut self, prefix: &str, x: ValueId, out: usize) -> Result<ValueId, Error> {
        let (kname, stored) = if self.is_flax() {
            ("kernel", Stored::Transposed)
        } else {
            ("weight", Stored::Canonical)
        };
        self.dense_named(prefix, x, out, kname, stored, true)
    }

    /// A dense layer with an explicit weight name suffix and layout.
    pub fn dense_named(
        &mut self,
        prefix: &str,
        x: ValueId,
        out: usize,
        weight_suffix: &str,
        stored: Stored,
        bias: bool,
    ) -> Result<ValueId, Error> {
        let &[n] = self.shape(x) else {
            return Err(shape_err(
                prefix,
                format!("dense input must be a vector, got {:?}", self.shape(x)),
            ));
        };
        let weight = self.weight(&format!("{prefix}.{weight_suffix}"), vec![out, n], stored)?;
        let bias = if bias {
            Some(self.weight(&format!("{prefix}.bias"), vec![out], Stored::Canonical)?)
        } else {
            None
        };
        Ok(self.push(prefix, Op::Dense { weight, bias }, vec![x], vec![out]))
    }

    /// GroupNorm with weights `{prefix}.scale`/`.bias` (flax) or `.weight`/`.bias` (PyTorch).
    pub fn group_norm(
        &mut self,
        prefix: &str,
        x: ValueId,
        groups: usize,
        eps: f64,
    ) -> Result<ValueId, Error> {
        let shape = self.shape(x).to_vec();
        let c = shape[0];
        if groups == 0 || !c.is_multiple_of(groups) {
            return Err(shape_err(
                prefix,
                format!("{groups} groups do not divide {c} channels"),
            ));
        }
        let sname = if self.is_flax() { "scale" } else { "weight" };
        let scale = self.weight(&format!("{prefix}.{sname}"), vec![c], Stored::Canonical)?;
        let bias = self.weight(&format!("{prefix}.bias"), vec![c], Stored::Canonical)?;
        let op = Op::GroupNorm {
            groups,
            eps,
            scale,
            bias,
        };
        Ok(self.push(prefix, op, vec![x], shape))
    }

    /// An activation.
    pub fn act(&mut self, name: &str, x: ValueId, a: Activation) -> ValueId {
        let shape = self.shape(x).to_vec();
        self.push(name, Op::Act(a), vec![x], shape)
    }

    /// `a + b` (with `b` a `(C)` vector broadcast over an NCHW `a`).
    pub fn add(&mut self, name: &str, a: ValueId, b: ValueId) -> Result<ValueId, Error> {
        let (sa, sb) = (self.shape(a).to_vec(), self.shape(b).to_vec());
        if sa != sb && !(sb.len() == 1 && sa.len() == 3 && sa[0] == sb[0]) {
            return Err(shape_err(name, format!("cannot add {sb:?} to {sa:?}")));
        }
        Ok(self.push(name, Op::Add, vec![a, b], sa))
    }

    /// Multiplication by a public constant.
    pub fn scale(&mut self, name: &str, x: ValueId, c: f64) -> ValueId {
        let shape = self.shape(x).to_vec();
        self.push(name, Op::Scale(c), vec![x], shape)
    }

    /// Channel concatenation.
    pub fn concat(&mut self, name: &str, parts: &[ValueId]) -> Result<ValueId, Error> {
        let first = self.shape(parts[0]).to_vec();
        let mut c = 0;
        for &p in parts {
            let s = self.shape(p);
            if s.len() != first.len() || s[1..] != first[1..] {
                return Err(shape_err(
                    name,
                    format!("cannot concatenate {s:?} with {first:?}"),
                ));
            }
            c += s[0];
        }
        let mut shape = first;
        shape[0] = c;
        Ok(self.push(name, Op::Concat, parts.to_vec(), shape))
    }

    /// Channels `start..start+len` of `x`.
    pub fn split(
        &mut self,
        name: &str,
        x: ValueId,
        start: usize,
        len: usize,
    ) -> Result<ValueId, Error> {
        let mut shape = self.shape(x).to_vec();
        if start + len > shape[0] {
            return Err(shape_err(
                name,
                format!("channels {start}+{len} of {}", shape[0]),
            ));
        }
        shape[0] = len;
        Ok(self.push(name, Op::Split { start, len }, vec![x], shape))
    }

    /// Attention of the positions of `q` over those of `k` and `v` (`k` and `v` share one
    /// NCHW shape with `q`'s channel count; self-attention passes one map for all three).
    pub fn attention(
        &mut self,
        name: &str,
        q: ValueId,
        k: ValueId,
        v: ValueId,
        heads: usize,
    ) -> Result<ValueId, Error> {
        let s = self.shape(q).to_vec();
        let sk = self.shape(k).to_vec();
        if s.len() != 3 || sk.len() != 3 || sk[0] != s[0] || self.shape(v) != sk.as_slice() {
            return Err(shape_err(
                name,
                "q, k and v must be NCHW maps with one channel count, k and v of one shape".into(),
            ));
        }
        if heads == 0 || !s[0].is_multiple_of(heads) {
            return Err(shape_err(
                name,
                format!("{heads} heads do not divide {} channels", s[0]),
            ));
        }
        Ok(self.push(name, Op::Attention { heads }, vec![q, k, v], s))
    }

    /// LayerNorm over the channels of each position, with affine weights
    /// `{prefix}.weight` and `{prefix}.bias`.
    pub fn layer_norm(&mut self, prefix: &str, x: ValueId, eps: f64) -> Result<ValueId, Error> {
        let [c, h, w] = self.nchw(prefix, x)?;
        let scale = self.weight(&format!("{prefix}.weight"), vec![c], Stored::Canonical)?;
        let bias = self.weight(&format!("{prefix}.bias"), vec![c], Stored::Canonical)?;
        let op = Op::LayerNorm { eps, scale, bias };
        Ok(self.push(prefix, op, vec![x], vec![c, h, w]))
    }

    /// Elementwise product of two values of one shape.
    pub fn mul(&mut self, name: &str, a: ValueId, b: ValueId) -> Result<ValueId, Error> {
        let (sa, sb) = (self.shape(a).to_vec(), self.shape(b).to_vec());
        if sa != sb {
            return Err(shape_err(name, format!("cannot multiply {sa:?} by {sb:?}")));
        }
        Ok(self.push(name, Op::Mul, vec![a, b], sa))
    }

    /// Nearest-neighbour upsampling by 2.
    pub fn upsample2(&mut self, name: &str, x: ValueId) -> Result<ValueId, Error> {
        let [c, h, w] = self.nchw(name, x)?;
        Ok(self.push(name, Op::Upsample2, vec![x], vec![c, 2 * h, 2 * w]))
    }

    /// Global mean pooling to a `(C)` vector.
    pub fn global_mean_pool(&mut self, name: &str, x: ValueId) -> Result<ValueId, Error> {
        let [c, _, _] = self.nchw(name, x)?;
        Ok(self.push(name, Op::GlobalMeanPool, vec![x], vec![c]))
    }

    /// Flattens a feature map to a vector.
    pub fn flatten(&mut self, name: &str, x: ValueId) -> Result<ValueId, Error> {
        let [c, h, w] = self.nchw(name, x)?;
        Ok(self.push(name, Op::Flatten, vec![x], vec![c * h * w]))
    }

    fn nchw(&self, name: &str, x: ValueId) -> Result<[usize; 3], Error> {
        match *self.shape(x) {
            [c, h, w] => Ok([c, h, w]),
            ref s => Err(shape_err(
                name,
                format!("expected a (C, H, W) feature map, got {s:?}"),
            )),
        }
    }

    /// Finishes the graph with `output` as its result.
    pub fn finish(self, output: ValueId) -> Graph {
        Graph {
            nodes: self.nodes,
            weights: self.weights,
            output,
        }
    }
}

/// Version of [`Graph::canonical_bytes`]; bump it whenever the encoding changes.
pub const GRAPH_ENCODING_VERSION: u16 = 1;

/// Magic bytes that open a canonical graph encoding.
pub const GRAPH_MAGIC: [u8; 8] = *b"CDMGRAPH";

impl Activation {
    /// A short name, for cost tables.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Silu => "silu",
            Activation::Gelu => "gelu",
            Activation::Relu => "relu",
        }
    }

    fn tag(self) -> u8 {
        match self {
            Activation::Silu => 0,
            Activation::Gelu => 1,
            Activation::Relu => 2,
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

    fn encode(&self, e: &mut Encoder) {
        match self {
            Op::Input(name) => {
                e.u8(0);
                e.str(name);
            }
            Op::Conv2d(c) => {
                e.u8(1);
                e.str(&c.weight);
                e.opt_str(c.bias.as_deref());
                e.usize(c.stride);
                for (lo, hi) in c.padding {
                    e.usize(lo);
                    e.usize(hi);
                }
                e.usize(c.lhs_dilation);
            }
            Op::Dense { weight, bias } => {
                e.u8(2);
                e.str(weight);
                e.opt_str(bias.as_deref());
            }
            Op::GroupNorm {
                groups,
                eps,
                scale,
                bias,
            } => {
                e.u8(3);
                e.usize(*groups);
                e.f64(*eps);
                e.str(scale);
                e.str(bias);
            }
            Op::LayerNorm { eps, scale, bias } => {
                e.u8(4);
                e.f64(*eps);
                e.str(scale);
                e.str(bias);
            }
            Op::Act(a) => {
                e.u8(5);
                e.u8(a.tag());
            }
            Op::Mul => e.u8(6),
            Op::Add => e.u8(7),
            Op::Scale(c) => {
                e.u8(8);
                e.f64(*c);
            }
            Op::Concat => e.u8(9),
            Op::Split { start, len } => {
                e.u8(10);
                e.usize(*start);
                e.usize(*len);
            }
            Op::Attention { heads } => {
                e.u8(11);
                e.usize(*heads);
            }
            Op::Upsample2 => e.u8(12),
            Op::GlobalMeanPool => e.u8(13),
            Op::Flatten => e.u8(14),
        }
    }
}

impl Stored {
    fn tag(self) -> u8 {
        match self {
            Stored::Canonical => 0,
            Stored::Hwio => 1,
            Stored::Transposed => 2,
            Stored::Linear1x1 => 3,
        }
    }
}

/// Little-endian writer of the canonical encoding: integers as `u64`, reals as their IEEE
/// bits, strings and lists length-prefixed.
struct Encoder(Vec<u8>);

impl Encoder {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn usize(&mut self, v: usize) {
        self.u64(v as u64);
    }
    fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }
    fn str(&mut self, s: &str) {
        self.usize(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
            None => self.u8(0),
        }
    }
    fn dims(&mut self, d: &[usize]) {
        self.usize(d.len());
        for &v in d {
            self.usize(v);
        }
    }
}

impl Graph {
    /// The canonical byte encoding of the graph (version [`GRAPH_ENCODING_VERSION`]):
    /// [`GRAPH_MAGIC`], the version as `u16`, then every node (name, op tag and fields,
    /// inputs, shape), every weight (name, canonical shape, file layout) and the output,
    /// all little-endian, integers as `u64`, reals as IEEE-754 bits, strings and lists
    /// length-prefixed. Two graphs have equal encodings exactly when they are equal
    /// (reals compared bit for bit).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut e = Encoder(Vec::with_capacity(64 * self.nodes.len()));
        e.0.extend_from_slice(&GRAPH_MAGIC);
        e.0.extend_from_slice(&GRAPH_ENCODING_VERSION.to_le_bytes());
        e.usize(self.nodes.len());
        for n in &self.nodes {
            e.str(&n.name);
            n.op.encode(&mut e);
            e.dims(&n.inputs);
            e.dims(&n.shape);
        }
        e.usize(self.weights.len());
        for w in &self.weights {
            e.str(&w.name);
            e.dims(&w.shape);
            e.u8(w.stored.tag());
        }
        e.usize(self.output);
        e.0
    }

    /// The architecture hash: SHA-256 of [`canonical_bytes`](Self::canonical_bytes).
    /// Share files and session handshakes compare it, so parties refuse weights made for
    /// another architecture.
    ///
    /// ```
    /// use cipherdm_kernel::graph::GraphBuilder;
    /// let mut a = GraphBuilder::new();
    /// let x = a.input("x", vec![3]);
    /// let y = a.dense("fc", x, 2).unwrap();
    /// let a = a.finish(y);
    /// let mut b = GraphBuilder::new();
    /// let x = b.input("x", vec![3]);
    /// let y = b.dense("fc", x, 4).unwrap();
    /// let b = b.finish(y);
    /// assert_eq!(a.architecture_hash(), a.clone().architecture_hash());
    /// assert_ne!(a.architecture_hash(), b.architecture_hash());
    /// ```
    pub fn architecture_hash(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        Sha256::digest(self.canonical_bytes()).into()
    }

    /// Checks that every node's inputs are earlier values in the number its op takes,
    /// and that the output is a value: what [`exec::run`](crate::exec::run) relies on.
    pub fn validate(&self) -> Result<(), Error> {
        for (i, n) in self.nodes.iter().enumerate() {
            if !n.op.accepts_inputs(n.inputs.len()) {
                return Err(shape_err(
                    &n.name,
                    format!("{} inputs do not suit {}", n.inputs.len(), n.op.kind_name()),
                ));
            }
            if n.inputs.iter().any(|&v| v >= i) {
                return Err(shape_err(
                    &n.name,
                    "reads a value not computed before it".into(),
                ));
            }
        }
        if self.output >= self.nodes.len() {
            return Err(shape_err(
                "output",
                "the graph output is not a value".into(),
            ));
        }
        Ok(())
    }
}
