//! A party's share file on hostile bytes, opened against a small graph and read tensor by
//! tensor: every defect is a typed `ShareFileError`, never a panic or an unbounded read.
#![no_main]

use cipherdm_kernel::exec::WeightSource;
use cipherdm_kernel::graph::GraphBuilder;
use cipherdm_kernel::{FixedPoint, PartyId, Shape};
use cipherdm_models::secure::ShareFileSource;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut g = GraphBuilder::new();
    let x = g.input("x", vec![4]);
    let Ok(y) = g.dense("d", x, 3) else { return };
    let graph = g.finish(y);
    let file = std::io::Cursor::new(data);
    if let Ok(mut src) = ShareFileSource::<_>::from_reader(
        file,
        "fuzz input",
        PartyId::P1,
        &graph,
        "fuzz",
        FixedPoint::default(),
    ) {
        for spec in &graph.weights {
            if let Ok(shape) = Shape::new(&spec.shape) {
                let _ = WeightSource::<u64>::fetch(&mut src, &spec.name, &shape);
            }
        }
    }
});
