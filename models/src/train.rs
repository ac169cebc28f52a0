//! Training (cargo feature `train`): a candle backend that evaluates the *same* graphs with
//! autodiff, and the training loops for the diffusion models and the classifier.
//!
//! Diffusion training is the usual ε-prediction L2 loss with `t ~ U{0..T-1}`; 10 % of the
//! labels are replaced by the uniform "mean class" row so that [`Condition::Mean`]
//! (classifier-free and score guidance) is a trained unconditional input. The saved
//! weights are an exponential moving average of the iterates.

use std::collections::BTreeMap;
use std::time::Instant;

use candle_core::{DType, Device, Tensor as CTensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand_chacha::ChaCha12Rng;
use rand_core::{Rng, SeedableRng};

use crate::error::ModelError;
use crate::mnist::Mnist;
use crate::model::Model;
use crate::schedule::{Condition, Schedule, normal};
use crate::tensor::Tensor;
use crate::weights::Weights;
use cipherdm_kernel::exec::{Backend, run};
use cipherdm_kernel::graph::{Activation, Conv2d, Graph, Node, Op, Stored};

fn ce(e: candle_core::Error) -> ModelError {
    ModelError::Config(format!("candle: {e}"))
}

/// The candle backend: one trainable [`Var`] per graph weight.
pub struct CandleBackend {
    vars: BTreeMap<String, Var>,
}

impl CandleBackend {
    /// Fresh weights for `graph` from `seed`: PyTorch's default uniform(±1/√fan_in) for
    /// kernels and biases, N(0, 1) for label embeddings, 1 / 0 for norm scales / biases.
    pub fn init(graph: &Graph, seed: u64) -> Result<Self, ModelError> {
        let mut rng = ChaCha12Rng::seed_from_u64(seed);
        let mut vars = BTreeMap::new();
        // fan-in of each weight's layer, from the op that uses it.
        let mut fan_in = BTreeMap::new();
        for n in &graph.nodes {
            match &n.op {
                Op::Conv2d(c) => {
                    let s = &graph.weight(&c.weight).expect("declared").shape;
                    let f = s[1] * s[2] * s[3];
                    fan_in.insert(c.weight.clone(), f);
                    if let Some(b) = &c.bias {
                        fan_in.insert(b.clone(), f);
                    }
                }
                Op::Dense { weight, bias } => {
                    let f = graph.weight(weight).expect("declared").shape[1];
                    fan_in.insert(weight.clone(), f);
                    if let Some(b) = bias {
                        fan_in.insert(b.clone(), f);
                    }
                }
                _ => {}
            }
        }
        for spec in &graph.weights {
            let n: usize = spec.shape.iter().product();
            let is_embedding = spec.stored == Stored::Transposed && !spec.name.ends_with(".kernel");
            let data: Vec<f32> = if is_embedding {
                normal(&mut rng, n).into_iter().map(|v| v as f32).collect()
            } else if let Some(&f) = fan_in.get(&spec.name) {
                let bound = 1.0 / (f as f64).sqrt();
                (0..n)
                    .map(|_| {
                        ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * bound
                    })
                    .map(|v| v as f32)
                    .collect()
            } else if spec.name.ends_with(".scale") || spec.name.ends_with(".weight") {
                vec![1.0; n]
            } else {
                vec![0.0; n]
            };
            let t = CTensor::from_vec(data, spec.shape.as_slice(), &Device::Cpu).map_err(ce)?;
            vars.insert(spec.name.clone(), Var::from_tensor(&t).map_err(ce)?);
        }
        Ok(Self { vars })
    }

    /// Starts from existing weights.
    pub fn from_weights(graph: &Graph, w: &Weights<f32>) -> Result<Self, ModelError> {
        w.check(graph)?;
        let mut vars = BTreeMap::new();
        for (name, t) in w.iter() {
            let c = CTensor::from_vec(t.data().to_vec(), t.shape(), &Device::Cpu).map_err(ce)?;
            vars.insert(name.to_string(), Var::from_tensor(&c).map_err(ce)?);
        }
        Ok(Self { vars })
    }

    /// The trainable variables.
    pub fn vars(&self) -> Vec<Var> {
        self.vars.values().cloned().collect()
    }

    /// Current weights as plain tensors.
    pub fn weights(&self) -> Result<Weights<f32>, ModelError> {
        let mut w = Weights::default();
        for (name, v) in &self.vars {
            let data = v
                .as_tensor()
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(ce)?;
            w.insert(
                name.clone(),
                Tensor::new(v.as_tensor().dims().to_vec(), data)?,
            );
        }
        Ok(w)
    }

    /// Evaluates `graph` on plain tensors (for comparisons with the other backends).
    pub fn forward(
        &mut self,
        graph: &Graph,
        inputs: Vec<(&str, Tensor<f32>)>,
    ) -> Result<Tensor<f32>, ModelError> {
        let inputs = inputs
            .into_iter()
            .map(|(n, t)| Ok((n, to_candle(&t)?)))
            .collect::<Result<Vec<_>, ModelError>>()?;
        let y = run(graph, self, inputs)?;
        let data = y
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(ce)?;
        Tensor::new(y.dims().to_vec(), data)
    }

    fn var(&self, name: &str) -> Result<&CTensor, ModelError> {
        self.vars
            .get(name)
            .map(|v| v.as_tensor())
            .ok_or_else(|| ModelError::Weight(format!("no weight named `{name}`")))
    }
}

/// Convolution as im2col (a gather with the kernel's own index map, padding and input
/// dilation pointing at an appended zero) and one GEMM over the whole batch. Its
/// backward pass is a scatter-add and two GEMMs; candle's direct convolution backward is
/// several times slower on the CPU.
fn conv_im2col(x: &CTensor, w: &CTensor, c: &Conv2d) -> candle_core::Result<CTensor> {
    let (b, cin, h, wd) = x.dims4()?;
    let (cout, _, k, _) = w.dims4()?;
    let g = c.geometry();
    let (ho, wo) = g
        .output_size(h, wd, k)
        .ok_or_else(|| candle_core::Error::Msg("kernel larger than the padded input".into()))?;
    let item = (cin * h * wd) as u32;
    let idx: Vec<u32> = cipherdm_kernel::nn::im2col_index([cin, h, wd], k, &g, [ho, wo])
        .into_iter()
        .map(|i| if i == u32::MAX { item } else { i })
        .collect();
    let n = idx.len();
    let idx = CTensor::from_vec(idx, n, x.device())?;
    let flat = x.reshape((b, cin * h * wd))?;
    let padded = CTensor::cat(&[&flat, &flat.narrow(1, 0, 1)?.zeros_like()?], 1)?;
    let kk = cin * k * k;
    // (B, kk·hw) → (kk, B·hw): one GEMM with the (Cout, kk) kernel.
    let cols = padded
        .index_select(&idx, 1)?
        .reshape((b, kk, ho * wo))?
        .transpose(0, 1)?
        .contiguous()?
        .reshape((kk, b * ho * wo))?;
    w.reshape((cout, kk))?
        .matmul(&cols)?
        .reshape((cout, b, ho, wo))?
        .transpose(0, 1)?
        .contiguous()
}

fn channel(v: &CTensor) -> candle_core::Result<CTensor> {
    v.reshape((1, v.dim(0)?, 1, 1))
}

impl Backend for CandleBackend {
    type Value = CTensor;
    type Error = ModelError;

    fn eval(&mut self, node: &Node, inputs: &[&CTensor]) -> Result<CTensor, ModelError> {
        let x = inputs[0];
        let r: candle_core::Result<CTensor> = (|| match &node.op {
            Op::Input(_) => unreachable!("inputs are supplied by run"),
            Op::Conv2d(c) => {
                let w = self
                    .var(&c.weight)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                let mut y = conv_im2col(x, w, c)?;
                if let Some(b) = &c.bias {
                    let b = self
                        .var(b)
                        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                    y = y.broadcast_add(&channel(b)?)?;
                }
                Ok(y)
            }
            Op::Dense { weight, bias } => {
                let w = self
                    .var(weight)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                let mut y = x.matmul(&w.t()?)?;
                if let Some(b) = bias {
                    let b = self
                        .var(b)
                        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                    y = y.broadcast_add(&b.unsqueeze(0)?)?;
                }
                Ok(y)
            }
            Op::GroupNorm {
                groups,
                eps,
                scale,
                bias,
            } => {
                let dims = x.dims().to_vec();
                let (b, c) = (dims[0], dims[1]);
                let g = x.reshape((b, *groups, ()))?;
                let mean = g.mean_keepdim(2)?;
                let centred = g.broadcast_sub(&mean)?;
                let var = centred.sqr()?.mean_keepdim(2)?;
                let normed = centred
                    .broadcast_div(&(var + *eps)?.sqrt()?)?
                    .reshape(dims.as_slice())?;
                let mut shape = vec![1, c];
                shape.extend(std::iter::repeat_n(1, dims.len() - 2));
                let s = self
                    .var(scale)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                let bb = self
                    .var(bias)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                normed
                    .broadcast_mul(&s.reshape(shape.as_slice())?)?
                    .broadcast_add(&bb.reshape(shape.as_slice())?)
            }
            Op::LayerNorm { eps, scale, bias } => {
                let c = x.dim(1)?;
                let mean = x.mean_keepdim(1)?;
                let centred = x.broadcast_sub(&mean)?;
                let var = centred.sqr()?.mean_keepdim(1)?;
                let normed = centred.broadcast_div(&(var + *eps)?.sqrt()?)?;
                let s = self
                    .var(scale)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                let bb = self
                    .var(bias)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                normed
                    .broadcast_mul(&s.reshape((1, c, 1, 1))?)?
                    .broadcast_add(&bb.reshape((1, c, 1, 1))?)
            }
            Op::Mul => x * inputs[1],
            Op::Act(Activation::Silu) => x.silu(),
            Op::Act(Activation::Gelu) => x.gelu_erf(),
            Op::Act(Activation::Relu) => x.relu(),
            Op::Scale(c) => x.affine(*c, 0.0),
            Op::Add => {
                let y = inputs[1];
                if x.dims() == y.dims() {
                    x + y
                } else {
                    x.broadcast_add(&y.unsqueeze(2)?.unsqueeze(3)?)
                }
            }
            Op::Concat => {
                let parts: Vec<CTensor> = inputs.iter().map(|t| (*t).clone()).collect();
                CTensor::cat(&parts, 1)
            }
            Op::Split { start, len } => x.narrow(1, *start, *len)?.contiguous(),
            Op::Attention { heads } => {
                let (b, c, h, w) = x.dims4()?;
                let (_, _, hk, wk) = inputs[1].dims4()?;
                let d = c / heads;
                let q = x.reshape((b, *heads, d, h * w))?;
                let k = inputs[1].reshape((b, *heads, d, hk * wk))?;
                let v = inputs[2].reshape((b, *heads, d, hk * wk))?;
                let s = (q.transpose(2, 3)?.contiguous()?.matmul(&k)? * (1.0 / (d as f64).sqrt()))?;
                let m = s.max_keepdim(3)?.detach();
                let e = s.broadcast_sub(&m)?.exp()?;
                let a = e.broadcast_div(&e.sum_keepdim(3)?)?;
                v.matmul(&a.transpose(2, 3)?.contiguous()?)?
                    .reshape((b, c, h, w))
            }
            Op::Upsample2 => {
                let (_, _, h, w) = x.dims4()?;
                x.upsample_nearest2d(2 * h, 2 * w)
            }
            Op::GlobalMeanPool => x.mean(3)?.mean(2),
            Op::Flatten => x.flatten_from(1),
        })();
        r.map_err(|e| ModelError::Config(format!("{}: candle: {e}", node.name)))
    }
}

fn to_candle(t: &Tensor<f32>) -> Result<CTensor, ModelError> {
    CTensor::from_vec(t.data().to_vec(), t.shape(), &Device::Cpu).map_err(ce)
}

/// Options of a training run.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// Optimiser steps.
    pub steps: usize,
    /// Batch size.
    pub batch: usize,
    /// Peak Adam learning rate (warm-up over 200 steps, cosine decay to a tenth).
    pub lr: f64,
    /// EMA decay of the saved weights.
    pub ema: f64,
    /// Seed of initialisation, batches, timesteps and noise.
    pub seed: u64,
    /// Progress line every this many steps.
    pub log_every: usize,
    /// Hand the EMA weights to the checkpoint callback every this many steps (0: never).
    pub checkpoint_every: usize,
    /// γ of the min-SNR weighting of the diffusion loss ([`MIN_SNR_GAMMA`] by default);
    /// `None` weighs every timestep's ε-loss equally (the DDPM loss of Ho et al.).
    pub min_snr_gamma: Option<f64>,
}

/// Called with `(step, EMA weights)` every [`TrainConfig::checkpoint_every`] steps.
pub type Checkpoint<'a> = &'a mut dyn FnMut(usize, &Weights<f32>) -> Result<(), ModelError>;

struct Ema {
    shadow: Vec<(Var, Vec<f32>)>,
    decay: f64,
}

impl Ema {
    fn new(vars: Vec<Var>, decay: f64) -> Result<Self, ModelError> {
        let shadow = vars
            .into_iter()
            .map(|v| {
                let d = v
                    .as_tensor()
                    .flatten_all()
                    .and_then(|t| t.to_vec1::<f32>())
                    .map_err(ce)?;
                Ok((v, d))
            })
            .collect::<Result<_, ModelError>>()?;
        Ok(Self { shadow, decay })
    }

    fn update(&mut self, step: usize) -> Result<(), ModelError> {
        // Warm-up as in common practice: min(decay, (1 + n)/(10 + n)).
        let d = self.decay.min((1.0 + step as f64) / (10.0 + step as f64)) as f32;
        for (v, s) in &mut self.shadow {
            let cur = v
                .as_tensor()
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(ce)?;
            for (a, b) in s.iter_mut().zip(cur) {
                *a = d * *a + (1.0 - d) * b;
            }
        }
        Ok(())
    }

    fn weights(&self, backend: &CandleBackend) -> Result<Weights<f32>, ModelError> {
        let mut w = backend.weights()?;
        for ((name, _), (_, s)) in backend.vars.iter().zip(&self.shadow) {
            let shape = w.get(name)?.shape().to_vec();
            w.insert(name.clone(), Tensor::new(shape, s.clone())?);
        }
        Ok(w)
    }
}

/// Linear warm-up over 200 steps, then cosine decay to a tenth of the peak.
fn lr_at(cfg: &TrainConfig, step: usize) -> f64 {
    let warm = ((step + 1) as f64 / 200.0).min(1.0);
    let progress = step as f64 / cfg.steps.max(1) as f64;
    cfg.lr * warm * (0.1 + 0.9 * 0.5 * (1.0 + (core::f64::consts::PI * progress).cos()))
}

/// The training loop shared by every model: AdamW with the warm-up / cosine schedule,
/// EMA, progress lines and checkpoints; `loss` builds one batch and returns its loss.
fn fit(
    mut backend: CandleBackend,
    cfg: &TrainConfig,
    salt: u64,
    checkpoint: Checkpoint<'_>,
    mut loss: impl FnMut(&mut CandleBackend, &mut ChaCha12Rng) -> Result<CTensor, ModelError>,
) -> Result<Weights<f32>, ModelError> {
    let params = ParamsAdamW {
        lr: cfg.lr,
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut opt = AdamW::new(backend.vars(), params).map_err(ce)?;
    let mut ema = Ema::new(backend.vars(), cfg.ema)?;
    let mut rng = ChaCha12Rng::seed_from_u64(cfg.seed ^ salt);
    let start = Instant::now();
    let mut running = 0.0;
    for step in 0..cfg.steps {
        let loss = loss(&mut backend, &mut rng)?;
        opt.set_learning_rate(lr_at(cfg, step));
        opt.backward_step(&loss).map_err(ce)?;
        ema.update(step)?;
        running += loss
            .to_dtype(DType::F64)
            .and_then(|l| l.to_scalar::<f64>())
            .map_err(ce)?;
        if cfg.checkpoint_every > 0 && (step + 1) % cfg.checkpoint_every == 0 {
            checkpoint(step + 1, &ema.weights(&backend)?)?;
        }
        if (step + 1) % cfg.log_every == 0 {
            eprintln!(
                "step {:>6}/{}  loss {:.4}  {:.0} s",
                step + 1,
                cfg.steps,
                running / cfg.log_every as f64,
                start.elapsed().as_secs_f64()
            );
            running = 0.0;
        }
    }
    ema.weights(&backend)
}

/// Trains a diffusion model's noise prediction on `data` (labels must be `< classes`),
/// min-SNR weighted (see [`TrainConfig::min_snr_gamma`]),
/// from fresh weights or from `init`. Returns the EMA weights.
pub fn train_diffusion(
    model: &Model,
    data: &Mnist,
    cfg: &TrainConfig,
    init: Option<&Weights<f32>>,
    checkpoint: Checkpoint<'_>,
) -> Result<Weights<f32>, ModelError> {
    let schedule = Schedule::cipherdm();
    let backend = match init {
        Some(w) => CandleBackend::from_weights(&model.graph, w)?,
        None => CandleBackend::init(&model.graph, cfg.seed)?,
    };
    fit(backend, cfg, 0x5eed, checkpoint, |backend, rng| {
        let idx: Vec<usize> = (0..cfg.batch)
            .map(|_| (rng.next_u64() % data.len() as u64) as usize)
            .collect();
        let x0 = data.batch(&idx);
        let ts: Vec<usize> = (0..cfg.batch)
            .map(|_| (rng.next_u64() % schedule.len() as u64) as usize)
            .collect();
        let eps: Vec<f64> = normal(rng, x0.len());
        let per = x0.len() / cfg.batch;
        let xt: Vec<f32> = x0
            .data()
            .iter()
            .zip(&eps)
            .enumerate()
            .map(|(i, (&x, &e))| schedule.add_noise(x as f64, e, ts[i / per]) as f32)
            .collect();
        let conds: Vec<Condition> = idx
            .iter()
            .map(|&i| {
                if rng.next_u64() % 10 == 0 {
                    Condition::Mean
                } else {
                    Condition::Class(data.labels[i] as usize)
                }
            })
            .collect();
        let xt = Tensor::new(x0.shape().to_vec(), xt)?;
        // Per-item timesteps: build the inputs item by item and stack.
        let mut time = Vec::new();
        let mut label = Vec::new();
        for (t, c) in ts.iter().zip(&conds) {
            time.extend(model.time_features(*t as f64).into_iter().map(|v| v as f32));
            label.extend(model.label_row(c)?.into_iter().map(|v| v as f32));
        }
        let nf = time.len() / cfg.batch;
        let inputs = vec![
            ("x", to_candle(&xt)?),
            ("time", to_candle(&Tensor::new(vec![cfg.batch, nf], time)?)?),
            (
                "label",
                to_candle(&Tensor::new(vec![cfg.batch, model.classes()], label)?)?,
            ),
        ];
        let pred = run(&model.graph, backend, inputs)?;
        let target = to_candle(&Tensor::new(
            x0.shape().to_vec(),
            eps.iter().map(|&v| v as f32).collect(),
        )?)?;
        // Min-SNR-5 weighting (Hang et al. 2023): eps-prediction losses at high SNR (small
        // t) are scaled by 5 / SNR, which moves the effort to the noisy end where the
        // sampler's first steps decide the digit.
        let weights: Vec<f32> = ts
            .iter()
            .map(|&t| {
                let snr = 1.0 / schedule.snr_weight(t).powi(2);
                cfg.min_snr_gamma.map_or(1.0, |g| snr.min(g) / snr) as f32
            })
            .collect();
        let weights = CTensor::from_vec(weights, cfg.batch, &Device::Cpu).map_err(ce)?;
        let per_item = pred
            .reshape((cfg.batch, per))
            .and_then(|p| p.sub(&target.reshape((cfg.batch, per))?))
            .and_then(|d| d.sqr()?.mean(1))
            .map_err(ce)?;
        per_item
            .mul(&weights)
            .and_then(|l| l.mean_all())
            .map_err(ce)
    })
}

/// The default γ of the min-SNR loss weighting of [`train_diffusion`].
pub const MIN_SNR_GAMMA: f64 = 5.0;

/// Trains the evaluation classifier (cross-entropy). Returns the EMA weights.
pub fn train_classifier(
    graph: &Graph,
    data: &Mnist,
    cfg: &TrainConfig,
) -> Result<Weights<f32>, ModelError> {
    let backend = CandleBackend::init(graph, cfg.seed)?;
    fit(backend, cfg, 0xc1a55, &mut |_, _| Ok(()), |backend, rng| {
        let idx: Vec<usize> = (0..cfg.batch)
            .map(|_| (rng.next_u64() % data.len() as u64) as usize)
            .collect();
        let x = data.batch(&idx);
        let labels: Vec<u32> = idx.iter().map(|&i| data.labels[i] as u32).collect();
        let logits = run(graph, backend, vec![("x", to_candle(&x)?)])?;
        let target = CTensor::from_vec(labels, cfg.batch, &Device::Cpu).map_err(ce)?;
        candle_nn::loss::cross_entropy(&logits, &target).map_err(ce)
    })
}
