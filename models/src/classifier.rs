//! The evaluation classifier: a small CNN over 28×28 digits, built with the same graph
//! machinery (PyTorch layouts): five 3×3 convolutions (16, 32/2, 32, 64/2, 64 channels,
//! stride 2 where marked), ReLU, flatten, dense 3136→64→10. Its 64-wide penultimate layer gives the features of the
//! Fréchet distance in [`metrics`](crate::metrics).

use crate::error::ModelError;
use crate::graph::{Activation, Graph, GraphBuilder};

/// Width of the penultimate feature layer.
pub const FEATURES: usize = 64;
/// Number of classes.
pub const CLASSES: usize = 10;

/// The classifier graph: logits `(10)` when `head` is true, else the penultimate features
/// `(64)` (the same weights minus `fc2`). Input `x` `(1, 28, 28)` in `[-1, 1]`.
///
/// ```
/// let g = cipherdm_models::classifier::graph(true).unwrap();
/// assert_eq!(g.nodes[g.output].shape, vec![10]);
/// ```
pub fn graph(head: bool) -> Result<Graph, ModelError> {
    let mut g = GraphBuilder::new();
    let x = g.input("x", vec![1, 28, 28]);
    let mut h = x;
    // (name, channels, stride)
    for (name, c, s) in [
        ("conv1", 16, 1),
        ("conv2", 32, 2),
        ("conv3", 64, 1),
        ("conv4", 64, 2),
        ("conv5", 64, 1),
    ] {
        h = g.conv_general(name, h, c, 3, s, [(1, 1); 2], 1, true)?;
        h = g.act(&format!("{name}.relu"), h, Activation::Relu);
    }
    let h = g.flatten("flatten", h)?;
    let h = g.dense("fc1", h, FEATURES)?;
    let h = g.act("fc1.relu", h, Activation::Relu);
    if !head {
        return Ok(g.finish(h));
    }
    let out = g.dense("fc2", h, CLASSES)?;
    Ok(g.finish(out))
}
