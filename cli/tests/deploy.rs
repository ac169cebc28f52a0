//! Three `cipherdm party` OS processes on 127.0.0.1 and a client: the same image as the
//! in-process run bit for bit, strangers refused while the daemons keep serving, a killed
//! party failing the job cleanly, config errors naming their field.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use cipherdm_cli::deploy::{Progress, sample_remote};
use cipherdm_kernel::FixedPoint;
use cipherdm_kernel::approx::Profile;
use cipherdm_models::guidance::ScoreGuidance;
use cipherdm_models::schedule::DdimConfig;
use cipherdm_models::secure::guidance_file::{GuidanceBinding, write_guidance_files};
use cipherdm_models::secure::session::user_label_shares;
use cipherdm_models::secure::user_rng;
use cipherdm_models::secure::{
    GuidanceRequest, PartyWeights, SampleRequest, Sampler, sample_in_process, write_share_files,
};
use cipherdm_models::shipped;
use cipherdm_transport_mem::MemConfig;
use cipherdm_transport_tcp::hello::{self, Hello, Role};
use cipherdm_transport_tcp::{Channel, KeyPair, LinkConfig};

mod common;
use common::*;

#[test]
fn three_processes_give_the_in_process_image_bit_for_bit_and_refuse_strangers() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Deployment::new("same");
    let cfg = d.cfg();
    let labels = [1usize, 0];
    let remote = sample_remote(
        &cfg,
        cfg.client(None).unwrap(),
        spec(3, 4),
        &labels,
        Some(SEED),
        Duration::from_secs(120),
        &|_| {},
    )
    .unwrap();

    let (model, _) = shipped::model("tiny").unwrap();
    let local = sample_in_process(
        &SampleRequest {
            model,
            profile: Profile::Accurate,
            labels: labels.to_vec(),
            sampler: Sampler::Ddim(DdimConfig {
                steps: 3,
                ..DdimConfig::cipherdm()
            }),
            guidance: GuidanceRequest::None,
            seed: 4,
        },
        PartyWeights::Files {
            paths: [0, 1, 2].map(|i| d.dir.join(format!("shares/tiny.p{i}.shares"))),
            model_id: "tiny".into(),
        },
        None,
        &MemConfig {
            seed: Some(SEED),
            ..MemConfig::default()
        },
        &|_| {},
    )
    .unwrap();
    assert_eq!(remote.image.shape(), local.image.shape());
    let same = remote
        .image
        .data()
        .iter()
        .zip(local.image.data())
        .all(|(a, b)| a.to_bits() == b.to_bits());
    assert!(same, "TCP deployment and in-process run differ");
    assert_eq!(
        remote.bytes[0],
        // Set-up: 64 bytes to each peer (pair-key and common-key contributions).
        local.costs[0].bytes_total() - 128,
        "the same protocol traffic (party 0's set-up excluded on the daemon's side)"
    );

    // Strangers: an unpinned key, garbage bytes, a pinned client with the wrong session.
    let p0 = &cfg.parties[0];
    let stranger = KeyPair::generate().unwrap();
    let link = LinkConfig {
        timeout: Duration::from_secs(5),
        connect_deadline: Duration::from_secs(5),
        ..LinkConfig::default()
    };
    let refused =
        Channel::connect(&p0.address, &stranger, &p0.public_key, &link).and_then(|mut ch| {
            let h = Hello::new("x", Role::Client, 64, 18, "tiny", [0; 32]);
            hello::initiate(&mut ch, &h, Role::Party(0)).map(|_| ())
        });
    assert!(refused.is_err());
    let mut g = TcpStream::connect(&p0.address).unwrap();
    g.write_all(&[0xffu8; 4096]).unwrap();
    let mut sink = Vec::new();
    let _ = g.read_to_end(&mut sink);
    let alice = KeyPair::load(&d.dir.join("keys/alice.key")).unwrap();
    let mut ch = Channel::connect(&p0.address, &alice, &p0.public_key, &link).unwrap();
    let wrong = Hello::new("another-session", Role::Client, 64, 18, "tiny", [0; 32]);
    let e = hello::initiate(&mut ch, &wrong, Role::Party(0))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`test-same`") && e.contains("`another-session`"),
        "{e}"
    );
    // ... and the daemons still serve.
    let again = one_step_job(&cfg, 5);
    assert_eq!(again.image.shape(), &[1, 1, 28, 28]);
    // The operator's log names each refusal once ("refused: refused: …" before).
    let log = std::fs::read_to_string(d.dir.join("party0.log")).unwrap();
    assert!(log.contains("not admitted"), "{log}");
    assert!(!log.contains("refused: refused"), "{log}");
    // Each "job done" line gives that job's wire bytes (a running total before): the
    // one-step job sent less than the three-step job before it.
    let per_job: Vec<u64> = log
        .lines()
        .filter(|l| l.contains("job done"))
        .map(|l| {
            let v = l
                .split("wire_bytes_sent=")
                .nth(1)
                .expect("per-job wire bytes");
            v.split_whitespace().next().unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(per_job.len(), 2, "{log}");
    assert!(per_job[1] < per_job[0], "{per_job:?}");
}

#[test]
fn a_killed_party_fails_the_job_within_the_timeout_and_service_resumes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut d = Deployment::new("kill");
    let cfg = d.cfg();
    let (tx, rx) = channel();
    let client = {
        let cfg = cfg.clone();
        std::thread::spawn(move || {
            let r = sample_remote(
                &cfg,
                cfg.client(None).unwrap(),
                spec(50, 6),
                &[0],
                None,
                Duration::from_secs(120),
                &|p| {
                    if let Progress::Step { .. } = p {
                        let _ = tx.send(());
                    }
                },
            );
            (r, Instant::now())
        })
    };
    // Kill party 2 once the job is under way.
    rx.recv_timeout(Duration::from_secs(120))
        .expect("the job started");
    let killed_at = Instant::now();
    d.parties[2].as_mut().unwrap().kill().unwrap();
    d.parties[2].as_mut().unwrap().wait().unwrap();
    let (result, ended) = client.join().unwrap();
    let e = result
        .expect_err("the job cannot finish without party 2")
        .to_string();
    assert!(
        ended.duration_since(killed_at) < cfg.link.timeout * 3,
        "the client waited {:?}",
        ended.duration_since(killed_at)
    );
    eprintln!("the client's error after the kill: {e}");
    assert!(e.contains("party"), "{e}");
    // A lost peer is reported as one (its kind kept through kernel, daemon and client),
    // never as a shape or configuration error.
    assert!(
        ["closed", "timed out", "reset", "connection"]
            .iter()
            .any(|w| e.contains(w)),
        "{e}"
    );
    assert!(
        !e.contains("shape error") && !e.contains("invalid configuration"),
        "{e}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(d.alive(0) && d.alive(1), "the surviving parties exited");
    // Party 2 comes back: the others reconnect and serve the next job.
    d.start(2);
    let again = one_step_job(&cfg, 7);
    assert_eq!(again.image.shape(), &[1, 1, 28, 28]);
}

/// A `deploy.toml` in a fresh folder (named by `tag`) whose parties' key files do not
/// exist, with `header` after the session lines; returns the folder and the config.
fn keyless_config(tag: &str, header: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("cdm-deploy-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = "ab".repeat(32);
    let mut toml = format!("session = \"s\"\nmodel = \"tiny\"\n{header}");
    for i in 0..3 {
        toml += &format!(
            "[[party]]\nid = {i}\naddress = \"127.0.0.1:1\"\npublic_key = \"{}\"\nsecret_key = \"missing{i}.key\"\nshares = \"p{i}.shares\"\n",
            key.replace("ab", &format!("a{i}"))
        );
    }
    let config = dir.join("deploy.toml");
    std::fs::write(&config, toml).unwrap();
    (dir, config)
}

/// A config that sets `insecure_seed` (every PRSS key derived from a public number) is
/// refused by name unless the party is started with `--allow-insecure-seed`.
#[test]
fn insecure_seed_is_refused_without_the_test_flag() {
    let (dir, config) = keyless_config("seed", "insecure_seed = 7\n");
    let out = Command::new(BIN)
        .args(["party", "--id", "0", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    // With the flag the same config gets past the check (and fails later, on the key).
    let allowed = Command::new(BIN)
        .args(["party", "--allow-insecure-seed", "--id", "0", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("insecure_seed"), "{err}");
    assert!(err.contains("--allow-insecure-seed"), "{err}");
    let err = String::from_utf8_lossy(&allowed.stderr);
    assert!(err.contains("party[0].secret_key"), "{err}");
}

#[test]
fn a_party_with_a_missing_key_file_names_the_field() {
    let (dir, config) = keyless_config("bad", "");
    let out = Command::new(BIN)
        .args(["party", "--id", "1", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("party[1].secret_key"), "{err}");
    assert!(err.contains("missing1.key"), "{err}");
}

/// Score guidance across three daemons: the owner's guidance files, bound to the job's
/// public values, give the same image bit for bit as the in-process guided sample from the
/// same shares and seeds; a job without its files, or with files of another job, is
/// refused before any work, naming the file or the field.
#[test]
fn guided_jobs_match_the_in_process_sample_and_missing_guidance_is_refused() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Deployment::new("guided");
    let cfg = d.cfg();
    let labels = [1usize, 0];
    let (model, weights) = shipped::model("tiny").unwrap();
    let guidance = ScoreGuidance::ErrorCancelling {
        gamma: 1.0,
        down_to: 0,
    };
    let fixed = FixedPoint::default();
    let binding =
        |seed| GuidanceBinding::new("tiny", &model, seed, 3, 2, &guidance, Profile::Accurate);
    // The owner shares the tensors with the randomness the in-process run uses after the
    // labels (tests only: a real owner uses fresh randomness).
    let mut rng = user_rng(Some(SEED)).unwrap();
    user_label_shares(&model, &labels, fixed, &mut rng).unwrap();
    write_guidance_files(
        &model,
        &weights,
        &binding(4),
        fixed,
        &d.dir.join("guidance"),
        &mut rng,
    )
    .unwrap();
    let guided = |seed: u64, g: &str| {
        let mut s = spec(3, seed);
        s.guidance = Some(g.into());
        sample_remote(
            &cfg,
            cfg.client(None).unwrap(),
            s,
            &labels,
            Some(SEED),
            Duration::from_secs(120),
            &|_| {},
        )
    };
    let remote = guided(4, "correction:1").unwrap();
    let local = sample_in_process(
        &SampleRequest {
            model: model.clone(),
            profile: Profile::Accurate,
            labels: labels.to_vec(),
            sampler: Sampler::Ddim(DdimConfig {
                steps: 3,
                ..DdimConfig::cipherdm()
            }),
            guidance: GuidanceRequest::Score(guidance),
            seed: 4,
        },
        PartyWeights::Files {
            paths: [0, 1, 2].map(|i| d.dir.join(format!("shares/tiny.p{i}.shares"))),
            model_id: "tiny".into(),
        },
        Some(&weights),
        &MemConfig {
            seed: Some(SEED),
            ..MemConfig::default()
        },
        &|_| {},
    )
    .unwrap();
    let same = remote
        .image
        .data()
        .iter()
        .zip(local.image.data())
        .all(|(a, b)| a.to_bits() == b.to_bits());
    assert!(same, "guided TCP deployment and in-process run differ");

    // No files for this guidance: refused, naming the missing file.
    let e = guided(4, "paper:0.1").unwrap_err().to_string();
    eprintln!("without files: {e}");
    assert!(e.contains(".guidance") && e.contains("No such file"), "{e}");
    // Files of another job under this job's names: refused, naming the field.
    let other = binding(5);
    for i in 0..3 {
        std::fs::copy(
            d.dir.join("guidance").join(binding(4).file_name(i)),
            d.dir.join("guidance").join(other.file_name(i)),
        )
        .unwrap();
    }
    let e = guided(5, "correction:1").unwrap_err().to_string();
    eprintln!("another job's files: {e}");
    assert!(e.contains("seed is 4, the job's is 5"), "{e}");
    // ... and the daemons still serve.
    assert_eq!(one_step_job(&cfg, 9).image.shape(), &[1, 1, 28, 28]);
}

/// Share files of two splits are found by the parties at the start of the job (they
/// compare seed commitments), before any step runs, and named in the parties' logs; the
/// client's error says so. (Before, the parties ran the whole job and only the client's
/// reconstruction failed.) With the right file back, the next job runs.
#[test]
fn share_files_of_two_splits_are_refused_before_the_job_runs() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Deployment::new("split");
    let cfg = d.cfg();
    let (model, weights) = shipped::model("tiny").unwrap();
    let other = write_share_files(
        &model.graph,
        &weights,
        "tiny",
        FixedPoint::default(),
        &d.dir.join("other"),
        "tiny",
        Some([4; 32]),
    )
    .unwrap();
    let mine = d.dir.join("shares/tiny.p1.shares");
    let kept = d.dir.join("kept.shares");
    std::fs::rename(&mine, &kept).unwrap();
    std::fs::copy(&other[1], &mine).unwrap();
    let outcome = sample_remote(
        &cfg,
        cfg.client(None).unwrap(),
        spec(2, 6),
        &[1],
        None,
        Duration::from_secs(120),
        &|_| {},
    );
    let Err(err) = outcome else {
        panic!("a job on mixed splits must fail");
    };
    assert!(err.to_string().contains("different splits"), "{err}");
    // The reply names the file by what it is, not by the server's path.
    assert!(
        !err.to_string().contains(&*d.dir.to_string_lossy()),
        "{err}"
    );
    assert!(err.to_string().contains("share file"), "{err}");
    // Each party logs its failure after replying: wait for the line (bounded).
    for i in 0..3 {
        let path = d.dir.join(format!("party{i}.log"));
        let deadline = Instant::now() + Duration::from_secs(20);
        let log = loop {
            let log = std::fs::read_to_string(&path).unwrap();
            if log.contains("different splits") || Instant::now() > deadline {
                break log;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(log.contains("different splits"), "party {i}: {log}");
        assert!(!log.contains("step="), "party {i} ran a step: {log}");
    }
    std::fs::rename(&kept, &mine).unwrap();
    let again = one_step_job(&cfg, 7);
    assert_eq!(again.image.shape(), &[1, 1, 28, 28]);
}

/// A party whose share file is not one refuses to start with the share-file error (its
/// path and defect), not as a configuration problem.
#[test]
fn a_party_with_a_corrupt_share_file_says_so() {
    let (dir, config) = keyless_config("junkshares", "");
    let public = keygen(&dir.join("missing1"));
    let toml = std::fs::read_to_string(&config).unwrap();
    let key1 = "a1".repeat(32);
    std::fs::write(&config, toml.replace(&key1, &public)).unwrap();
    std::fs::write(dir.join("p1.shares"), b"these bytes are no share file").unwrap();
    let out = Command::new(BIN)
        .args(["party", "--id", "1", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // The share-file kind (it read as a deploy.toml problem before).
    assert!(err.contains("error: share file "), "{err}");
    assert!(err.contains("not a cipherdm share file"), "{err}");
    assert!(err.contains("p1.shares"), "{err}");
    assert!(!err.contains("deploy.toml"), "{err}");
}
