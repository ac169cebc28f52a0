//! Everyone in one process: the model owner, the user and three servers over the
//! memory transport. What each role contributes, and what it sees:
//!
//! - the **owner** splits the weights into three share sets ([`owner_weight_shares`] or
//!   share files) and, for score guidance, computes its per-step tensors from the public
//!   noise ([`owner_tensors`]) and shares them ([`owner_guidance_shares`]);
//! - the **user** shares its one-hot labels ([`user_label_shares`]) and reconstructs the
//!   image from the three servers' outputs;
//! - the **servers** run [`secure_ddim`] / [`secure_ddpm`] on shares only; nothing is
//!   opened to any of them (their `opened_to` counters stay zero), and each hands its
//!   share of the final image to the user ([`output_to_client`]).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cipherdm_kernel::approx::Profile;
use cipherdm_kernel::cost::Cost;
use cipherdm_kernel::exec::{LayerRecord, MemoryWeights};
use cipherdm_kernel::protocols::output_to_client;
use cipherdm_kernel::share::{reconstruct, share_locally};
use cipherdm_kernel::{ArithShare, FixedPoint, PartyId, Shape};
use cipherdm_transport_mem::{MemConfig, run3_with};
use rand_chacha::ChaCha12Rng;
use rand_core::SeedableRng;

use super::sampler::{SecureGuidance, StepFlow, StepReport, secure_ddim, secure_ddpm};
use super::share_file::ShareFileSource;
use crate::error::ModelError;
use crate::guidance::{ScoreGuidance, owner_tensors};
use crate::model::Model;
use crate::plain::Nonlinearity;
use crate::schedule::{Condition, DdimConfig, Schedule};
use crate::tensor::Tensor;
use crate::weights::Weights;
use cipherdm_kernel::exec::{SecureBackend, monotonic_nanos};

/// Which sampler runs.
#[derive(Clone, Debug)]
pub enum Sampler {
    /// DDIM with this configuration.
    Ddim(DdimConfig),
    /// DDPM over all `T` steps.
    Ddpm,
}

/// Which guidance the user asks for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GuidanceRequest {
    /// None.
    None,
    /// Classifier-free with weight `w`.
    ClassifierFree(f64),
    /// A member of the score-guidance family ([`ScoreGuidance`]; needs the owner's
    /// plaintext weights for its per-step tensors).
    Score(ScoreGuidance),
}

/// Where the servers' weight shares come from.
#[derive(Debug)]
pub enum PartyWeights {
    /// Shares in memory, one set per party.
    Memory(Box<[MemoryWeights<u64>; 3]>),
    /// One share file per party (read layer by layer), checked against `model_id`.
    Files {
        /// Party 0, 1, 2's files.
        paths: [PathBuf; 3],
        /// The model id the files must carry.
        model_id: String,
    },
}

/// A secure sampling job.
#[derive(Clone, Debug)]
pub struct SampleRequest {
    /// The model (public architecture).
    pub model: Model,
    /// Approximation profile of the nonlinear layers.
    pub profile: Profile,
    /// The user's labels, one image each.
    pub labels: Vec<usize>,
    /// DDIM or DDPM.
    pub sampler: Sampler,
    /// Guidance.
    pub guidance: GuidanceRequest,
    /// Public seed of the initial noise.
    pub seed: u64,
}

impl SampleRequest {
    /// The public part the servers run: everything but the labels.
    pub fn server_job(&self) -> ServerJob {
        ServerJob {
            model: self.model.clone(),
            profile: self.profile,
            sampler: self.sampler.clone(),
            seed: self.seed,
        }
    }
}

/// What a server knows of a job: model, profile, sampler and the public noise seed (the
/// labels reach it only as shares).
#[derive(Clone, Debug)]
pub struct ServerJob {
    /// The model (public architecture).
    pub model: Model,
    /// Approximation profile of the nonlinear layers.
    pub profile: Profile,
    /// DDIM or DDPM.
    pub sampler: Sampler,
    /// Public seed of the initial noise.
    pub seed: u64,
}

/// One server's result: its two components of the image, the image shape, its cost.
#[derive(Clone, Debug)]
pub struct ServerOutput {
    /// Components `i` and `i + 1` of the image, for the user.
    pub image: (Vec<u64>, Vec<u64>),
    /// `(batch, channels, height, width)`.
    pub shape: Shape,
    /// This server's cost over the sample (set-up excluded).
    pub cost: Cost,
}

/// One server's whole sample with weight shares read from its share file: what the
/// party daemon runs for each job (`on_step` after every denoising step).
#[allow(clippy::too_many_arguments)]
pub fn serve_sample<T: cipherdm_kernel::Transport>(
    p: &mut cipherdm_kernel::Party<T>,
    job: &ServerJob,
    shares: &std::path::Path,
    model_id: &str,
    labels: &ArithShare<u64>,
    guidance: &SecureGuidance,
    on_step: &dyn Fn(&StepReport) -> StepFlow,
) -> Result<ServerOutput, ModelError> {
    let fixed = p.fixed();
    let before = *p.costs().total();
    let out = party_sample(
        p,
        job,
        PartySource::File {
            path: shares.to_path_buf(),
            model_id: model_id.to_string(),
        },
        labels,
        guidance,
        fixed,
        on_step,
    )?;
    Ok(ServerOutput {
        image: out.image,
        shape: out.shape,
        cost: p.costs().total().since(&before),
    })
}

/// The user's randomness for sharing its labels: fresh from the OS, or — for
/// reproducibility tests only — from a public seed.
pub fn user_rng(seed: Option<u64>) -> Result<ChaCha12Rng, ModelError> {
    match seed {
        Some(s) => {
            let mut rng = ChaCha12Rng::seed_from_u64(s);
            rng.set_stream(0x75736572); // "user": apart from the parties' PRSS streams
            Ok(rng)
        }
        None => fresh_rng(),
    }
}

/// What a secure sample produced and cost.
#[derive(Clone, Debug)]
pub struct SampleOutcome {
    /// The image batch, reconstructed by the user, `(B, C, H, W)` in `[-1, 1]`-ish.
    pub image: Tensor<f64>,
    /// Each server's total cost.
    pub costs: [Cost; 3],
    /// Party 0's per-layer records over all forwards, in order.
    pub layers: Vec<LayerRecord>,
    /// Wall time of the three servers' run.
    pub wall: Duration,
}

/// The owner's split of canonical weights into three in-memory share sets.
pub fn owner_weight_shares(
    model: &Model,
    weights: &Weights<f64>,
    fixed: FixedPoint,
    rng: &mut ChaCha12Rng,
) -> Result<[MemoryWeights<u64>; 3], ModelError> {
    weights.check(&model.graph)?;
    let mut sets: [MemoryWeights<u64>; 3] = Default::default();
    for spec in &model.graph.weights {
        let data = weights.get(&spec.name)?.data();
        let mut enc = vec![0u64; data.len()];
        fixed
            .encode_slice(data, &mut enc)
            .map_err(|e| ModelError::Weight(format!("`{}`: {e}", spec.name)))?;
        let shares = share_locally(&enc, Shape::new(&spec.shape)?, rng)?;
        for (set, s) in sets.iter_mut().zip(shares) {
            set.insert(&spec.name, s);
        }
    }
    Ok(sets)
}

/// The user's sharing of one-hot label rows `(B, classes)`.
pub fn user_label_shares(
    model: &Model,
    labels: &[usize],
    fixed: FixedPoint,
    rng: &mut ChaCha12Rng,
) -> Result<[ArithShare<u64>; 3], ModelError> {
    let mut rows = Vec::with_capacity(labels.len() * model.classes());
    for &l in labels {
        rows.extend(model.label_row(&Condition::Class(l))?);
    }
    let mut enc = vec![0u64; rows.len()];
    fixed.encode_slice(&rows, &mut enc)?;
    Ok(share_locally(
        &enc,
        Shape::new(&[labels.len(), model.classes()])?,
        rng,
    )?)
}

/// Shares the owner's per-step guidance tensors, one share vector per party.
pub fn owner_guidance_shares(
    scores: &[Tensor<f64>],
    fixed: FixedPoint,
    rng: &mut ChaCha12Rng,
) -> Result<[Vec<ArithShare<u64>>; 3], ModelError> {
    let mut out: [Vec<ArithShare<u64>>; 3] = Default::default();
    for s in scores {
        let mut enc = vec![0u64; s.len()];
        fixed.encode_slice(s.data(), &mut enc)?;
        let shares = share_locally(&enc, Shape::new(s.shape())?, rng)?;
        for (o, sh) in out.iter_mut().zip(shares) {
            o.push(sh);
        }
    }
    Ok(out)
}

/// Fresh randomness for the owner's and the user's sharings.
pub fn fresh_rng() -> Result<ChaCha12Rng, ModelError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| ModelError::Config(format!("no OS randomness: {e}")))?;
    Ok(ChaCha12Rng::from_seed(seed))
}

/// Runs a whole secure sample with the three servers as threads over the memory
/// transport. `owner_weights` (plaintext, the owner's) is needed only for score guidance.
/// `on_step` is called by party 0 after every denoising step.
pub fn sample_in_process(
    request: &SampleRequest,
    weights: PartyWeights,
    owner_weights: Option<&Weights<f64>>,
    transport: &MemConfig,
    on_step: &(dyn Fn(&StepReport) + Sync),
) -> Result<SampleOutcome, ModelError> {
    let model = &request.model;
    let fixed = transport.fixed;
    let mut rng = user_rng(transport.seed)?;
    let labels = user_label_shares(model, &request.labels, fixed, &mut rng)?;
    let b = request.labels.len();
    let mut unconditional: [Option<Vec<ArithShare<u64>>>; 3] = Default::default();
    let score = match request.guidance {
        GuidanceRequest::Score(guidance) => {
            let Sampler::Ddim(cfg) = &request.sampler else {
                return Err(ModelError::Config(
                    "score guidance is implemented for DDIM".into(),
                ));
            };
            let owner = owner_weights.ok_or_else(|| {
                ModelError::Config("score guidance needs the owner's plaintext weights".into())
            })?;
            let profile = Nonlinearity::Approx(request.profile);
            let tensors = owner_tensors(model, owner, &guidance, profile, cfg, b, request.seed)?;
            let shares = owner_guidance_shares(&tensors, fixed, &mut rng)?;
            unconditional = shares.map(Some);
            Some(guidance)
        }
        _ => None,
    };
    let sources: [PartySource; 3] = match weights {
        PartyWeights::Memory(sets) => (*sets).map(PartySource::Memory),
        PartyWeights::Files { paths, model_id } => {
            let headers = (0..3)
                .map(|i| {
                    ShareFileSource::open(
                        &paths[i],
                        PartyId::ALL[i],
                        &model.graph,
                        &model_id,
                        fixed,
                    )
                    .map(|s| s.header().clone())
                })
                .collect::<Result<Vec<_>, _>>()?;
            ShareFileSource::check_same_split([&headers[0], &headers[1], &headers[2]])?;
            paths.map(|path| PartySource::File {
                path,
                model_id: model_id.clone(),
            })
        }
    };
    let inputs: [PartyInput; 3] = {
        let [l0, l1, l2] = labels;
        let [s0, s1, s2] = sources;
        let [u0, u1, u2] = unconditional;
        [(s0, l0, u0), (s1, l1, u1), (s2, l2, u2)]
    };
    let start = Instant::now();
    let job = request.server_job();
    let job = &job;
    let results = run3_with(transport, inputs, |p, (w, label, unc)| {
        let guidance = match (request.guidance, unc, score) {
            (GuidanceRequest::ClassifierFree(w), _, _) => SecureGuidance::ClassifierFree { w },
            (_, Some(tensors), Some(guidance)) => SecureGuidance::Score { guidance, tensors },
            _ => SecureGuidance::None,
        };
        let me = p.id();
        let report = |r: &StepReport| {
            if me == PartyId::P0 {
                on_step(r)
            }
            StepFlow::Continue
        };
        Ok(party_sample(p, job, w, &label, &guidance, fixed, &report))
    });
    let wall = start.elapsed();
    let mut outs = Vec::with_capacity(3);
    let mut errors = Vec::new();
    for r in results {
        match r.map_err(ModelError::from).and_then(|o| o) {
            Ok(o) => outs.push(o),
            Err(e) => errors.push(e),
        }
    }
    // Errors keep their kind (a lost link stays a kernel transport error). When one party
    // fails, its peers see the closed links: report the cause, not the echo.
    if !errors.is_empty() {
        let cause = errors
            .iter()
            .position(|e| e.transport().is_none())
            .unwrap_or(0);
        return Err(errors.swap_remove(cause));
    }
    // The user: reconstruct from the three servers' pairs (which must agree).
    let shape = outs[0].shape.clone();
    let parts: Vec<ArithShare<u64>> = outs
        .iter()
        .map(|o| ArithShare::from_components(o.image.0.clone(), o.image.1.clone(), shape.clone()))
        .collect::<Result<_, _>>()?;
    let opened = reconstruct([&parts[0], &parts[1], &parts[2]])?;
    let image = Tensor::new(
        shape.dims().to_vec(),
        opened.iter().map(|&v| fixed.decode(v)).collect(),
    )?;
    Ok(SampleOutcome {
        image,
        costs: [outs[0].cost, outs[1].cost, outs[2].cost],
        layers: std::mem::take(&mut outs[0].layers),
        wall,
    })
}

/// One server's inputs: weight shares, label share, unconditional-score shares.
type PartyInput = (PartySource, ArithShare<u64>, Option<Vec<ArithShare<u64>>>);

/// One server's weight shares.
enum PartySource {
    Memory(MemoryWeights<u64>),
    File { path: PathBuf, model_id: String },
}

struct PartyOutput {
    image: (Vec<u64>, Vec<u64>),
    shape: Shape,
    cost: Cost,
    layers: Vec<LayerRecord>,
}

fn party_sample<T: cipherdm_kernel::Transport>(
    p: &mut cipherdm_kernel::Party<T>,
    request: &ServerJob,
    weights: PartySource,
    labels: &ArithShare<u64>,
    guidance: &SecureGuidance,
    fixed: FixedPoint,
    on_step: &dyn Fn(&StepReport) -> StepFlow,
) -> Result<PartyOutput, ModelError> {
    let model = &request.model;
    let schedule = Schedule::cipherdm();
    let mut report = |r: &StepReport| on_step(r);
    let (x, layers) = match weights {
        PartySource::Memory(mine) => {
            let mut backend = SecureBackend::new(p, &model.graph, mine, request.profile)?
                .with_clock(monotonic_nanos);
            let x = run_sampler(
                &mut backend,
                request,
                &schedule,
                labels,
                guidance,
                &mut report,
            )?;
            (x, backend.take_records())
        }
        PartySource::File { path, model_id } => {
            let me = p.id();
            let source = ShareFileSource::open(&path, me, &model.graph, &model_id, fixed)?;
            let mut backend = SecureBackend::new(p, &model.graph, source, request.profile)?
                .with_clock(monotonic_nanos);
            let x = run_sampler(
                &mut backend,
                request,
                &schedule,
                labels,
                guidance,
                &mut report,
            )?;
            (x, backend.take_records())
        }
    };
    let image = output_to_client(p, &x)?;
    Ok(PartyOutput {
        image,
        shape: x.shape().clone(),
        cost: *p.costs().total(),
        layers,
    })
}

fn run_sampler<T: cipherdm_kernel::Transport, W>(
    backend: &mut SecureBackend<'_, T, W>,
    request: &ServerJob,
    schedule: &Schedule,
    labels: &ArithShare<u64>,
    guidance: &SecureGuidance,
    report: &mut dyn FnMut(&StepReport) -> StepFlow,
) -> Result<ArithShare<u64>, ModelError>
where
    W: cipherdm_kernel::exec::WeightSource<u64>,
    ModelError: From<W::Error>,
{
    match &request.sampler {
        Sampler::Ddim(cfg) => secure_ddim(
            backend,
            &request.model,
            schedule,
            cfg,
            labels,
            guidance,
            request.seed,
            report,
        ),
        Sampler::Ddpm => secure_ddpm(
            backend,
            &request.model,
            schedule,
            labels,
            guidance,
            request.seed,
            report,
        ),
    }
}
