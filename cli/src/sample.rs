//! The `cipherdm` commands' bodies: `sample`, `plain-sample`, `share-model`, `keygen`,
//! `party` and `client sample` — option parsing helpers, progress bars and summaries.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use cipherdm_kernel::FixedPoint;
use cipherdm_kernel::approx::Profile;
use cipherdm_kernel::cost::Cost;
use cipherdm_kernel::exec::{LayerRecord, merge_records};
use cipherdm_transport_mem::MemConfig;
use indicatif::{ProgressBar, ProgressStyle};

use crate::commands::{load_model, parse_labels};
use crate::deploy::{DeployConfig, JobSpec, Progress, sample_remote};
use crate::error::ModelError;
use crate::image::write_grid;
use crate::model::Model;
use crate::schedule::DdimConfig;
use crate::secure::session::{fresh_rng, owner_weight_shares};
use crate::secure::{
    GuidanceRequest, PartyWeights, SampleOutcome, SampleRequest, Sampler, sample_in_process,
    write_share_files,
};
use cipherdm_transport_tcp::KeyPair;

/// Options shared by `sample` and `plain-sample`.
#[derive(Clone, Debug)]
pub struct SampleOptions {
    /// `tiny` or `mnist`.
    pub model: String,
    /// Comma-separated digits, one image each (all classes when empty).
    pub labels: String,
    /// Images per digit (drawn as one batch, written as a grid).
    pub grid: usize,
    /// DDIM steps.
    pub steps: usize,
    /// Approximation profile name.
    pub approx: String,
    /// Score-guidance η (0: off).
    pub guidance: f64,
    /// Classifier-free guidance weight (replaces score guidance when set).
    pub cfg: Option<f64>,
    /// `ddim` or `ddpm`.
    pub sampler: String,
    /// Public seed of the initial noise.
    pub seed: u64,
    /// Output PNG.
    pub out: PathBuf,
    /// Weights instead of the shipped ones.
    pub weights: Option<PathBuf>,
    /// Share files written by `share-model` (folder), instead of an in-process split.
    pub shares: Option<PathBuf>,
}

/// A profile name of the secure path (`exact` has no secure evaluation).
pub fn parse_profile(s: &str) -> Result<Profile, ModelError> {
    match crate::commands::parse_nonlinearity(s)? {
        crate::plain::Nonlinearity::Approx(p) => Ok(p),
        crate::plain::Nonlinearity::Exact => Err(ModelError::Config(
            "`exact` has no secure evaluation: choose accurate, precise, loose or cipherdm".into(),
        )),
    }
}

impl SampleOptions {
    fn label_list(&self, model: &Model) -> Result<Vec<usize>, ModelError> {
        let base = if self.labels.trim().is_empty() {
            (0..model.classes()).collect()
        } else {
            parse_labels(&self.labels, model.classes())?
        };
        if self.grid == 0 || self.grid > 64 || base.len() * self.grid > 256 {
            return Err(ModelError::Config(format!(
                "--grid {} with {} labels: at most 64 per label and 256 images",
                self.grid,
                base.len()
            )));
        }
        Ok(base
            .iter()
            .flat_map(|&l| std::iter::repeat_n(l, self.grid))
            .collect())
    }

    fn columns(&self, images: usize) -> usize {
        if self.grid > 1 {
            self.grid.min(10)
        } else {
            images.clamp(1, 10)
        }
    }

    fn sampler(&self) -> Result<Sampler, ModelError> {
        match self.sampler.as_str() {
            "ddim" => Ok(Sampler::Ddim(DdimConfig {
                steps: self.steps,
                ..DdimConfig::cipherdm()
            })),
            "ddpm" => Ok(Sampler::Ddpm),
            other => Err(ModelError::Config(format!(
                "unknown sampler `{other}` (ddim, ddpm)"
            ))),
        }
    }

    fn guidance(&self) -> Result<GuidanceRequest, ModelError> {
        if !self.guidance.is_finite() || self.guidance < 0.0 {
            return Err(ModelError::Config("--guidance must be ≥ 0".into()));
        }
        Ok(match self.cfg {
            Some(w) if w.is_finite() => GuidanceRequest::ClassifierFree(w),
            Some(_) => return Err(ModelError::Config("--cfg must be finite".into())),
            None if self.guidance > 0.0 && self.sampler != "ddim" => {
                return Err(ModelError::Config(
                    "score guidance is implemented for DDIM; use --cfg with DDPM".into(),
                ));
            }
            None if self.guidance > 0.0 => GuidanceRequest::Score(self.guidance),
            None => GuidanceRequest::None,
        })
    }
}

/// `cipherdm sample`: three servers in this process over the memory transport.
pub fn secure_sample(o: &SampleOptions) -> Result<(), ModelError> {
    let (model, weights) = load_model(&o.model, o.weights.as_deref())?;
    let labels = o.label_list(&model)?;
    let request = SampleRequest {
        model: model.clone(),
        profile: parse_profile(&o.approx)?,
        labels: labels.clone(),
        sampler: o.sampler()?,
        guidance: o.guidance()?,
        seed: o.seed,
    };
    let transport = MemConfig::default();
    let party_weights = match &o.shares {
        Some(dir) => PartyWeights::Files {
            paths: share_paths(dir, &o.model),
            model_id: o.model.clone(),
        },
        None => PartyWeights::Memory(Box::new(owner_weight_shares(
            &model,
            &weights,
            transport.fixed,
            &mut fresh_rng()?,
        )?)),
    };
    let steps = match &request.sampler {
        Sampler::Ddim(c) => c.steps,
        Sampler::Ddpm => 1000,
    };
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] step {pos}/{len}  {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let outcome = sample_in_process(&request, party_weights, Some(&weights), &transport, &|r| {
        bar.set_position(r.done as u64);
        bar.set_message(format!(
            "t={:<4} party 0: {} sent, {} rounds",
            r.t,
            human_bytes(r.cost.bytes_total()),
            r.cost.rounds
        ));
    })?;
    bar.finish_and_clear();
    write_grid(&o.out, &outcome.image, o.columns(labels.len()))?;
    print_summary(&outcome, steps, &o.out);
    Ok(())
}

/// `cipherdm keygen`: a static key pair at `<out>.key` / `<out>.pub`.
pub fn keygen(out: &Path) -> Result<(), ModelError> {
    let kp = KeyPair::generate().map_err(|e| ModelError::Config(e.to_string()))?;
    let with = |ext: &str| {
        let mut p = out.as_os_str().to_owned();
        p.push(ext);
        PathBuf::from(p)
    };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    }
    kp.save(&with(".key"))
        .map_err(|e| ModelError::Config(e.to_string()))?;
    let public = with(".pub");
    std::fs::write(&public, format!("{}\n", kp.public)).map_err(|e| ModelError::io(&public, e))?;
    eprintln!(
        "wrote {} (secret) and {}",
        with(".key").display(),
        public.display()
    );
    println!("{}", kp.public);
    Ok(())
}

/// `cipherdm party`: logs to stderr (`RUST_LOG` filters), stops on SIGTERM / SIGINT.
pub fn party(config: &Path, id: usize) -> Result<(), ModelError> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| ModelError::Config(format!("installing a signal handler: {e}")))?;
    }
    crate::deploy::run_party(config, id, stop)
}

/// `cipherdm client sample`: one job on a deployment, written to `o.out`.
pub fn client_sample(
    o: &SampleOptions,
    config: &Path,
    client: Option<&str>,
    share_seed: Option<u64>,
    job_timeout: Duration,
) -> Result<(), ModelError> {
    let cfg = DeployConfig::load(config).map_err(|e| ModelError::Config(e.to_string()))?;
    let entry = cfg
        .client(client)
        .map_err(|e| ModelError::Config(e.to_string()))?;
    let model = crate::commands::model_architecture(&cfg.model)?;
    let labels = o.label_list(&model)?;
    parse_profile(&o.approx)?;
    let spec = JobSpec {
        job: [0; 16],
        profile: o.approx.clone(),
        ddim_steps: match o.sampler()? {
            Sampler::Ddim(c) => Some(c.steps),
            Sampler::Ddpm => None,
        },
        cfg: o.cfg,
        seed: o.seed,
        batch: labels.len(),
    };
    let steps = spec.ddim_steps.unwrap_or(1000);
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] step {pos}/{len}  {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let out = sample_remote(
        &cfg,
        entry,
        spec,
        &labels,
        share_seed,
        job_timeout,
        &|p| match p {
            Progress::Queued { ahead } => bar.set_message(format!("queued behind {ahead} job(s)")),
            Progress::Step {
                done,
                bytes,
                rounds,
                ..
            } => {
                bar.set_position(done as u64);
                bar.set_message(format!(
                    "party 0: {} sent, {rounds} rounds",
                    human_bytes(bytes)
                ));
            }
        },
    )?;
    bar.finish_and_clear();
    write_grid(&o.out, &out.image, o.columns(labels.len()))?;
    eprintln!(
        "wrote {} | servers {:.2} s | sent per party {} / {} / {} | {} rounds",
        o.out.display(),
        out.seconds,
        human_bytes(out.bytes[0]),
        human_bytes(out.bytes[1]),
        human_bytes(out.bytes[2]),
        out.rounds
    );
    Ok(())
}

/// `cipherdm plain-sample`: the plaintext reference with the same options (`exact` is
/// accepted as a profile).
pub fn plain_sample(o: &SampleOptions) -> Result<(), ModelError> {
    use crate::model::PlainDenoiser;
    use crate::schedule::{Condition, Guidance, Schedule, ddim, ddpm, initial_noise};
    let (model, weights) = load_model(&o.model, o.weights.as_deref())?;
    let labels = o.label_list(&model)?;
    let nonlinearity = crate::commands::parse_nonlinearity(&o.approx)?;
    let mut net = PlainDenoiser::new(model.clone(), weights.clone(), nonlinearity)?;
    let mut exact = PlainDenoiser::new(model.clone(), weights, crate::plain::Nonlinearity::Exact)?;
    let [c, h, w] = model.image_shape();
    let x_t = initial_noise(o.seed, vec![labels.len(), c, h, w]);
    let conds: Vec<Condition> = labels.iter().map(|&l| Condition::Class(l)).collect();
    let guidance = match o.guidance()? {
        GuidanceRequest::None => Guidance::None,
        GuidanceRequest::ClassifierFree(w) => Guidance::ClassifierFree { w },
        GuidanceRequest::Score(eta) => Guidance::Score {
            eta,
            reference: &mut exact,
        },
    };
    let schedule = Schedule::cipherdm();
    let x = match o.sampler()? {
        Sampler::Ddim(cfg) => ddim(&schedule, &cfg, &mut net, x_t, &conds, guidance, o.seed)?,
        Sampler::Ddpm => ddpm(&schedule, &mut net, x_t, &conds, guidance, o.seed)?,
    };
    write_grid(&o.out, &x, o.columns(labels.len()))?;
    eprintln!("wrote {}", o.out.display());
    Ok(())
}

fn share_paths(dir: &Path, model: &str) -> [PathBuf; 3] {
    [0, 1, 2].map(|i| dir.join(format!("{model}.p{i}.shares")))
}

/// `cipherdm share-model`: the owner's split into three share files.
pub fn share_model(model: &str, weights: Option<&Path>, out: &Path) -> Result<(), ModelError> {
    let (m, w) = load_model(model, weights)?;
    let paths = write_share_files(&m.graph, &w, model, FixedPoint::default(), out, model, None)?;
    for p in &paths {
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}

fn print_summary(o: &SampleOutcome, steps: usize, out: &Path) {
    let rounds = o.costs.iter().map(|c| c.rounds).max().unwrap_or(0);
    let per_party: Vec<String> = o
        .costs
        .iter()
        .map(|c: &Cost| human_bytes(c.bytes_total()))
        .collect();
    let total: u64 = o.costs.iter().map(Cost::bytes_total).sum();
    eprintln!(
        "wrote {} ({} image(s), {steps} steps)",
        out.display(),
        o.image.shape()[0]
    );
    eprintln!(
        "wall {:.2} s | sent per party {} | total {} | {rounds} rounds | peak memory {} (3 parties in one process)",
        o.wall.as_secs_f64(),
        per_party.join(" / "),
        human_bytes(total),
        peak_rss_bytes().map_or("n/a".into(), human_bytes),
    );
}

