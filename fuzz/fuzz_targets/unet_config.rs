//! A diffusers `config.json` on arbitrary text: parsed, validated and built into a graph,
//! or refused with an error. Building must stay cheap whatever the numbers claim.
#![no_main]

use cipherdm_models::model::Model;
use cipherdm_models::unet2d::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = serde_json::from_slice::<Config>(data) {
        let _ = Model::unet2d(config);
    }
});
