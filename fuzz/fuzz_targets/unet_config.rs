//! A diffusers `config.json` on arbitrary text: read field by field (`UNet2DModel` or
//! `UNet2DConditionModel`, by `_class_name`), validated and built into a graph, or refused
//! with an error. Building must stay cheap whatever the numbers claim.
#![no_main]

use cipherdm_models::diffusers_config::class_name;
use cipherdm_models::model::Model;
use cipherdm_models::{unet2d, unet2d_condition};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match class_name(text, "fuzz").as_deref() {
        Ok("UNet2DConditionModel") => {
            if let Ok(c) = unet2d_condition::Config::from_json(text, "fuzz") {
                let _ = unet2d_condition::graph(&c, 77);
            }
        }
        Ok(_) => {
            if let Ok(c) = unet2d::Config::from_json(text, "fuzz") {
                let _ = Model::unet2d(c);
            }
        }
        Err(_) => {}
    }
});
