//! `cipherdm sample` (three servers in this process), `plain-sample` (the plaintext
//! reference) and `share-model` (the owner's split), with the drawing options they share
//! with `client sample`.

use std::path::{Path, PathBuf};

use cipherdm_kernel::FixedPoint;
use cipherdm_kernel::approx::Profile;
use cipherdm_kernel::cost::Cost;
use cipherdm_models::guidance::parse_guidance;
use cipherdm_models::host::{human_bytes, peak_rss_bytes};
use cipherdm_models::image::write_grid;
use cipherdm_models::model::{Model, PlainDenoiser};
use cipherdm_models::plain::Nonlinearity;
use cipherdm_models::schedule::{
    Condition, DdimConfig, Guidance, Schedule, ddim, ddpm, initial_noise,
};
use cipherdm_models::secure::guidance_file::{GuidanceBinding, write_guidance_files};
use cipherdm_models::secure::session::{fresh_rng, owner_weight_shares};
use cipherdm_models::secure::{
    GuidanceRequest, PartyWeights, SampleOutcome, SampleRequest, Sampler, sample_in_process,
    write_share_files,
};
use cipherdm_models::shipped;
use cipherdm_transport_mem::MemConfig;
use indicatif::{ProgressBar, ProgressStyle};

use crate::error::CliError;

/// A progress bar of `steps` denoising steps on stderr.
pub fn progress_bar(steps: usize) -> ProgressBar {
    let bar = ProgressBar::new(steps as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] step {pos}/{len}  {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Options shared by `sample` and `plain-sample`.
#[derive(Clone, Debug)]
pub struct SampleOptions {
    /// `tiny`, `tiny-unaliased` or `mnist`.
    pub model: String,
    /// Comma-separated digits, one image each (all classes when empty).
    pub labels: String,
    /// Images per digit (drawn as one batch, written as a grid).
    pub grid: usize,
    /// DDIM steps.
    pub steps: usize,
    /// Approximation profile name.
    pub approx: String,
    /// Score guidance: `none`, `correction:γ`, `paper:η[:weight]` or a bare η
    /// ([`parse_guidance`]).
    pub guidance: String,
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
pub fn parse_profile(s: &str) -> Result<Profile, CliError> {
    match s.parse::<Nonlinearity>()? {
        Nonlinearity::Approx(p) => Ok(p),
        Nonlinearity::Exact => Err(CliError::Usage(
            "`exact` has no secure evaluation: choose accurate, precise, loose or cipherdm".into(),
        )),
    }
}

/// Parses a comma-separated list of labels, each below `classes`.
pub fn parse_labels(s: &str, classes: usize) -> Result<Vec<usize>, CliError> {
    s.split(',')
        .map(|p| {
            let v: usize = p
                .trim()
                .parse()
                .map_err(|_| CliError::Usage(format!("label `{p}` is not a number")))?;
            if v >= classes {
                return Err(CliError::Usage(format!("label {v} out of 0..{classes}")));
            }
            Ok(v)
        })
        .collect()
}

impl SampleOptions {
    pub(crate) fn label_list(&self, model: &Model) -> Result<Vec<usize>, CliError> {
        let base = if self.labels.trim().is_empty() {
            (0..model.classes()).collect()
        } else {
            parse_labels(&self.labels, model.classes())?
        };
        if self.grid == 0 || self.grid > 64 || base.len() * self.grid > 256 {
            return Err(CliError::Usage(format!(
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

    pub(crate) fn columns(&self, images: usize) -> usize {
        if self.grid > 1 {
            self.grid.min(10)
        } else {
            images.clamp(1, 10)
        }
    }

    pub(crate) fn sampler(&self) -> Result<Sampler, CliError> {
        match self.sampler.as_str() {
            "ddim" => Ok(Sampler::Ddim(DdimConfig {
                steps: self.steps,
                ..DdimConfig::cipherdm()
            })),
            "ddpm" => Ok(Sampler::Ddpm),
            other => Err(CliError::Usage(format!(
                "unknown sampler `{other}` (ddim, ddpm)"
            ))),
        }
    }

    pub(crate) fn guidance(&self) -> Result<GuidanceRequest, CliError> {
        let score = parse_guidance(&self.guidance)?;
        Ok(match (self.cfg, score) {
            (Some(w), _) if w.is_finite() => GuidanceRequest::ClassifierFree(w),
            (Some(_), _) => return Err(CliError::Usage("--cfg must be finite".into())),
            (None, Some(_)) if self.sampler != "ddim" => {
                return Err(CliError::Usage(
                    "score guidance is implemented for DDIM; use --cfg with DDPM".into(),
                ));
            }
            (None, Some(g)) => GuidanceRequest::Score(g),
            (None, None) => GuidanceRequest::None,
        })
    }
}

/// `cipherdm sample`: three servers in this process over the memory transport.
pub fn secure_sample(o: &SampleOptions) -> Result<(), CliError> {
    let (model, weights) = shipped::load(&o.model, o.weights.as_deref())?;
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
    let bar = progress_bar(steps);
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

/// `cipherdm plain-sample`: the plaintext reference with the same options (`exact` is
/// accepted as a profile).
pub fn plain_sample(o: &SampleOptions) -> Result<(), CliError> {
    let (model, weights) = shipped::load(&o.model, o.weights.as_deref())?;
    let labels = o.label_list(&model)?;
    let nonlinearity: Nonlinearity = o.approx.parse()?;
    let mut net = PlainDenoiser::new(model.clone(), weights.clone(), nonlinearity)?;
    let mut exact = PlainDenoiser::new(model.clone(), weights, Nonlinearity::Exact)?;
    let [c, h, w] = model.image_shape();
    let x_t = initial_noise(o.seed, vec![labels.len(), c, h, w]);
    let conds: Vec<Condition> = labels.iter().map(|&l| Condition::Class(l)).collect();
    let guidance = match o.guidance()? {
        GuidanceRequest::None => Guidance::None,
        GuidanceRequest::ClassifierFree(w) => Guidance::ClassifierFree { w },
        GuidanceRequest::Score(guidance) => Guidance::Score {
            guidance,
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
pub fn share_model(model: &str, weights: Option<&Path>, out: &Path) -> Result<(), CliError> {
    let (m, w) = shipped::load(model, weights)?;
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

/// The public values of a deployment job that its guidance shares are bound to.
#[derive(Clone, Debug)]
pub struct GuidanceJob {
    /// Public noise seed.
    pub seed: u64,
    /// DDIM steps.
    pub steps: usize,
    /// Images in the job.
    pub batch: usize,
    /// `correction:γ` or `paper:η[:weight]`.
    pub guidance: String,
    /// Approximation profile of the job.
    pub approx: String,
}

/// Most images a guidance file is made for.
const MAX_GUIDANCE_BATCH: usize = 256;

/// `cipherdm share-guidance`: the owner's guidance shares for one deployment job.
pub fn share_guidance(
    model: &str,
    weights: Option<&Path>,
    job: &GuidanceJob,
    out: &Path,
) -> Result<(), CliError> {
    let guidance = parse_guidance(&job.guidance)?
        .ok_or_else(|| CliError::Usage("--guidance none needs no guidance shares".into()))?;
    if job.steps == 0 || job.steps > 1000 {
        return Err(CliError::Usage(format!("--steps {}: 1 to 1000", job.steps)));
    }
    if job.batch == 0 || job.batch > MAX_GUIDANCE_BATCH {
        return Err(CliError::Usage(format!(
            "--batch {}: 1 to {MAX_GUIDANCE_BATCH}",
            job.batch
        )));
    }
    let profile = parse_profile(&job.approx)?;
    let (m, w) = shipped::load(model, weights)?;
    let binding = GuidanceBinding::new(
        model, &m, job.seed, job.steps, job.batch, &guidance, profile,
    );
    let paths = write_guidance_files(
        &m,
        &w,
        &binding,
        FixedPoint::default(),
        out,
        &mut fresh_rng()?,
    )?;
    for p in &paths {
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}
