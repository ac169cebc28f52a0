//! The plaintext f64 forward of diffusers folders equals diffusers' own output: small
//! `UNet2DConditionModel`s and `UNet2DModel`s built, saved and run by diffusers 0.31.0
//! (`tests/fixtures/diffusers/make_fixtures.py`), loaded here through `config.json` and
//! `diffusion_pytorch_model.safetensors` as a user's folder would be.

use std::path::{Path, PathBuf};

use cipherdm_kernel::exec::run;
use cipherdm_kernel::graph::Graph;
use cipherdm_models::diffusers_config::class_name;
use cipherdm_models::plain::{Nonlinearity, PlainBackend};
use cipherdm_models::{Tensor, Weights, unet2d, unet2d_condition};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/diffusers")
}

fn floats(v: &Value, key: &str) -> Vec<f64> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("io.json has no `{key}`"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn dims(v: &Value, key: &str) -> Vec<usize> {
    floats(v, key).into_iter().map(|x| x as usize).collect()
}

/// Named graph inputs.
type Inputs = Vec<(&'static str, Tensor<f64>)>;

/// The graph, its inputs from io.json, and the expected output.
fn case(name: &str) -> (Graph, Inputs, Vec<f64>) {
    let dir = fixtures().join(name);
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let io: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("io.json")).unwrap()).unwrap();
    let t = io["timestep"].as_f64().unwrap();
    assert_eq!(io["diffusers"], "0.31.0");
    let x = Tensor::new(dims(&io, "sample_shape"), floats(&io, "sample")).unwrap();
    let mut inputs = vec![("x", x)];
    let graph = match class_name(&text, name).unwrap().as_str() {
        "UNet2DConditionModel" => {
            let cfg = unet2d_condition::Config::from_json(&text, name).unwrap();
            // diffusers' (B, T, D) prompt embedding, channel-major (B, D, T, 1) here.
            let shape = dims(&io, "context_shape");
            let (tokens, width) = (shape[1], shape[2]);
            let raw = floats(&io, "context");
            let mut ctx = vec![0.0; raw.len()];
            for tok in 0..tokens {
                for d in 0..width {
                    ctx[d * tokens + tok] = raw[tok * width + d];
                }
            }
            inputs.push((
                "context",
                Tensor::new(vec![1, width, tokens, 1], ctx).unwrap(),
            ));
            check_time_features(&cfg.time_features(t), &io);
            unet2d_condition::graph(&cfg, tokens).unwrap()
        }
        _ => {
            let cfg = unet2d::Config::from_json(&text, name).unwrap();
            if let Some(classes) = cfg.num_class_embeds {
                let k = io["class_label"].as_u64().unwrap() as usize;
                let row = (0..classes).map(|i| f64::from(u8::from(i == k))).collect();
                inputs.push(("label", Tensor::new(vec![1, classes], row).unwrap()));
            }
            check_time_features(&unet2d::time_features(&cfg, t), &io);
            unet2d::graph(&cfg).unwrap()
        }
    };
    // The network is compared on diffusers' own features (see `check_time_features`).
    let feats = floats(&io, "time_features");
    inputs.push(("time", Tensor::new(vec![1, feats.len()], feats).unwrap()));
    (graph, inputs, floats(&io, "output"))
}

/// Our f64 time features against diffusers', which it computes in float32: the
/// arguments `t·f` (t = 501) carry f32 rounding of up to 501 · 2⁻²⁴ ≈ 3e-5.
fn check_time_features(ours: &[f64], io: &Value) {
    let theirs = floats(io, "time_features");
    assert_eq!(ours.len(), theirs.len());
    let err = ours
        .iter()
        .zip(&theirs)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(err < 1e-4, "time features differ by {err}");
}

fn check(name: &str) {
    let (graph, inputs, want) = case(name);
    let weights: Weights<f64> = Weights::load(
        &graph,
        fixtures()
            .join(name)
            .join("diffusion_pytorch_model.safetensors"),
    )
    .unwrap();
    let mut backend = PlainBackend::new(weights, Nonlinearity::Exact);
    let got = run(&graph, &mut backend, inputs).unwrap();
    assert_eq!(got.len(), want.len(), "{name}: output size");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let err = got
        .data()
        .iter()
        .zip(&want)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    // Both sides compute in f64; the erf of the GeLU and summation order differ.
    assert!(
        err <= 1e-9 * scale.max(1.0),
        "{name}: max |ours − diffusers| = {err:e} (output scale {scale})"
    );
}

#[test]
fn small_sd_shaped_unet_equals_diffusers() {
    check("cond_small");
}

#[test]
fn linear_projections_per_level_heads_and_mid_scale_equal_diffusers() {
    check("cond_variant");
}

#[test]
fn unconditional_unet2d_with_mid_scale_and_attention_groups_equals_diffusers() {
    check("uncond_2d");
}

#[test]
fn class_conditional_unet2d_equals_diffusers() {
    check("class_2d");
}

#[test]
fn stable_diffusion_15_config_reads_as_the_sd15_architecture() {
    let text = std::fs::read_to_string(fixtures().join("sd15_unet_config.json")).unwrap();
    let cfg = unet2d_condition::Config::from_json(&text, "sd15").unwrap();
    assert_eq!(cfg, unet2d_condition::Config::sd15());
    let g = unet2d_condition::graph(&cfg, 77).unwrap();
    assert_eq!(g.parameter_count(), 859_520_964);
}
