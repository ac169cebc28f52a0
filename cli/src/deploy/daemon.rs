//! `cipherdm party`: one server of a deployment as a long-running process.
//!
//! - An **acceptor thread** takes every connection on the listen address, runs the Noise
//!   handshake (only pinned keys pass) and the session hello (mismatches are refused with
//!   both values named), then hands party links to the mesh and client jobs to the queue.
//!   A stranger, a wrong session or garbage is logged and dropped; the acceptor goes on.
//! - The **main loop** connects to the two peers (dials lower ids, is dialled by higher
//!   ids), then serves jobs one after another: party 0 takes the next job from its queue
//!   and announces its id and the digest of its public spec; the others find the same job
//!   in their own queue (sent by the client to each) and confirm; all three run it or
//!   all three skip it. Each job starts with fresh PRSS keys.
//! - A failed link fails the job (the client gets the reason) and the party reconnects
//!   to its peers, retrying until they are back. SIGTERM or SIGINT stops it between
//!   jobs (or while waiting for peers).

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use cipherdm_kernel::party::session_entropy;
use cipherdm_kernel::{ArithShare, FixedPoint, Party, PartyId, Shape, Transport};
use cipherdm_models::ModelError;
use cipherdm_models::guidance::parse_guidance;
use cipherdm_models::model::Model;
use cipherdm_models::secure::guidance_file::{GuidanceBinding, open_guidance};
use cipherdm_models::secure::{
    SecureGuidance, ServerJob, ServerOutput, ShareFileSource, StepReport, compare_splits,
    serve_sample,
};
use cipherdm_models::shipped;
use cipherdm_transport_tcp::hello::{self, Hello, Role};
use cipherdm_transport_tcp::hex;
use cipherdm_transport_tcp::{
    Channel, ConfigError, DeployConfig, KeyPair, Mode, PublicKey, TcpTransport,
};
use tracing::{error, info, warn};

use super::jobs::{ANNOUNCE_LEN, JobRequest, PartyReply, REQUEST_MAX, announce};
use crate::error::CliError;

/// Most handshakes in progress at once (a flood of connections cannot exhaust threads).
const MAX_HANDSHAKES: usize = 16;
/// Most jobs a non-leader keeps waiting for party 0's announcement.
const MAX_PENDING: usize = 64;
/// How often idle loops look at the shutdown flag.
const TICK: Duration = Duration::from_millis(100);

/// A client's job waiting to run.
struct Job {
    request: JobRequest,
    client: Channel,
}

/// Everything a party loads at start.
struct Server {
    cfg: DeployConfig,
    me: PartyId,
    key: KeyPair,
    model: Model,
    hello: Hello,
    fixed: FixedPoint,
    shutdown: Arc<AtomicBool>,
}

impl Server {
    /// `message` as the client may see it: this party's file paths (share file, guidance
    /// folder, key file, the config's folder) replaced by what they are, so an error reply
    /// tells the client what failed without describing the server's file system.
    fn for_client(&self, message: &str) -> String {
        let i = self.me.index();
        let entry = &self.cfg.parties[i];
        let mut named: Vec<(String, String)> = vec![
            (
                entry.shares.display().to_string(),
                format!("party {i}'s share file"),
            ),
            (
                entry.secret_key.display().to_string(),
                format!("party {i}'s key file"),
            ),
        ];
        if let Some(g) = &entry.guidance {
            named.push((
                g.display().to_string(),
                format!("party {i}'s guidance folder"),
            ));
        }
        if let Some(dir) = self.cfg.file.parent().filter(|d| !d.as_os_str().is_empty()) {
            named.push((
                dir.display().to_string(),
                format!("party {i}'s config folder"),
            ));
        }
        // Longest first, so a file inside the config folder is named as the file.
        named.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        let mut out = message.to_string();
        for (path, what) in named.iter().filter(|(p, _)| !p.is_empty()) {
            out = out.replace(path.as_str(), what);
        }
        out
    }
}

fn config_error(cfg: &DeployConfig, field: String, message: String) -> CliError {
    ConfigError::new(&cfg.file, field, message).into()
}

/// Runs party `id` of the deployment in `config` until `shutdown` is set. A config with
/// `insecure_seed` (every PRSS key public) is refused unless `allow_insecure_seed`.
pub fn run_party(
    config: &std::path::Path,
    id: usize,
    allow_insecure_seed: bool,
    shutdown: Arc<AtomicBool>,
) -> Result<(), CliError> {
    let cfg = DeployConfig::load(config)?;
    if cfg.insecure_seed.is_some() && !allow_insecure_seed {
        return Err(config_error(
            &cfg,
            "insecure_seed".into(),
            "derives every PRSS key from a public number; refused unless the party is \
             started with --allow-insecure-seed (tests only)"
                .into(),
        ));
    }
    let me = PartyId::new(id)
        .ok_or_else(|| CliError::Usage(format!("--id {id}: parties are 0, 1 and 2")))?;
    let entry = cfg.parties[id].clone();
    let key = KeyPair::load(&entry.secret_key)
        .map_err(|e| config_error(&cfg, format!("party[{id}].secret_key"), e.to_string()))?;
    if key.public != entry.public_key {
        return Err(config_error(
            &cfg,
            format!("party[{id}].secret_key"),
            "does not belong to the pinned public_key".into(),
        ));
    }
    let model = shipped::architecture(&cfg.model)?;
    let fixed = FixedPoint::default();
    // Check the share file now, not at the first job; a bad file stays a share-file
    // error (its path and defect), not a configuration error.
    ShareFileSource::open(&entry.shares, me, &model.graph, &cfg.model, fixed)
        .map_err(|e| CliError::Model(ModelError::ShareFile(e)))?;
    if cfg.link.mode == Mode::Plaintext {
        warn!("plaintext links: shares cross the network unencrypted (benchmarks only)");
    }
    if let Some(seed) = cfg.insecure_seed {
        warn!(
            seed,
            "insecure_seed is set and allowed: every PRSS key is public (tests only)"
        );
    }
    let listener = TcpListener::bind(&entry.listen)
        .map_err(|e| config_error(&cfg, format!("party[{id}].listen"), e.to_string()))?;
    info!(party = id, listen = %entry.listen, session = %cfg.session, model = %cfg.model, "party up");
    let hello = Hello::new(
        &cfg.session,
        Role::Party(id as u8),
        64,
        fixed.frac_bits(),
        &cfg.model,
        model.graph.architecture_hash(),
    );
    let server = Arc::new(Server {
        cfg,
        me,
        key,
        model,
        hello,
        fixed,
        shutdown,
    });
    let (peer_tx, peer_rx) = channel();
    let (job_tx, job_rx) = channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let acceptor = {
        let server = Arc::clone(&server);
        let queued = Arc::clone(&queued);
        std::thread::spawn(move || accept_loop(&server, listener, peer_tx, job_tx, queued))
    };
    let mut pending: Vec<Job> = Vec::new();
    while !server.stopping() {
        let transport = match server.mesh(&peer_rx) {
            Ok(Some(t)) => t,
            Ok(None) => break,
            Err(e) => {
                warn!("connecting to the peers failed: {e}; retrying");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        info!("linked to both peers");
        match server.serve(transport, &job_rx, &mut pending, &queued) {
            Ok(()) => break,
            Err(e) => warn!("peer link lost: {e}; reconnecting"),
        }
    }
    info!("shutting down");
    let _ = acceptor.join();
    Ok(())
}

fn role_of(cfg: &DeployConfig, key: &PublicKey) -> Option<Role> {
    if let Some(p) = cfg.parties.iter().find(|p| p.public_key == *key) {
        return Some(Role::Party(p.id as u8));
    }
    cfg.clients
        .iter()
        .any(|c| c.public_key == *key)
        .then_some(Role::Client)
}

fn accept_loop(
    server: &Arc<Server>,
    listener: TcpListener,
    peers: Sender<(PartyId, Channel)>,
    jobs: Sender<Job>,
    queued: Arc<AtomicUsize>,
) {
    if let Err(e) = listener.set_nonblocking(true) {
        error!("listener: {e}");
        return;
    }
    let busy = Arc::new(AtomicUsize::new(0));
    while !server.stopping() {
        let (stream, addr) = match listener.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => {
                warn!("accept: {e}");
                std::thread::sleep(TICK);
                continue;
            }
        };
        if busy.load(Ordering::Relaxed) >= MAX_HANDSHAKES {
            warn!(%addr, "too many handshakes in progress; dropped");
            continue;
        }
        if stream.set_nonblocking(false).is_err() {
            continue;
        }
        busy.fetch_add(1, Ordering::Relaxed);
        let (server, peers, jobs, queued, busy) = (
            Arc::clone(server),
            peers.clone(),
            jobs.clone(),
            Arc::clone(&queued),
            Arc::clone(&busy),
        );
        std::thread::spawn(move || {
            if let Err(e) = admit(&server, stream, &peers, &jobs, &queued) {
                warn!(%addr, "connection not admitted: {e}");
            }
            busy.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Handshake, hello and (for a client) its job request.
fn admit(
    server: &Server,
    stream: std::net::TcpStream,
    peers: &Sender<(PartyId, Channel)>,
    jobs: &Sender<Job>,
    queued: &AtomicUsize,
) -> Result<(), CliError> {
    let cfg = &server.cfg;
    let mut ch = Channel::accept(
        stream,
        &server.key,
        &|k| role_of(cfg, k).is_some_and(|r| r != Role::Party(server.me.index() as u8)),
        &cfg.link,
    )?;
    let role = role_of(cfg, ch.peer_key()).expect("accepted keys are pinned");
    hello::respond(&mut ch, &server.hello, role)?;
    match role {
        Role::Party(j) if (j as usize) > server.me.index() => {
            let _ = peers.send((PartyId::ALL[j as usize], ch));
        }
        Role::Party(j) => {
            return Err(CliError::Peer(format!(
                "party {j} dialled us, but lower ids are dialled by higher ones"
            )));
        }
        Role::Client => {
            let bytes = ch.recv(REQUEST_MAX)?;
            let checked = postcard::from_bytes::<JobRequest>(&bytes)
                .map_err(|e| CliError::Peer(format!("malformed job request: {e}")))
                .and_then(|r| {
                    r.spec.check(cfg.max_batch)?;
                    let n = r.spec.batch * server.model.classes();
                    if r.labels.0.len() != n || r.labels.1.len() != n {
                        return Err(CliError::Peer(format!(
                            "label share of {} and {} values, expected {n}",
                            r.labels.0.len(),
                            r.labels.1.len()
                        )));
                    }
                    Ok(r)
                });
            match checked {
                Ok(request) => {
                    let ahead = queued.fetch_add(1, Ordering::Relaxed);
                    send_reply(&mut ch, &PartyReply::Queued { ahead });
                    info!(job = %hex::encode(&request.spec.job), ahead, "job queued");
                    let _ = jobs.send(Job {
                        request,
                        client: ch,
                    });
                }
                Err(e) => {
                    let reply = server.for_client(&e.to_string());
                    send_reply(&mut ch, &PartyReply::Failed(reply));
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

fn send_reply(ch: &mut Channel, reply: &PartyReply) {
    match postcard::to_allocvec(reply) {
        Ok(bytes) => {
            if let Err(e) = ch.send(&bytes) {
                warn!("could not reach the client: {e}");
            }
        }
        Err(e) => error!("encoding a reply: {e}"),
    }
}

impl Server {
    fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }

    /// Links to both peers, or `None` on shutdown.
    fn mesh(
        &self,
        peer_rx: &Receiver<(PartyId, Channel)>,
    ) -> Result<Option<TcpTransport>, CliError> {
        let mut links: Vec<(PartyId, Channel)> = Vec::with_capacity(2);
        for j in 0..self.me.index() {
            let p = &self.cfg.parties[j];
            let mut ch = Channel::connect(&p.address, &self.key, &p.public_key, &self.cfg.link)
                .map_err(|e| CliError::AtParty {
                    party: j,
                    source: Box::new(e.into()),
                })?;
            hello::initiate(&mut ch, &self.hello, Role::Party(j as u8))?;
            links.push((PartyId::ALL[j], ch));
        }
        let deadline = Instant::now() + self.cfg.link.connect_deadline;
        while links.len() < 2 {
            if self.stopping() {
                return Ok(None);
            }
            match peer_rx.recv_timeout(TICK) {
                Ok((j, ch)) => {
                    // A newer link from the same peer replaces an older one.
                    links.retain(|(k, _)| *k != j);
                    links.push((j, ch));
                }
                Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(_) => {
                    return Err(CliError::Peer(format!(
                        "no link from the higher parties within {:?}",
                        self.cfg.link.connect_deadline
                    )));
                }
            }
        }
        Ok(Some(TcpTransport::new(
            self.me,
            links,
            self.cfg.link.timeout,
        )?))
    }

    /// Serves jobs until shutdown (`Ok`) or a link failure (`Err`).
    fn serve(
        &self,
        mut transport: TcpTransport,
        jobs: &Receiver<Job>,
        pending: &mut Vec<Job>,
        queued: &AtomicUsize,
    ) -> Result<(), CliError> {
        let (p1, p2) = (PartyId::P1, PartyId::P2);
        loop {
            // 1. Agree on the next job.
            let (job, go) = if self.me == PartyId::P0 {
                let job = loop {
                    if self.stopping() {
                        return Ok(());
                    }
                    match jobs.recv_timeout(TICK) {
                        Ok(j) => break j,
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return Ok(()),
                    }
                };
                queued.fetch_sub(1, Ordering::Relaxed);
                let ready = self.prepare(&job);
                let a = announce(&job.request.spec);
                transport.send(p1, &a)?;
                transport.send(p2, &a)?;
                transport.flush()?;
                let mut v1 = [0u8; 1];
                let mut v2 = [0u8; 1];
                transport.recv(p1, &mut v1)?;
                transport.recv(p2, &mut v2)?;
                let go = v1[0] == 1 && v2[0] == 1 && ready.is_ok();
                transport.send(p1, &[go as u8])?;
                transport.send(p2, &[go as u8])?;
                transport.flush()?;
                (Some((job, ready)), go)
            } else {
                loop {
                    if self.stopping() {
                        return Ok(());
                    }
                    if transport.wait_for_input(PartyId::P0, TICK)? {
                        break;
                    }
                }
                let mut a = [0u8; ANNOUNCE_LEN];
                transport.recv(PartyId::P0, &mut a)?;
                let job = self.find_job(jobs, pending, &a, queued).map(|j| {
                    let ready = self.prepare(&j);
                    (j, ready)
                });
                let ok = matches!(job, Some((_, Ok(_))));
                transport.send(PartyId::P0, &[ok as u8])?;
                transport.flush()?;
                let mut go = [0u8; 1];
                transport.recv(PartyId::P0, &mut go)?;
                (job, go[0] == 1)
            };
            let Some((mut job, ready)) = job else {
                warn!("the announced job did not arrive from its client; skipped");
                continue;
            };
            let id = hex::encode(&job.request.spec.job);
            let guidance = match (go, ready) {
                (true, Ok(guidance)) => guidance,
                (_, Err(e)) => {
                    warn!(job = %id, "job not run: {e}");
                    let reply = self.for_client(&e.to_string());
                    send_reply(&mut job.client, &PartyReply::Failed(reply));
                    continue;
                }
                (false, Ok(_)) => {
                    warn!(job = %id, "another party refused the job; skipped");
                    send_reply(
                        &mut job.client,
                        &PartyReply::Failed(
                            "another party refused the job or did not receive it".into(),
                        ),
                    );
                    continue;
                }
            };
            // 2. Run it with fresh PRSS keys.
            info!(job = %id, batch = job.request.spec.batch, "job started");
            let start = Instant::now();
            let wire_before: u64 = transport.wire_stats().iter().map(|(_, w)| w.sent).sum();
            let outcome = self.run_job(transport, &mut job, &guidance);
            match outcome {
                Ok((t, out)) => {
                    transport = t;
                    let secs = start.elapsed().as_secs_f64();
                    // Wire bytes include frame headers, record lengths and AEAD tags.
                    // This job's, and the total since the links were made.
                    let wire: u64 = transport.wire_stats().iter().map(|(_, w)| w.sent).sum();
                    let job_wire = wire.saturating_sub(wire_before);
                    info!(job = %id, seconds = secs, bytes = out.cost.bytes_total(), wire_bytes_sent = job_wire, wire_bytes_sent_since_start = wire, rounds = out.cost.rounds, "job done");
                    send_reply(
                        &mut job.client,
                        &PartyReply::Done {
                            image: out.image,
                            shape: out.shape.dims().to_vec(),
                            bytes: out.cost.bytes_total(),
                            rounds: out.cost.rounds,
                            seconds: secs,
                        },
                    );
                }
                Err(e) => {
                    error!(job = %id, "job failed: {e}");
                    send_reply(
                        &mut job.client,
                        &PartyReply::Failed(self.for_client(&format!("the job failed: {e}"))),
                    );
                    return Err(e);
                }
            }
        }
    }

    /// Waits (up to the link timeout) for the announced job to arrive from its client.
    fn find_job(
        &self,
        jobs: &Receiver<Job>,
        pending: &mut Vec<Job>,
        a: &[u8; ANNOUNCE_LEN],
        queued: &AtomicUsize,
    ) -> Option<Job> {
        let deadline = Instant::now() + self.cfg.link.timeout;
        loop {
            if let Some(at) = pending
                .iter()
                .position(|j| j.request.spec.job[..] == a[..16])
            {
                let mut job = pending.remove(at);
                queued.fetch_sub(1, Ordering::Relaxed);
                if announce(&job.request.spec) != *a {
                    send_reply(
                        &mut job.client,
                        &PartyReply::Failed(format!(
                            "{} received different job parameters than party 0",
                            self.me
                        )),
                    );
                    return None;
                }
                return Some(job);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            match jobs.recv_timeout(left.min(TICK)) {
                Ok(j) => {
                    pending.push(j);
                    // Jobs party 0 never announces (sent to this party only) cannot pile up.
                    if pending.len() > MAX_PENDING {
                        let mut old = pending.remove(0);
                        queued.fetch_sub(1, Ordering::Relaxed);
                        send_reply(
                            &mut old.client,
                            &PartyReply::Failed("dropped: party 0 never announced it".into()),
                        );
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// What this party needs before agreeing to run `job`: its guidance shares when the
    /// job asks for score guidance (found by the job's binding in its guidance folder and
    /// checked against it), so that a missing or mismatched file refuses the job before
    /// any work.
    fn prepare(&self, job: &Job) -> Result<SecureGuidance, CliError> {
        let spec = &job.request.spec;
        if let Some(w) = spec.cfg {
            return Ok(SecureGuidance::ClassifierFree { w });
        }
        let Some(g) = spec.guidance.as_deref().map(parse_guidance).transpose()? else {
            return Ok(SecureGuidance::None);
        };
        let Some(guidance) = g else {
            return Ok(SecureGuidance::None);
        };
        let steps = spec
            .ddim_steps
            .ok_or_else(|| CliError::Usage("score guidance needs DDIM".into()))?;
        let entry = &self.cfg.parties[self.me.index()];
        let dir = entry.guidance.as_ref().ok_or_else(|| {
            CliError::Usage(format!(
                "{} has no guidance folder (`party[{}].guidance` in the deployment config)",
                self.me,
                self.me.index()
            ))
        })?;
        let profile = crate::sample::parse_profile(&spec.profile)?;
        let binding = GuidanceBinding::new(
            &self.cfg.model,
            &self.model,
            spec.seed,
            steps,
            spec.batch,
            &guidance,
            profile,
        );
        let [c, h, w] = self.model.image_shape();
        let image = Shape::new(&[spec.batch, c, h, w])?;
        let tensors = open_guidance(dir, self.me, &binding, self.fixed, &image)
            .map_err(|e| CliError::Model(e.into()))?;
        Ok(SecureGuidance::Score { guidance, tensors })
    }

    fn run_job(
        &self,
        transport: TcpTransport,
        job: &mut Job,
        guidance: &SecureGuidance,
    ) -> Result<(TcpTransport, ServerOutput), CliError> {
        let spec = &job.request.spec;
        let server_job = ServerJob {
            model: self.model.clone(),
            profile: crate::sample::parse_profile(&spec.profile)?,
            sampler: spec.sampler(),
            seed: spec.seed,
        };
        let shape = Shape::new(&[spec.batch, self.model.classes()])?;
        let (l0, l1) = job.request.labels.clone();
        let labels = ArithShare::from_components(l0, l1, shape)?;
        let me = self.me;
        let entry = &self.cfg.parties[me.index()];
        // The three files must come from one split: compare commitments before anything
        // else (a mixed split used to surface only at the client, after the whole job).
        let mut transport = transport;
        let header = ShareFileSource::open(
            &entry.shares,
            me,
            &self.model.graph,
            &self.cfg.model,
            self.fixed,
        )
        .map_err(ModelError::from)?
        .header()
        .clone();
        compare_splits(&mut transport, me, &header, &entry.shares)?;
        let mut entropy = session_entropy(self.cfg.insecure_seed, self.me)?;
        let mut party = Party::setup(self.me, transport, self.fixed, &mut entropy)?;
        let client = std::cell::RefCell::new(&mut job.client);
        let report = |r: &StepReport| {
            if me == PartyId::P0 {
                send_reply(
                    &mut client.borrow_mut(),
                    &PartyReply::Step {
                        done: r.done,
                        steps: r.steps,
                        bytes: r.cost.bytes_total(),
                        rounds: r.cost.rounds,
                    },
                );
            }
            info!(
                step = r.done,
                of = r.steps,
                bytes = r.cost.bytes_total(),
                rounds = r.cost.rounds,
                "step"
            );
        };
        let out = serve_sample(
            &mut party,
            &server_job,
            &entry.shares,
            &self.cfg.model,
            &labels,
            guidance,
            &report,
        )?;
        Ok((party.into_transport(), out))
    }
}
