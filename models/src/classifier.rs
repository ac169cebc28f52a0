//! The evaluation classifier: a small CNN over 28×28 digits, built with the same graph
//! machinery (PyTorch layouts): five 3×3 convolutions (16, 32/2, 32, 64/2, 64 channels,
//! stride 2 where marked), ReLU, flatten, dense 3136→64→10. Its 64-wide penultimate layer gives the features of the
//! Fréchet distance in [`metrics`](crate::metrics).

use cipherdm_kernel::exec::run;
use cipherdm_kernel::graph::{Activation, Graph, GraphBuilder};

use crate::error::ModelError;
use crate::mnist::Mnist;
use crate::plain::{Nonlinearity, PlainBackend};
use crate::tensor::Tensor;
use crate::weights::Weights;

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

/// The shipped classifier's predictions and penultimate features for a batch of images
/// in `[-1, 1]`.
pub struct Classifier {
    logits: PlainBackend<f32>,
    features: PlainBackend<f32>,
    head: Graph,
    body: Graph,
}

impl Classifier {
    /// The classifier with the weights the project ships (compiled in).
    pub fn shipped() -> Result<Self, ModelError> {
        let head = graph(true)?;
        let body = graph(false)?;
        let w: Weights<f32> = Weights::from_safetensors(&head, crate::shipped::CLASSIFIER_WEIGHTS)
            .map_err(|e| ModelError::Weight(format!("shipped classifier weights: {e}")))?;
        let mut wb = Weights::default();
        for spec in &body.weights {
            wb.insert(spec.name.clone(), w.get(&spec.name)?.clone());
        }
        Ok(Self {
            logits: PlainBackend::new(w, Nonlinearity::Exact),
            features: PlainBackend::new(wb, Nonlinearity::Exact),
            head,
            body,
        })
    }

    /// Predicted classes of `x` `(B, 1, 28, 28)`.
    pub fn predict(&mut self, x: &Tensor<f32>) -> Result<Vec<usize>, ModelError> {
        self.predict_among(x, CLASSES)
    }

    /// Predicted classes among `0..classes` (the binary task of `cipherdm-tiny` is
    /// "0 or 1", not ten-way).
    pub fn predict_among(
        &mut self,
        x: &Tensor<f32>,
        classes: usize,
    ) -> Result<Vec<usize>, ModelError> {
        let l = run(&self.head, &mut self.logits, vec![("x", x.clone())])?;
        let k = classes.clamp(1, CLASSES);
        Ok(l.data()
            .chunks(CLASSES)
            .map(|r| (0..k).fold(0, |b, i| if r[i] > r[b] { i } else { b }))
            .collect())
    }

    /// Penultimate features of `x`, `B × 64` values.
    pub fn features(&mut self, x: &Tensor<f32>) -> Result<Vec<f64>, ModelError> {
        let f = run(&self.body, &mut self.features, vec![("x", x.clone())])?;
        Ok(f.data().iter().map(|&v| v as f64).collect())
    }

    /// Accuracy on the 10,000 MNIST test digits.
    pub fn test_accuracy(&mut self) -> Result<f64, ModelError> {
        let test = Mnist::test_set()?;
        let mut hits = 0;
        for start in (0..test.len()).step_by(500) {
            let idx: Vec<usize> = (start..(start + 500).min(test.len())).collect();
            let p = self.predict(&test.batch(&idx))?;
            hits += idx
                .iter()
                .zip(p)
                .filter(|(i, p)| test.labels[**i] as usize == *p)
                .count();
        }
        Ok(hits as f64 / test.len() as f64)
    }
}
