//! Messages between a client and the parties (postcard over the authenticated control
//! channel), and what the parties agree on before running a job.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use cipherdm_models::guidance::parse_guidance;
use cipherdm_models::schedule::DdimConfig;
use cipherdm_models::secure::Sampler;

use crate::error::CliError;

/// Largest client → party message (the label share dominates: 2 × batch × classes × 8).
pub const REQUEST_MAX: u32 = 1 << 20;
/// Largest party → client message: an output share of the largest batch (64 images of
/// 28×28, two components, at most 10 bytes per varint: 1 MB) with room to spare, and below
/// the link's receive buffer.
pub const REPLY_MAX: u32 = 3 << 20;

/// The public part of a job: every party must see the same.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Client-chosen job id.
    pub job: [u8; 16],
    /// Approximation profile name.
    pub profile: String,
    /// `Some(steps)` for DDIM, `None` for DDPM.
    pub ddim_steps: Option<usize>,
    /// Classifier-free guidance weight, if any.
    pub cfg: Option<f64>,
    /// Score guidance (`correction:γ`, `paper:η[:weight]`), if any: the parties need the
    /// owner's guidance shares bound to this job's public values.
    pub guidance: Option<String>,
    /// Public seed of the initial noise.
    pub seed: u64,
    /// Images in the batch.
    pub batch: usize,
}

impl JobSpec {
    /// SHA-256 of the spec: what the parties compare before running.
    pub fn digest(&self) -> [u8; 32] {
        // Serialising plain integers, strings and options into memory cannot fail; an
        // empty encoding would still give every party the same digest.
        let bytes = postcard::to_allocvec(self).unwrap_or_default();
        Sha256::digest(bytes).into()
    }

    /// The sampler it asks for.
    pub fn sampler(&self) -> Sampler {
        match self.ddim_steps {
            Some(steps) => Sampler::Ddim(DdimConfig {
                steps,
                ..DdimConfig::cipherdm()
            }),
            None => Sampler::Ddpm,
        }
    }

    /// Checks the spec against the deployment's limits.
    pub fn check(&self, max_batch: usize) -> Result<(), CliError> {
        crate::sample::parse_profile(&self.profile)?;
        if self.batch == 0 || self.batch > max_batch {
            return Err(CliError::Usage(format!(
                "a batch of {} images (this deployment allows 1 to {max_batch})",
                self.batch
            )));
        }
        if let Some(s) = self.ddim_steps.filter(|&s| s == 0 || s > 1000) {
            return Err(CliError::Usage(format!("{s} DDIM steps (1 to 1000)")));
        }
        if self.cfg.is_some_and(|w| !w.is_finite() || w.abs() > 100.0) {
            return Err(CliError::Usage("a guidance weight outside ±100".into()));
        }
        if let Some(g) = &self.guidance {
            if g.len() > 64 {
                return Err(CliError::Usage("a guidance spec over 64 characters".into()));
            }
            let score = parse_guidance(g)?;
            if score.is_some() && self.ddim_steps.is_none() {
                return Err(CliError::Usage("score guidance needs DDIM".into()));
            }
            if score.is_some() && self.cfg.is_some() {
                return Err(CliError::Usage(
                    "score guidance and classifier-free guidance together".into(),
                ));
            }
        }
        Ok(())
    }
}

/// A client's request to one party: the public spec and that party's label share.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobRequest {
    /// Public parameters.
    pub spec: JobSpec,
    /// This party's two components of the one-hot label rows `(batch, classes)`.
    pub labels: (Vec<u64>, Vec<u64>),
}

/// What a party tells the client.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PartyReply {
    /// The job is queued behind `ahead` others.
    Queued {
        /// Jobs ahead of it.
        ahead: usize,
    },
    /// A denoising step finished (party 0 reports these).
    Step {
        /// Steps done.
        done: usize,
        /// Steps in all.
        steps: usize,
        /// Bytes this party has sent so far in the job.
        bytes: u64,
        /// Rounds so far.
        rounds: u64,
    },
    /// The job's result: this party's two components of the image and its shape.
    Done {
        /// Components `i` and `i + 1`.
        image: (Vec<u64>, Vec<u64>),
        /// `(batch, channels, height, width)`.
        shape: Vec<usize>,
        /// Bytes this party sent.
        bytes: u64,
        /// Rounds.
        rounds: u64,
        /// Seconds the servers spent.
        seconds: f64,
    },
    /// The job failed.
    Failed(String),
}

/// Party 0's announcement of the next job to the others: job id and spec digest.
pub const ANNOUNCE_LEN: usize = 48;

/// Encodes an announcement.
pub fn announce(spec: &JobSpec) -> [u8; ANNOUNCE_LEN] {
    let mut out = [0u8; ANNOUNCE_LEN];
    out[..16].copy_from_slice(&spec.job);
    out[16..].copy_from_slice(&spec.digest());
    out
}
