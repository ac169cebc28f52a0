//! Score guidance as a family: what steers the approximated conditional noise prediction
//! `ε̂(z_t, y)` of the servers with tensors the model owner computes in plaintext along
//! the public-noise unconditional trajectory `z_unc`.
//!
//! - [`ScoreGuidance::Unconditional`] — the guidance of "Secure Inference for Diffusion
//!   Models via Unconditional Scores" (Song et al.): `ε̃ = ε̂ + γ_t·(ε(z_unc) − ε̂)`, the
//!   exact unconditional score as the target, `γ_t = η·w(t)` with a [`GuidanceWeight`].
//!   Its Algorithm 1 leaves `w(t)` open; the text says `w_t = σ_t/α_t`, which reads two
//!   ways ([`GuidanceWeight::Snr`], [`GuidanceWeight::Beta`]).
//! - [`ScoreGuidance::ErrorCancelling`] — ours: `ε̃ = ε̂(z_t, y) + γ·(ε(z_unc) − ε̂(z_unc))`
//!   on the steps with `t ≥ t_min`. Both unconditional terms are evaluated by the owner on
//!   the same public trajectory, one with exact nonlinearities and one with the
//!   approximations the servers use, so their difference estimates the approximation
//!   error while the class signal cancels. The estimate is good while the conditional
//!   trajectory is still close to the unconditional one (the noisy steps, which decide the
//!   class) and worse once it has moved towards its class, so `t_min` can stop it there.
//!   It is exactly zero for an exact model and costs the servers what the paper's
//!   guidance costs: one shared tensor per step, folded into the update's single
//!   truncation.
//!
//! ```
//! use cipherdm_models::guidance::{GuidanceWeight, ScoreGuidance};
//! let g: ScoreGuidance = "paper:0.1:beta".parse().unwrap();
//! assert_eq!(g, ScoreGuidance::Unconditional { eta: 0.1, weight: GuidanceWeight::Beta });
//! assert_eq!(
//!     "correction:1:600".parse::<ScoreGuidance>().unwrap(),
//!     ScoreGuidance::ErrorCancelling { gamma: 1.0, down_to: 600 }
//! );
//! assert_eq!(g.to_string().parse::<ScoreGuidance>().unwrap(), g);
//! assert!("paper:-1".parse::<ScoreGuidance>().is_err());
//! ```

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::model::{Model, PlainDenoiser};
use crate::plain::Nonlinearity;
use crate::schedule::{Condition, DdimConfig, Denoiser, Guidance, Schedule, ddim, initial_noise};
use crate::tensor::Tensor;
use crate::weights::Weights;

/// Largest guidance strength accepted (η or γ).
pub const MAX_STRENGTH: f64 = 10.0;

/// Timesteps of the schedule (a correction's `t_min` is below it).
const MAX_TIMESTEP: usize = 1000;

/// The weight function `w(t)` of the paper's guidance, `γ_t = η·w(t)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GuidanceWeight {
    /// `w = √(1 − ᾱ_t)/√ᾱ_t`: `σ_t/α_t` in the notation of its Tweedie derivation (reaches
    /// 13 at t = 981 on the linear-β schedule).
    Snr,
    /// `w = √β_t/(1 − β_t)`: `σ_t/α_t` with its §2.1's DDPM notation `α_t = 1 − β_t`,
    /// `σ_t = √β_t` (at most 0.15).
    Beta,
    /// `w = 1`.
    Constant,
    /// `γ_t = min(η·√(1 − ᾱ_t)/√ᾱ_t, 1)`: the first reading, never past the unconditional
    /// score.
    Capped,
}

impl GuidanceWeight {
    /// Every weight function.
    pub const ALL: [GuidanceWeight; 4] = [
        GuidanceWeight::Snr,
        GuidanceWeight::Beta,
        GuidanceWeight::Constant,
        GuidanceWeight::Capped,
    ];

    /// The name the parser reads (`snr`, `beta`, `constant`, `capped`).
    pub fn name(self) -> &'static str {
        match self {
            GuidanceWeight::Snr => "snr",
            GuidanceWeight::Beta => "beta",
            GuidanceWeight::Constant => "constant",
            GuidanceWeight::Capped => "capped",
        }
    }

    /// `γ_t` for strength `eta` at timestep `t` of `schedule`.
    pub fn gamma(self, eta: f64, schedule: &Schedule, t: usize) -> f64 {
        match self {
            GuidanceWeight::Snr => eta * schedule.snr_weight(t),
            GuidanceWeight::Beta => eta * schedule.beta_weight(t),
            GuidanceWeight::Constant => eta,
            GuidanceWeight::Capped => (eta * schedule.snr_weight(t)).min(1.0),
        }
    }
}

/// One member of the guidance family (see the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum ScoreGuidance {
    /// Song et al.: `ε̃ = ε̂ + γ_t·(ε(z_unc) − ε̂)`, `γ_t = η·w(t)`.
    Unconditional {
        /// Strength η (the paper uses 0.1).
        eta: f64,
        /// The weight function.
        weight: GuidanceWeight,
    },
    /// The error-cancelling correction `ε̃ = ε̂ + γ·(ε(z_unc) − ε̂(z_unc))` on the steps with
    /// `t ≥ down_to`.
    ErrorCancelling {
        /// Strength γ (1 adds the whole estimated error back).
        gamma: f64,
        /// The lowest timestep corrected (0: every step).
        down_to: usize,
    },
}

/// What the owner hands the servers per step and how they fold it in: `ε̃ = a·ε̂ + b·g`
/// for the step's guidance tensor `g`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fold {
    /// Coefficient of the servers' own prediction.
    pub own: f64,
    /// Coefficient of the owner's tensor.
    pub owner: f64,
}

impl ScoreGuidance {
    /// The default of the tool: the error-cancelling correction with γ = 1 on the steps
    /// with t ≥ 400 (chosen by measurement; see the README's guidance section).
    pub const DEFAULT: ScoreGuidance = ScoreGuidance::ErrorCancelling {
        gamma: 1.0,
        down_to: 400,
    };

    /// How step `t` combines the servers' prediction with the owner's tensor.
    pub fn fold(&self, schedule: &Schedule, t: usize) -> Fold {
        match *self {
            ScoreGuidance::Unconditional { eta, weight } => {
                let g = weight.gamma(eta, schedule, t);
                Fold {
                    own: 1.0 - g,
                    owner: g,
                }
            }
            ScoreGuidance::ErrorCancelling { gamma, down_to } => Fold {
                own: 1.0,
                owner: if t >= down_to { gamma } else { 0.0 },
            },
        }
    }

    /// Whether the owner's tensors depend on the servers' approximation profile.
    pub fn needs_profile(&self) -> bool {
        matches!(self, ScoreGuidance::ErrorCancelling { .. })
    }

    /// The strength (η or γ).
    pub fn strength(&self) -> f64 {
        match *self {
            ScoreGuidance::Unconditional { eta, .. } => eta,
            ScoreGuidance::ErrorCancelling { gamma, .. } => gamma,
        }
    }
}

impl fmt::Display for ScoreGuidance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScoreGuidance::Unconditional { eta, weight } => {
                write!(f, "paper:{eta}:{}", weight.name())
            }
            ScoreGuidance::ErrorCancelling { gamma, down_to: 0 } => {
                write!(f, "correction:{gamma}")
            }
            ScoreGuidance::ErrorCancelling { gamma, down_to } => {
                write!(f, "correction:{gamma}:{down_to}")
            }
        }
    }
}

/// Parses an optional guidance: `none`, `0`, a bare number η (the paper's guidance with
/// the `snr` weight), `paper:η[:snr|beta|constant|capped]` or `correction:γ[:t_min]`.
///
/// ```
/// use cipherdm_models::guidance::parse_guidance;
/// assert_eq!(parse_guidance("none").unwrap(), None);
/// assert_eq!(parse_guidance("0").unwrap(), None);
/// assert!(parse_guidance("0.1").unwrap().is_some());
/// assert!(parse_guidance("sideways").is_err());
/// ```
pub fn parse_guidance(s: &str) -> Result<Option<ScoreGuidance>, ModelError> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("none") || t.parse::<f64>().is_ok_and(|v| v == 0.0) {
        return Ok(None);
    }
    t.parse().map(Some)
}

impl FromStr for ScoreGuidance {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, ModelError> {
        let bad = |why: &str| {
            ModelError::Config(format!(
                "guidance `{s}`: {why} (paper:η[:snr|beta|constant|capped], correction:γ[:t_min], \
                 a bare η, or none)"
            ))
        };
        let strength = |v: &str| -> Result<f64, ModelError> {
            let x: f64 = v.trim().parse().map_err(|_| bad("not a number"))?;
            if !x.is_finite() || x <= 0.0 || x > MAX_STRENGTH {
                return Err(bad(&format!("strength must be in (0, {MAX_STRENGTH}]")));
            }
            Ok(x)
        };
        let parts: Vec<&str> = s.trim().split(':').collect();
        match parts.as_slice() {
            [eta] => Ok(ScoreGuidance::Unconditional {
                eta: strength(eta)?,
                weight: GuidanceWeight::Snr,
            }),
            [kind, eta] | [kind, eta, _] if kind.eq_ignore_ascii_case("paper") => {
                let weight = match parts.get(2) {
                    None => GuidanceWeight::Snr,
                    Some(w) => GuidanceWeight::ALL
                        .into_iter()
                        .find(|x| x.name().eq_ignore_ascii_case(w.trim()))
                        .ok_or_else(|| bad("unknown weight"))?,
                };
                Ok(ScoreGuidance::Unconditional {
                    eta: strength(eta)?,
                    weight,
                })
            }
            [kind, gamma] | [kind, gamma, _] if kind.eq_ignore_ascii_case("correction") => {
                let down_to = match parts.get(2) {
                    None => 0,
                    Some(t) => t
                        .trim()
                        .parse::<usize>()
                        .ok()
                        .filter(|&t| t < MAX_TIMESTEP)
                        .ok_or_else(|| {
                            bad(&format!("t_min must be a timestep below {MAX_TIMESTEP}"))
                        })?,
                };
                Ok(ScoreGuidance::ErrorCancelling {
                    gamma: strength(gamma)?,
                    down_to,
                })
            }
            _ => Err(bad("unknown form")),
        }
    }
}

/// A denoiser that evaluates the exact model and, for the correction, also the servers'
/// approximation at the same point, recording the owner's tensor per call.
struct OwnerRecorder<'a> {
    exact: &'a mut PlainDenoiser<f64>,
    approx: Option<&'a mut PlainDenoiser<f64>>,
    tensors: Vec<Tensor<f64>>,
}

impl Denoiser for OwnerRecorder<'_> {
    fn eps(
        &mut self,
        x: &Tensor<f64>,
        t: usize,
        c: &[Condition],
    ) -> Result<Tensor<f64>, ModelError> {
        let e = self.exact.eps(x, t, c)?;
        let g = match self.approx.as_deref_mut() {
            None => e.clone(),
            Some(a) => {
                let ea = a.eps(x, t, c)?;
                Tensor::new(
                    e.shape().to_vec(),
                    e.data().iter().zip(ea.data()).map(|(x, y)| x - y).collect(),
                )?
            }
        };
        self.tensors.push(g);
        Ok(e)
    }
}

/// The owner's per-step guidance tensors for a DDIM sample of `batch` images from the
/// public noise of `seed`, in sampler order: the exact unconditional score `ε(z_unc)`
/// ([`ScoreGuidance::Unconditional`]) or the estimated approximation error
/// `ε(z_unc) − ε̂(z_unc)` under the servers' `profile` ([`ScoreGuidance::ErrorCancelling`]),
/// along the exact unconditional trajectory `z_unc` (condition [`Condition::Mean`]).
pub fn owner_tensors(
    model: &Model,
    weights: &Weights<f64>,
    guidance: &ScoreGuidance,
    profile: Nonlinearity,
    config: &DdimConfig,
    batch: usize,
    seed: u64,
) -> Result<Vec<Tensor<f64>>, ModelError> {
    let schedule = Schedule::cipherdm();
    let mut exact = PlainDenoiser::new(model.clone(), weights.clone(), Nonlinearity::Exact)?;
    let mut approx = guidance
        .needs_profile()
        .then(|| PlainDenoiser::new(model.clone(), weights.clone(), profile))
        .transpose()?;
    let [c, h, w] = model.image_shape();
    let mut rec = OwnerRecorder {
        exact: &mut exact,
        approx: approx.as_mut(),
        tensors: Vec::new(),
    };
    ddim(
        &schedule,
        config,
        &mut rec,
        initial_noise(seed, vec![batch, c, h, w]),
        &vec![Condition::Mean; batch],
        Guidance::None,
        seed,
    )?;
    Ok(rec.tensors)
}
