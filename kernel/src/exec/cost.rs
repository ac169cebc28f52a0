//! The cost model of a secure forward: bytes and rounds per layer from the graph and the
//! shapes alone (the [`estimate`] functions, one per protocol), no
//! arithmetic and no messages. The kernel's `exec` test and the bench crate's
//! `cost_model` test check it against the measured counters of the
//! [`SecureBackend`](super::SecureBackend), exactly.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::approx::{Function, Profile};
use crate::error::Error;
use crate::estimate::{self, Estimate};
use crate::graph::{Activation, Graph, Op};

use super::Chunking;

/// One layer's estimate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerEstimate {
    /// Layer name.
    pub name: String,
    /// Op kind (as in the executor's records).
    pub op: &'static str,
    /// Output shape, batch first.
    pub shape: Vec<usize>,
    /// Bytes over the three parties and rounds.
    pub cost: Estimate,
}

/// Per-layer estimates of one secure forward of `graph` on a batch of `batch`, with
/// `profile`'s approximations and `f` fraction bits. Inputs are free (the image and the
/// time features are public, the label arrives already shared).
pub fn forward(
    graph: &Graph,
    batch: usize,
    profile: Profile,
    f: u32,
) -> Result<Vec<LayerEstimate>, Error> {
    forward_chunked(graph, batch, profile, f, Chunking::NONE)
}

/// [`forward`] of a backend that evaluates attention in `chunking`'s chunks
/// ([`SecureBackend::with_chunking`](super::SecureBackend::with_chunking)).
pub fn forward_chunked(
    graph: &Graph,
    batch: usize,
    profile: Profile,
    f: u32,
    chunking: Chunking,
) -> Result<Vec<LayerEstimate>, Error> {
    graph.validate()?;
    let shape_of = |i: usize| -> Vec<usize> {
        let mut s = vec![batch];
        s.extend_from_slice(&graph.nodes[i].shape);
        s
    };
    let mut out = Vec::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        let shape = shape_of(i);
        let n: usize = shape.iter().product();
        let cost = match &node.op {
            Op::Input(_) => continue,
            Op::Conv2d(_) | Op::Dense { .. } => estimate::linear_layer(n, f),
            Op::GroupNorm { groups, .. } => {
                let hw: usize = shape[2..].iter().product();
                estimate::group_norm(batch, shape[1], hw, *groups, 1.0, f)
            }
            Op::LayerNorm { .. } => {
                let hw: usize = shape[2..].iter().product();
                estimate::layer_norm(batch * hw, shape[1], true, 1.0, f)
            }
            Op::Mul => estimate::mul_fixed(n, f),
            Op::Act(a) => {
                let mut total = Estimate::default();
                for m in chunking.activation_chunks(n) {
                    total += match a {
                        Activation::Silu => estimate::approximate(m, profile, Function::Silu, f)?,
                        Activation::Gelu => estimate::approximate(m, profile, Function::Gelu, f)?,
                        Activation::Relu => estimate::relu(m),
                    };
                }
                total
            }
            Op::Scale(_) => estimate::public_scale(n, f),
            Op::GlobalMeanPool => estimate::public_scale(n, f),
            Op::Attention { heads } => {
                let (q, k) = (shape_of(node.inputs[0]), shape_of(node.inputs[1]));
                let nq: usize = q[2..].iter().product();
                let nk: usize = k[2..].iter().product();
                estimate::attention(
                    batch,
                    q[1],
                    nq,
                    nk,
                    *heads,
                    profile,
                    f,
                    chunking.max_attention_scores,
                )?
            }
            Op::Add | Op::Concat | Op::Split { .. } | Op::Upsample2 | Op::Flatten => {
                Estimate::default()
            }
        };
        out.push(LayerEstimate {
            name: node.name.clone(),
            op: node.op.kind_name(),
            shape,
            cost,
        });
    }
    Ok(out)
}
