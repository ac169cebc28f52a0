//! A deployment of three `cipherdm party` OS processes on 127.0.0.1 for the tests: the
//! tiny model's share files, fresh keys, a `deploy.toml`, one log file per party.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use cipherdm_cli::deploy::{JobSpec, RemoteOutcome, sample_remote};
use cipherdm_kernel::FixedPoint;
use cipherdm_models::secure::write_share_files;
use cipherdm_models::shipped;
use cipherdm_transport_tcp::DeployConfig;

/// The deployments use fixed resources (CPU above all): one at a time.
pub static SERIAL: Mutex<()> = Mutex::new(());

pub const BIN: &str = env!("CARGO_BIN_EXE_cipherdm");
pub const SEED: u64 = 11;

pub struct Deployment {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub parties: [Option<Child>; 3],
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for c in self.parties.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn keygen(path: &Path) -> String {
    let out = Command::new(BIN)
        .args(["keygen", "--out"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl Deployment {
    pub fn new(tag: &str) -> Self {
        Self::with_settings(tag, "")
    }

    /// A deployment whose `deploy.toml` has `settings` (top-level lines) added.
    pub fn with_settings(tag: &str, settings: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("cdm-deploy-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("keys")).unwrap();
        let (model, weights) = shipped::model("tiny").unwrap();
        write_share_files(
            &model.graph,
            &weights,
            "tiny",
            FixedPoint::default(),
            &dir.join("shares"),
            "tiny",
            Some([3; 32]),
        )
        .unwrap();
        let mut toml = format!(
            "session = \"test-{tag}\"\nmodel = \"tiny\"\ntimeout_ms = 4000\nconnect_deadline_ms = 30000\ninsecure_seed = {SEED}\n{settings}"
        );
        for i in 0..3 {
            let public = keygen(&dir.join(format!("keys/p{i}")));
            toml += &format!(
                "\n[[party]]\nid = {i}\naddress = \"127.0.0.1:{}\"\npublic_key = \"{public}\"\nsecret_key = \"keys/p{i}.key\"\nshares = \"shares/tiny.p{i}.shares\"\nguidance = \"guidance\"\n",
                free_port()
            );
        }
        let public = keygen(&dir.join("keys/alice"));
        toml += &format!(
            "\n[[client]]\nname = \"alice\"\npublic_key = \"{public}\"\nsecret_key = \"keys/alice.key\"\n"
        );
        let config = dir.join("deploy.toml");
        std::fs::write(&config, toml).unwrap();
        let mut d = Deployment {
            dir,
            config,
            parties: [None, None, None],
        };
        for i in 0..3 {
            d.start(i);
        }
        d
    }

    pub fn start(&mut self, i: usize) {
        // Each party's log goes to `party<i>.log` in the deployment folder (appended over
        // restarts), for tests that read what an operator would.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("party{i}.log")))
            .unwrap();
        let child = Command::new(BIN)
            .args([
                "party",
                "--allow-insecure-seed",
                "--id",
                &i.to_string(),
                "--config",
            ])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.parties[i] = Some(child);
    }

    pub fn alive(&mut self, i: usize) -> bool {
        matches!(
            self.parties[i].as_mut().map(|c| c.try_wait()),
            Some(Ok(None))
        )
    }

    pub fn cfg(&self) -> DeployConfig {
        DeployConfig::load(&self.config).unwrap()
    }
}

pub fn spec(steps: usize, seed: u64) -> JobSpec {
    JobSpec {
        job: [0; 16],
        profile: "accurate".into(),
        ddim_steps: Some(steps),
        cfg: None,
        guidance: None,
        seed,
        batch: 0,
    }
}

/// A one-step job drawing a 1: proof that the deployment serves.
pub fn one_step_job(cfg: &DeployConfig, seed: u64) -> RemoteOutcome {
    sample_remote(
        cfg,
        cfg.client(None).unwrap(),
        spec(1, seed),
        &[1],
        None,
        Duration::from_secs(120),
        &|_| {},
    )
    .unwrap()
}
