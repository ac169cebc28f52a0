//! The models the project ships, compiled into the library: `tiny` (CipherDM's
//! binary-MNIST U-Net), `tiny-unaliased` (the same U-Net fed time features that do not
//! alias), `mnist` (a diffusers `UNet2DModel`) and the evaluation classifier, with the
//! weights the project trained (see the README for how).
//!
//! Architectures and weights are embedded with `include_bytes!`, so a binary copied to
//! another host needs no checkout; other weights are loaded from an explicit path.
//!
//! ```
//! use cipherdm_models::shipped;
//! let (model, weights) = shipped::model("tiny").unwrap();
//! assert!(weights.check(&model.graph).is_ok());
//! assert!(shipped::architecture("sd").is_err());
//! ```

use std::path::Path;

use crate::error::ModelError;
use crate::model::Model;
use crate::unet2d;
use crate::weights::Weights;

/// The names of the shipped diffusion models.
pub const MODELS: [&str; 3] = ["tiny", "tiny-unaliased", "mnist"];

const TINY_WEIGHTS: &[u8] = include_bytes!("../weights/cipherdm-tiny.safetensors");
const TINY_UNALIASED_WEIGHTS: &[u8] =
    include_bytes!("../weights/cipherdm-tiny-unaliased.safetensors");
const MNIST_CONFIG: &str = include_str!("../weights/mnist/config.json");
const MNIST_WEIGHTS: &[u8] = include_bytes!("../weights/mnist/diffusion_pytorch_model.safetensors");
/// The classifier's safetensors bytes (see [`crate::classifier::Classifier::shipped`]).
pub(crate) const CLASSIFIER_WEIGHTS: &[u8] = include_bytes!("../weights/classifier.safetensors");

fn unknown(name: &str) -> ModelError {
    ModelError::Config(format!("unknown model `{name}` ({})", MODELS.join(", ")))
}

/// A shipped model's architecture by name, without weights: what a server needs
/// besides its share file.
pub fn architecture(name: &str) -> Result<Model, ModelError> {
    match name {
        "tiny" => Model::tiny(),
        "tiny-unaliased" => Model::tiny_unaliased(),
        "mnist" => Model::unet2d(unet2d::Config::from_json(
            MNIST_CONFIG,
            "mnist config.json",
        )?),
        other => Err(unknown(other)),
    }
}

/// A shipped diffusion model by name with its shipped weights.
pub fn model(name: &str) -> Result<(Model, Weights<f64>), ModelError> {
    let m = architecture(name)?;
    let bytes = match name {
        "tiny" => TINY_WEIGHTS,
        "tiny-unaliased" => TINY_UNALIASED_WEIGHTS,
        _ => MNIST_WEIGHTS,
    };
    let w = Weights::from_safetensors(&m.graph, bytes)
        .map_err(|e| ModelError::Weight(format!("shipped `{name}` weights: {e}")))?;
    Ok((m, w))
}

/// A diffusion model by name with weights from `path` (a safetensors file for the `tiny` models, a
/// diffusers folder for `mnist`, whose `config.json` is honoured), or the shipped
/// weights when `path` is `None`.
pub fn load(name: &str, path: Option<&Path>) -> Result<(Model, Weights<f64>), ModelError> {
    let Some(path) = path else {
        return model(name);
    };
    let m = match name {
        // The config comes with the weights' folder and is honoured.
        "mnist" => Model::unet2d(unet2d::Config::load(path)?)?,
        other => architecture(other)?,
    };
    let w = m.load_weights(path)?;
    Ok((m, w))
}
