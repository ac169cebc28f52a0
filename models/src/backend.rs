//! The one graph interpreter shared by every backend.

use crate::graph::{Graph, Node, Op};

/// Something that evaluates graph nodes: the plaintext backends, the training backend,
/// and (issue 5) the secure executor.
pub trait Backend {
    /// A batched value (activation).
    type Value;
    /// The backend's error type.
    type Error: From<crate::ModelError>;

    /// Evaluates one non-input node on its input values. Weights are the backend's
    /// business: it looks them up by the names in `node.op`.
    fn eval(&mut self, node: &Node, inputs: &[&Self::Value]) -> Result<Self::Value, Self::Error>;
}

/// Runs `graph` on `backend`. `inputs` supplies each [`Op::Input`] by name. Every value is
/// dropped right after its last use, so memory holds only live activations.
pub fn run<B: Backend>(
    graph: &Graph,
    backend: &mut B,
    mut inputs: Vec<(&str, B::Value)>,
) -> Result<B::Value, B::Error> {
    let last = graph.last_uses();
    let mut values: Vec<Option<B::Value>> = (0..graph.nodes.len()).map(|_| None).collect();
    for (i, node) in graph.nodes.iter().enumerate() {
        let v = match &node.op {
            Op::Input(name) => {
                let at = inputs.iter().position(|(n, _)| n == name).ok_or_else(|| {
                    crate::ModelError::Config(format!("graph input `{name}` was not supplied"))
                })?;
                inputs.swap_remove(at).1
            }
            _ => {
                let args: Vec<&B::Value> = node
                    .inputs
                    .iter()
                    .map(|&v| values[v].as_ref().expect("graph inputs precede their uses"))
                    .collect();
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
    Ok(values[graph.output]
        .take()
        .expect("the output is never dropped"))
}
