//! Secure DDIM and DDPM: the same updates as [`crate::schedule`], on shares.
//!
//! The image, the label and every noise prediction are secret. The schedule, the
//! timesteps, the time features and the initial noise (from the public seed) are
//! public, so each scheduler update is a public linear combination of secret tensors:
//! one truncation per combination ([`linear_combination_fixed`]), with the guidance
//! weights folded into the same combinations (a guided step costs no extra truncation). The DDIM `x̂0` clip is
//! an exact secure [`clamp`]. Guidance:
//! - classifier-free: the conditional and the mean-embedding ("unconditional") halves run
//!   as one forward over a doubled batch, combined as `(1+w)·ε_c − w·ε_u`;
//! - score guidance ([`crate::guidance`]): the model owner's per-step tensors (exact
//!   unconditional scores for the guidance of "Secure Inference for Diffusion Models via
//!   Unconditional Scores" (Song et al.), estimated approximation errors for the
//!   error-cancelling correction) enter as secret-shared inputs, `ε ← a_t·ε + b_t·g_t`
//!   with public `a_t`, `b_t`, folded into the update's linear combinations.

use std::time::{Duration, Instant};

use cipherdm_kernel::cost::Cost;
use cipherdm_kernel::exec::WeightSource;
use cipherdm_kernel::protocols::{clamp, linear_combination_fixed};
use cipherdm_kernel::{ArithShare, Shape, Transport};
use rand_chacha::ChaCha12Rng;
use rand_core::SeedableRng;

use super::forward::{forward, public_label_rows};
use crate::error::ModelError;
use crate::guidance::{Fold, ScoreGuidance};
use crate::model::Model;
use crate::schedule::{Condition, DdimConfig, DdimStep, Schedule, initial_noise, normal};
use cipherdm_kernel::exec::{SecureBackend, public_share};

/// Guidance on shares.
#[derive(Clone, Debug)]
pub enum SecureGuidance {
    /// Plain conditional sampling.
    None,
    /// Classifier-free guidance with weight `w` (mean embedding as unconditional).
    ClassifierFree {
        /// Guidance weight.
        w: f64,
    },
    /// A member of the score-guidance family; `tensors[i]` is this party's share of the
    /// owner's tensor at step `i` (sampler order): the exact unconditional score, or the
    /// estimated approximation error for the correction
    /// ([`owner_tensors`](crate::guidance::owner_tensors)).
    Score {
        /// Which guidance, with its strength.
        guidance: ScoreGuidance,
        /// One share per step, each shaped like the image batch.
        tensors: Vec<ArithShare<u64>>,
    },
}

/// Progress after one denoising step, at this party.
#[derive(Clone, Copy, Debug)]
pub struct StepReport {
    /// Steps done.
    pub done: usize,
    /// Steps in all.
    pub steps: usize,
    /// The timestep just processed.
    pub t: usize,
    /// Time since the sampler started.
    pub elapsed: Duration,
    /// This party's cost since the sampler started.
    pub cost: Cost,
}

/// What a step callback tells the sampler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepFlow {
    /// Go on; the parties exchange nothing (in-process runs, benchmarks).
    Continue,
    /// Party 0 decides for all three: it sends `stop` to the others (one byte each, no
    /// cost-ledger entry) and all three stop together with [`ModelError::Cancelled`]
    /// when it is set. The other parties' `stop` is ignored. In one job every party's
    /// callback must answer `Agree` after every step, or the links desynchronise.
    Agree {
        /// Party 0's decision.
        stop: bool,
    },
}

/// Per-step callback.
pub type OnStep<'a> = &'a mut dyn FnMut(&StepReport) -> StepFlow;

/// Carries out a callback's [`StepFlow`] after step `done`.
fn after_step<T: Transport>(
    p: &mut cipherdm_kernel::Party<T>,
    flow: StepFlow,
    done: usize,
) -> Result<(), ModelError> {
    let StepFlow::Agree { stop } = flow else {
        return Ok(());
    };
    let me = p.id();
    let t = p.transport_mut();
    let stop = if me == cipherdm_kernel::PartyId::P0 {
        for to in [cipherdm_kernel::PartyId::P1, cipherdm_kernel::PartyId::P2] {
            t.send(to, &[stop as u8])
                .map_err(cipherdm_kernel::Error::from)?;
        }
        t.flush().map_err(cipherdm_kernel::Error::from)?;
        stop
    } else {
        let mut b = [0u8; 1];
        t.recv(cipherdm_kernel::PartyId::P0, &mut b)
            .map_err(cipherdm_kernel::Error::from)?;
        b[0] != 0
    };
    if stop {
        return Err(ModelError::Cancelled { after_steps: done });
    }
    Ok(())
}

/// The guided noise prediction as public-weighted secret terms `ε' = Σ c_i·ε_i`, kept
/// unevaluated so that each scheduler update folds it into its own single truncation.
type EpsTerms = Vec<(f64, ArithShare<u64>)>;

#[allow(clippy::too_many_arguments)]
fn eps_for_step<T: Transport, W>(
    backend: &mut SecureBackend<'_, T, W>,
    model: &Model,
    x: &ArithShare<u64>,
    t: usize,
    labels: &ArithShare<u64>,
    guidance: &SecureGuidance,
    step: usize,
    schedule: &Schedule,
) -> Result<EpsTerms, ModelError>
where
    W: WeightSource<u64>,
    ModelError: From<W::Error>,
{
    let dims = x.shape().dims().to_vec();
    let b = dims[0];
    match guidance {
        SecureGuidance::None => Ok(vec![(
            1.0,
            forward(backend, model, x.clone(), t, labels.clone())?,
        )]),
        SecureGuidance::ClassifierFree { w } => {
            let mean = public_label_rows(model, &vec![Condition::Mean; b])?;
            let mean = public_share(backend.party(), &mean, labels.shape().dims())?;
            let mut d2 = dims.clone();
            d2[0] = 2 * b;
            let xx = ArithShare::concat(&[x, x]).reshape(Shape::new(&d2)?)?;
            let ll = ArithShare::concat(&[labels, &mean])
                .reshape(Shape::new(&[2 * b, model.classes()])?)?;
            let e = forward(backend, model, xx, t, ll)?;
            let shape = Shape::new(&dims)?;
            let cond = e.slice(0, x.len())?.reshape(shape.clone())?;
            let unc = e.slice(x.len(), x.len())?.reshape(shape)?;
            Ok(vec![(1.0 + w, cond), (-w, unc)])
        }
        SecureGuidance::Score { guidance, tensors } => {
            let u = tensors.get(step).ok_or_else(|| {
                ModelError::Config(format!(
                    "score guidance has {} tensors, step {step} needs one more",
                    tensors.len()
                ))
            })?;
            if u.shape() != x.shape() {
                return Err(ModelError::Shape(format!(
                    "guidance tensor {:?} vs image {:?}",
                    u.shape().dims(),
                    dims
                )));
            }
            let e = forward(backend, model, x.clone(), t, labels.clone())?;
            let Fold { own, owner } = guidance.fold(schedule, t);
            Ok(vec![(own, e), (owner, u.clone())])
        }
    }
}

/// Secure DDIM from the public noise of `seed` for the secret one-hot `labels`
/// `(B, classes)`. Mirrors [`crate::schedule::ddim`] step for step (same noise, same
/// timesteps, same clip and final-ᾱ options). Returns this party's share of the image.
#[allow(clippy::too_many_arguments)]
pub fn secure_ddim<T: Transport, W>(
    backend: &mut SecureBackend<'_, T, W>,
    model: &Model,
    schedule: &Schedule,
    config: &DdimConfig,
    labels: &ArithShare<u64>,
    guidance: &SecureGuidance,
    seed: u64,
    on_step: OnStep<'_>,
) -> Result<ArithShare<u64>, ModelError>
where
    W: WeightSource<u64>,
    ModelError: From<W::Error>,
{
    let (mut x, mut rng) = start_trajectory(backend, model, labels, seed)?;
    let steps = config.timesteps(schedule.len())?;
    let start = Instant::now();
    let cost0 = *backend.party().costs().total();
    for (i, &(t, prev)) in steps.iter().enumerate() {
        let DdimStep {
            a_t,
            a_prev,
            sigma,
            dir,
        } = config.step(schedule, t, prev);
        let noise = (sigma > 0.0).then(|| normal(&mut rng, x.len()));
        let e = eps_for_step(backend, model, &x, t, labels, guidance, i, schedule)?;
        let p = backend.party();
        let mut pred_x0 = combine(
            p,
            (1.0 / a_t.sqrt(), &x),
            -(1.0 - a_t).sqrt() / a_t.sqrt(),
            &e,
        )?;
        if config.clip_x0 {
            pred_x0 = clamp(p, &pred_x0, -1.0, 1.0)?;
        }
        x = combine(p, (a_prev.sqrt(), &pred_x0), dir, &e)?;
        if let Some(n) = noise {
            let scaled: Vec<f64> = n.iter().map(|v| sigma * v).collect();
            let add = public_share(p, &scaled, x.shape().dims())?;
            x = x.add(&add)?;
        }
        let flow = on_step(&StepReport {
            done: i + 1,
            steps: steps.len(),
            t,
            elapsed: start.elapsed(),
            cost: p.costs().total().since(&cost0),
        });
        after_step(p, flow, i + 1)?;
    }
    Ok(x)
}

/// Secure DDPM (all `T` steps, public per-step noise from `seed`), mirroring
/// [`crate::schedule::ddpm`]. Returns this party's share of the image.
#[allow(clippy::too_many_arguments)]
pub fn secure_ddpm<T: Transport, W>(
    backend: &mut SecureBackend<'_, T, W>,
    model: &Model,
    schedule: &Schedule,
    labels: &ArithShare<u64>,
    guidance: &SecureGuidance,
    seed: u64,
    on_step: OnStep<'_>,
) -> Result<ArithShare<u64>, ModelError>
where
    W: WeightSource<u64>,
    ModelError: From<W::Error>,
{
    let (mut x, mut rng) = start_trajectory(backend, model, labels, seed)?;
    let start = Instant::now();
    let cost0 = *backend.party().costs().total();
    let total = schedule.len();
    for (i, t) in (0..total).rev().enumerate() {
        let (beta, a_bar) = (schedule.betas[t], schedule.alphas_cumprod[t]);
        let coeff = beta / (1.0 - a_bar).sqrt();
        let noise = (t > 0).then(|| normal(&mut rng, x.len()));
        let e = eps_for_step(backend, model, &x, t, labels, guidance, i, schedule)?;
        let p = backend.party();
        let k = 1.0 / (1.0 - beta).sqrt();
        x = combine(p, (k, &x), -k * coeff, &e)?;
        if let Some(n) = noise {
            let scaled: Vec<f64> = n.iter().map(|v| beta.sqrt() * v).collect();
            let add = public_share(p, &scaled, x.shape().dims())?;
            x = x.add(&add)?;
        }
        let flow = on_step(&StepReport {
            done: i + 1,
            steps: total,
            t,
            elapsed: start.elapsed(),
            cost: p.costs().total().since(&cost0),
        });
        after_step(p, flow, i + 1)?;
    }
    Ok(x)
}

/// `a·x + c·ε'` with the guided `ε'` given as terms: one truncation for the whole sum.
fn combine<T: Transport>(
    p: &mut cipherdm_kernel::Party<T>,
    (a, x): (f64, &ArithShare<u64>),
    c: f64,
    eps: &EpsTerms,
) -> Result<ArithShare<u64>, ModelError> {
    let mut terms: Vec<(f64, &ArithShare<u64>)> = vec![(a, x)];
    terms.extend(eps.iter().map(|(ci, e)| (c * ci, e)));
    Ok(linear_combination_fixed(p, &terms)?)
}

/// The public initial noise of `seed` as a trivial sharing, and the sampler's noise
/// stream (the same draws as the plaintext samplers).
fn start_trajectory<T: Transport, W>(
    backend: &mut SecureBackend<'_, T, W>,
    model: &Model,
    labels: &ArithShare<u64>,
    seed: u64,
) -> Result<(ArithShare<u64>, ChaCha12Rng), ModelError>
where
    W: WeightSource<u64>,
    ModelError: From<W::Error>,
{
    let b = check_labels(model, labels)?;
    let [c, h, w] = model.image_shape();
    let x0 = initial_noise(seed, vec![b, c, h, w]);
    let x = public_share(backend.party(), x0.data(), &[b, c, h, w])?;
    Ok((x, ChaCha12Rng::seed_from_u64(seed)))
}

fn check_labels(model: &Model, labels: &ArithShare<u64>) -> Result<usize, ModelError> {
    match *labels.shape().dims() {
        [b, k] if k == model.classes() && b > 0 => Ok(b),
        ref d => Err(ModelError::Shape(format!(
            "labels must be (B, {}) one-hot rows, got {d:?}",
            model.classes()
        ))),
    }
}
