//! `cipherdm results`: the plaintext-approximate analogue of Table 4 of "Secure Inference
//! for Diffusion Models via Unconditional Scores" (Song et al.), written to `RESULTS.md`
//! with one PNG grid per row.
//!
//! For each model, every approximation profile (and the exact model) samples the same
//! requested labels from the same initial noise with 50-step DDIM, without and with score
//! guidance. The unconditional trajectory that score guidance needs does not depend on the
//! profile or on η, so it is computed once per model ([`PrecomputedScores`]), as a model
//! owner would precompute it offline. Samples are scored by the shipped classifier
//! (restricted to the model's classes: 0 or 1 for `tiny`): accuracy and macro F1 against
//! the requested labels, and the Fréchet distance of its
//! penultimate features against the MNIST test digits of the same classes.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

pub mod binary;
pub mod guidance;

use crate::classifier::Classifier;
use crate::error::ModelError;
use crate::guidance::{GuidanceWeight, ScoreGuidance};
use crate::image::write_grid;
use crate::metrics::{accuracy, frechet_distance, gaussian_fit, macro_f1};
use crate::mnist::{Mnist, Split};
use crate::model::{Model, PlainDenoiser};
use crate::plain::Nonlinearity;
use crate::schedule::PrecomputedScores;
use crate::schedule::{Condition, DdimConfig, Guidance, Schedule, ddim, initial_noise};
use crate::shipped;
use crate::tensor::Tensor;
use crate::weights::Weights;
use cipherdm_kernel::approx::Profile;

/// One row of the table.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Row {
    /// Profile name (`exact` or a profile).
    pub profile: String,
    /// Score-guidance η of the paper's guidance with the `snr` weight (0 = none): the main
    /// table's column.
    pub eta: f64,
    /// The guidance as [`ScoreGuidance`] writes it (`none` when off; empty in rows cached
    /// before the family existed, which are the paper's `snr` rows of `eta`).
    #[serde(default)]
    pub guidance: String,
    /// DDIM steps.
    #[serde(default = "default_steps")]
    pub steps: usize,
    /// Accuracy against the requested labels.
    pub accuracy: f64,
    /// Macro F1.
    pub f1: f64,
    /// Classifier-feature Fréchet distance to the test digits.
    pub frechet: f64,
    /// PNG file name.
    pub png: String,
    /// Wall time of the row.
    pub seconds: f64,
    /// What one secure sample of this row costs (only tables that measure it).
    #[serde(default)]
    pub secure: Option<SecureCost>,
}

/// The measured cost of one secure sample.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SecureCost {
    /// The servers' wall time.
    pub seconds: f64,
    /// Payload bytes all three servers sent.
    pub bytes: u64,
    /// Communication rounds (the longest party's).
    pub rounds: u64,
}

/// The step count of rows cached before rows recorded it: CipherDM's 50.
fn default_steps() -> usize {
    DdimConfig::cipherdm().steps
}

/// Rows cached in `file` under `key` (none when the file is absent, unreadable or keyed
/// otherwise: those rows are recomputed).
pub(crate) fn read_rows(file: &Path, key: &str) -> Vec<Row> {
    std::fs::read(file)
        .ok()
        .and_then(|b| serde_json::from_slice::<(String, Vec<Row>)>(&b).ok())
        .filter(|(k, _)| k == key)
        .map(|(_, r)| r)
        .unwrap_or_default()
}

/// Caches `rows` in `file` under `key`.
pub(crate) fn write_rows(file: &Path, key: &str, rows: &[Row]) -> Result<(), ModelError> {
    let bytes = serde_json::to_vec(&(key, rows))
        .map_err(|e| ModelError::format("results cache", e.to_string()))?;
    std::fs::write(file, bytes).map_err(|e| ModelError::io(file, e))
}

fn nonlinearities() -> Vec<(&'static str, Nonlinearity)> {
    vec![
        ("exact", Nonlinearity::Exact),
        ("CipherDm", Nonlinearity::Approx(Profile::CipherDm)),
        ("Precise", Nonlinearity::Approx(Profile::Precise)),
        ("Loose", Nonlinearity::Approx(Profile::Loose)),
        ("Accurate", Nonlinearity::Approx(Profile::Accurate)),
    ]
}

/// Guidance strengths of the study: none, the paper's 0.1, and 0.3.
pub const ETAS: [f64; 3] = [0.0, 0.1, 0.3];

fn to_f32_images(x: &Tensor<f64>) -> Tensor<f32> {
    x.map(|v| v.clamp(-1.0, 1.0)).cast()
}

/// Most samples one row may draw (they are held in memory at once, 784 f64 each).
pub const MAX_SAMPLES: usize = 10_000;

/// One model's evaluation set-up: the requested labels, the shared initial noise, the
/// reference statistics of the test digits and (computed on first use) the unconditional
/// scores of score guidance. Every row sampled from it is comparable with every other.
pub struct Study<'a> {
    model: Model,
    weights: Weights<f32>,
    labels: Vec<usize>,
    x_t: Tensor<f64>,
    reference: (Vec<f64>, Vec<f64>),
    /// The exact unconditional scores, and the step count they were computed for.
    unconditional: Option<(usize, PrecomputedScores)>,
    classifier: &'a mut Classifier,
}

impl<'a> Study<'a> {
    /// Prepares `samples` requests (labels cycling over the model's classes, noise seed
    /// 2024) and fits the classifier features of the MNIST test digits of those classes.
    pub fn new(
        model: &Model,
        weights: &Weights<f64>,
        samples: usize,
        classifier: &'a mut Classifier,
    ) -> Result<Self, ModelError> {
        if !(2..=MAX_SAMPLES).contains(&samples) {
            return Err(ModelError::Config(format!(
                "need 2..={MAX_SAMPLES} samples per row, got {samples}"
            )));
        }
        let classes = model.classes();
        let [c, h, w] = model.image_shape();
        let test = Mnist::load(Split::Test)?.filter(&(0..classes as u8).collect::<Vec<_>>());
        let idx: Vec<usize> = (0..test.len()).collect();
        let mut feats = Vec::new();
        for chunk in idx.chunks(500) {
            feats.extend(classifier.features(&test.batch(chunk))?);
        }
        let reference = gaussian_fit(&feats, crate::classifier::FEATURES)?;
        Ok(Self {
            model: model.clone(),
            weights: weights.cast::<f32>(),
            labels: (0..samples).map(|i| i % classes).collect(),
            x_t: initial_noise(2024, vec![samples, c, h, w]),
            reference,
            unconditional: None,
            classifier,
        })
    }

    /// Samples every request with 50-step DDIM under `nonlinearity` and `guidance`, and
    /// scores the result. Returns the row (its `png` field empty) and the samples.
    pub fn row(
        &mut self,
        profile: &str,
        nonlinearity: Nonlinearity,
        guidance: Option<ScoreGuidance>,
    ) -> Result<(Row, Tensor<f64>), ModelError> {
        self.row_with_steps(
            profile,
            nonlinearity,
            guidance,
            DdimConfig::cipherdm().steps,
        )
    }

    /// [`row`](Self::row) with `steps` DDIM steps (CipherDM's spacing otherwise).
    pub fn row_with_steps(
        &mut self,
        profile: &str,
        nonlinearity: Nonlinearity,
        guidance: Option<ScoreGuidance>,
        steps: usize,
    ) -> Result<(Row, Tensor<f64>), ModelError> {
        let schedule = Schedule::cipherdm();
        let cfg = DdimConfig {
            steps,
            ..DdimConfig::cipherdm()
        };
        let t0 = Instant::now();
        if self
            .unconditional
            .as_ref()
            .is_some_and(|(s, _)| *s != steps)
        {
            self.unconditional = None;
        }
        if guidance.is_some() && self.unconditional.is_none() {
            let mut exact = PlainDenoiser::new(
                self.model.clone(),
                self.weights.clone(),
                Nonlinearity::Exact,
            )?;
            let unc = PrecomputedScores::compute(&schedule, &cfg, &mut exact, self.x_t.clone())?;
            eprintln!("unconditional scores: {:.0} s", t0.elapsed().as_secs_f64());
            self.unconditional = Some((steps, unc));
        }
        let t0 = Instant::now();
        let mut net = PlainDenoiser::new(self.model.clone(), self.weights.clone(), nonlinearity)?;
        let sampler_guidance = match (guidance, self.unconditional.as_mut()) {
            (Some(guidance), Some((_, reference))) => Guidance::Score {
                guidance,
                reference,
            },
            _ => Guidance::None,
        };
        let conds: Vec<Condition> = self.labels.iter().map(|&l| Condition::Class(l)).collect();
        let x0 = ddim(
            &schedule,
            &cfg,
            &mut net,
            self.x_t.clone(),
            &conds,
            sampler_guidance,
            0,
        )?;
        let imgs = to_f32_images(&x0);
        let samples = self.labels.len();
        let mut pred = Vec::new();
        let mut f = Vec::new();
        for start in (0..samples).step_by(500) {
            let b = imgs.batch_slice(start, 500.min(samples - start))?;
            pred.extend(self.classifier.predict_among(&b, self.model.classes())?);
            f.extend(self.classifier.features(&b)?);
        }
        let (m, cv) = gaussian_fit(&f, crate::classifier::FEATURES)?;
        let row = Row {
            profile: profile.to_string(),
            eta: match guidance {
                Some(ScoreGuidance::Unconditional {
                    eta,
                    weight: GuidanceWeight::Snr,
                }) => eta,
                _ => 0.0,
            },
            guidance: guidance.map_or("none".into(), |g| g.to_string()),
            steps,
            accuracy: accuracy(&self.labels, &pred),
            f1: macro_f1(&self.labels, &pred),
            frechet: frechet_distance(&m, &cv, &self.reference.0, &self.reference.1),
            png: String::new(),
            seconds: t0.elapsed().as_secs_f64(),
            secure: None,
        };
        Ok((row, x0))
    }
}

/// Scores one model: returns its rows. `tag` names the PNGs.
pub fn study(
    tag: &str,
    model: &Model,
    weights: &Weights<f64>,
    samples: usize,
    out: &Path,
    classifier: &mut Classifier,
) -> Result<Vec<Row>, ModelError> {
    let mut study = Study::new(model, weights, samples, classifier)?;
    // Finished rows are kept on disk (keyed by the weights and the sample count), so an
    // interrupted run resumes where it stopped.
    let cache = out.join(format!("{tag}-rows.json"));
    let key = row_cache_key(weights, samples);
    let mut done = read_rows(&cache, &key);
    let mut rows = Vec::new();
    for (name, nl) in nonlinearities() {
        for eta in ETAS {
            if let Some(at) = done.iter().position(|r| r.profile == name && r.eta == eta) {
                eprintln!("[{tag}] {name:<8} η={eta:<4} (kept from an earlier run)");
                rows.push(done.remove(at));
                continue;
            }
            let guidance = (eta > 0.0).then_some(ScoreGuidance::Unconditional {
                eta,
                weight: GuidanceWeight::Snr,
            });
            let (mut row, x0) = study.row(name, nl, guidance)?;
            row.png = format!("{tag}-{}-eta{eta}.png", name.to_ascii_lowercase());
            write_grid(out.join(&row.png), &x0.batch_slice(0, samples.min(50))?, 10)?;
            eprintln!(
                "[{tag}] {:<8} η={:<4} acc {:.3} F1 {:.3} FD {:.2} ({:.0} s)",
                row.profile, row.eta, row.accuracy, row.f1, row.frechet, row.seconds
            );
            rows.push(row);
            write_rows(&cache, &key, &rows)?;
        }
    }
    Ok(rows)
}

/// SHA-256 of the weights' values and the sample count: rows cached under another key
/// are recomputed.
pub(crate) fn row_cache_key(weights: &Weights<f64>, samples: usize) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (name, t) in weights.iter() {
        h.update(name.as_bytes());
        for v in t.data() {
            h.update(v.to_le_bytes());
        }
    }
    h.update(samples.to_le_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// How large the guidance weight γ_t = η·σ_t/α_t of Song et al. gets on the sampler's
/// timesteps for each η of the study: the context for reading the guided rows.
pub fn guidance_weight_note() -> Result<String, ModelError> {
    let schedule = Schedule::cipherdm();
    let steps = DdimConfig::cipherdm().timesteps(schedule.len())?;
    let mut parts = Vec::new();
    for eta in ETAS.into_iter().filter(|&e| e > 0.0) {
        let gammas: Vec<(usize, f64)> = steps
            .iter()
            .map(|&(t, _)| (t, eta * schedule.snr_weight(t)))
            .collect();
        let over = gammas.iter().filter(|(_, g)| *g > 1.0).count();
        let (t_max, g_max) = gammas
            .iter()
            .copied()
            .fold((0, 0.0), |a, b| if b.1 > a.1 { b } else { a });
        parts.push(format!(
            "for η = {eta} it exceeds 1 at {over} of the {} steps (up to {g_max:.2} at t = {t_max})",
            steps.len()
        ));
    }
    Ok(format!(
        "On this linear-β schedule the guidance weight γ_t = η·σ_t/α_t is large while the noise is: {}. \
         Where γ_t > 1 the guided ε = ε̂ + γ_t·(ε_unc − ε̂) lies beyond the unconditional score, on the far side from the \
         requested class, in exactly the steps that decide which digit is drawn.\n",
        parts.join("; ")
    ))
}

/// Which extra tables [`run`] writes after the main one.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tables {
    /// The score-guidance table on `mnist` ([`guidance`]).
    pub guidance: bool,
    /// The binary-MNIST table on `tiny-unaliased` ([`binary`]).
    pub binary: bool,
    /// Write the guidance table from cached rows only.
    pub cached_only: bool,
}

/// Runs the study for `models` (`tiny`, `mnist` or `both`) and writes `out/RESULTS.md`.
pub fn run(samples: usize, models: &str, out: &Path, tables: Tables) -> Result<(), ModelError> {
    let names: Vec<&str> = match models {
        "both" => vec!["tiny", "mnist"],
        "tiny" | "mnist" => vec![models],
        other => return Err(ModelError::Config(format!("unknown model set `{other}`"))),
    };
    let pngs = out.join("results");
    std::fs::create_dir_all(&pngs).map_err(|e| ModelError::io(&pngs, e))?;
    let mut classifier = Classifier::shipped()?;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Approximation quality in plaintext-approximate mode\n\n\
         Regenerate with `cargo run --release -p cipherdm-cli -- results --samples {samples} \
         --models {models}{}{}` (finished rows are cached in `results/*.json`).\n\n\
         DDIM, 50 steps (CipherDM's sampler: `[1, 21, …, 981]`, x̂0 clipped, η_DDIM = 0), {samples} samples per row with \
         labels cycling over the model's classes, the same initial noise for every row, f32 network. \
         *Profile* is the approximation of SiLU and of the softmax exp (the `plain-approx` backend); \
         *η* is the score-guidance strength of \"Secure Inference for Diffusion Models via \
         Unconditional Scores\" (Song et al.), with γ_t = η·σ_t/α_t, unconditional = mean class \
         embedding, computed exactly. \
         Accuracy and macro F1 use the project's classifier against the requested labels; \
         *classifier-FD* is the Fréchet distance between Gaussian fits of that classifier's 64 penultimate features for the samples \
         and for the MNIST test digits of the same classes (FID's formula on a small MNIST classifier, not Inception: \
         comparable only within this page).\n",
        if tables.guidance {
            " --guidance-table"
        } else {
            ""
        },
        if tables.binary { " --binary-table" } else { "" },
    );
    let _ = writeln!(md, "{}", guidance_weight_note()?);
    for name in names {
        let (model, weights) = shipped::model(name)?;
        let rows = study(name, &model, &weights, samples, &pngs, &mut classifier)?;
        let _ = writeln!(
            md,
            "\n## `{name}`\n\n| profile | η | accuracy | F1 | classifier-FD | samples |\n|---|---|---|---|---|---|"
        );
        for r in &rows {
            let _ = writeln!(
                md,
                "| {} | {} | {:.3} | {:.3} | {:.2} | [png](results/{}) |",
                r.profile,
                if r.eta == 0.0 {
                    "–".to_string()
                } else {
                    r.eta.to_string()
                },
                r.accuracy,
                r.f1,
                r.frechet,
                r.png
            );
        }
    }
    if tables.guidance {
        let (model, weights) = shipped::model("mnist")?;
        let rows = guidance::study(
            "mnist",
            &model,
            &weights,
            samples,
            &pngs,
            &mut classifier,
            tables.cached_only,
        )?;
        md.push_str(&guidance::section("mnist", &rows));
    }
    if tables.binary {
        let tag = "tiny-unaliased";
        let (model, weights) = shipped::model(tag)?;
        let rows = binary::study(tag, &model, &weights, samples, &pngs, &mut classifier)?;
        md.push_str(&binary::section(tag, samples, &rows));
    }
    let file = out.join("RESULTS.md");
    std::fs::write(&file, md).map_err(|e| ModelError::io(&file, e))?;
    eprintln!("wrote {}", file.display());
    Ok(())
}
