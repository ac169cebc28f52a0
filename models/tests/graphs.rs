//! Graph shapes and parameter counts, and the plain / plain-approx backends.

use cipherdm_kernel::approx::{self, Function, Profile};
use cipherdm_kernel::exec::run;
use cipherdm_kernel::graph::{Activation, GraphBuilder, Op};
use cipherdm_models::model::{Model, PlainDenoiser};
use cipherdm_models::plain::{Nonlinearity, PlainBackend, silu};
use cipherdm_models::schedule::{Condition, initial_noise};
use cipherdm_models::{Tensor, Weights, classifier, tiny, unet2d};

/// Deterministic pseudo-random weights for a graph (small, so activations stay sane).
pub fn random_weights(graph: &cipherdm_kernel::graph::Graph, seed: u64) -> Weights<f64> {
    let mut w = Weights::default();
    for (i, s) in graph.weights.iter().enumerate() {
        let n: usize = s.shape.iter().product();
        let noise = initial_noise(seed + i as u64, vec![n]);
        let scale = if s.name.ends_with("scale")
            || (s.name.contains("norm") && s.name.ends_with("weight"))
        {
            0.1
        } else {
            0.3
        };
        let base = if s.name.ends_with("scale")
            || (s.name.contains("norm") && s.name.ends_with("weight"))
        {
            1.0
        } else {
            0.0
        };
        w.insert(
            s.name.clone(),
            Tensor::new(
                s.shape.clone(),
                noise.data().iter().map(|v| base + scale * v).collect(),
            )
            .unwrap(),
        );
    }
    w
}

fn params_with_prefix(g: &cipherdm_kernel::graph::Graph, prefix: &str) -> usize {
    g.weights
        .iter()
        .filter(|w| w.name.starts_with(prefix))
        .map(|w| w.shape.iter().product::<usize>())
        .sum()
}

#[test]
fn tiny_has_cipherdms_parameter_counts_and_shapes() {
    let g = tiny::graph().unwrap();
    assert_eq!(g.parameter_count(), 15_881);
    assert_eq!(g.weights.len(), 196, "tensors in CipherDM's checkpoint");
    // Per-module counts from the reference (§1.3).
    for (m, n) in [
        ("init_conv.", 40),
        ("time_mlp.", 112),
        ("downs_0.", 356),
        ("downs_2.", 148),
        ("downs_3.", 1336),
        ("downs_4.", 1592),
        ("mid_0.", 1592),
        ("mid_1.", 1288),
        ("ups_0.", 2320),
        ("ups_2.", 1992),
        ("ups_3.", 584),
        ("ups_4.", 712),
        ("ups_5.", 544),
        ("out_norm.", 8),
        ("out_conv.", 37),
    ] {
        assert_eq!(params_with_prefix(&g, m), n, "{m}");
    }
    assert_eq!(g.nodes[g.output].shape, vec![1, 28, 28]);
    // 31 GroupNorms, 6 attention blocks, as in the reference (§1.4).
    let count = |f: fn(&Op) -> bool| g.nodes.iter().filter(|n| f(&n.op)).count();
    assert_eq!(count(|o| matches!(o, Op::GroupNorm { .. })), 31);
    assert_eq!(count(|o| matches!(o, Op::Attention { .. })), 6);
}

#[test]
fn mnist_unet_shape_and_size() {
    let g = unet2d::graph(&unet2d::Config::mnist()).unwrap();
    let p = g.parameter_count();
    assert!((300_000..=2_000_000).contains(&p), "{p} parameters");
    assert_eq!(g.nodes[g.output].shape, vec![1, 28, 28]);
    assert!(g.weight("down_blocks.2.attentions.0.to_q.weight").is_some());
    assert!(
        g.weight("up_blocks.0.resnets.1.conv_shortcut.weight")
            .is_some()
    );
    assert!(g.weight("class_embedding.weight").is_some());
    // Attention only at 7×7: every attention op is over 49 positions.
    for n in &g.nodes {
        if matches!(n.op, Op::Attention { .. }) {
            assert_eq!(n.shape[1] * n.shape[2], 49, "{}", n.name);
        }
    }
}

#[test]
fn unsupported_diffusers_configs_are_typed_errors() {
    let mut c = unet2d::Config::mnist();
    c.act_fn = "mish".into();
    assert!(matches!(
        unet2d::graph(&c),
        Err(cipherdm_models::ModelError::Config(_))
    ));
    let mut c = unet2d::Config::mnist();
    c.down_block_types[0] = "CrossAttnDownBlock2D".into();
    assert!(matches!(
        unet2d::graph(&c),
        Err(cipherdm_models::ModelError::Config(_))
    ));
    let mut c = unet2d::Config::mnist();
    c.norm_num_groups = 5;
    // Refused by name before the graph is built.
    assert!(matches!(
        unet2d::graph(&c),
        Err(cipherdm_models::ModelError::Config(m)) if m.contains("norm_num_groups")
    ));
}

/// A config that asks for an absurd graph is refused by name before anything is built
/// (the fuzz regression `fuzz/corpus/unet_config/layers_per_block_2121.json`), and zeros
/// that would divide or shift by nothing are refused too.
#[test]
fn oversized_or_zero_diffusers_configs_are_refused_by_field() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fuzz/corpus/unet_config/layers_per_block_2121.json"
    ))
    .unwrap();
    // The misspelt key is refused by name first; without it, the oversized field.
    let named = |text: &str, field: &str| match unet2d::Config::from_json(text, "regression") {
        Err(cipherdm_models::ModelError::Config(m)) => {
            assert!(m.contains(field), "`{m}` should name {field}")
        }
        other => panic!("{field}: {other:?}"),
    };
    named(&text, "layers_per_blok");
    let text = text.replace(",\n  \"layers_per_blok\": 1", "");
    named(&text, "layers_per_block");
    let c = unet2d::Config::mnist();
    let refused = |c: &unet2d::Config, field: &str| match unet2d::graph(c) {
        Err(cipherdm_models::ModelError::Config(m)) => {
            assert!(m.contains(field), "`{m}` should name {field}")
        }
        other => panic!("{field}: {other:?}"),
    };
    let mut c = c;
    c.layers_per_block = 2121;
    refused(&c, "layers_per_block");
    let mut c = unet2d::Config::mnist();
    c.block_out_channels = vec![16; 100];
    c.down_block_types = vec!["DownBlock2D".into(); 100];
    c.up_block_types = vec!["UpBlock2D".into(); 100];
    refused(&c, "block_out_channels");
    for field in ["attention_head_dim", "sample_size", "norm_num_groups"] {
        let mut c = unet2d::Config::mnist();
        match field {
            "attention_head_dim" => c.attention_head_dim = Some(0),
            "sample_size" => c.sample_size = 0,
            _ => c.norm_num_groups = 0,
        }
        refused(&c, field);
    }
    let mut c = unet2d::Config::mnist();
    c.block_out_channels[1] = 1 << 20;
    refused(&c, "block_out_channels");
}

#[test]
fn classifier_shapes() {
    assert_eq!(
        classifier::graph(true).unwrap().nodes.last().unwrap().shape,
        vec![10]
    );
    let body = classifier::graph(false).unwrap();
    assert_eq!(body.nodes[body.output].shape, vec![classifier::FEATURES]);
}

#[test]
fn approx_backend_uses_the_kernel_tables_exactly() {
    let mut g = GraphBuilder::new();
    let x = g.input("x", vec![200]);
    let y = g.act("silu", x, Activation::Silu);
    let graph = g.finish(y);
    let xs: Vec<f64> = (0..200).map(|i| -10.0 + 0.1 * i as f64).collect();
    let input = Tensor::new(vec![1, 200], xs.clone()).unwrap();
    let mut exact = PlainBackend::<f64>::new(Weights::default(), Nonlinearity::Exact);
    let out = run(&graph, &mut exact, vec![("x", input.clone())]).unwrap();
    for (o, x) in out.data().iter().zip(&xs) {
        assert!((o - silu(*x)).abs() < 1e-15);
    }
    for p in [
        Profile::CipherDm,
        Profile::Precise,
        Profile::Loose,
        Profile::Accurate,
    ] {
        let e = approx::entry(p, Function::Silu).unwrap();
        let mut b = PlainBackend::<f64>::new(Weights::default(), Nonlinearity::Approx(p));
        let out = run(&graph, &mut b, vec![("x", input.clone())]).unwrap();
        for (o, x) in out.data().iter().zip(&xs) {
            assert_eq!(*o, e.eval(*x), "{p:?} at {x}");
            // Documented errors carry three significant digits: allow 1 %.
            if (e.domain.0..=e.domain.1).contains(x) {
                assert!(
                    (o - silu(*x)).abs() <= e.max_error * 1.01,
                    "{p:?} at {x}: {}",
                    (o - silu(*x)).abs()
                );
            }
        }
    }
    // GeLU is not in CipherDM's profile: a typed error, not a silent fallback.
    let mut g = GraphBuilder::new();
    let x = g.input("x", vec![1]);
    let y = g.act("gelu", x, Activation::Gelu);
    let graph = g.finish(y);
    let mut b =
        PlainBackend::<f64>::new(Weights::default(), Nonlinearity::Approx(Profile::CipherDm));
    let r = run(
        &graph,
        &mut b,
        vec![("x", Tensor::new(vec![1, 1], vec![0.5]).unwrap())],
    );
    assert!(matches!(r, Err(cipherdm_models::ModelError::Kernel(_))));
}

#[test]
fn plain_approx_tiny_tracks_plain_within_the_profile_errors() {
    let model = Model::tiny().unwrap();
    let w = random_weights(&model.graph, 7);
    let x = initial_noise(3, vec![2, 1, 28, 28]);
    let conds = [Condition::Class(0), Condition::Class(1)];
    let mut exact = PlainDenoiser::new(model.clone(), w.clone(), Nonlinearity::Exact).unwrap();
    let reference = exact.forward(&x, 500, &conds).unwrap();
    // f32 and f64 plain agree closely.
    let mut f32net =
        PlainDenoiser::new(model.clone(), w.cast::<f32>(), Nonlinearity::Exact).unwrap();
    let d = f32net
        .forward(&x.cast(), 500, &conds)
        .unwrap()
        .cast::<f64>()
        .max_abs_diff(&reference)
        .unwrap();
    assert!(d < 1e-3, "f32 vs f64: {d}");
    // Accurate (≤ 1e-3 per activation) stays close; CipherDm (0.07 SiLU error) drifts further.
    let mut acc = exact.with_nonlinearity(Nonlinearity::Approx(Profile::Accurate));
    let mut cdm = exact.with_nonlinearity(Nonlinearity::Approx(Profile::CipherDm));
    let da = acc
        .forward(&x, 500, &conds)
        .unwrap()
        .max_abs_diff(&reference)
        .unwrap();
    let dc = cdm
        .forward(&x, 500, &conds)
        .unwrap()
        .max_abs_diff(&reference)
        .unwrap();
    eprintln!("tiny forward, random weights: Accurate {da:.2e}, CipherDm {dc:.2e}");
    assert!(da > 0.0 && da < 0.05, "Accurate drift {da}");
    assert!(
        dc > da,
        "CipherDm {dc} should drift more than Accurate {da}"
    );
}

#[test]
fn batch_items_are_independent() {
    // Running two items together equals running them one by one (threads split the batch).
    let model = Model::tiny().unwrap();
    let w = random_weights(&model.graph, 11);
    let x = initial_noise(5, vec![3, 1, 28, 28]);
    let conds = [Condition::Class(0), Condition::Mean, Condition::Class(1)];
    let mut net = PlainDenoiser::new(model, w, Nonlinearity::Exact).unwrap();
    let all = net.forward(&x, 21, &conds).unwrap();
    for i in 0..3 {
        let one = net
            .forward(&x.batch_slice(i, 1).unwrap(), 21, &conds[i..i + 1])
            .unwrap();
        assert!(one.max_abs_diff(&all.batch_slice(i, 1).unwrap()).unwrap() < 1e-12);
    }
}

#[test]
fn sd15_sized_graph_has_sd15_parameter_count_and_shapes() {
    let g = cipherdm_models::sd15::graph().unwrap();
    // diffusers' SD 1.5 UNet has exactly 859,520,964 parameters.
    assert_eq!(g.parameter_count(), 859_520_964);
    let out = &g.nodes[g.output].shape;
    assert_eq!(out, &vec![4, 64, 64]);
}

/// Stable Diffusion 1.5's `config.json` with `field` set to `value` (added or replaced).
fn sd15_with(field: &str, value: serde_json::Value) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/diffusers/sd15_unet_config.json"
    ))
    .unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v[field] = value;
    v.to_string()
}

/// Every field of diffusers' `UNet2DConditionModel` that this implementation does not
/// honour is refused by name when it asks for something else than the default, as are
/// unknown fields and absurd sizes.
#[test]
fn text_unet_config_fields_are_honoured_or_refused_by_name() {
    use cipherdm_models::unet2d_condition::Config;
    use serde_json::json;
    for (field, value) in [
        ("center_input_sample", json!(true)),
        ("class_embed_type", json!("timestep")),
        ("num_class_embeds", json!(10)),
        ("dual_cross_attention", json!(true)),
        ("addition_embed_type", json!("text")),
        ("only_cross_attention", json!(true)),
        ("conv_in_kernel", json!(5)),
        ("resnet_time_scale_shift", json!("scale_shift")),
        ("mid_block_type", json!("UNetMidBlock2DSimpleCrossAttn")),
        ("cross_attention_dim", json!([768, 1024, 768, 768])),
        ("sample_size", json!([64, 32])),
        ("attention_head_dim", json!([8, 8])),
        ("layers_per_blok", json!(2)),
        ("layers_per_block", json!(2121)),
        ("block_out_channels", json!([320, 640, 1280, 1000])),
        ("transformer_layers_per_block", json!(0)),
        ("down_block_types", json!(["CrossAttnDownBlock2D"])),
        ("norm_eps", json!("small")),
        ("_class_name", json!("UNet2DModel")),
    ] {
        match Config::from_json(&sd15_with(field, value.clone()), "sd15") {
            Err(cipherdm_models::ModelError::Config(m)) => {
                assert!(
                    m.contains(&format!("`{field}`")),
                    "{field}: `{m}` should name it"
                )
            }
            other => panic!("{field} = {value}: {other:?}"),
        }
    }
    // Values that cannot change an inference are accepted whatever they are.
    for (field, value) in [
        ("dropout", json!(0.1)),
        ("upcast_attention", json!(true)),
        ("_name_or_path", json!("somewhere")),
        ("resnet_out_scale_factor", json!(1)),
    ] {
        assert_eq!(
            Config::from_json(&sd15_with(field, value), "sd15").unwrap(),
            Config::sd15()
        );
    }
    // Heads given the modern way mean the same.
    let c = Config::from_json(&sd15_with("num_attention_heads", json!(8)), "sd15").unwrap();
    assert_eq!(c, Config::sd15());
}

#[test]
fn unet2d_config_fields_are_honoured_or_refused_by_name() {
    use serde_json::json;
    let mnist = serde_json::to_value(unet2d::Config::mnist()).unwrap();
    let with = |field: &str, value: serde_json::Value| {
        let mut v = mnist.clone();
        v[field] = value;
        unet2d::Config::from_json(&v.to_string(), "mnist")
    };
    for (field, value) in [
        ("center_input_sample", json!(true)),
        ("class_embed_type", json!("timestep")),
        ("upsample_type", json!("resnet")),
        ("attn_norm_num_groups", json!(5)),
        ("sample_size", json!([28, 14])),
        ("mid_block_scale_factor", json!(-1.0)),
        ("nonsense", json!(1)),
    ] {
        match with(field, value.clone()) {
            Err(cipherdm_models::ModelError::Config(m)) => {
                assert!(m.contains(field), "{field}: `{m}` should name it")
            }
            other => panic!("{field} = {value}: {other:?}"),
        }
    }
    // An unconditional model has no label input; `attention_head_dim: null` is one head.
    let c = with("num_class_embeds", json!(null)).unwrap();
    let g = unet2d::graph(&c).unwrap();
    assert!(g.weight("class_embedding.weight").is_none());
    assert!(
        !g.nodes
            .iter()
            .any(|n| matches!(&n.op, cipherdm_kernel::graph::Op::Input(i) if i == "label"))
    );
    let c = with("attention_head_dim", json!(null)).unwrap();
    assert_eq!(c.attention_head_dim, None);
    let c = with("sample_size", json!([28, 28])).unwrap();
    assert_eq!(c.sample_size, 28);
}
