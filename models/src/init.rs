//! Random initialisation of a graph's weights, deterministic per `(seed, tensor name)`:
//! what `cipherdm init-model` writes into a diffusers folder for cost runs, and what
//! [`DealtWeights`] deals on the fly (one tensor at a time, so a Stable-Diffusion-sized
//! graph never has all its weights in memory).
//!
//! The rule follows PyTorch's defaults for the layers diffusers uses: a matrix or
//! convolution kernel (canonical `(out, in, …)`) and its bias draw from
//! `U(−1/√fan_in, 1/√fan_in)`; a normalisation's scale is 1 and its shift 0.

use rand_chacha::ChaCha12Rng;
use rand_core::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

use cipherdm_kernel::exec::WeightSource;
use cipherdm_kernel::share::share_locally;
use cipherdm_kernel::{ArithShare, FixedPoint, Shape};

use crate::error::ModelError;
use crate::tensor::Tensor;
use crate::weights::Weights;
use cipherdm_kernel::graph::Graph;

/// A generator seeded by `seed`, a purpose and a tensor name.
fn stream(seed: u64, purpose: &str, name: &str) -> ChaCha12Rng {
    let mut h = Sha256::new();
    h.update(b"cipherdm init v1\0");
    h.update(seed.to_le_bytes());
    h.update(purpose.as_bytes());
    h.update([0]);
    h.update(name.as_bytes());
    ChaCha12Rng::from_seed(h.finalize().into())
}

fn unit(g: &mut ChaCha12Rng) -> f64 {
    (g.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// The values of weight `name` of canonical `shape` (see the [module docs](self)).
/// `fan_in` is the input width of the layer a bias belongs to (ignored otherwise).
///
/// ```
/// let a = cipherdm_models::init::values(7, "conv_in.weight", &[4, 2, 3, 3], 0);
/// assert_eq!(a.len(), 72);
/// assert!(a.iter().all(|v| v.abs() <= 1.0 / 18f64.sqrt()));
/// assert_eq!(a, cipherdm_models::init::values(7, "conv_in.weight", &[4, 2, 3, 3], 0));
/// assert!(cipherdm_models::init::values(7, "norm1.weight", &[4], 0).iter().all(|&v| v == 1.0));
/// ```
pub fn values(seed: u64, name: &str, shape: &[usize], fan_in: usize) -> Vec<f64> {
    let n: usize = shape.iter().product();
    let leaf = name.rsplit('.').next().unwrap_or(name);
    let is_norm = name.contains("norm") && shape.len() == 1;
    if is_norm {
        return vec![if leaf == "bias" { 0.0 } else { 1.0 }; n];
    }
    let fan = if shape.len() >= 2 {
        shape[1..].iter().product::<usize>()
    } else {
        fan_in
    };
    let bound = 1.0 / (fan.max(1) as f64).sqrt();
    let mut g = stream(seed, "value", name);
    (0..n).map(|_| bound * (2.0 * unit(&mut g) - 1.0)).collect()
}

/// The input width of the layer each bias of `graph` belongs to, by bias name.
fn bias_fan_in(graph: &Graph) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    for w in &graph.weights {
        if let Some(prefix) = w.name.strip_suffix(".weight")
            && w.shape.len() >= 2
        {
            out.insert(format!("{prefix}.bias"), w.shape[1..].iter().product());
        }
    }
    out
}

/// Every weight of `graph`, initialised from `seed`.
pub fn weights(graph: &Graph, seed: u64) -> Result<Weights<f64>, ModelError> {
    let fans = bias_fan_in(graph);
    let mut w = Weights::default();
    for spec in &graph.weights {
        let fan = fans.get(&spec.name).copied().unwrap_or(1);
        let v = values(seed, &spec.name, &spec.shape, fan);
        w.insert(spec.name.clone(), Tensor::new(spec.shape.clone(), v)?);
    }
    Ok(w)
}

/// A party's weight shares dealt on the fly from [`values`]: every fetch initialises the
/// tensor and splits it with a generator seeded by the tensor's name, so the three
/// parties' sources agree without talking and only one tensor is in memory at a time.
///
/// For cost runs and tests in one process only: every party computes the plaintext
/// weights, so nothing about them is secret. Real deployments read share files.
#[derive(Clone, Debug)]
pub struct DealtWeights {
    seed: u64,
    party: usize,
    fixed: FixedPoint,
    fans: std::collections::BTreeMap<String, usize>,
}

impl DealtWeights {
    /// Party `party`'s source for `graph` initialised from `seed`.
    pub fn new(graph: &Graph, seed: u64, party: usize, fixed: FixedPoint) -> Self {
        Self {
            seed,
            party,
            fixed,
            fans: bias_fan_in(graph),
        }
    }
}

impl WeightSource<u64> for DealtWeights {
    type Error = ModelError;

    fn fetch(&mut self, name: &str, shape: &Shape) -> Result<ArithShare<u64>, ModelError> {
        let fan = self.fans.get(name).copied().unwrap_or(1);
        let v = values(self.seed, name, shape.dims(), fan);
        let mut enc = vec![0u64; v.len()];
        self.fixed.encode_slice(&v, &mut enc)?;
        let mut g = stream(self.seed, "split", name);
        let shares = share_locally(&enc, shape.clone(), &mut g)?;
        let [a, b, c] = shares;
        [a, b, c]
            .into_iter()
            .nth(self.party)
            .ok_or_else(|| ModelError::Config(format!("party {} (0, 1 or 2)", self.party)))
    }
}

/// Writes every weight of `graph`, initialised from `seed`, as an f32 safetensors file at
/// `path`, one tensor at a time (a Stable-Diffusion-sized graph never has all its
/// weights in memory). The file loads with [`Weights::load`] and holds, up to f32
/// rounding, what [`DealtWeights`] deals.
pub fn write_safetensors(
    graph: &Graph,
    seed: u64,
    path: &std::path::Path,
) -> Result<(), ModelError> {
    use std::io::Write;
    let fans = bias_fan_in(graph);
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for spec in &graph.weights {
        let n: usize = spec.shape.iter().product();
        header.insert(
            spec.name.clone(),
            serde_json::json!({
                "dtype": "F32",
                "shape": spec.stored.file_shape(&spec.shape),
                "data_offsets": [offset, offset + 4 * n],
            }),
        );
        offset += 4 * n;
    }
    header.insert(
        "__metadata__".into(),
        serde_json::json!({ "format": "pt", "cipherdm_init_seed": seed.to_string() }),
    );
    let mut text = serde_json::to_string(&serde_json::Value::Object(header))
        .map_err(|e| ModelError::format("safetensors header", e.to_string()))?;
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let io = |e| ModelError::io(path, e);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    out.write_all(&(text.len() as u64).to_le_bytes())
        .map_err(io)?;
    out.write_all(text.as_bytes()).map_err(io)?;
    for spec in &graph.weights {
        let fan = fans.get(&spec.name).copied().unwrap_or(1);
        let canonical: Vec<f32> = values(seed, &spec.name, &spec.shape, fan)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        let file = spec.stored.to_file(&spec.shape, &canonical);
        let bytes: Vec<u8> = file.iter().flat_map(|v| v.to_le_bytes()).collect();
        out.write_all(&bytes).map_err(io)?;
    }
    out.flush().map_err(io)
}

/// `cipherdm init-model`: reads a diffusers `config.json` (`UNet2DConditionModel` or
/// `UNet2DModel`, by its `_class_name`), and writes a diffusers folder `out` with that
/// config and `diffusion_pytorch_model.safetensors` initialised from `seed`. Returns the
/// class name and the parameter count.
pub fn init_folder(
    config: &std::path::Path,
    seed: u64,
    out: &std::path::Path,
) -> Result<(&'static str, usize), ModelError> {
    let (text, what) = crate::diffusers_config::read(config)?;
    let (class, graph, json) = match crate::diffusers_config::class_name(&text, &what)?.as_str() {
        "UNet2DConditionModel" => {
            let cfg = crate::unet2d_condition::Config::from_json(&text, &what)?;
            let g = crate::unet2d_condition::graph(&cfg, crate::sd15::TOKENS)?;
            ("UNet2DConditionModel", g, cfg.to_json())
        }
        "UNet2DModel" => {
            let cfg = crate::unet2d::Config::from_json(&text, &what)?;
            let g = crate::unet2d::graph(&cfg)?;
            let json = serde_json::to_string_pretty(&cfg)
                .map_err(|e| ModelError::format("config", e.to_string()))?;
            ("UNet2DModel", g, json + "\n")
        }
        other => {
            return Err(ModelError::Config(format!(
                "{what}: config field `_class_name`: `{other}` is not supported (UNet2DConditionModel, UNet2DModel)"
            )));
        }
    };
    std::fs::create_dir_all(out).map_err(|e| ModelError::io(out, e))?;
    let cfg_out = out.join("config.json");
    std::fs::write(&cfg_out, json).map_err(|e| ModelError::io(&cfg_out, e))?;
    write_safetensors(
        &graph,
        seed,
        &out.join("diffusion_pytorch_model.safetensors"),
    )?;
    Ok((class, graph.parameter_count()))
}
