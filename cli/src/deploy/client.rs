//! `cipherdm client sample`: the user's side of a deployment. Shares the labels, sends
//! each party its share with the public job spec, follows party 0's step reports, and
//! reconstructs the image from the three output shares (which must agree).

use std::sync::mpsc::channel;
use std::time::Duration;

use cipherdm_kernel::share::reconstruct;
use cipherdm_kernel::{ArithShare, FixedPoint, PartyId, Shape};
use cipherdm_transport_tcp::hello::{self, Hello, Role};
use cipherdm_transport_tcp::{Channel, KeyPair};

use cipherdm_models::Tensor;
use cipherdm_models::secure::session::user_label_shares;
use cipherdm_models::secure::user_rng;
use cipherdm_models::shipped;
use cipherdm_transport_tcp::deploy::ClientEntry;
use cipherdm_transport_tcp::{ConfigError, DeployConfig};

use super::jobs::{JobRequest, JobSpec, PartyReply, REPLY_MAX};
use crate::error::CliError;

/// What the client got back.
#[derive(Clone, Debug)]
pub struct RemoteOutcome {
    /// The reconstructed image batch `(B, C, H, W)`.
    pub image: Tensor<f64>,
    /// Bytes each party sent.
    pub bytes: [u64; 3],
    /// Rounds (party 0).
    pub rounds: u64,
    /// The servers' time (party 0).
    pub seconds: f64,
}

/// One party's output share, bytes sent, rounds and seconds.
type PartyResult = (ArithShare<u64>, u64, u64, f64);

/// Progress events shown to the user.
#[derive(Clone, Copy, Debug)]
pub enum Progress {
    /// Party 0 has the job queued behind `ahead` others.
    Queued {
        /// Jobs ahead.
        ahead: usize,
    },
    /// A denoising step finished.
    Step {
        /// Steps done.
        done: usize,
        /// Steps in all.
        steps: usize,
        /// Bytes party 0 has sent.
        bytes: u64,
        /// Rounds so far.
        rounds: u64,
    },
}

/// Runs one job on the deployment: `labels` are the requested digits (secret), `spec`
/// the public parameters (its `batch` must equal `labels.len()`; its job id is filled
/// in). `share_seed` makes the label sharing reproducible (tests only). `job_timeout`
/// bounds every wait for a party's next message.
pub fn sample_remote(
    cfg: &DeployConfig,
    client: &ClientEntry,
    mut spec: JobSpec,
    labels: &[usize],
    share_seed: Option<u64>,
    job_timeout: Duration,
    on_progress: &dyn Fn(Progress),
) -> Result<RemoteOutcome, CliError> {
    let field = format!("client `{}`.secret_key", client.name);
    let key_path = client
        .secret_key
        .as_ref()
        .ok_or_else(|| ConfigError::new(&cfg.file, &field, "missing"))?;
    let key =
        KeyPair::load(key_path).map_err(|e| ConfigError::new(&cfg.file, &field, e.to_string()))?;
    if key.public != client.public_key {
        return Err(ConfigError::new(
            &cfg.file,
            &field,
            "does not belong to the client's public_key",
        )
        .into());
    }
    let model = shipped::architecture(&cfg.model)?;
    let fixed = FixedPoint::default();
    spec.batch = labels.len();
    spec.check(cfg.max_batch)?;
    getrandom::fill(&mut spec.job).map_err(|_| cipherdm_kernel::Error::Entropy)?;
    let mut rng = user_rng(share_seed)?;
    let shares = user_label_shares(&model, labels, fixed, &mut rng)?;
    let hello = Hello::new(
        &cfg.session,
        Role::Client,
        64,
        fixed.frac_bits(),
        &cfg.model,
        model.graph.architecture_hash(),
    );
    let (tx, rx) = channel::<(usize, Result<PartyReply, CliError>)>();
    let mut threads = Vec::new();
    for (i, share) in shares.into_iter().enumerate() {
        let entry = cfg.parties[i].clone();
        let (key, hello, link, tx) = (key.clone(), hello.clone(), cfg.link, tx.clone());
        let request = JobRequest {
            spec: spec.clone(),
            labels: share.into_components(),
        };
        threads.push(std::thread::spawn(move || {
            let run = || -> Result<(), CliError> {
                let mut ch = Channel::connect(&entry.address, &key, &entry.public_key, &link)?;
                hello::initiate(&mut ch, &hello, Role::Party(i as u8))?;
                let bytes = postcard::to_allocvec(&request)
                    .map_err(|e| CliError::Peer(format!("encoding the job request: {e}")))?;
                ch.send(&bytes)?;
                ch.set_timeout(job_timeout)?;
                loop {
                    let msg = ch.recv(REPLY_MAX)?;
                    let reply = postcard::from_bytes::<PartyReply>(&msg)
                        .map_err(|e| CliError::Peer(format!("malformed reply: {e}")))?;
                    let last = matches!(reply, PartyReply::Done { .. } | PartyReply::Failed(_));
                    if tx.send((i, Ok(reply))).is_err() || last {
                        return Ok(());
                    }
                }
            };
            if let Err(e) = run() {
                let _ = tx.send((i, Err(e)));
            }
        }));
    }
    drop(tx);
    let mut done: [Option<PartyResult>; 3] = Default::default();
    while done.iter().any(Option::is_none) {
        let (i, msg) = rx
            .recv()
            .map_err(|_| CliError::Peer("every party link ended early".into()))?;
        let who = PartyId::ALL[i];
        let at = |e: CliError| CliError::AtParty {
            party: i,
            source: Box::new(e),
        };
        match msg {
            Err(e) => return Err(at(e)),
            Ok(PartyReply::Failed(e)) => {
                return Err(at(CliError::Peer(format!("reports: {e}"))));
            }
            Ok(PartyReply::Queued { ahead }) if i == 0 => on_progress(Progress::Queued { ahead }),
            Ok(PartyReply::Queued { .. }) => {}
            Ok(PartyReply::Step {
                done,
                steps,
                bytes,
                rounds,
            }) => on_progress(Progress::Step {
                done,
                steps,
                bytes,
                rounds,
            }),
            Ok(PartyReply::Done {
                image,
                shape,
                bytes,
                rounds,
                seconds,
            }) => {
                let share = Shape::new(&shape)
                    .and_then(|s| ArithShare::from_components(image.0, image.1, s))
                    .map_err(|e| CliError::Peer(format!("{who}'s output: {e}")))?;
                done[i] = Some((share, bytes, rounds, seconds));
            }
        }
    }
    for t in threads {
        let _ = t.join();
    }
    let [Some(a), Some(b), Some(c)] = done else {
        return Err(CliError::Peer("a party's output is missing".into()));
    };
    if a.0.shape() != b.0.shape() || a.0.shape() != c.0.shape() {
        return Err(CliError::Peer(
            "the parties returned images of different shapes".into(),
        ));
    }
    let opened = reconstruct([&a.0, &b.0, &c.0])
        .map_err(|e| CliError::Peer(format!("the output shares do not agree: {e}")))?;
    let dims = a.0.shape().dims().to_vec();
    let [c_, h, w] = model.image_shape();
    if dims != [labels.len(), c_, h, w] {
        return Err(CliError::Peer(format!(
            "the parties returned an image of shape {dims:?}, expected {:?}",
            [labels.len(), c_, h, w]
        )));
    }
    let image = Tensor::new(dims, opened.iter().map(|&v| fixed.decode(v)).collect())
        .map_err(CliError::Model)?;
    Ok(RemoteOutcome {
        image,
        bytes: [a.1, b.1, c.1],
        rounds: a.2,
        seconds: a.3,
    })
}
