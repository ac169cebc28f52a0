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
        if !node.op.accepts_inputs(node.inputs.len()) {
            return Err(crate::ModelError::Shape(format!(
                "{}: {} inputs do not suit {:?}",
                node.name,
                node.inputs.len(),
                node.op
            ))
            .into());
        }
        let v = match &node.op {
            Op::Input(name) => {
                let at = inputs.iter().position(|(n, _)| n == name).ok_or_else(|| {
                    crate::ModelError::Config(format!("graph input `{name}` was not supplied"))
                })?;
                inputs.swap_remove(at).1
            }
            _ => {
                let args = node
                    .inputs
                    .iter()
                    .map(|&v| values.get(v).and_then(Option::as_ref))
                    .collect::<Option<Vec<&B::Value>>>()
                    .ok_or_else(|| {
                        crate::ModelError::Shape(format!(
                            "{}: reads a value that is not live",
                            node.name
                        ))
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
    values
        .get_mut(graph.output)
        .and_then(Option::take)
        .ok_or_else(|| {
            crate::ModelError::Shape("the graph output was never computed".into()).into()
        })
}
