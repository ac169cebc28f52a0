//! The binary-MNIST table of `docs/RESULTS.md`: the analogue of Table 4 of "Secure
//! Inference for Diffusion Models via Unconditional Scores" (Song et al.) on CipherDM's
//! architecture (`tiny-unaliased`, digits 0 and 1). Quality columns come from the
//! plaintext-approximate sampler over many samples; the secure columns from one secure
//! 50-step sample per row (three parties in one process, memory transport, this machine).

use std::fmt::Write as _;
use std::path::Path;

use cipherdm_kernel::approx::Profile;
use cipherdm_kernel::cost::Cost;
use cipherdm_transport_mem::MemConfig;

use super::{Row, SecureCost, Study, read_rows, row_cache_key, write_rows};
use crate::classifier::Classifier;
use crate::error::ModelError;
use crate::guidance::{GuidanceWeight, ScoreGuidance};
use crate::image::write_grid;
use crate::model::Model;
use crate::plain::Nonlinearity;
use crate::schedule::DdimConfig;
use crate::secure::session::{fresh_rng, owner_weight_shares};
use crate::secure::{GuidanceRequest, PartyWeights, SampleRequest, Sampler, sample_in_process};
use crate::weights::Weights;

/// One requested row: profile name, nonlinearity, guidance.
type Request = (&'static str, Nonlinearity, Option<ScoreGuidance>);

/// The rows, in the paper's order: plaintext, CipherDM's approximations, with the paper's
/// guidance (both readings of its weight), with the correction, and the Accurate profile.
pub fn requests() -> Vec<Request> {
    let cipherdm = Nonlinearity::Approx(Profile::CipherDm);
    let paper = |weight| Some(ScoreGuidance::Unconditional { eta: 0.1, weight });
    vec![
        ("exact", Nonlinearity::Exact, None),
        ("CipherDm", cipherdm, None),
        ("CipherDm", cipherdm, paper(GuidanceWeight::Snr)),
        ("CipherDm", cipherdm, paper(GuidanceWeight::Beta)),
        ("CipherDm", cipherdm, Some(ScoreGuidance::DEFAULT)),
        ("Accurate", Nonlinearity::Approx(Profile::Accurate), None),
    ]
}

/// Runs one secure 50-step DDIM sample of label 1 under `profile` and `guidance` and
/// returns what it cost: the servers' wall time and the bytes all three sent.
pub fn secure_cost(
    model: &Model,
    weights: &Weights<f64>,
    profile: Profile,
    guidance: Option<ScoreGuidance>,
) -> Result<SecureCost, ModelError> {
    let request = SampleRequest {
        model: model.clone(),
        profile,
        labels: vec![1],
        sampler: Sampler::Ddim(DdimConfig::cipherdm()),
        guidance: guidance.map_or(GuidanceRequest::None, GuidanceRequest::Score),
        seed: 7,
    };
    let transport = MemConfig::default();
    let shares = owner_weight_shares(model, weights, transport.fixed, &mut fresh_rng()?)?;
    let outcome = sample_in_process(
        &request,
        PartyWeights::Memory(Box::new(shares)),
        Some(weights),
        &transport,
        &|_| {},
    )?;
    Ok(SecureCost {
        seconds: outcome.wall.as_secs_f64(),
        bytes: outcome.costs.iter().map(Cost::bytes_total).sum(),
        rounds: outcome.costs.iter().map(|c| c.rounds).max().unwrap_or(0),
    })
}

/// Samples (or takes from the cache `out/<tag>-binary-rows.json`) every row of
/// [`requests`], each with its secure cost.
pub fn study(
    tag: &str,
    model: &Model,
    weights: &Weights<f64>,
    samples: usize,
    out: &Path,
    classifier: &mut Classifier,
) -> Result<Vec<Row>, ModelError> {
    let key = row_cache_key(weights, samples);
    let cache = out.join(format!("{tag}-binary-rows.json"));
    let mut done = read_rows(&cache, &key);
    let mut study = Study::new(model, weights, samples, classifier)?;
    let mut rows = Vec::new();
    for (name, nl, guidance) in requests() {
        let g = guidance.map_or("none".into(), |g| g.to_string());
        if let Some(r) = done.iter().find(|r| r.profile == name && r.guidance == g) {
            eprintln!("[{tag}] {name:<8} {g:<20} (kept)");
            rows.push(r.clone());
            continue;
        }
        let (mut row, x0) = study.row(name, nl, guidance)?;
        row.png = format!(
            "{tag}-{}-{}.png",
            name.to_ascii_lowercase(),
            g.replace([':', '.'], "_")
        );
        write_grid(out.join(&row.png), &x0.batch_slice(0, samples.min(50))?, 10)?;
        if let Nonlinearity::Approx(profile) = nl {
            row.secure = Some(secure_cost(model, weights, profile, guidance)?);
        }
        eprintln!(
            "[{tag}] {name:<8} {g:<20} acc {:.3} F1 {:.3} FD {:.2} ({:.0} s){}",
            row.accuracy,
            row.f1,
            row.frechet,
            row.seconds,
            row.secure.as_ref().map_or(String::new(), |s| format!(
                "; secure sample {:.1} s, {} B",
                s.seconds, s.bytes
            ))
        );
        done.push(row.clone());
        rows.push(row);
        write_rows(&cache, &key, &done)?;
    }
    Ok(rows)
}

/// The binary-MNIST section of RESULTS.md, with the paper's figures beside ours.
pub fn section(tag: &str, samples: usize, rows: &[Row]) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "\n## Binary MNIST on CipherDM's architecture (`{tag}`)\n\n\
         The analogue of Table 4 of Song et al. (digits 0 and 1, CipherDM's U-Net of 15,881 \
         parameters, 50 DDIM steps). `{tag}` differs from the exact port `tiny` only in its \
         public time features, which do not alias (README, \"Where the weights stand\"); the \
         servers' cost is the same. Quality: {samples} plaintext-approximate samples per row, \
         as above. Secure: one 50-step sample (batch 1) with the three parties as threads of \
         one process on this 2-vCPU machine, memory transport; bytes are what all three \
         parties sent, rounds the longest party's. The guidance rows' owner precomputation \
         (one exact and, for the correction, one approximated unconditional trajectory in \
         plaintext) is the owner's offline work and not in the time.\n\n\
         | profile | guidance | F1 | accuracy | classifier-FD | secure time | secure bytes | rounds | samples |\n\
         |---|---|---|---|---|---|---|---|---|"
    );
    for r in rows {
        let (time, bytes, rounds) = r.secure.as_ref().map_or(
            ("–".to_string(), "–".to_string(), "–".to_string()),
            |s| {
                (
                    format!("{:.1} s", s.seconds),
                    format!("{:.2} GB", s.bytes as f64 / 1e9),
                    s.rounds.to_string(),
                )
            },
        );
        let _ = writeln!(
            md,
            "| {} | {} | {:.3} | {:.3} | {:.2} | {time} | {bytes} | {rounds} | [png](results/{}) |",
            r.profile, r.guidance, r.f1, r.accuracy, r.frechet, r.png
        );
    }
    let _ = writeln!(
        md,
        "\nThe paper's Table 4 (their own binary-MNIST training, CipherDM's code under SPU): \
         plaintext F1 0.8575; CipherDM 0.082, 430.59 s and 9.12 GB for a 50-step sample; \
         CipherDM with their guidance 0.60."
    );
    md
}
