//! A party's guidance share file on hostile bytes, read against a job's binding: the shares
//! or a typed `ShareFileError` (wrong magic, header, party, encoding, binding, length), never
//! a panic or a read whose size comes from the file.
#![no_main]

use cipherdm_kernel::{FixedPoint, PartyId, Shape};
use cipherdm_models::secure::guidance_file::{GuidanceBinding, read_guidance};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let binding = GuidanceBinding {
        model_id: "tiny".into(),
        architecture_hash: [7; 32],
        seed: 1,
        steps: 2,
        batch: 1,
        guidance: "correction:1".into(),
        profile: "cipherdm".into(),
    };
    let Ok(image) = Shape::new(&[1, 1, 4, 4]) else {
        return;
    };
    if let Ok(steps) = read_guidance(
        std::io::Cursor::new(data),
        "fuzz input",
        PartyId::P2,
        &binding,
        FixedPoint::default(),
        &image,
    ) {
        assert_eq!(steps.len(), binding.steps);
    }
});
