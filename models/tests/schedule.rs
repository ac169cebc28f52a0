//! Schedule constants against hand-computed values, and sampler behaviour.

use cipherdm_models::guidance::{GuidanceWeight, ScoreGuidance};
use cipherdm_models::schedule::{
    Condition, DdimConfig, Denoiser, Guidance, Schedule, ddim, ddpm, initial_noise,
};
use cipherdm_models::{ModelError, Tensor};

#[test]
fn linear_schedule_constants() {
    let s = Schedule::cipherdm();
    assert_eq!(s.len(), 1000);
    assert!((s.betas[0] - 1e-4).abs() < 1e-18);
    assert!((s.betas[999] - 0.02).abs() < 1e-17);
    // β_1 = 1e-4 + 0.0199/999.
    let b1 = 1e-4 + 0.0199 / 999.0;
    assert!((s.betas[1] - b1).abs() < 1e-18);
    assert!((s.alphas_cumprod[1] - 0.9999 * (1.0 - b1)).abs() < 1e-15);
    // ᾱ_999 = Π(1 − β_t) ≈ 4.0358e-5 (computed by hand in log space).
    let log: f64 = s.betas.iter().map(|b| (1.0 - b).ln()).sum();
    assert!((s.alphas_cumprod[999] - log.exp()).abs() < 1e-15);
    assert!((s.alphas_cumprod[999] - 4.0358e-5).abs() < 1e-8);
    // w_t = σ/α at t = 0: √(1e-4/0.9999).
    assert!((s.snr_weight(0) - (1e-4f64 / 0.9999).sqrt()).abs() < 1e-15);
}

#[test]
fn ddim_timesteps_are_cipherdms() {
    let steps = DdimConfig::cipherdm().timesteps(1000).unwrap();
    assert_eq!(steps.len(), 50);
    assert_eq!(steps[0], (981, Some(961)));
    assert_eq!(steps[48], (21, Some(1)));
    assert_eq!(steps[49], (1, None));
    let bad = DdimConfig {
        steps: 0,
        ..DdimConfig::cipherdm()
    };
    assert!(matches!(bad.timesteps(1000), Err(ModelError::Config(_))));
    let bad = DdimConfig {
        offset: 20,
        ..DdimConfig::cipherdm()
    };
    assert!(matches!(bad.timesteps(1000), Err(ModelError::Config(_))));
}

/// ε(x) = x·k: a linear "model" with a closed-form DDIM step.
struct Linear(f64);
impl Denoiser for Linear {
    fn eps(
        &mut self,
        x: &Tensor<f64>,
        _: usize,
        _: &[Condition],
    ) -> Result<Tensor<f64>, ModelError> {
        Ok(x.map(|v| v * self.0))
    }
}

#[test]
fn one_ddim_step_by_hand_and_the_final_alpha_quirk() {
    let s = Schedule::cipherdm();
    let x = Tensor::new(vec![1, 1, 1, 2], vec![0.5, -0.25]).unwrap();
    for quirk in [true, false] {
        let cfg = DdimConfig {
            steps: 1,
            offset: 1,
            clip_x0: false,
            final_alpha_quirk: quirk,
            eta: 0.0,
        };
        let out = ddim(
            &s,
            &cfg,
            &mut Linear(0.3),
            x.clone(),
            &[Condition::Class(0)],
            Guidance::None,
            0,
        )
        .unwrap();
        let a = s.alphas_cumprod[1];
        let a_prev = if quirk { s.alphas_cumprod[0] } else { 1.0 };
        for (o, &xv) in out.data().iter().zip(x.data()) {
            let e = 0.3 * xv;
            let x0 = (xv - (1.0 - a).sqrt() * e) / a.sqrt();
            let want = a_prev.sqrt() * x0 + (1.0 - a_prev).sqrt() * e;
            assert!((o - want).abs() < 1e-15, "quirk {quirk}");
        }
    }
}

#[test]
fn clipping_bounds_x0_and_seeds_reproduce() {
    let s = Schedule::cipherdm();
    let x = initial_noise(9, vec![2, 1, 4, 4]);
    let conds = [Condition::Class(0), Condition::Class(1)];
    let cfg = DdimConfig {
        final_alpha_quirk: false,
        ..DdimConfig::cipherdm()
    };
    // ε = −3x pushes x̂0 far outside [−1, 1]; with clipping the result stays inside.
    let out = ddim(
        &s,
        &cfg,
        &mut Linear(-3.0),
        x.clone(),
        &conds,
        Guidance::None,
        0,
    )
    .unwrap();
    assert!(out.data().iter().all(|v| v.abs() <= 1.0 + 1e-12));
    // Stochastic DDIM and DDPM: same seed, same result; other seed, other result.
    let noisy = DdimConfig { eta: 1.0, ..cfg };
    let a = ddim(
        &s,
        &noisy,
        &mut Linear(0.1),
        x.clone(),
        &conds,
        Guidance::None,
        1,
    )
    .unwrap();
    let b = ddim(
        &s,
        &noisy,
        &mut Linear(0.1),
        x.clone(),
        &conds,
        Guidance::None,
        1,
    )
    .unwrap();
    let c = ddim(
        &s,
        &noisy,
        &mut Linear(0.1),
        x.clone(),
        &conds,
        Guidance::None,
        2,
    )
    .unwrap();
    assert_eq!(a, b);
    assert!(a.max_abs_diff(&c).unwrap() > 1e-3);
    let a = ddpm(&s, &mut Linear(0.1), x.clone(), &conds, Guidance::None, 1).unwrap();
    let b = ddpm(&s, &mut Linear(0.1), x.clone(), &conds, Guidance::None, 1).unwrap();
    assert_eq!(a, b);
    assert!(a.data().iter().all(|v| v.is_finite()));
    // Wrong batch: typed error.
    assert!(matches!(
        ddim(
            &s,
            &cfg,
            &mut Linear(0.1),
            x,
            &conds[..1],
            Guidance::None,
            0
        ),
        Err(ModelError::Shape(_))
    ));
}

/// Returns `a` for class inputs and `b` for the mean condition.
struct TwoValued(f64, f64);
impl Denoiser for TwoValued {
    fn eps(
        &mut self,
        x: &Tensor<f64>,
        _: usize,
        c: &[Condition],
    ) -> Result<Tensor<f64>, ModelError> {
        let v = if c[0] == Condition::Mean {
            self.1
        } else {
            self.0
        };
        Ok(x.map(|_| v))
    }
}

#[test]
fn guidance_formulas() {
    let s = Schedule::cipherdm();
    let x = Tensor::new(vec![1, 1, 1, 1], vec![0.2]).unwrap();
    let cfg = DdimConfig {
        steps: 1,
        offset: 500,
        clip_x0: false,
        final_alpha_quirk: false,
        eta: 0.0,
    };
    let a = s.alphas_cumprod[500];
    let step = |e: f64| (0.2 - (1.0 - a).sqrt() * e) / a.sqrt();
    // Classifier-free: (1 + w)·c − w·u.
    let out = ddim(
        &s,
        &cfg,
        &mut TwoValued(0.4, 0.1),
        x.clone(),
        &[Condition::Class(1)],
        Guidance::ClassifierFree { w: 2.0 },
        0,
    )
    .unwrap();
    assert!((out.data()[0] - step(3.0 * 0.4 - 2.0 * 0.1)).abs() < 1e-12);
    // The guidance family on one step at t = 500: the sampled model says 0.4 (class) and
    // 0.1 (mean), the exact reference -0.3 for the mean.
    let b = s.betas[500];
    let snr = ((1.0 - a) / a).sqrt();
    let cases = [
        ("paper:0.1:snr", 0.4 + 0.1 * snr * (-0.3 - 0.4)),
        (
            "paper:0.1:beta",
            0.4 + 0.1 * b.sqrt() / (1.0 - b) * (-0.3 - 0.4),
        ),
        ("paper:0.1:constant", 0.4 + 0.1 * (-0.3 - 0.4)),
        ("paper:20:capped", 0.4 + 1.0 * (-0.3 - 0.4)),
        (
            "paper:0.1:capped",
            0.4 + (0.1 * snr).min(1.0) * (-0.3 - 0.4),
        ),
        // The correction adds γ times the reference's minus the model's unconditional ε.
        ("correction:0.5", 0.4 + 0.5 * (-0.3 - 0.1)),
        // Corrected down to t = 500 inclusive; stopped above it.
        ("correction:0.5:500", 0.4 + 0.5 * (-0.3 - 0.1)),
        ("correction:0.5:501", 0.4),
    ];
    for (spec, want) in cases {
        let guidance = match spec.parse::<ScoreGuidance>() {
            Ok(g) => g,
            // η = 20 is above the parser's bound; build it directly.
            Err(_) => ScoreGuidance::Unconditional {
                eta: 20.0,
                weight: GuidanceWeight::Capped,
            },
        };
        let mut reference = TwoValued(9.0, -0.3);
        let out = ddim(
            &s,
            &cfg,
            &mut TwoValued(0.4, 0.1),
            x.clone(),
            &[Condition::Class(1)],
            Guidance::Score {
                guidance,
                reference: &mut reference,
            },
            0,
        )
        .unwrap();
        assert!((out.data()[0] - step(want)).abs() < 1e-12, "{spec}");
    }
    // The correction is exactly zero when the model is the reference.
    let out = ddim(
        &s,
        &cfg,
        &mut TwoValued(0.4, 0.1),
        x,
        &[Condition::Class(1)],
        Guidance::Score {
            guidance: ScoreGuidance::ErrorCancelling {
                gamma: 1.0,
                down_to: 0,
            },
            reference: &mut TwoValued(0.4, 0.1),
        },
        0,
    )
    .unwrap();
    assert_eq!(out.data()[0], step(0.4));
}

#[test]
fn guidance_specs_parse_or_name_the_problem() {
    use cipherdm_models::guidance::parse_guidance;
    assert_eq!(parse_guidance("none").unwrap(), None);
    assert_eq!(
        parse_guidance("0.1").unwrap(),
        Some(ScoreGuidance::Unconditional {
            eta: 0.1,
            weight: GuidanceWeight::Snr
        })
    );
    for w in GuidanceWeight::ALL {
        let g = ScoreGuidance::Unconditional {
            eta: 0.3,
            weight: w,
        };
        assert_eq!(g.to_string().parse::<ScoreGuidance>().unwrap(), g);
    }
    for down_to in [0, 600, 999] {
        let g = ScoreGuidance::ErrorCancelling {
            gamma: 1.0,
            down_to,
        };
        assert_eq!(g.to_string().parse::<ScoreGuidance>().unwrap(), g);
    }
    for bad in [
        "paper:x",
        "paper:0.1:sideways",
        "correction:-1",
        "correction:11",
        "correction:1:1000",
        "correction:1:-5",
        "correction:1:early",
        "nan",
        "a:b:c:d",
    ] {
        assert!(
            matches!(parse_guidance(bad), Err(ModelError::Config(_))),
            "{bad}"
        );
    }
}

/// The guided-rows note of RESULTS.md states γ_t = η·σ_t/α_t from the schedule: for
/// η = 0.1 it passes 1 from t = 681 on (16 of the 50 steps) and peaks at t = 981.
#[test]
fn guidance_weight_note_counts_the_steps_with_gamma_over_one() {
    let s = Schedule::cipherdm();
    assert!(0.1 * s.snr_weight(681) > 1.0 && 0.1 * s.snr_weight(661) < 1.0);
    let note = cipherdm_models::results::guidance_weight_note().unwrap();
    assert!(
        note.contains("for η = 0.1 it exceeds 1 at 16 of the 50 steps (up to 13.14 at t = 981)"),
        "{note}"
    );
}
