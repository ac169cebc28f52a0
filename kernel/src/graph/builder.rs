//! [`GraphBuilder`]: builds a [`Graph`] node by node, checking shapes as it goes.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use super::{Activation, Conv2d, Graph, Node, Op, Stored, ValueId, WeightSpec, graph_error};
use crate::error::Error;

/// Builds a [`Graph`], checking shapes as it goes.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    nodes: Vec<Node>,
    weights: Vec<WeightSpec>,
    stored: Option<Stored>,
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
                return Err(graph_error(
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
                return Err(graph_error(
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
            return Err(graph_error(
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
            return Err(graph_error(
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
            return Err(graph_error(name, format!("cannot add {sb:?} to {sa:?}")));
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
                return Err(graph_error(
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
            return Err(graph_error(
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
            return Err(graph_error(
                name,
                "q, k and v must be NCHW maps with one channel count, k and v of one shape".into(),
            ));
        }
        if heads == 0 || !s[0].is_multiple_of(heads) {
            return Err(graph_error(
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
            return Err(graph_error(
                name,
                format!("cannot multiply {sa:?} by {sb:?}"),
            ));
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
            ref s => Err(graph_error(
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
