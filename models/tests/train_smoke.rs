//! The training backend (cargo feature `train`): it evaluates the same graphs as the plain
//! backend, and a few steps of training run and learn. `.ci/run` runs this file with
//! `--features train`.
#![cfg(feature = "train")]

use cipherdm_kernel::exec::run;
use cipherdm_models::mnist::{Mnist, Split};
use cipherdm_models::model::Model;
use cipherdm_models::plain::{Nonlinearity, PlainBackend};
use cipherdm_models::schedule::{Condition, initial_noise};
use cipherdm_models::train::{CandleBackend, TrainConfig, train_classifier, train_diffusion};
use cipherdm_models::{classifier, unet2d};

#[test]
fn candle_and_plain_backends_agree_on_every_architecture() {
    for model in [
        Model::tiny().unwrap(),
        Model::unet2d(unet2d::Config::mnist()).unwrap(),
    ] {
        let mut cb = CandleBackend::init(&model.graph, 3).unwrap();
        let w = cb.weights().unwrap();
        let x = initial_noise(1, vec![2, 1, 28, 28]).cast::<f32>();
        let conds = [Condition::Class(1), Condition::Mean];
        let inputs = model.inputs(&x, 381, &conds).unwrap();
        let got = cb.forward(&model.graph, inputs.clone()).unwrap();
        let mut pb = PlainBackend::new(w, Nonlinearity::Exact);
        let want = run(&model.graph, &mut pb, inputs).unwrap();
        let d = got.max_abs_diff(&want).unwrap();
        assert!(d < 1e-4, "{:?}: candle vs plain {d}", model.architecture);
    }
}

#[test]
fn candle_and_plain_agree_on_the_transformer_ops() {
    use cipherdm_kernel::graph::{Activation, GraphBuilder};
    use cipherdm_models::Tensor;
    // LayerNorm over channels, cross-attention to a map of another length, GEGLU.
    let mut g = GraphBuilder::new();
    let x = g.input("x", vec![8, 3, 3]);
    let ctx = g.input("context", vec![5, 4, 1]);
    let h = g.layer_norm("norm", x, 1e-5).unwrap();
    let q = g.linear_1x1("to_q", h, 8, false).unwrap();
    let k = g.linear_1x1("to_k", ctx, 8, false).unwrap();
    let v = g.linear_1x1("to_v", ctx, 8, false).unwrap();
    let a = g.attention("attn", q, k, v, 2).unwrap();
    let p = g.linear_1x1("proj", a, 16, true).unwrap();
    let val = g.split("value", p, 0, 8).unwrap();
    let gate = g.split("gate", p, 8, 8).unwrap();
    let gate = g.act("gelu", gate, Activation::Gelu);
    let y = g.mul("geglu", val, gate).unwrap();
    let graph = g.finish(y);
    let mut cb = CandleBackend::init(&graph, 3).unwrap();
    let w = cb.weights().unwrap();
    let x = initial_noise(1, vec![2, 8, 3, 3]).cast::<f32>();
    let c = initial_noise(2, vec![2, 5, 4, 1]).cast::<f32>();
    let inputs: Vec<(&str, Tensor<f32>)> = vec![("x", x), ("context", c)];
    let got = cb.forward(&graph, inputs.clone()).unwrap();
    let mut pb = PlainBackend::new(w, Nonlinearity::Exact);
    let want = run(&graph, &mut pb, inputs).unwrap();
    let d = got.max_abs_diff(&want).unwrap();
    assert!(d < 1e-4, "candle vs plain {d}");
}

#[test]
fn a_few_steps_learn() {
    let data = Mnist::load(Split::Train).unwrap();
    let small = Mnist {
        images: data.images[..64 * 784].to_vec(),
        labels: data.labels[..64].to_vec(),
    };
    let cfg = TrainConfig {
        steps: 120,
        batch: 32,
        lr: 3e-3,
        ema: 0.9,
        seed: 5,
        log_every: 1000,
        checkpoint_every: 0,
        min_snr_gamma: Some(cipherdm_models::train::MIN_SNR_GAMMA),
    };
    let g = classifier::graph(true).unwrap();
    let w = train_classifier(&g, &small, &cfg).unwrap();
    let mut b = PlainBackend::new(w, Nonlinearity::Exact);
    let idx: Vec<usize> = (0..64).collect();
    let logits = run(&g, &mut b, vec![("x", small.batch(&idx))]).unwrap();
    let hits = logits
        .data()
        .chunks(10)
        .zip(&small.labels)
        .filter(|(r, l)| (0..10).fold(0, |b, i| if r[i] > r[b] { i } else { b }) == **l as usize)
        .count();
    assert!(hits >= 40, "memorised only {hits}/64 training digits");

    // Diffusion: three steps run, produce finite weights that load back through the checked loader.
    let model = Model::tiny().unwrap();
    let cfg = TrainConfig {
        steps: 3,
        batch: 2,
        lr: 1e-3,
        ema: 0.9,
        seed: 1,
        log_every: 1000,
        checkpoint_every: 0,
        min_snr_gamma: Some(cipherdm_models::train::MIN_SNR_GAMMA),
    };
    let mut saw = 0;
    let cfg = TrainConfig {
        checkpoint_every: 1,
        min_snr_gamma: Some(cipherdm_models::train::MIN_SNR_GAMMA),
        ..cfg
    };
    let w = train_diffusion(&model, &small.filter(&[0, 1]), &cfg, None, &mut |_, _| {
        saw += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(saw, 3, "one checkpoint per step");
    assert!(
        w.iter()
            .all(|(_, t)| t.data().iter().all(|v| v.is_finite()))
    );
    let bytes = w.to_safetensors(&model.graph).unwrap();
    assert_eq!(
        cipherdm_models::Weights::<f32>::from_safetensors(&model.graph, &bytes).unwrap(),
        w
    );
}
