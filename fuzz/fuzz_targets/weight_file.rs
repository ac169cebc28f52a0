//! A safetensors weight file on hostile bytes, checked against a small graph: loaded or
//! refused with an error naming the tensor, never a panic or an allocation the header asks
//! for without the data to back it.
#![no_main]

use cipherdm_kernel::graph::GraphBuilder;
use cipherdm_models::weights::Weights;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut g = GraphBuilder::new();
    let x = g.input("x", vec![4]);
    let Ok(y) = g.dense("d", x, 3) else { return };
    let graph = g.finish(y);
    let _ = Weights::<f64>::from_safetensors(&graph, data);
});
