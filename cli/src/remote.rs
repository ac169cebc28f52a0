//! The deployment commands: `keygen` (a static key pair), `party` (one server as a
//! daemon) and `client sample` (the user's side of a job).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use cipherdm_models::guidance::parse_guidance;
use cipherdm_models::host::human_bytes;
use cipherdm_models::image::write_grid;
use cipherdm_models::secure::Sampler;
use cipherdm_models::shipped;
use cipherdm_transport_tcp::{DeployConfig, KeyPair};

use crate::deploy::{JobSpec, Progress, sample_remote};
use crate::error::CliError;
use crate::sample::{SampleOptions, parse_profile, progress_bar};

/// `cipherdm keygen`: a static key pair at `<out>.key` / `<out>.pub`.
pub fn keygen(out: &Path) -> Result<(), CliError> {
    let kp = KeyPair::generate()?;
    let with = |ext: &str| {
        let mut p = out.as_os_str().to_owned();
        p.push(ext);
        PathBuf::from(p)
    };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| CliError::io(dir, e))?;
    }
    kp.save(&with(".key"))?;
    let public = with(".pub");
    std::fs::write(&public, format!("{}\n", kp.public)).map_err(|e| CliError::io(&public, e))?;
    eprintln!(
        "wrote {} (secret) and {}",
        with(".key").display(),
        public.display()
    );
    println!("{}", kp.public);
    Ok(())
}

/// `cipherdm party`: logs to stderr (`RUST_LOG` filters), stops on SIGTERM / SIGINT.
pub fn party(config: &Path, id: usize, allow_insecure_seed: bool) -> Result<(), CliError> {
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
            .map_err(|e| CliError::Usage(format!("installing a signal handler: {e}")))?;
    }
    crate::deploy::run_party(config, id, allow_insecure_seed, stop)
}

/// `cipherdm client sample`: one job on a deployment, written to `o.out`.
pub fn client_sample(
    o: &SampleOptions,
    config: &Path,
    client: Option<&str>,
    share_seed: Option<u64>,
    job_timeout: Duration,
) -> Result<(), CliError> {
    let cfg = DeployConfig::load(config)?;
    let entry = cfg.client(client)?;
    if cfg.insecure_seed.is_some() {
        eprintln!(
            "WARNING: this deployment sets insecure_seed: every PRSS key of the servers is \
             public, so the servers' shares protect nothing. For tests only."
        );
    }
    let model = shipped::architecture(&cfg.model)?;
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
        guidance: parse_guidance(&o.guidance)?.map(|g| g.to_string()),
        seed: o.seed,
        batch: labels.len(),
    };
    let steps = spec.ddim_steps.unwrap_or(1000);
    let bar = progress_bar(steps);
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
