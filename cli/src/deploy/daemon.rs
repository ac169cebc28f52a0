//! `cipherdm party`: one server of a deployment as a long-running process.
//!
//! - An **acceptor thread** takes every connection on the listen address. Connections
//!   are first read without a thread ([`Openings`]): each has `handshake_deadline_ms`
//!   from its accept to finish, and there are limits per source address and in total; a
//!   connection over a limit pushes out the oldest one, which is answered "busy". Only a
//!   connection whose first handshake message names a pinned key gets a thread (at most
//!   [`MAX_ADMITTING`]) for the rest: Noise, the session hello (mismatches are refused
//!   with both values named) and a client's job request, all within the same deadline.
//!   Party links go to the mesh, client jobs to the queue.
//! - The **main loop** links to the two peers (dials lower ids, is dialled by higher
//!   ids), then serves jobs one after another: party 0 takes the next job from its queue
//!   and announces its id and the digest of its public spec; the others find the same job
//!   in their own queue (sent by the client to each) and confirm; all three run it or
//!   all three skip it. Each job starts with fresh PRSS keys. After every denoising step
//!   party 0 tells the others whether to go on: a job whose client has left stops at all
//!   three within one step.
//! - **Between jobs** every party watches its links: a peer that stops is noticed at
//!   once, and a peer that connects anew (it restarted) replaces its old link; either way
//!   the three relink before the next job, so no job runs on a stale link. Jobs whose
//!   client has left are dropped from the queues.
//! - **SIGTERM or SIGINT** stops the party within a second in every state: waits look at
//!   the flag every tick, a running job is stopped at the next step, and a step or
//!   handshake still running after [`STOP_GRACE`] ends with the process.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cipherdm_kernel::party::session_entropy;
use cipherdm_kernel::{ArithShare, FixedPoint, Party, PartyId, Shape, Transport};
use cipherdm_models::ModelError;
use cipherdm_models::guidance::parse_guidance;
use cipherdm_models::model::Model;
use cipherdm_models::secure::guidance_file::{GuidanceBinding, open_guidance};
use cipherdm_models::secure::{
    SecureGuidance, ServerJob, ServerOutput, ShareFileSource, StepFlow, StepReport, compare_splits,
    serve_sample,
};
use cipherdm_models::shipped;
use cipherdm_transport_tcp::channel::Closer;
use cipherdm_transport_tcp::hello::{self, Hello, Role};
use cipherdm_transport_tcp::hex;
use cipherdm_transport_tcp::opening::{OpeningLimits, Openings};
use cipherdm_transport_tcp::{
    Channel, ConfigError, DeployConfig, KeyPair, Mode, PublicKey, TcpTransport,
};
use tracing::{error, info, warn};

use super::jobs::{ANNOUNCE_LEN, JobRequest, PartyReply, REQUEST_MAX, announce};
use crate::error::CliError;

/// Most pinned-key connections finishing their handshake at once, each on a thread.
pub const MAX_ADMITTING: usize = 16;
/// Connections being opened (before their key is known) at once, in all and per address.
const OPENINGS: OpeningLimits = OpeningLimits {
    total: 256,
    per_address: 32,
    deadline: Duration::from_secs(10),
};
/// Stack of a thread admitting one connection.
const ADMIT_STACK: usize = 256 << 10;
/// After SIGTERM, how long a running step or handshake may take before the process ends.
pub const STOP_GRACE: Duration = Duration::from_millis(800);
/// Most jobs a non-leader keeps waiting for party 0's announcement.
const MAX_PENDING: usize = 64;
/// How often idle loops look at the shutdown flag.
const TICK: Duration = Duration::from_millis(100);

/// A client's job waiting to run.
struct Job {
    request: JobRequest,
    client: Channel,
    /// Whether it was already put back once because a link failed before it started.
    retried: bool,
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
    let finished = Arc::new(AtomicBool::new(false));
    stop_within_grace(Arc::clone(&server.shutdown), Arc::clone(&finished));
    let acceptor = {
        let server = Arc::clone(&server);
        let queued = Arc::clone(&queued);
        std::thread::spawn(move || accept_loop(&server, listener, peer_tx, job_tx, queued))
    };
    let mut pending: Vec<Job> = Vec::new();
    let mut fresh: Vec<(PartyId, Channel)> = Vec::new();
    while !server.stopping() {
        let transport = match server.mesh(&peer_rx, &mut fresh) {
            Ok(Some(t)) => t,
            Ok(None) => break,
            Err(e) => {
                warn!("linking to the peers failed: {e}; retrying");
                // Clients waiting meanwhile learn why instead of waiting on.
                let why = format!(
                    "{} cannot reach its peers ({e}); try again later",
                    server.me
                );
                server.fail_waiting(&job_rx, &mut pending, &queued, &why);
                server.pause(Duration::from_secs(1));
                continue;
            }
        };
        info!("linked to both peers");
        match server.serve(
            transport,
            &job_rx,
            &peer_rx,
            &mut pending,
            &mut fresh,
            &queued,
        ) {
            Ok(()) => break,
            Err(e) => warn!("relinking to the peers: {e}"),
        }
        // The old links' buffers are free now: give their pages back, or every relink
        // would leave the process bigger.
        cipherdm_models::host::release_free_memory();
    }
    info!("shutting down");
    let _ = acceptor.join();
    finished.store(true, Ordering::SeqCst);
    Ok(())
}

/// Ends the process [`STOP_GRACE`] after `shutdown` is set unless `finished` is set by
/// then: a step of a large model or a peer stuck in a handshake cannot hold a stopping
/// party. The peers see the links close and fail the job with that reason.
fn stop_within_grace(shutdown: Arc<AtomicBool>, finished: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        while !shutdown.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let since = Instant::now();
        while since.elapsed() < STOP_GRACE {
            if finished.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        warn!("a job or handshake was still running; stopping now");
        std::process::exit(0);
    });
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

/// One admitted connection's deadline: the acceptor closes its socket when it passes
/// before the admitting thread has handed the connection on.
struct Deadline {
    at: Instant,
    closer: Closer,
    /// 0 admitting, 1 handed on, 2 closed by the acceptor.
    state: Arc<AtomicU8>,
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
    let cfg = &server.cfg;
    let limits = OpeningLimits {
        deadline: cfg.handshake_deadline,
        ..OPENINGS
    };
    let mut openings = Openings::new(limits, cfg.link);
    let admitting = Arc::new(AtomicUsize::new(0));
    let deadlines: Arc<Mutex<Vec<Deadline>>> = Arc::default();
    let me = server.me.index() as u8;
    let allowed = |k: &PublicKey| role_of(cfg, k).is_some_and(|r| r != Role::Party(me));
    while !server.stopping() {
        let polled = openings.poll(&listener);
        let idle = polled.ready.is_empty() && polled.dropped.is_empty();
        for (addr, e) in polled.dropped {
            warn!(%addr, "connection not admitted: {e}");
        }
        for o in polled.ready {
            let addr = o.addr();
            if admitting.load(Ordering::SeqCst) >= MAX_ADMITTING {
                warn!(%addr, "{MAX_ADMITTING} connections are being admitted; answered busy");
                o.refuse_busy();
                continue;
            }
            let at = o.accepted() + cfg.handshake_deadline;
            let ch = match o.finish(&server.key, &allowed, &cfg.link) {
                Ok(ch) => ch,
                Err(e) => {
                    warn!(%addr, "connection not admitted: {e}");
                    continue;
                }
            };
            let Ok(closer) = ch.closer() else { continue };
            let state = Arc::new(AtomicU8::new(0));
            if let Ok(mut d) = deadlines.lock() {
                d.push(Deadline {
                    at,
                    closer,
                    state: Arc::clone(&state),
                });
            }
            admitting.fetch_add(1, Ordering::SeqCst);
            let (server, peers, jobs, queued, admitting) = (
                Arc::clone(server),
                peers.clone(),
                jobs.clone(),
                Arc::clone(&queued),
                Arc::clone(&admitting),
            );
            // A small stack: an admitting thread only runs the hello and reads one
            // request, and exited threads' stacks are cached by the C library.
            let spawned = std::thread::Builder::new()
                .stack_size(ADMIT_STACK)
                .spawn(move || {
                    let handed = || {
                        state
                            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                            .is_ok()
                    };
                    if let Err(e) = admit(&server, ch, &peers, &jobs, &queued, &handed) {
                        warn!(%addr, "connection not admitted: {e}");
                    }
                    admitting.fetch_sub(1, Ordering::SeqCst);
                });
            if let Err(e) = spawned {
                warn!(%addr, "could not start a thread to admit the connection: {e}");
            }
        }
        // Close what is over its deadline; forget what was handed on.
        if let Ok(mut d) = deadlines.lock() {
            let now = Instant::now();
            d.retain(|x| match x.state.load(Ordering::SeqCst) {
                0 if now >= x.at => {
                    if x.state
                        .compare_exchange(0, 2, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok()
                    {
                        warn!(
                            "a connection did not finish its handshake within {:?}; closed",
                            cfg.handshake_deadline
                        );
                        x.closer.close();
                    }
                    false
                }
                0 => true,
                _ => false,
            });
        }
        if idle {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The session hello and (for a client) its job request on an authenticated channel;
/// `handed()` must say yes before the connection is passed on (no if its deadline
/// closed it meanwhile).
fn admit(
    server: &Server,
    mut ch: Channel,
    peers: &Sender<(PartyId, Channel)>,
    jobs: &Sender<Job>,
    queued: &AtomicUsize,
    handed: &dyn Fn() -> bool,
) -> Result<(), CliError> {
    let cfg = &server.cfg;
    let role = role_of(cfg, ch.peer_key()).ok_or_else(|| {
        CliError::Peer("a key that passed the handshake is no longer pinned".into())
    })?;
    hello::respond(&mut ch, &server.hello, role)?;
    match role {
        Role::Party(j) if (j as usize) > server.me.index() => {
            if !handed() {
                return Err(CliError::Peer(format!("party {j}'s link came too late")));
            }
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
                    if !handed() {
                        return Err(CliError::Peer("the job request came too late".into()));
                    }
                    let ahead = queued.fetch_add(1, Ordering::Relaxed);
                    send_reply(&mut ch, &PartyReply::Queued { ahead });
                    info!(job = %hex::encode(&request.spec.job), ahead, "job queued");
                    let _ = jobs.send(Job {
                        request,
                        client: ch,
                        retried: false,
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

    /// Sleeps up to `d`, waking early on shutdown.
    fn pause(&self, d: Duration) {
        let until = Instant::now() + d;
        while !self.stopping() && Instant::now() < until {
            std::thread::sleep(TICK.min(until.saturating_duration_since(Instant::now())));
        }
    }

    /// Answers every job waiting at this party with `why` (its links are down).
    fn fail_waiting(
        &self,
        jobs: &Receiver<Job>,
        pending: &mut Vec<Job>,
        queued: &AtomicUsize,
        why: &str,
    ) {
        pending.extend(jobs.try_iter());
        for mut job in pending.drain(..) {
            queued.fetch_sub(1, Ordering::Relaxed);
            send_reply(&mut job.client, &PartyReply::Failed(why.to_string()));
        }
    }

    /// Links to both peers, or `None` on shutdown. `fresh` holds links from higher
    /// parties that arrived before (they are used first; a newer one from the same
    /// party replaces an older one).
    fn mesh(
        &self,
        peer_rx: &Receiver<(PartyId, Channel)>,
        fresh: &mut Vec<(PartyId, Channel)>,
    ) -> Result<Option<TcpTransport>, CliError> {
        let mut links: Vec<(PartyId, Channel)> = Vec::with_capacity(2);
        for j in 0..self.me.index() {
            let p = &self.cfg.parties[j];
            let stop = || self.stopping();
            let ch = Channel::connect_unless(
                &p.address,
                &self.key,
                &p.public_key,
                &self.cfg.link,
                &stop,
            );
            let mut ch = match ch {
                Ok(ch) => ch,
                Err(cipherdm_transport_tcp::LinkError::Stopped) => return Ok(None),
                Err(e) => {
                    return Err(CliError::AtParty {
                        party: j,
                        source: Box::new(e.into()),
                    });
                }
            };
            hello::initiate(&mut ch, &self.hello, Role::Party(j as u8))?;
            links.push((PartyId::ALL[j], ch));
        }
        let deadline = Instant::now() + self.cfg.link.connect_deadline;
        let mut arrived: Vec<(PartyId, Channel)> = std::mem::take(fresh);
        loop {
            arrived.extend(peer_rx.try_iter());
            for (j, ch) in arrived.drain(..) {
                links.retain(|(k, _)| *k != j);
                links.push((j, ch));
            }
            if links.len() == 2 {
                break;
            }
            if self.stopping() {
                return Ok(None);
            }
            match peer_rx.recv_timeout(TICK) {
                Ok(link) => arrived.push(link),
                Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(_) => {
                    let missing: Vec<String> = (self.me.index() + 1..3)
                        .filter(|j| !links.iter().any(|(k, _)| k.index() == *j))
                        .map(|j| format!("party {j}"))
                        .collect();
                    return Err(CliError::Peer(format!(
                        "no link from {} within {:?}",
                        missing.join(" and "),
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

    /// Between jobs: a link from a peer that connected anew means it restarted, so the
    /// links must be made again (the new one is kept for that).
    fn check_relink(
        &self,
        peer_rx: &Receiver<(PartyId, Channel)>,
        fresh: &mut Vec<(PartyId, Channel)>,
    ) -> Result<(), CliError> {
        fresh.extend(peer_rx.try_iter());
        match fresh.last() {
            Some((j, _)) => Err(CliError::Peer(format!("{j} connected anew (it restarted)"))),
            None => Ok(()),
        }
    }

    /// A non-leader between jobs: takes newly queued jobs and drops those whose client
    /// has left (their sockets are closed, not kept open until party 0 announces them).
    fn tidy_pending(&self, jobs: &Receiver<Job>, pending: &mut Vec<Job>, queued: &AtomicUsize) {
        pending.extend(jobs.try_iter());
        pending.retain(|j| {
            let gone = j.client.peer_gone();
            if gone {
                queued.fetch_sub(1, Ordering::Relaxed);
                info!(job = %hex::encode(&j.request.spec.job), "its client left before it started; dropped");
            }
            !gone
        });
        // Jobs party 0 never announces (sent to this party only) cannot pile up.
        while pending.len() > MAX_PENDING {
            let mut old = pending.remove(0);
            queued.fetch_sub(1, Ordering::Relaxed);
            send_reply(
                &mut old.client,
                &PartyReply::Failed("dropped: party 0 never announced it".into()),
            );
        }
    }

    /// Party 0: the next job whose client is still there, or `None` on shutdown.
    fn next_job(
        &self,
        transport: &mut TcpTransport,
        jobs: &Receiver<Job>,
        peer_rx: &Receiver<(PartyId, Channel)>,
        fresh: &mut Vec<(PartyId, Channel)>,
        pending: &mut Vec<Job>,
        queued: &AtomicUsize,
    ) -> Result<Option<Job>, CliError> {
        loop {
            if self.stopping() {
                return Ok(None);
            }
            self.check_relink(peer_rx, fresh)?;
            // A job put back because a link failed before it started goes first.
            if !pending.is_empty() {
                return Ok(Some(pending.remove(0)));
            }
            if let Some(j) = transport.idle(Duration::from_millis(5))? {
                return Err(CliError::Peer(format!("{j} sent a message between jobs")));
            }
            match jobs.recv_timeout(TICK) {
                Ok(job) => {
                    if job.client.peer_gone() {
                        queued.fetch_sub(1, Ordering::Relaxed);
                        info!(job = %hex::encode(&job.request.spec.job), "its client left before it started; skipped");
                        continue;
                    }
                    return Ok(Some(job));
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(None),
            }
        }
    }

    /// Party 0: announces `job` and learns whether all three run it.
    fn agree_as_leader(
        &self,
        transport: &mut TcpTransport,
        job: &Job,
        ready: bool,
    ) -> Result<bool, CliError> {
        let (p1, p2) = (PartyId::P1, PartyId::P2);
        let a = announce(&job.request.spec);
        transport.send(p1, &a)?;
        transport.send(p2, &a)?;
        transport.flush()?;
        let mut v1 = [0u8; 1];
        let mut v2 = [0u8; 1];
        transport.recv(p1, &mut v1)?;
        transport.recv(p2, &mut v2)?;
        let go = v1[0] == 1 && v2[0] == 1 && ready;
        transport.send(p1, &[go as u8])?;
        transport.send(p2, &[go as u8])?;
        transport.flush()?;
        Ok(go)
    }

    /// Serves jobs until shutdown (`Ok`) or until the links must be made again (`Err`:
    /// a link failed or closed, or a peer restarted).
    fn serve(
        &self,
        mut transport: TcpTransport,
        jobs: &Receiver<Job>,
        peer_rx: &Receiver<(PartyId, Channel)>,
        pending: &mut Vec<Job>,
        fresh: &mut Vec<(PartyId, Channel)>,
        queued: &AtomicUsize,
    ) -> Result<(), CliError> {
        loop {
            // 1. Agree on the next job.
            let (job, go) = if self.me == PartyId::P0 {
                let Some(mut job) =
                    self.next_job(&mut transport, jobs, peer_rx, fresh, pending, queued)?
                else {
                    return Ok(());
                };
                queued.fetch_sub(1, Ordering::Relaxed);
                let ready = self.prepare(&job);
                match self.agree_as_leader(&mut transport, &job, ready.is_ok()) {
                    Ok(go) => (Some((job, ready)), go),
                    Err(e) if !job.retried => {
                        // A peer relinked just as the job was taken: run it on the new
                        // links (the others put it back too).
                        warn!(
                            "a link failed before the job started ({e}); it waits for the relink"
                        );
                        job.retried = true;
                        queued.fetch_add(1, Ordering::Relaxed);
                        pending.insert(0, job);
                        return Err(e);
                    }
                    Err(e) => {
                        send_reply(
                            &mut job.client,
                            &PartyReply::Failed(format!(
                                "party 0 lost a link to its peers before the job started ({e}); try again"
                            )),
                        );
                        return Err(e);
                    }
                }
            } else {
                loop {
                    if self.stopping() {
                        return Ok(());
                    }
                    self.check_relink(peer_rx, fresh)?;
                    self.tidy_pending(jobs, pending, queued);
                    match transport.idle(TICK)? {
                        Some(PartyId::P0) => break,
                        Some(j) => {
                            return Err(CliError::Peer(format!("{j} sent a message between jobs")));
                        }
                        None => {}
                    }
                }
                let mut a = [0u8; ANNOUNCE_LEN];
                transport.recv(PartyId::P0, &mut a)?;
                let job = self.find_job(jobs, pending, &a, queued).map(|j| {
                    let ready = self.prepare(&j);
                    (j, ready)
                });
                let ok = matches!(job, Some((_, Ok(_))));
                let mut go = [0u8; 1];
                let agreed = transport
                    .send(PartyId::P0, &[ok as u8])
                    .and_then(|_| transport.flush())
                    .and_then(|_| transport.recv(PartyId::P0, &mut go));
                if let Err(e) = agreed {
                    // Party 0 puts the job back when a link fails before it starts:
                    // keep it for the announcement after the relink.
                    if let Some((j, _)) = job {
                        queued.fetch_add(1, Ordering::Relaxed);
                        pending.insert(0, j);
                    }
                    return Err(e.into());
                }
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
            // Between jobs the party holds only its links and queue: give the pages of
            // the job's freed buffers back (the allocator keeps them while a job runs).
            cipherdm_models::host::release_free_memory();
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
                Err((Some(t), CliError::Model(ModelError::Cancelled { after_steps }))) => {
                    // All three stopped after the same step: the links are in step.
                    transport = t;
                    let why = if self.stopping() {
                        "the parties are shutting down"
                    } else {
                        "its client left"
                    };
                    info!(job = %id, after_steps, "job cancelled: {why}");
                    send_reply(
                        &mut job.client,
                        &PartyReply::Failed(format!(
                            "the job was cancelled after {after_steps} steps: {why}"
                        )),
                    );
                }
                Err((_, e)) => {
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

    /// Runs `job`. On success, or on a cancellation all three agreed on, the links are
    /// in step and come back; after any other failure they are not returned.
    #[allow(clippy::type_complexity, clippy::result_large_err)]
    fn run_job(
        &self,
        mut transport: TcpTransport,
        job: &mut Job,
        guidance: &SecureGuidance,
    ) -> Result<(TcpTransport, ServerOutput), (Option<TcpTransport>, CliError)> {
        let me = self.me;
        let entry = &self.cfg.parties[me.index()];
        let set_up = (|| {
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
            // The three files must come from one split: compare commitments before
            // anything else (a mixed split used to surface only at the client, after the
            // whole job).
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
            let entropy = session_entropy(self.cfg.insecure_seed, self.me)?;
            Ok::<_, CliError>((server_job, labels, entropy))
        })();
        let (server_job, labels, mut entropy) = match set_up {
            Ok(x) => x,
            Err(e) => return Err((None, e)),
        };
        let mut party = match Party::setup(self.me, transport, self.fixed, &mut entropy) {
            Ok(p) => p,
            Err(e) => return Err((None, e.into())),
        };
        let client = std::cell::RefCell::new(&mut job.client);
        let report = |r: &StepReport| {
            info!(
                step = r.done,
                of = r.steps,
                bytes = r.cost.bytes_total(),
                rounds = r.cost.rounds,
                "step"
            );
            if me != PartyId::P0 {
                return StepFlow::Agree { stop: false };
            }
            let mut client = client.borrow_mut();
            send_reply(
                &mut client,
                &PartyReply::Step {
                    done: r.done,
                    steps: r.steps,
                    bytes: r.cost.bytes_total(),
                    rounds: r.cost.rounds,
                },
            );
            // Party 0 decides for all three: stop when the client has left or the
            // party is shutting down.
            let stop = self.stopping() || client.peer_gone();
            StepFlow::Agree { stop }
        };
        let out = serve_sample(
            &mut party,
            &server_job,
            &entry.shares,
            &self.cfg.model,
            &labels,
            guidance,
            &report,
        );
        match out {
            Ok(out) => Ok((party.into_transport(), out)),
            Err(e @ ModelError::Cancelled { .. }) => Err((Some(party.into_transport()), e.into())),
            Err(e) => Err((None, e.into())),
        }
    }
}
