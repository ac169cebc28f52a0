//! Test backends that record every layer's value: the plaintext one as computed, the
//! secure one opened after each layer (tests only: a deployment opens nothing).
#![allow(dead_code)]

use cipherdm_kernel::ArithShare;
use cipherdm_kernel::exec::Backend;
use cipherdm_kernel::exec::MemoryWeights;
use cipherdm_kernel::exec::SecureBackend;
use cipherdm_kernel::graph::Node;
use cipherdm_kernel::protocols as pr;
use cipherdm_models::plain::PlainBackend;
use cipherdm_models::{ModelError, Tensor};
use cipherdm_transport_mem::MemTransport;

/// Records every layer's value of the plaintext backend.
pub struct PlainRecorder<'a> {
    pub inner: &'a mut PlainBackend<f64>,
    pub values: Vec<(String, Vec<f64>)>,
}

impl Backend for PlainRecorder<'_> {
    type Value = Tensor<f64>;
    type Error = ModelError;
    fn eval(&mut self, node: &Node, inputs: &[&Tensor<f64>]) -> Result<Tensor<f64>, ModelError> {
        let y = self.inner.eval(node, inputs)?;
        self.values.push((node.name.clone(), y.data().to_vec()));
        Ok(y)
    }
}

/// Opens every layer of the secure backend after its record is taken.
pub struct SecureRecorder<'a, 'p> {
    pub inner: SecureBackend<'p, MemTransport, MemoryWeights<u64>>,
    pub values: &'a mut Vec<Vec<f64>>,
}

impl Backend for SecureRecorder<'_, '_> {
    type Value = ArithShare<u64>;
    type Error = ModelError;
    fn eval(
        &mut self,
        node: &Node,
        inputs: &[&ArithShare<u64>],
    ) -> Result<ArithShare<u64>, ModelError> {
        let y = self.inner.eval(node, inputs)?;
        let fx = self.inner.party().fixed();
        let opened = pr::open(self.inner.party(), &y)?;
        self.values
            .push(opened.iter().map(|&v| fx.decode(v)).collect());
        Ok(y)
    }
}

/// The largest error of `got` against `want`, relative to the layer's scale (at least 1).
pub fn relative_error(want: &[f64], got: &[f64]) -> (f64, f64) {
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let err = want
        .iter()
        .zip(got)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
        / scale;
    (err, scale)
}
