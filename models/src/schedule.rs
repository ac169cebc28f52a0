//! The linear-beta diffusion schedule, DDPM and DDIM samplers, classifier-free guidance
//! and the score guidance of "Secure Inference for Diffusion Models via Unconditional
//! Scores" (Song et al., Algorithm 1).
//!
//! Samplers call a [`Denoiser`] once per step (twice with classifier-free guidance) and
//! never look inside it, so the same loop drives the plaintext backends here and the
//! secure executor later. Noise comes from a seeded ChaCha stream: the same seed gives the
//! same sample.

use std::collections::BTreeMap;

use rand_chacha::ChaCha12Rng;
use rand_core::{Rng, SeedableRng};

use crate::error::ModelError;
use crate::guidance::{Fold, ScoreGuidance};
use crate::tensor::Tensor;

/// What a sample is conditioned on.
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    /// One class.
    Class(usize),
    /// The mean of all class embeddings: the "unconditional" input of a class-conditional
    /// model (the choice of Song et al.).
    Mean,
}

/// A noise-prediction network: `ε(x_t, t, condition)` for a batch.
pub trait Denoiser {
    /// Predicts the noise of every batch item of `x` (shape `(B, C, H, W)`) at timestep
    /// `t`; `conditions` has one entry per batch item.
    fn eps(
        &mut self,
        x: &Tensor<f64>,
        t: usize,
        conditions: &[Condition],
    ) -> Result<Tensor<f64>, ModelError>;
}

/// A linear-beta schedule with its derived constants.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// `β_t`, `t = 0..T`.
    pub betas: Vec<f64>,
    /// `ᾱ_t = Π_{s≤t} (1 − β_s)`.
    pub alphas_cumprod: Vec<f64>,
}

impl Schedule {
    /// `T` betas spaced linearly from `start` to `end` (both included).
    ///
    /// ```
    /// let s = cipherdm_models::schedule::Schedule::linear(1000, 1e-4, 0.02);
    /// assert_eq!(s.betas.len(), 1000);
    /// assert!((s.alphas_cumprod[0] - (1.0 - 1e-4)).abs() < 1e-15);
    /// ```
    pub fn linear(t: usize, start: f64, end: f64) -> Self {
        let betas: Vec<f64> = (0..t)
            .map(|i| start + (end - start) * i as f64 / (t.max(2) - 1) as f64)
            .collect();
        let mut acc = 1.0;
        let alphas_cumprod = betas
            .iter()
            .map(|b| {
                acc *= 1.0 - b;
                acc
            })
            .collect();
        Self {
            betas,
            alphas_cumprod,
        }
    }

    /// CipherDM's schedule: T = 1000, β from 1e-4 to 0.02.
    pub fn cipherdm() -> Self {
        Self::linear(1000, 1e-4, 0.02)
    }

    /// Number of timesteps T.
    pub fn len(&self) -> usize {
        self.betas.len()
    }

    /// Whether the schedule is empty.
    pub fn is_empty(&self) -> bool {
        self.betas.is_empty()
    }

    /// The score-guidance weight of Song et al., `w_t = σ_t/α_t` with `α_t = √ᾱ_t`,
    /// `σ_t = √(1 − ᾱ_t)`.
    pub fn snr_weight(&self, t: usize) -> f64 {
        let a = self.alphas_cumprod[t];
        ((1.0 - a) / a).sqrt()
    }

    /// The other reading of `σ_t/α_t`: DDPM notation `α_t = 1 − β_t`, `σ_t = √β_t`, so
    /// `w_t = √β_t/(1 − β_t)`.
    pub fn beta_weight(&self, t: usize) -> f64 {
        let b = self.betas[t];
        b.sqrt() / (1.0 - b)
    }

    /// `x_t = √ᾱ_t·x_0 + √(1 − ᾱ_t)·ε` (the forward process, for training).
    pub fn add_noise(&self, x0: f64, eps: f64, t: usize) -> f64 {
        let a = self.alphas_cumprod[t];
        a.sqrt() * x0 + (1.0 - a).sqrt() * eps
    }
}

/// DDIM options.
#[derive(Clone, Debug, PartialEq)]
pub struct DdimConfig {
    /// Number of model calls.
    pub steps: usize,
    /// Stochasticity η (0: deterministic DDIM).
    pub eta: f64,
    /// Clip the predicted x̂0 to `[-1, 1]`.
    pub clip_x0: bool,
    /// Added to the uniform grid `0, c, 2c, …` (CipherDM: 1, giving `[1, 21, …, 981]`).
    pub offset: usize,
    /// CipherDM's quirk: the last step goes to `ᾱ[0]` instead of 1.
    pub final_alpha_quirk: bool,
}

impl DdimConfig {
    /// CipherDM's sampler: 50 uniform steps `[1, 21, …, 981]`, η = 0, x̂0 clipped, the
    /// last step to `ᾱ[0]`.
    pub fn cipherdm() -> Self {
        Self {
            steps: 50,
            eta: 0.0,
            clip_x0: true,
            offset: 1,
            final_alpha_quirk: true,
        }
    }

    /// The timesteps in sampling order (descending), each with its predecessor
    /// (`None` for the final step).
    pub fn timesteps(&self, total: usize) -> Result<Vec<(usize, Option<usize>)>, ModelError> {
        if self.steps == 0 || self.steps > total {
            return Err(ModelError::Config(format!(
                "DDIM needs 1..={total} steps, got {}",
                self.steps
            )));
        }
        let c = total / self.steps;
        let seq: Vec<usize> = (0..self.steps).map(|i| i * c + self.offset).collect();
        if seq.last().is_some_and(|&t| t >= total) {
            return Err(ModelError::Config(format!(
                "offset {} runs past T = {total}",
                self.offset
            )));
        }
        Ok((0..self.steps)
            .rev()
            .map(|i| (seq[i], i.checked_sub(1).map(|j| seq[j])))
            .collect())
    }

    /// The update scalars of the step from `t` to `prev` (`None`: the last step).
    pub fn step(&self, schedule: &Schedule, t: usize, prev: Option<usize>) -> DdimStep {
        let a_t = schedule.alphas_cumprod[t];
        let a_prev = match prev {
            Some(p) => schedule.alphas_cumprod[p],
            None if self.final_alpha_quirk => schedule.alphas_cumprod[0],
            None => 1.0,
        };
        let sigma = self.eta
            * ((1.0 - a_prev) / (1.0 - a_t) * (1.0 - a_t / a_prev))
                .max(0.0)
                .sqrt();
        let dir = (1.0 - a_prev - sigma * sigma).max(0.0).sqrt();
        DdimStep {
            a_t,
            a_prev,
            sigma,
            dir,
        }
    }
}

/// The scalars of one DDIM update from `t` to `prev`: `x_prev = √ᾱ_prev·x̂0 + dir·ε + σ·z`
/// with `x̂0 = (x − √(1−ᾱ_t)·ε)/√ᾱ_t`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DdimStep {
    /// `ᾱ_t`.
    pub a_t: f64,
    /// `ᾱ_prev` (`ᾱ[0]` at the last step with the quirk, else 1).
    pub a_prev: f64,
    /// Noise scale `σ` (0 for η = 0).
    pub sigma: f64,
    /// Coefficient of `ε` in the update, `√(1 − ᾱ_prev − σ²)`.
    pub dir: f64,
}

/// How the noise prediction is steered.
pub enum Guidance<'a> {
    /// The model's conditional prediction as is.
    None,
    /// `ε = (1 + w)·ε(x, y) − w·ε(x, mean class)`.
    ClassifierFree {
        /// Strength w.
        w: f64,
    },
    /// A member of the score-guidance family ([`ScoreGuidance`]): the exact unconditional
    /// score `ε_unc` comes from an unconditional trajectory of `reference` (the exact model,
    /// condition [`Condition::Mean`]) started from the same noise; the error-cancelling
    /// correction also evaluates the sampled model at the same points.
    Score {
        /// Which guidance, with its strength.
        guidance: ScoreGuidance,
        /// The exactly evaluated model.
        reference: &'a mut dyn Denoiser,
    },
}

/// Standard normal samples from a seeded stream (Box–Muller).
pub fn normal(rng: &mut ChaCha12Rng, n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        // 53-bit uniforms in (0, 1].
        let u1 = ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let u2 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let r = (-2.0 * u1.ln()).sqrt();
        let th = 2.0 * core::f64::consts::PI * u2;
        out.push(r * th.cos());
        out.push(r * th.sin());
    }
    out.truncate(n);
    out
}

/// Initial noise `x_T` of shape `shape` from `seed`.
pub fn initial_noise(seed: u64, shape: Vec<usize>) -> Tensor<f64> {
    let n = shape.iter().product();
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    Tensor::new(shape, normal(&mut rng, n)).expect("normal returns n values")
}

/// A sampler's update `(x_t, ε) ↦ x_prev` for one timestep.
type StepMap<'a> = dyn Fn(&Tensor<f64>, &Tensor<f64>) -> Result<Tensor<f64>, ModelError> + 'a;

/// One sampler step under `guidance`: `step(x, ε)` applied to the conditional
/// trajectory with the guided ε and, for score guidance, to the unconditional trajectory
/// `x_unc` with the reference model's ε (the same map, the same noise).
#[allow(clippy::too_many_arguments)]
fn guided_step(
    schedule: &Schedule,
    t: usize,
    model: &mut dyn Denoiser,
    x: &Tensor<f64>,
    x_unc: &mut Option<Tensor<f64>>,
    conditions: &[Condition],
    guidance: &mut Guidance<'_>,
    step: &StepMap<'_>,
) -> Result<Tensor<f64>, ModelError> {
    let eps = model.eps(x, t, conditions)?;
    let mean = vec![Condition::Mean; conditions.len()];
    let eps = match guidance {
        Guidance::None => eps,
        Guidance::ClassifierFree { w } => {
            let u = model.eps(x, t, &mean)?;
            let w = *w;
            zip(&eps, &u, |c, u| (1.0 + w) * c - w * u)?
        }
        Guidance::Score {
            guidance,
            reference,
        } => {
            let xu = x_unc.as_ref().ok_or_else(|| {
                ModelError::Config("score guidance needs the unconditional trajectory".into())
            })?;
            let u = reference.eps(xu, t, &mean)?;
            // The owner's tensor: the exact unconditional score, or its error estimate.
            let g = match guidance {
                ScoreGuidance::Unconditional { .. } => u.clone(),
                ScoreGuidance::ErrorCancelling { .. } => {
                    zip(&u, &model.eps(xu, t, &mean)?, |a, b| a - b)?
                }
            };
            *x_unc = Some(step(xu, &u)?);
            let Fold { own, owner } = guidance.fold(schedule, t);
            zip(&eps, &g, |e, g| own * e + owner * g)?
        }
    };
    step(x, &eps)
}

fn zip(
    a: &Tensor<f64>,
    b: &Tensor<f64>,
    f: impl Fn(f64, f64) -> f64,
) -> Result<Tensor<f64>, ModelError> {
    if a.shape() != b.shape() {
        return Err(ModelError::Shape(format!(
            "{:?} vs {:?}",
            a.shape(),
            b.shape()
        )));
    }
    Tensor::new(
        a.shape().to_vec(),
        a.data()
            .iter()
            .zip(b.data())
            .map(|(&x, &y)| f(x, y))
            .collect(),
    )
}

/// Runs DDIM from `x_t` (shape `(B, C, H, W)`) with one condition per batch item. `seed`
/// drives the η-noise (unused when η = 0). Returns `x_0`.
pub fn ddim(
    schedule: &Schedule,
    config: &DdimConfig,
    model: &mut dyn Denoiser,
    x_t: Tensor<f64>,
    conditions: &[Condition],
    mut guidance: Guidance<'_>,
    seed: u64,
) -> Result<Tensor<f64>, ModelError> {
    check_batch(&x_t, conditions)?;
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    let mut x = x_t;
    let mut x_unc = matches!(guidance, Guidance::Score { .. }).then(|| x.clone());
    for (t, prev) in config.timesteps(schedule.len())? {
        let DdimStep {
            a_t,
            a_prev,
            sigma,
            dir,
        } = config.step(schedule, t, prev);
        let noise = (sigma > 0.0).then(|| normal(&mut rng, x.len()));
        let step = |x: &Tensor<f64>, eps: &Tensor<f64>| -> Result<Tensor<f64>, ModelError> {
            pointwise(x, eps, noise.as_deref(), |xv, e, n| {
                let mut x0 = (xv - (1.0 - a_t).sqrt() * e) / a_t.sqrt();
                if config.clip_x0 {
                    x0 = x0.clamp(-1.0, 1.0);
                }
                a_prev.sqrt() * x0 + dir * e + sigma * n
            })
        };
        x = guided_step(
            schedule,
            t,
            model,
            &x,
            &mut x_unc,
            conditions,
            &mut guidance,
            &step,
        )?;
    }
    Ok(x)
}

/// Runs the 1000-step ancestral DDPM sampler from `x_T`; `seed` drives the per-step noise.
pub fn ddpm(
    schedule: &Schedule,
    model: &mut dyn Denoiser,
    x_t: Tensor<f64>,
    conditions: &[Condition],
    mut guidance: Guidance<'_>,
    seed: u64,
) -> Result<Tensor<f64>, ModelError> {
    check_batch(&x_t, conditions)?;
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    let mut x = x_t;
    let mut x_unc = matches!(guidance, Guidance::Score { .. }).then(|| x.clone());
    for t in (0..schedule.len()).rev() {
        let (b, a_bar) = (schedule.betas[t], schedule.alphas_cumprod[t]);
        let coeff = b / (1.0 - a_bar).sqrt();
        let noise = (t > 0).then(|| normal(&mut rng, x.len()));
        let step = |x: &Tensor<f64>, eps: &Tensor<f64>| {
            pointwise(x, eps, noise.as_deref(), |xv, e, n| {
                (xv - coeff * e) / (1.0 - b).sqrt() + b.sqrt() * n
            })
        };
        x = guided_step(
            schedule,
            t,
            model,
            &x,
            &mut x_unc,
            conditions,
            &mut guidance,
            &step,
        )?;
    }
    Ok(x)
}

/// `f(x, ε, n)` elementwise, where `n` is the step's noise (0 without noise).
fn pointwise(
    x: &Tensor<f64>,
    eps: &Tensor<f64>,
    noise: Option<&[f64]>,
    f: impl Fn(f64, f64, f64) -> f64,
) -> Result<Tensor<f64>, ModelError> {
    let data = x
        .data()
        .iter()
        .zip(eps.data())
        .enumerate()
        .map(|(i, (&xv, &e))| f(xv, e, noise.map_or(0.0, |n| n[i])))
        .collect();
    Tensor::new(x.shape().to_vec(), data)
}

fn check_batch(x: &Tensor<f64>, conditions: &[Condition]) -> Result<(), ModelError> {
    match x.shape().first() {
        Some(&b) if b == conditions.len() && x.shape().len() == 4 => Ok(()),
        _ => Err(ModelError::Shape(format!(
            "x_T {:?} needs (B, C, H, W) with B = {} conditions",
            x.shape(),
            conditions.len()
        ))),
    }
}

/// Records a denoiser's outputs by timestep, then replays them: the unconditional scores
/// of score guidance, computed once from the public initial noise and reused by every run
/// that starts from the same noise.
#[derive(Debug, Default)]
pub struct PrecomputedScores {
    by_t: BTreeMap<usize, Tensor<f64>>,
}

impl PrecomputedScores {
    /// Runs the unconditional DDIM trajectory of `reference` from `x_t` and keeps every
    /// step's ε.
    pub fn compute(
        schedule: &Schedule,
        config: &DdimConfig,
        reference: &mut dyn Denoiser,
        x_t: Tensor<f64>,
    ) -> Result<Self, ModelError> {
        struct Rec<'a> {
            inner: &'a mut dyn Denoiser,
            by_t: BTreeMap<usize, Tensor<f64>>,
        }
        impl Denoiser for Rec<'_> {
            fn eps(
                &mut self,
                x: &Tensor<f64>,
                t: usize,
                c: &[Condition],
            ) -> Result<Tensor<f64>, ModelError> {
                let e = self.inner.eps(x, t, c)?;
                self.by_t.insert(t, e.clone());
                Ok(e)
            }
        }
        let b = x_t.shape()[0];
        let mut rec = Rec {
            inner: reference,
            by_t: BTreeMap::new(),
        };
        ddim(
            schedule,
            config,
            &mut rec,
            x_t,
            &vec![Condition::Mean; b],
            Guidance::None,
            0,
        )?;
        Ok(Self { by_t: rec.by_t })
    }

    /// The recorded score at timestep `t`.
    pub fn get(&self, t: usize) -> Option<&Tensor<f64>> {
        self.by_t.get(&t)
    }
}

impl Denoiser for PrecomputedScores {
    fn eps(
        &mut self,
        x: &Tensor<f64>,
        t: usize,
        _: &[Condition],
    ) -> Result<Tensor<f64>, ModelError> {
        let e = self
            .by_t
            .get(&t)
            .ok_or_else(|| ModelError::Config(format!("no precomputed score for t = {t}")))?;
        if e.shape() != x.shape() {
            return Err(ModelError::Shape(format!(
                "precomputed scores are {:?}, asked for {:?}",
                e.shape(),
                x.shape()
            )));
        }
        Ok(e.clone())
    }
}
