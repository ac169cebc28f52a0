//! One secure forward of a diffusion model: its public inputs (time features, mean
//! label rows) made into trivial sharings, then the graph run on the kernel's
//! [`SecureBackend`].

use cipherdm_kernel::exec::{SecureBackend, WeightSource, public_share};
use cipherdm_kernel::{ArithShare, Transport};

use crate::error::ModelError;
use crate::model::Model;
use crate::schedule::Condition;

/// One secure forward of `model` on a secret image batch `x` `(B, C, H, W)` at public
/// timestep `t`, with secret label rows `label` `(B, classes)` (ignored by an
/// unconditional model). Returns the secret
/// noise prediction.
pub fn forward<T: Transport, W>(
    backend: &mut SecureBackend<'_, T, W>,
    model: &Model,
    x: ArithShare<u64>,
    t: usize,
    label: ArithShare<u64>,
) -> Result<ArithShare<u64>, ModelError>
where
    W: WeightSource<u64>,
    ModelError: From<W::Error>,
{
    let b = x.shape().dims().first().copied().unwrap_or(0);
    let feats = model.time_features(t as f64);
    let rows: Vec<f64> = (0..b).flat_map(|_| feats.iter().copied()).collect();
    let time = public_share(backend.party(), &rows, &[b, feats.len()])?;
    let mut inputs = vec![("x", x), ("time", time)];
    if model.classes() > 0 {
        inputs.push(("label", label));
    }
    Ok(backend.run(&model.graph, inputs)?)
}

/// The public label rows of conditions that carry no secret (the mean embedding).
pub fn public_label_rows(model: &Model, conditions: &[Condition]) -> Result<Vec<f64>, ModelError> {
    let mut rows = Vec::new();
    for c in conditions {
        rows.extend(model.label_row(c)?);
    }
    Ok(rows)
}
