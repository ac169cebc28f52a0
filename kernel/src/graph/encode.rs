//! The canonical, versioned byte encoding of a graph and the architecture hash computed
//! from it.

use alloc::vec::Vec;

use super::{Activation, Graph, Op, Stored};

/// Version of [`Graph::canonical_bytes`]; bump it whenever the encoding changes.
pub const GRAPH_ENCODING_VERSION: u16 = 1;

/// Magic bytes that open a canonical graph encoding.
pub const GRAPH_MAGIC: [u8; 8] = *b"CDMGRAPH";

impl Activation {
    fn tag(self) -> u8 {
        match self {
            Activation::Silu => 0,
            Activation::Gelu => 1,
            Activation::Relu => 2,
        }
    }
}

impl Op {
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
}
