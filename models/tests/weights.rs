//! The weight loader: exact round trips and precise errors.

use cipherdm_models::model::Model;
use cipherdm_models::{ModelError, Tensor, Weights, tiny, unet2d};

fn numbered(graph: &cipherdm_kernel::graph::Graph) -> Weights<f32> {
    let mut w = Weights::default();
    let mut k = 0.0f32;
    for s in &graph.weights {
        let n: usize = s.shape.iter().product();
        w.insert(
            s.name.clone(),
            Tensor::new(s.shape.clone(), (0..n).map(|i| k + i as f32).collect()).unwrap(),
        );
        k += 1000.0;
    }
    w
}

#[test]
fn round_trip_through_flax_and_pytorch_layouts() {
    for g in [
        tiny::graph().unwrap(),
        unet2d::graph(&unet2d::Config::mnist()).unwrap(),
    ] {
        let w = numbered(&g);
        let bytes = w.to_safetensors(&g).unwrap();
        assert_eq!(Weights::<f32>::from_safetensors(&g, &bytes).unwrap(), w);
    }
}

#[test]
fn hwio_file_layout_is_transposed_into_oihw() {
    // A flax kernel (kh, kw, in, out) = (3, 3, 4, 4): element [y][x][i][o] must land at [o][i][y][x].
    let g = tiny::graph().unwrap();
    let w = numbered(&g);
    let bytes = w.to_safetensors(&g).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let v = st.tensor("downs_0.Conv_0.kernel").unwrap();
    assert_eq!(v.shape(), &[3, 3, 4, 4]);
    let file: Vec<f32> = v
        .data()
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let canon = w.get("downs_0.Conv_0.kernel").unwrap();
    let (y, x, i, o) = (2, 1, 3, 0);
    assert_eq!(
        file[((y * 3 + x) * 4 + i) * 4 + o],
        canon.data()[((o * 4 + i) * 3 + y) * 3 + x]
    );
}

fn err_text(r: Result<Weights<f32>, ModelError>) -> String {
    match r {
        Err(ModelError::Weight(m)) | Err(ModelError::Format { detail: m, .. }) => m,
        other => panic!("expected a weight error, got {other:?}"),
    }
}

#[test]
fn loader_names_missing_wrong_and_extra_tensors() {
    let g = tiny::graph().unwrap();
    let w = numbered(&g);
    let good = w.to_safetensors(&g).unwrap();
    let st = safetensors::SafeTensors::deserialize(&good).unwrap();
    // Rebuild the file with one tensor dropped, one reshaped, one re-typed and one extra.
    let mut owned: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != "ups_3.ConvTranspose_0.kernel")
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    for t in &mut owned {
        if t.0 == "out_conv.bias" {
            t.2 = vec![1, 1];
        }
        if t.0 == "init_conv.bias" {
            t.1 = safetensors::Dtype::I32;
        }
    }
    owned.push((
        "ema.extra".into(),
        safetensors::Dtype::F32,
        vec![1],
        vec![0; 4],
    ));
    let views: Vec<_> = owned
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let bad = safetensors::serialize(views, None).unwrap();
    let msg = err_text(Weights::<f32>::from_safetensors(&g, &bad));
    for needle in [
        "`ups_3.ConvTranspose_0.kernel` is missing",
        "`out_conv.bias` has shape [1, 1], the graph needs [1]",
        "`init_conv.bias` has dtype I32",
        "`ema.extra` is not a weight of this graph",
    ] {
        assert!(msg.contains(needle), "{needle:?} not in {msg}");
    }
    // Garbage and truncated files are format errors, not panics.
    let _ = err_text(Weights::<f32>::from_safetensors(
        &g,
        b"not a safetensors file",
    ));
    let _ = err_text(Weights::<f32>::from_safetensors(
        &g,
        &good[..good.len() / 2],
    ));
    let _ = err_text(Weights::<f32>::from_safetensors(&g, &[0xff; 8]));
}

#[test]
fn diffusers_folder_loads() {
    let dir = std::env::temp_dir().join(format!("cipherdm-diffusers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = unet2d::Config::mnist();
    let model = Model::unet2d(config.clone()).unwrap();
    let w = numbered(&model.graph);
    config.save(&dir).unwrap();
    w.save(
        &model.graph,
        dir.join("diffusion_pytorch_model.safetensors"),
    )
    .unwrap();
    let loaded = Model::unet2d(unet2d::Config::load(&dir).unwrap()).unwrap();
    assert_eq!(loaded, model);
    assert_eq!(loaded.load_weights::<f32>(&dir).unwrap(), w);
    // A config that is not JSON is a format error naming the file.
    std::fs::write(dir.join("config.json"), "{ nope").unwrap();
    assert!(matches!(
        unet2d::Config::load(&dir),
        Err(ModelError::Format { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The three parties' dealt weights reconstruct to the seeded initialisation, per tensor,
/// and every party's pair is consistent with its neighbours'.
#[test]
fn dealt_weights_reconstruct_to_the_seeded_values() {
    use cipherdm_kernel::exec::WeightSource;
    use cipherdm_kernel::{FixedPoint, Shape, share::reconstruct};
    use cipherdm_models::init::{DealtWeights, weights};
    let graph = unet2d::graph(&unet2d::Config::mnist()).unwrap();
    let fixed = FixedPoint::default();
    let want = weights(&graph, 9).unwrap();
    let mut sources = [0, 1, 2].map(|i| DealtWeights::new(&graph, 9, i, fixed));
    for spec in graph.weights.iter().take(12) {
        let shape = Shape::new(&spec.shape).unwrap();
        let [a, b, c] = [0, 1, 2].map(|i| sources[i].fetch(&spec.name, &shape).unwrap());
        let opened = reconstruct([&a, &b, &c]).unwrap();
        for (o, v) in opened.iter().zip(want.get(&spec.name).unwrap().data()) {
            assert_eq!(*o, fixed.encode::<u64>(*v).unwrap(), "{}", spec.name);
        }
    }
}
