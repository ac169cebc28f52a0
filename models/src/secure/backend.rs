//! The secure backend: evaluates graph nodes on fixed-point shares with the kernel's
//! `nn` layers and approximation protocols, one batched protocol call per layer.

use std::collections::BTreeMap;
use std::time::Instant;

use cipherdm_kernel::approx::Profile;
use cipherdm_kernel::exec::{LayerRecord, WeightSource};
use cipherdm_kernel::nn::{self, ConvGeometry};
use cipherdm_kernel::protocols as pr;
use cipherdm_kernel::{ArithShare, Party, Shape, Transport};

use crate::backend::{Backend, run};
use crate::error::ModelError;
use crate::graph::{Activation, Graph, Node, Op};
use crate::model::Model;
use crate::schedule::Condition;

/// One party's view of a secure forward: its [`Party`] context, a [`WeightSource`]
/// for its weight shares, the approximation profile of the nonlinear layers, and the
/// per-layer records of everything evaluated so far.
///
/// Weight shares are fetched when their layer runs and dropped when it ends; the graph
/// interpreter ([`run`]) drops activations after their last use, so a party holds one
/// layer's weights plus the live activations (U-Net skips) at any time.
pub struct SecureBackend<'p, T: Transport, W> {
    party: &'p mut Party<T>,
    weights: W,
    shapes: BTreeMap<String, Shape>,
    profile: Profile,
    records: Vec<LayerRecord>,
}

impl<'p, T: Transport, W> SecureBackend<'p, T, W>
where
    W: WeightSource<u64>,
    ModelError: From<W::Error>,
{
    /// A backend for `graph`'s weights (shapes are taken from the graph and checked on
    /// every fetch).
    pub fn new(
        party: &'p mut Party<T>,
        graph: &Graph,
        weights: W,
        profile: Profile,
    ) -> Result<Self, ModelError> {
        let shapes = graph
            .weights
            .iter()
            .map(|w| Ok((w.name.clone(), Shape::new(&w.shape)?)))
            .collect::<Result<_, ModelError>>()?;
        Ok(Self {
            party,
            weights,
            shapes,
            profile,
            records: Vec::new(),
        })
    }

    /// The party context (for the sampler's own arithmetic between forwards).
    pub fn party(&mut self) -> &mut Party<T> {
        self.party
    }

    /// The approximation profile.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// Every layer evaluated so far, in order.
    pub fn records(&self) -> &[LayerRecord] {
        &self.records
    }

    /// Takes the records, leaving none.
    pub fn take_records(&mut self) -> Vec<LayerRecord> {
        std::mem::take(&mut self.records)
    }

    fn weight(&mut self, name: &str) -> Result<ArithShare<u64>, ModelError> {
        let shape = self
            .shapes
            .get(name)
            .ok_or_else(|| ModelError::Weight(format!("the graph declares no weight `{name}`")))?;
        Ok(self.weights.fetch(name, shape)?)
    }

    /// One secure forward of `model` on a secret image batch `x` `(B, C, H, W)` at public
    /// timestep `t`, with secret label rows `label` `(B, classes)`. Returns the secret
    /// noise prediction.
    pub fn forward(
        &mut self,
        model: &Model,
        x: ArithShare<u64>,
        t: usize,
        label: ArithShare<u64>,
    ) -> Result<ArithShare<u64>, ModelError> {
        let b = x.shape().dims().first().copied().unwrap_or(0);
        let feats = model.time_features(t as f64);
        let time = public(self.party, &repeat_rows(&feats, b), &[b, feats.len()])?;
        let inputs = vec![("x", x), ("time", time), ("label", label)];
        run(&model.graph, self, inputs)
    }

    fn eval_op(
        &mut self,
        node: &Node,
        inputs: &[&ArithShare<u64>],
    ) -> Result<ArithShare<u64>, ModelError> {
        let x = inputs[0];
        let profile = self.profile;
        Ok(match &node.op {
            Op::Input(_) => {
                return Err(ModelError::Config("inputs are supplied by run".into()));
            }
            Op::Conv2d(c) => {
                let w = self.weight(&c.weight)?;
                let bias = c.bias.as_deref().map(|n| self.weight(n)).transpose()?;
                let g = ConvGeometry {
                    stride: c.stride,
                    padding: c.padding,
                    lhs_dilation: c.lhs_dilation,
                };
                nn::conv2d(self.party, x, &w, bias.as_ref(), &g)?
            }
            Op::Dense { weight, bias } => {
                let w = self.weight(weight)?;
                let bias = bias.as_deref().map(|n| self.weight(n)).transpose()?;
                nn::dense(self.party, x, &w, bias.as_ref())?
            }
            Op::GroupNorm {
                groups,
                eps,
                scale,
                bias,
            } => {
                let (g, bb) = (self.weight(scale)?, self.weight(bias)?);
                pr::group_norm(self.party, x, *groups, &g, &bb, *eps, 1.0)?
            }
            Op::LayerNorm { eps, scale, bias } => {
                let (g, bb) = (self.weight(scale)?, self.weight(bias)?);
                layer_norm_channels(self.party, x, &g, &bb, *eps)?
            }
            Op::Mul => pr::mul_fixed(self.party, x, inputs[1])?,
            Op::Act(Activation::Silu) => pr::silu(self.party, x, profile)?,
            Op::Act(Activation::Gelu) => pr::gelu(self.party, x, profile)?,
            Op::Act(Activation::Relu) => pr::relu(self.party, x)?,
            Op::Add => {
                let y = inputs[1];
                if y.shape() == x.shape() {
                    x.add(y)?
                } else {
                    nn::add_broadcast(x, y)?
                }
            }
            Op::Scale(c) => nn::scale(self.party, x, *c)?,
            Op::Concat => nn::concat_channels(inputs)?,
            Op::Split { start, len } => nn::split_channels(x, *start, *len)?,
            Op::Attention { heads } => {
                nn::attention(self.party, x, inputs[1], inputs[2], *heads, profile)?
            }
            Op::Upsample2 => nn::upsample2(x)?,
            Op::GlobalMeanPool => nn::global_mean_pool(self.party, x)?,
            Op::Flatten => {
                let b = x.shape().dims()[0];
                x.clone().reshape(Shape::new(&[b, x.len() / b.max(1)])?)?
            }
        })
    }
}

impl<T: Transport, W> Backend for SecureBackend<'_, T, W>
where
    W: WeightSource<u64>,
    ModelError: From<W::Error>,
{
    type Value = ArithShare<u64>;
    type Error = ModelError;

    fn eval(
        &mut self,
        node: &Node,
        inputs: &[&ArithShare<u64>],
    ) -> Result<ArithShare<u64>, ModelError> {
        if inputs.is_empty() {
            return Err(ModelError::Shape(format!("{}: no input", node.name)));
        }
        let before = *self.party.costs().total();
        let start = Instant::now();
        let y = self
            .eval_op(node, inputs)
            .map_err(|e| ModelError::Shape(format!("layer `{}`: {e}", node.name)))?;
        if y.shape().dims().get(1..) != Some(node.shape.as_slice()) {
            return Err(ModelError::Shape(format!(
                "layer `{}`: secure output {:?} but the graph says (B, {:?})",
                node.name,
                y.shape().dims(),
                node.shape
            )));
        }
        self.records.push(LayerRecord {
            name: node.name.clone(),
            op: op_name(&node.op),
            shape: y.shape().dims().to_vec(),
            nanos: start.elapsed().as_nanos() as u64,
            cost: self.party.costs().total().since(&before),
        });
        Ok(y)
    }
}

/// A short name of an op kind, for cost tables.
pub fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Input(_) => "input",
        Op::Conv2d(_) => "conv2d",
        Op::Dense { .. } => "dense",
        Op::GroupNorm { .. } => "group_norm",
        Op::LayerNorm { .. } => "layer_norm",
        Op::Mul => "mul",
        Op::Act(Activation::Silu) => "silu",
        Op::Act(Activation::Gelu) => "gelu",
        Op::Act(Activation::Relu) => "relu",
        Op::Add => "add",
        Op::Scale(_) => "scale",
        Op::Concat => "concat",
        Op::Split { .. } => "split",
        Op::Attention { .. } => "attention",
        Op::Upsample2 => "upsample2",
        Op::GlobalMeanPool => "global_mean_pool",
        Op::Flatten => "flatten",
    }
}

/// LayerNorm over the channels of every position of an NCHW share: a local transpose to
/// `(B·H·W, C)` rows, the kernel's row LayerNorm with the affine weights, and back.
fn layer_norm_channels<T: Transport>(
    p: &mut Party<T>,
    x: &ArithShare<u64>,
    gamma: &ArithShare<u64>,
    beta: &ArithShare<u64>,
    eps: f64,
) -> Result<ArithShare<u64>, ModelError> {
    let (b, c, h, w) = nn::nchw(x)?;
    let hw = h * w;
    let to_rows = |s: &[u64]| -> Vec<u64> {
        let mut t = vec![0; s.len()];
        for bi in 0..b {
            for ch in 0..c {
                for pos in 0..hw {
                    t[(bi * hw + pos) * c + ch] = s[(bi * c + ch) * hw + pos];
                }
            }
        }
        t
    };
    let from_rows = |t: &[u64]| -> Vec<u64> {
        let mut s = vec![0; t.len()];
        for bi in 0..b {
            for ch in 0..c {
                for pos in 0..hw {
                    s[(bi * c + ch) * hw + pos] = t[(bi * hw + pos) * c + ch];
                }
            }
        }
        s
    };
    let rows = ArithShare::from_components(
        to_rows(x.this()),
        to_rows(x.next()),
        Shape::new(&[b * hw, c])?,
    )?;
    let y = pr::layer_norm(p, &rows, Some((gamma, beta)), eps, 1.0)?;
    Ok(ArithShare::from_components(
        from_rows(y.this()),
        from_rows(y.next()),
        x.shape().clone(),
    )?)
}

fn repeat_rows(row: &[f64], n: usize) -> Vec<f64> {
    (0..n).flat_map(|_| row.iter().copied()).collect()
}

/// A public tensor as a (trivial) sharing, encoded in the session's fixed point.
pub fn public<T: Transport>(
    p: &mut Party<T>,
    values: &[f64],
    shape: &[usize],
) -> Result<ArithShare<u64>, ModelError> {
    let mut enc = vec![0u64; values.len()];
    p.fixed().encode_slice(values, &mut enc)?;
    Ok(ArithShare::from_public(p.id(), &enc, Shape::new(shape)?)?)
}

/// The public label rows of conditions that carry no secret (the mean embedding).
pub fn public_label_rows(model: &Model, conditions: &[Condition]) -> Result<Vec<f64>, ModelError> {
    let mut rows = Vec::new();
    for c in conditions {
        rows.extend(model.label_row(c)?);
    }
    Ok(rows)
}
