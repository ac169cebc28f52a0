//! `cipherdm init-model`: a diffusers config in, a loadable diffusers folder out, holding
//! the seeded initialisation the cost runs deal; bad configs refused by field name.

use std::path::Path;
use std::process::Command;

use cipherdm_models::{Weights, init, unet2d_condition};

const BIN: &str = env!("CARGO_BIN_EXE_cipherdm");

fn fixture(name: &str) -> String {
    format!(
        "{}/../models/tests/fixtures/diffusers/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn init_model_writes_a_folder_that_loads_with_the_seeded_values() {
    let out = std::env::temp_dir().join(format!("cipherdm-init-{}", std::process::id()));
    let status = Command::new(BIN)
        .args([
            "init-model",
            "--config",
            &fixture("cond_variant/config.json"),
        ])
        .args(["--seed", "3", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let cfg = unet2d_condition::Config::load(&out).unwrap();
    assert_eq!(
        cfg,
        unet2d_condition::Config::load(fixture("cond_variant")).unwrap()
    );
    let graph = unet2d_condition::graph(&cfg, 77).unwrap();
    let w: Weights<f64> =
        Weights::load(&graph, out.join("diffusion_pytorch_model.safetensors")).unwrap();
    let want = init::weights(&graph, 3).unwrap();
    for (name, t) in want.iter() {
        let got = w.get(name).unwrap();
        assert_eq!(got.shape(), t.shape(), "{name}");
        for (a, b) in got.data().iter().zip(t.data()) {
            assert_eq!(*a, *b as f32 as f64, "{name}");
        }
    }
    // Another seed gives other weights.
    let other = init::weights(&graph, 4).unwrap();
    assert_ne!(other, want);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn init_model_refuses_a_config_by_field_name() {
    let dir = std::env::temp_dir().join(format!("cipherdm-init-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(fixture("sd15_unet_config.json")).unwrap();
    let bad = dir.join("config.json");
    std::fs::write(
        &bad,
        text.replace("\"layers_per_block\"", "\"layers_per_blok\""),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["init-model", "--config"])
        .arg(&bad)
        .args(["--out"])
        .arg(dir.join("out"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`layers_per_blok`"), "{err}");
    assert!(!Path::new(&dir.join("out/diffusion_pytorch_model.safetensors")).exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
