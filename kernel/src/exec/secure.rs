//! The secure backend: evaluates graph nodes on fixed-point shares with the kernel's
//! [`nn`](crate::nn) layers and approximation protocols, one batched protocol call per
//! layer.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{Backend, Chunking, Clock, LayerRecord, WeightSource, no_clock, run};
use crate::approx::Profile;
use crate::error::Error;
use crate::graph::{Activation, Graph, Node, Op};
use crate::nn;
use crate::party::Party;
use crate::protocols as pr;
use crate::shape::Shape;
use crate::share::ArithShare;
use crate::transport::Transport;

/// One party's view of a secure forward: its [`Party`] context, a [`WeightSource`] for
/// its weight shares, the approximation profile of the nonlinear layers, and the
/// per-layer records of everything evaluated so far.
///
/// Weight shares are fetched when their layer runs and dropped when it ends; the graph
/// interpreter ([`run`]) drops activations after their last use, so a party holds one
/// layer's weights plus the live activations (U-Net skips) at any time.
///
/// Errors: the weight source's own errors pass through unchanged; a kernel error inside
/// a layer (a closed link, a bad shape) arrives as [`Error::Layer`] naming the layer,
/// converted into the source's error type.
pub struct SecureBackend<'p, T: Transport, W> {
    observer: Option<Observer>,
    party: &'p mut Party<T>,
    weights: W,
    shapes: BTreeMap<String, Shape>,
    profile: Profile,
    records: Vec<LayerRecord>,
    clock: Clock,
    chunking: Chunking,
}

/// Called after every layer with the number of layers done and the layer's record (a
/// host's progress display).
pub type Observer = alloc::boxed::Box<dyn FnMut(usize, &LayerRecord)>;

/// A layer failure before it is attributed: the weight source's or the kernel's.
enum Failure<E> {
    Weights(E),
    Kernel(Error),
}

impl<E> From<Error> for Failure<E> {
    fn from(e: Error) -> Self {
        Failure::Kernel(e)
    }
}

impl<'p, T: Transport, W: WeightSource<u64>> SecureBackend<'p, T, W> {
    /// A backend for `graph`'s weights (shapes are taken from the graph and checked on
    /// every fetch). Layer times read 0 until a clock is given with
    /// [`with_clock`](Self::with_clock).
    pub fn new(
        party: &'p mut Party<T>,
        graph: &Graph,
        weights: W,
        profile: Profile,
    ) -> Result<Self, Error> {
        let shapes = graph
            .weights
            .iter()
            .map(|w| Ok((w.name.clone(), Shape::new(&w.shape)?)))
            .collect::<Result<_, Error>>()?;
        Ok(Self {
            party,
            weights,
            shapes,
            profile,
            records: Vec::new(),
            clock: no_clock,
            chunking: Chunking::NONE,
            observer: None,
        })
    }

    /// Times every layer with `clock` (e.g. [`monotonic_nanos`](super::monotonic_nanos)).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Evaluates attention in `chunking`'s chunks (default: [`Chunking::NONE`]).
    pub fn with_chunking(mut self, chunking: Chunking) -> Self {
        self.chunking = chunking;
        self
    }

    /// Calls `observer` after every layer (e.g. a progress line).
    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The party context (for a sampler's own arithmetic between forwards).
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
        core::mem::take(&mut self.records)
    }

    /// Runs `graph` (the graph this backend was made for) on secret `inputs`, by name.
    pub fn run(
        &mut self,
        graph: &Graph,
        inputs: Vec<(&str, ArithShare<u64>)>,
    ) -> Result<ArithShare<u64>, W::Error> {
        run(graph, self, inputs)
    }

    fn weight(&mut self, name: &str) -> Result<ArithShare<u64>, Failure<W::Error>> {
        let shape = self.shapes.get(name).ok_or_else(|| Error::Graph {
            node: name.into(),
            detail: "the graph declares no such weight".into(),
        })?;
        self.weights.fetch(name, shape).map_err(Failure::Weights)
    }

    fn eval_op(
        &mut self,
        node: &Node,
        inputs: &[&ArithShare<u64>],
    ) -> Result<ArithShare<u64>, Failure<W::Error>> {
        let x = inputs[0];
        let profile = self.profile;
        Ok(match &node.op {
            Op::Input(_) => {
                return Err(Error::InvalidParameter("inputs are supplied by run").into());
            }
            Op::Conv2d(c) => {
                let w = self.weight(&c.weight)?;
                let bias = c.bias.as_deref().map(|n| self.weight(n)).transpose()?;
                let g = c.geometry();
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
                nn::layer_norm_channels(self.party, x, &g, &bb, *eps)?
            }
            Op::Mul => pr::mul_fixed(self.party, x, inputs[1])?,
            Op::Act(a) => {
                let act = |p: &mut Party<T>, s: &ArithShare<u64>| match a {
                    Activation::Silu => pr::silu(p, s, profile),
                    Activation::Gelu => pr::gelu(p, s, profile),
                    Activation::Relu => pr::relu(p, s),
                };
                let chunks = self.chunking.activation_chunks(x.len());
                if chunks.len() == 1 {
                    act(self.party, x)?
                } else {
                    let mut parts = Vec::with_capacity(chunks.len());
                    let mut at = 0;
                    for m in chunks {
                        parts.push(act(self.party, &x.slice(at, m)?)?);
                        at += m;
                    }
                    let refs: Vec<&ArithShare<u64>> = parts.iter().collect();
                    ArithShare::concat(&refs).reshape(x.shape().clone())?
                }
            }
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
            Op::Attention { heads } => nn::attention_chunked(
                self.party,
                x,
                inputs[1],
                inputs[2],
                *heads,
                profile,
                self.chunking.max_attention_scores,
            )?,
            Op::Upsample2 => nn::upsample2(x)?,
            Op::GlobalMeanPool => nn::global_mean_pool(self.party, x)?,
            Op::Flatten => {
                let b = x.shape().dims()[0];
                x.clone().reshape(Shape::new(&[b, x.len() / b.max(1)])?)?
            }
        })
    }
}

impl<T: Transport, W: WeightSource<u64>> Backend for SecureBackend<'_, T, W> {
    type Value = ArithShare<u64>;
    type Error = W::Error;

    fn eval(
        &mut self,
        node: &Node,
        inputs: &[&ArithShare<u64>],
    ) -> Result<ArithShare<u64>, W::Error> {
        let layer = |e: Error| W::Error::from(e.in_layer(&node.name));
        if inputs.is_empty() {
            return Err(layer(Error::InvalidParameter("a layer without input")));
        }
        let before = *self.party.costs().total();
        let start = (self.clock)();
        let y = self.eval_op(node, inputs).map_err(|f| match f {
            Failure::Weights(e) => e,
            Failure::Kernel(e) => layer(e),
        })?;
        if y.shape().dims().get(1..) != Some(node.shape.as_slice()) {
            return Err(layer(Error::Graph {
                node: node.name.clone(),
                detail: format!(
                    "secure output {:?} but the graph says (B, {:?})",
                    y.shape().dims(),
                    node.shape
                ),
            }));
        }
        self.records.push(LayerRecord {
            name: node.name.clone(),
            op: node.op.kind_name(),
            shape: y.shape().dims().to_vec(),
            nanos: (self.clock)().saturating_sub(start),
            cost: self.party.costs().total().since(&before),
        });
        if let (Some(observe), Some(last)) = (self.observer.as_mut(), self.records.last()) {
            observe(self.records.len(), last);
        }
        Ok(y)
    }
}

/// A public tensor as a (trivial) sharing, encoded in the session's fixed point.
pub fn public_share<T: Transport>(
    p: &mut Party<T>,
    values: &[f64],
    shape: &[usize],
) -> Result<ArithShare<u64>, Error> {
    let mut enc = alloc::vec![0u64; values.len()];
    p.fixed().encode_slice(values, &mut enc)?;
    ArithShare::from_public(p.id(), &enc, Shape::new(shape)?)
}
