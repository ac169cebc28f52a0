//! Weight files (safetensors): loading checked against a [`Graph`], saving.
//!
//! The loader accepts exactly the graph's weights: every tensor must be present, with the
//! file shape the graph expects and dtype `F32` (or `F64`); an extra tensor is an error too,
//! because it means the file belongs to another architecture. Errors name every offending
//! tensor.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use crate::error::ModelError;
use crate::tensor::{Float, Tensor};
use cipherdm_kernel::graph::Graph;

/// A model's weights in canonical layout, by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Weights<F> {
    map: BTreeMap<String, Tensor<F>>,
}

impl<F: Float> Weights<F> {
    /// The weight called `name`.
    pub fn get(&self, name: &str) -> Result<&Tensor<F>, ModelError> {
        self.map
            .get(name)
            .ok_or_else(|| ModelError::Weight(format!("no weight named `{name}`")))
    }

    /// Inserts or replaces a weight (canonical layout).
    pub fn insert(&mut self, name: impl Into<String>, t: Tensor<F>) {
        self.map.insert(name.into(), t);
    }

    /// Iterates over `(name, tensor)` in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor<F>)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Converts every tensor to another float type.
    pub fn cast<G: Float>(&self) -> Weights<G> {
        Weights {
            map: self
                .map
                .iter()
                .map(|(k, v)| (k.clone(), v.cast()))
                .collect(),
        }
    }

    /// Checks that these weights are exactly `graph`'s, with canonical shapes.
    pub fn check(&self, graph: &Graph) -> Result<(), ModelError> {
        let mut problems = Vec::new();
        for spec in &graph.weights {
            match self.map.get(&spec.name) {
                None => problems.push(format!("`{}` is missing", spec.name)),
                Some(t) if t.shape() != spec.shape.as_slice() => problems.push(format!(
                    "`{}` has shape {:?}, the graph needs {:?}",
                    spec.name,
                    t.shape(),
                    spec.shape
                )),
                _ => {}
            }
        }
        for name in self.map.keys() {
            if graph.weight(name).is_none() {
                problems.push(format!("`{name}` is not a weight of this graph"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ModelError::Weight(problems.join("; ")))
        }
    }

    /// Parses a safetensors buffer against `graph` (see the [module docs](self)).
    pub fn from_safetensors(graph: &Graph, bytes: &[u8]) -> Result<Self, ModelError> {
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| ModelError::format("safetensors", e.to_string()))?;
        let mut problems = Vec::new();
        let mut map = BTreeMap::new();
        for spec in &graph.weights {
            let Ok(view) = st.tensor(&spec.name) else {
                problems.push(format!("`{}` is missing", spec.name));
                continue;
            };
            let want = spec.stored.file_shape(&spec.shape);
            if view.shape() != want.as_slice() {
                problems.push(format!(
                    "`{}` has shape {:?}, the graph needs {:?}",
                    spec.name,
                    view.shape(),
                    want
                ));
                continue;
            }
            let raw = view.data();
            let values: Vec<F> = match view.dtype() {
                Dtype::F32 => raw
                    .chunks_exact(4)
                    .map(|c| F::of(f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64))
                    .collect(),
                Dtype::F64 => raw
                    .chunks_exact(8)
                    .map(|c| F::of(f64::from_le_bytes(c.try_into().expect("8 bytes"))))
                    .collect(),
                d => {
                    problems.push(format!(
                        "`{}` has dtype {d:?}, expected F32 or F64",
                        spec.name
                    ));
                    continue;
                }
            };
            let data = spec.stored.to_canonical(&spec.shape, &values);
            map.insert(spec.name.clone(), Tensor::new(spec.shape.clone(), data)?);
        }
        for name in st.names() {
            if graph.weight(name).is_none() {
                problems.push(format!("`{name}` is not a weight of this graph"));
            }
        }
        if !problems.is_empty() {
            problems.sort();
            return Err(ModelError::Weight(problems.join("; ")));
        }
        Ok(Self { map })
    }

    /// Loads a safetensors file against `graph`.
    pub fn load(graph: &Graph, path: impl AsRef<Path>) -> Result<Self, ModelError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
        Self::from_safetensors(graph, &bytes)
            .map_err(|e| ModelError::Weight(format!("{}: {e}", path.display())))
    }

    /// Serialises as safetensors (f32, file layouts of `graph`).
    pub fn to_safetensors(&self, graph: &Graph) -> Result<Vec<u8>, ModelError> {
        self.check(graph)?;
        let mut buffers = Vec::new();
        for spec in &graph.weights {
            let t = self.get(&spec.name)?;
            let canonical: Vec<f32> = t.data().iter().map(|v| v.as_f64() as f32).collect();
            let file = spec.stored.to_file(&spec.shape, &canonical);
            let bytes: Vec<u8> = file.iter().flat_map(|v| v.to_le_bytes()).collect();
            buffers.push((
                spec.name.clone(),
                spec.stored.file_shape(&spec.shape),
                bytes,
            ));
        }
        let views = buffers
            .iter()
            .map(|(n, s, b)| {
                safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), b)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| ModelError::format("safetensors", e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        safetensors::serialize(views, None)
            .map_err(|e| ModelError::format("safetensors", e.to_string()))
    }

    /// Writes a safetensors file (see [`to_safetensors`](Self::to_safetensors)).
    pub fn save(&self, graph: &Graph, path: impl AsRef<Path>) -> Result<(), ModelError> {
        let path = path.as_ref();
        let bytes = self.to_safetensors(graph)?;
        std::fs::write(path, bytes).map_err(|e| ModelError::io(path, e))
    }
}
