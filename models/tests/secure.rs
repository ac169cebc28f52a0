//! The secure backend and samplers against `plain-approx`, privacy guards and share-file
//! errors.

mod common;

use cipherdm_kernel::approx::Profile;
use cipherdm_kernel::exec::public_share as public;
use cipherdm_kernel::exec::{SecureBackend, run};
use cipherdm_kernel::protocols as pr;
use cipherdm_kernel::{FixedPoint, PartyId};
use cipherdm_models::guidance::ScoreGuidance;
use cipherdm_models::model::{Model, PlainDenoiser};
use cipherdm_models::plain::{Nonlinearity, PlainBackend};
use cipherdm_models::schedule::{Condition, DdimConfig, initial_noise};
use cipherdm_models::secure::session::{owner_weight_shares, user_label_shares};
use cipherdm_models::secure::{
    GuidanceRequest, PartyWeights, SampleRequest, Sampler, ShareFileError, ShareFileSource,
    sample_in_process, write_share_files,
};
use cipherdm_models::shipped;
use cipherdm_models::{Tensor, Weights};
use cipherdm_transport_mem::{MemConfig, run3_with};
use common::{PlainRecorder, SecureRecorder};
use rand_chacha::ChaCha12Rng;
use rand_core::SeedableRng;

fn mem() -> MemConfig {
    MemConfig {
        seed: Some(3),
        timeout: std::time::Duration::from_secs(120),
        ..MemConfig::default()
    }
}

/// One forward of `model` on shares and in `plain-approx`, compared layer by layer.
/// Returns the largest error relative to the layer's scale, and panics naming the
/// first layer past `tol`.
fn compare_forward(model: &Model, weights: &Weights<f64>, profile: Profile, tol: f64) -> f64 {
    let [c, h, w] = model.image_shape();
    let x = initial_noise(5, vec![2, c, h, w]);
    let labels = [1usize, 0];
    let t = 501;
    let conds: Vec<Condition> = labels.iter().map(|&l| Condition::Class(l)).collect();

    let mut plain = PlainBackend::new(weights.clone(), Nonlinearity::Approx(profile));
    let mut rec = PlainRecorder {
        inner: &mut plain,
        values: Vec::new(),
    };
    let inputs = model.inputs(&x, t, &conds).unwrap();
    run(&model.graph, &mut rec, inputs).unwrap();
    let want = rec.values;

    let fixed = FixedPoint::default();
    let mut rng = ChaCha12Rng::seed_from_u64(9);
    let sets = owner_weight_shares(model, weights, fixed, &mut rng).unwrap();
    let label_shares = user_label_shares(model, &labels, fixed, &mut rng).unwrap();
    let [s0, s1, s2] = sets;
    let [l0, l1, l2] = label_shares;
    let out = run3_with(&mem(), [(s0, l0), (s1, l1), (s2, l2)], |p, (w, l)| {
        let xs = public(p, x.data(), x.shape()).unwrap();
        let mut values = Vec::new();
        let inner = SecureBackend::new(p, &model.graph, w, profile).unwrap();
        let mut rec = SecureRecorder {
            inner,
            values: &mut values,
        };
        let feats = model.time_features(t as f64);
        let time_rows: Vec<f64> = (0..2).flat_map(|_| feats.clone()).collect();
        let time = public(rec.inner.party(), &time_rows, &[2, feats.len()]).unwrap();
        run(
            &model.graph,
            &mut rec,
            vec![("x", xs), ("time", time), ("label", l)],
        )
        .unwrap();
        Ok(values)
    });
    let got = out.into_iter().next().unwrap().unwrap();
    assert_eq!(got.len(), want.len());
    let mut worst: f64 = 0.0;
    for ((name, w), g) in want.iter().zip(&got) {
        let (err, scale) = common::relative_error(w, g);
        assert!(
            err <= tol,
            "first divergent layer `{name}`: max error {err:.2e} of scale {scale:.2}"
        );
        worst = worst.max(err);
    }
    worst
}

#[test]
fn tiny_secure_forward_matches_plain_approx_layer_by_layer() {
    let (model, weights) = shipped::model("tiny").unwrap();
    // Tolerance: fixed-point error (≤ 2e-3 of the layer's scale); CipherDm's piecewise
    // SiLU jumps at its segment ends, so an input within the fixed-point error of an end
    // can land on the other piece: 2e-2 of scale.
    for (profile, tol) in [(Profile::Accurate, 2e-3), (Profile::CipherDm, 2e-2)] {
        let worst = compare_forward(&model, &weights, profile, tol);
        eprintln!("tiny {profile:?}: worst relative layer error {worst:.2e}");
    }
}

#[test]
fn mnist_secure_forward_matches_plain_approx_layer_by_layer() {
    let (model, weights) = shipped::model("mnist").unwrap();
    let worst = compare_forward(&model, &weights, Profile::Accurate, 2e-3);
    eprintln!("mnist Accurate: worst relative layer error {worst:.2e}");
}

fn psnr(a: &Tensor<f64>, b: &Tensor<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    let mse = a
        .data()
        .iter()
        .zip(b.data())
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    // Images span [-1, 1]: peak-to-peak 2.
    10.0 * (4.0 / mse.max(1e-30)).log10()
}

fn request(
    model: &Model,
    profile: Profile,
    labels: Vec<usize>,
    steps: usize,
    guidance: GuidanceRequest,
) -> SampleRequest {
    SampleRequest {
        model: model.clone(),
        profile,
        labels,
        sampler: Sampler::Ddim(DdimConfig {
            steps,
            ..DdimConfig::cipherdm()
        }),
        guidance,
        seed: 11,
    }
}

fn memory_shares(model: &Model, weights: &Weights<f64>) -> PartyWeights {
    let mut rng = ChaCha12Rng::seed_from_u64(21);
    PartyWeights::Memory(Box::new(
        owner_weight_shares(model, weights, FixedPoint::default(), &mut rng).unwrap(),
    ))
}

#[test]
fn tiny_50_step_secure_sample_matches_plain_approx_and_opens_only_the_image() {
    let (model, weights) = shipped::model("tiny").unwrap();
    let profile = Profile::CipherDm;
    let labels = vec![0, 1];
    let req = request(&model, profile, labels.clone(), 50, GuidanceRequest::None);
    let steps = std::sync::atomic::AtomicUsize::new(0);
    let out = sample_in_process(&req, memory_shares(&model, &weights), None, &mem(), &|r| {
        steps.store(r.done, std::sync::atomic::Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(steps.into_inner(), 50);
    let plain = cipherdm_models::model::sample_plain(
        &model,
        &weights,
        Nonlinearity::Approx(profile),
        &labels,
        None,
        50,
        11,
    )
    .unwrap();
    let db = psnr(&out.image, &plain);
    eprintln!("tiny 50-step secure vs plain-approx: PSNR {db:.1} dB");
    assert!(db >= 35.0, "PSNR {db:.1} dB");
    // Privacy guards: no server was ever shown a secret; each handed exactly its share of
    // the image to the user.
    for (i, c) in out.costs.iter().enumerate() {
        assert_eq!(c.opened_to, [0, 0, 0], "party {i} opened something");
        assert_eq!(c.output_to_client, out.image.len() as u64, "party {i}");
    }
}

#[test]
fn every_score_guidance_on_shares_equals_its_plaintext_formula() {
    let (model, weights) = shipped::model("tiny").unwrap();
    let profile = Profile::Loose;
    let labels = vec![1, 0];
    let plain = |g: Option<ScoreGuidance>| {
        cipherdm_models::model::sample_plain(
            &model,
            &weights,
            Nonlinearity::Approx(profile),
            &labels,
            g,
            10,
            11,
        )
        .unwrap()
    };
    let unguided = plain(None);
    for spec in [
        "paper:0.3:snr",
        "paper:0.3:beta",
        "paper:0.3:constant",
        "paper:0.3:capped",
        "correction:1",
        "correction:1:500",
    ] {
        let g: ScoreGuidance = spec.parse().unwrap();
        let req = request(
            &model,
            profile,
            labels.clone(),
            10,
            GuidanceRequest::Score(g),
        );
        let out = sample_in_process(
            &req,
            memory_shares(&model, &weights),
            Some(&weights),
            &mem(),
            &|_| {},
        )
        .unwrap();
        let want = plain(Some(g));
        let db = psnr(&out.image, &want);
        let moved = psnr(&want, &unguided);
        eprintln!("{spec}: secure vs plain {db:.1} dB; guided vs unguided plain {moved:.1} dB");
        assert!(db >= 35.0, "{spec}: PSNR {db:.1} dB");
        // Where the guidance moves the sample, the secure result follows the guided one.
        if moved < db - 6.0 {
            assert!(psnr(&out.image, &unguided) < db - 3.0, "{spec}");
        }
    }
}

#[test]
fn classifier_free_guidance_on_shares_matches_plaintext() {
    let (model, weights) = shipped::model("tiny").unwrap();
    let profile = Profile::Accurate;
    let labels = vec![0];
    let req = request(
        &model,
        profile,
        labels.clone(),
        5,
        GuidanceRequest::ClassifierFree(1.5),
    );
    let out =
        sample_in_process(&req, memory_shares(&model, &weights), None, &mem(), &|_| {}).unwrap();
    let mut net = PlainDenoiser::new(
        model.clone(),
        weights.clone(),
        Nonlinearity::Approx(profile),
    )
    .unwrap();
    let [c, h, w] = model.image_shape();
    let plain = cipherdm_models::schedule::ddim(
        &cipherdm_models::schedule::Schedule::cipherdm(),
        &DdimConfig {
            steps: 5,
            ..DdimConfig::cipherdm()
        },
        &mut net,
        initial_noise(11, vec![1, c, h, w]),
        &[Condition::Class(0)],
        cipherdm_models::schedule::Guidance::ClassifierFree { w: 1.5 },
        11,
    )
    .unwrap();
    let db = psnr(&out.image, &plain);
    assert!(db >= 35.0, "PSNR {db:.1} dB");
}

#[test]
fn servers_hold_random_looking_shares_of_labels_and_weights() {
    let (model, weights) = shipped::model("tiny").unwrap();
    let fixed = FixedPoint::default();
    let mut rng = ChaCha12Rng::seed_from_u64(4);
    let labels = user_label_shares(&model, &[1, 0, 1], fixed, &mut rng).unwrap();
    let one: u64 = fixed.encode(1.0).unwrap();
    for s in &labels {
        for v in s.this().iter().chain(s.next()) {
            assert!(*v != 0 && *v != one, "a label component is in the clear");
        }
    }
    let dir = tempdir("random");
    let paths = write_share_files(
        &model.graph,
        &weights,
        "cipherdm-tiny",
        fixed,
        &dir,
        "tiny",
        None,
    )
    .unwrap();
    for (i, path) in paths.iter().enumerate() {
        let mut src =
            ShareFileSource::open(path, PartyId::ALL[i], &model.graph, "cipherdm-tiny", fixed)
                .unwrap();
        for spec in &model.graph.weights {
            use cipherdm_kernel::exec::WeightSource;
            let sh = src
                .fetch(
                    &spec.name,
                    &cipherdm_kernel::Shape::new(&spec.shape).unwrap(),
                )
                .unwrap();
            let plain = weights.get(&spec.name).unwrap().data();
            let same = sh
                .this()
                .iter()
                .chain(sh.next())
                .zip(plain.iter().chain(plain))
                .filter(|(s, p)| **s == fixed.encode::<u64>(**p).unwrap())
                .count();
            assert_eq!(same, 0, "party {i} holds `{}` in the clear", spec.name);
        }
    }
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("cipherdm-secure-test-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Share and guidance files are secret: readable and writable by their owner only.
fn assert_owner_only(paths: &[std::path::PathBuf]) {
    #[cfg(unix)]
    for p in paths {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", p.display());
    }
    #[cfg(not(unix))]
    let _ = paths;
}

#[test]
fn share_files_sample_and_each_bad_file_has_its_own_error() {
    let (model, weights) = shipped::model("tiny").unwrap();
    let fixed = FixedPoint::default();
    let dir = tempdir("files");
    let paths = write_share_files(
        &model.graph,
        &weights,
        "cipherdm-tiny",
        fixed,
        &dir,
        "tiny",
        None,
    )
    .unwrap();
    assert_owner_only(&paths);

    // A 2-step sample from the files equals the in-memory one within fixed point.
    let req = request(&model, Profile::Accurate, vec![1], 2, GuidanceRequest::None);
    let from_files = sample_in_process(
        &req,
        PartyWeights::Files {
            paths: paths.clone(),
            model_id: "cipherdm-tiny".into(),
        },
        None,
        &mem(),
        &|_| {},
    )
    .unwrap();
    let from_memory =
        sample_in_process(&req, memory_shares(&model, &weights), None, &mem(), &|_| {}).unwrap();
    assert!(psnr(&from_files.image, &from_memory.image) > 60.0);

    let open =
        |path: &std::path::Path, me: usize, graph: &cipherdm_kernel::graph::Graph, id: &str| {
            ShareFileSource::open(path, PartyId::ALL[me], graph, id, fixed).err()
        };
    // Another party's file.
    assert!(matches!(
        open(&paths[1], 0, &model.graph, "cipherdm-tiny"),
        Some(ShareFileError::WrongParty { file: 1, me: 0, .. })
    ));
    // Another model id.
    assert!(matches!(
        open(&paths[0], 0, &model.graph, "mnist"),
        Some(ShareFileError::WrongModel { .. })
    ));
    // Another architecture under the same id.
    let mnist = Model::unet2d(cipherdm_models::unet2d::Config::mnist()).unwrap();
    assert!(matches!(
        open(&paths[0], 0, &mnist.graph, "cipherdm-tiny"),
        Some(ShareFileError::WrongArchitecture(_))
    ));
    // Another fixed-point format.
    let f16 = FixedPoint::new(16).unwrap();
    assert!(matches!(
        ShareFileSource::open(&paths[0], PartyId::P0, &model.graph, "cipherdm-tiny", f16).err(),
        Some(ShareFileError::WrongEncoding { .. })
    ));
    // Truncated.
    let bytes = std::fs::read(&paths[0]).unwrap();
    let cut = dir.join("cut.shares");
    std::fs::write(&cut, &bytes[..bytes.len() - 8]).unwrap();
    assert!(matches!(
        open(&cut, 0, &model.graph, "cipherdm-tiny"),
        Some(ShareFileError::Truncated { .. })
    ));
    // Absent.
    assert!(matches!(
        open(&dir.join("absent.shares"), 0, &model.graph, "cipherdm-tiny"),
        Some(ShareFileError::Open { .. })
    ));
    // Not a share file at all, and a header that lies about its length.
    let junk = dir.join("junk.shares");
    std::fs::write(&junk, b"safetensors? no").unwrap();
    assert!(matches!(
        open(&junk, 0, &model.graph, "cipherdm-tiny"),
        Some(ShareFileError::NotAShareFile(_))
    ));
    let mut lying = bytes.clone();
    lying[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&junk, &lying).unwrap();
    assert!(matches!(
        open(&junk, 0, &model.graph, "cipherdm-tiny"),
        Some(ShareFileError::Header { .. })
    ));
    // Files of two different splits.
    let other = write_share_files(
        &model.graph,
        &weights,
        "cipherdm-tiny",
        fixed,
        &dir.join("b"),
        "tiny",
        None,
    )
    .unwrap();
    let h = |p: &std::path::Path, i: usize| {
        ShareFileSource::open(p, PartyId::ALL[i], &model.graph, "cipherdm-tiny", fixed)
            .unwrap()
            .header()
            .clone()
    };
    let (h0, h1, h2) = (h(&paths[0], 0), h(&other[1], 1), h(&paths[2], 2));
    assert!(matches!(
        ShareFileSource::check_same_split([&h0, &h1, &h2]),
        Err(ShareFileError::MixedSplits)
    ));
    let err = sample_in_process(
        &req,
        PartyWeights::Files {
            paths: [paths[0].clone(), other[1].clone(), paths[2].clone()],
            model_id: "cipherdm-tiny".into(),
        },
        None,
        &mem(),
        &|_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("different splits"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn secure_ddpm_matches_plaintext_ddpm_on_a_short_schedule() {
    use cipherdm_models::schedule::{Guidance, Schedule, ddpm};
    use cipherdm_models::secure::{SecureGuidance, secure_ddpm};
    let (model, weights) = shipped::model("tiny").unwrap();
    let profile = Profile::Accurate;
    let schedule = Schedule::linear(6, 1e-2, 0.3);
    let labels = [1usize];
    let mut net = PlainDenoiser::new(
        model.clone(),
        weights.clone(),
        Nonlinearity::Approx(profile),
    )
    .unwrap();
    let [c, h, w] = model.image_shape();
    let plain = ddpm(
        &schedule,
        &mut net,
        initial_noise(8, vec![1, c, h, w]),
        &[Condition::Class(1)],
        Guidance::None,
        8,
    )
    .unwrap();
    let fixed = FixedPoint::default();
    let mut rng = ChaCha12Rng::seed_from_u64(2);
    let [s0, s1, s2] = owner_weight_shares(&model, &weights, fixed, &mut rng).unwrap();
    let [l0, l1, l2] = user_label_shares(&model, &labels, fixed, &mut rng).unwrap();
    let out = run3_with(&mem(), [(s0, l0), (s1, l1), (s2, l2)], |p, (ws, l)| {
        let mut b = SecureBackend::new(p, &model.graph, ws, profile).unwrap();
        let x = secure_ddpm(
            &mut b,
            &model,
            &schedule,
            &l,
            &SecureGuidance::None,
            8,
            &mut |_| cipherdm_models::secure::StepFlow::Continue,
        )
        .unwrap();
        pr::open(p, &x)
    });
    let got = out.into_iter().next().unwrap().unwrap();
    let got = Tensor::new(
        plain.shape().to_vec(),
        got.iter().map(|&v| fixed.decode(v)).collect(),
    )
    .unwrap();
    let db = psnr(&got, &plain);
    assert!(db >= 35.0, "PSNR {db:.1} dB");
}

/// Party 0's stop after a step reaches the other two: all three end with `Cancelled`
/// after the same step, whatever the others answer.
#[test]
fn party_0s_stop_after_a_step_cancels_all_three_together() {
    use cipherdm_models::ModelError;
    use cipherdm_models::schedule::Schedule;
    use cipherdm_models::secure::{SecureGuidance, StepFlow, secure_ddpm};
    let (model, weights) = shipped::model("tiny").unwrap();
    let schedule = Schedule::linear(6, 1e-2, 0.3);
    let fixed = FixedPoint::default();
    let mut rng = ChaCha12Rng::seed_from_u64(3);
    let [s0, s1, s2] = owner_weight_shares(&model, &weights, fixed, &mut rng).unwrap();
    let [l0, l1, l2] = user_label_shares(&model, &[1], fixed, &mut rng).unwrap();
    let out = run3_with(&mem(), [(s0, l0), (s1, l1), (s2, l2)], |p, (ws, l)| {
        let me = p.id();
        let mut b = SecureBackend::new(p, &model.graph, ws, Profile::Accurate).unwrap();
        let mut steps = 0;
        let r = secure_ddpm(
            &mut b,
            &model,
            &schedule,
            &l,
            &SecureGuidance::None,
            8,
            &mut |r| {
                steps = r.done;
                // Only party 0's answer counts: the others ask to stop at once.
                StepFlow::Agree {
                    stop: if me == PartyId::P0 { r.done == 2 } else { true },
                }
            },
        );
        Ok((r.map(|_| ()), steps))
    });
    for r in out {
        let (result, steps) = r.unwrap();
        assert!(
            matches!(result, Err(ModelError::Cancelled { after_steps: 2 })),
            "{result:?}"
        );
        assert_eq!(steps, 2);
    }
}

#[test]
fn mnist_secure_sample_matches_plain_approx() {
    let (model, weights) = shipped::model("mnist").unwrap();
    let profile = Profile::Accurate;
    let labels = vec![7];
    let req = request(
        &model,
        profile,
        labels.clone(),
        3,
        GuidanceRequest::Score(ScoreGuidance::DEFAULT),
    );
    let out = sample_in_process(
        &req,
        memory_shares(&model, &weights),
        Some(&weights),
        &mem(),
        &|_| {},
    )
    .unwrap();
    let plain = cipherdm_models::model::sample_plain(
        &model,
        &weights,
        Nonlinearity::Approx(profile),
        &labels,
        Some(ScoreGuidance::DEFAULT),
        3,
        11,
    )
    .unwrap();
    let db = psnr(&out.image, &plain);
    eprintln!("mnist 3-step secure vs plain-approx: PSNR {db:.1} dB");
    assert!(db >= 35.0, "PSNR {db:.1} dB");
}

#[test]
fn guidance_files_round_trip_and_refuse_other_jobs() {
    use cipherdm_models::secure::guidance_file::{
        GuidanceBinding, open_guidance, read_guidance, write_guidance_files,
    };
    let (model, weights) = shipped::model("tiny").unwrap();
    let fixed = FixedPoint::default();
    let guidance: ScoreGuidance = "correction:1".parse().unwrap();
    let binding = GuidanceBinding::new("tiny", &model, 3, 2, 1, &guidance, Profile::CipherDm);
    let dir = std::env::temp_dir().join(format!("cdm-guidance-{}", std::process::id()));
    let mut rng = ChaCha12Rng::seed_from_u64(5);
    let paths = write_guidance_files(&model, &weights, &binding, fixed, &dir, &mut rng).unwrap();
    assert_owner_only(&paths);
    let image = cipherdm_kernel::Shape::new(&[1, 1, 28, 28]).unwrap();
    // The three parties' shares reconstruct the owner's tensors.
    let want = cipherdm_models::guidance::owner_tensors(
        &model,
        &weights,
        &guidance,
        Nonlinearity::Approx(Profile::CipherDm),
        &DdimConfig {
            steps: 2,
            ..DdimConfig::cipherdm()
        },
        1,
        3,
    )
    .unwrap();
    let got: Vec<_> = PartyId::ALL
        .iter()
        .map(|&p| open_guidance(&dir, p, &binding, fixed, &image).unwrap())
        .collect();
    for step in 0..2 {
        let opened =
            cipherdm_kernel::share::reconstruct([&got[0][step], &got[1][step], &got[2][step]])
                .unwrap();
        for (o, w) in opened.iter().zip(want[step].data()) {
            assert!((fixed.decode(*o) - w).abs() < 1e-5);
        }
    }
    // Another job's binding, another party's file, a truncated file: each its own error.
    let bytes = std::fs::read(&paths[1]).unwrap();
    let read = |b: Vec<u8>, me: PartyId, want: &GuidanceBinding| {
        read_guidance(std::io::Cursor::new(b), "p1", me, want, fixed, &image)
    };
    let mut other = binding.clone();
    other.steps = 3;
    assert!(matches!(
        read(bytes.clone(), PartyId::P1, &other),
        Err(ShareFileError::Binding { .. })
    ));
    assert!(matches!(
        read(bytes.clone(), PartyId::P2, &binding),
        Err(ShareFileError::WrongParty { file: 1, me: 2, .. })
    ));
    assert!(matches!(
        read(bytes[..bytes.len() - 8].to_vec(), PartyId::P1, &binding),
        Err(ShareFileError::Truncated { .. })
    ));
    assert!(matches!(
        read(b"CDMSHARE".to_vec(), PartyId::P1, &binding),
        Err(ShareFileError::NotAShareFile(_))
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

/// One flipped bit in the data area of a party's share file fails the sample before
/// anything is output, naming the party and the tensor (it used to give a wrong image
/// silently); the untouched files still sample.
#[test]
fn a_flipped_bit_in_a_share_file_fails_the_sample_naming_party_and_tensor() {
    let (model, weights) = shipped::model("tiny").unwrap();
    let fixed = FixedPoint::default();
    let dir = tempdir("corrupt");
    let paths = write_share_files(
        &model.graph,
        &weights,
        "cipherdm-tiny",
        fixed,
        &dir,
        "tiny",
        None,
    )
    .unwrap();
    let source = |p: &std::path::Path| {
        ShareFileSource::open(p, PartyId::P1, &model.graph, "cipherdm-tiny", fixed).unwrap()
    };
    // The last tensor in file order, and a bit in the middle of its data.
    let (name, _) = source(&paths[1]).header().tensors.last().unwrap().clone();
    let mut bytes = std::fs::read(&paths[1]).unwrap();
    let at = bytes.len() - 4;
    bytes[at] ^= 0x10;
    std::fs::write(&paths[1], &bytes).unwrap();
    let req = request(&model, Profile::Accurate, vec![1], 1, GuidanceRequest::None);
    let err = sample_in_process(
        &req,
        PartyWeights::Files {
            paths: paths.clone(),
            model_id: "cipherdm-tiny".into(),
        },
        None,
        &mem(),
        &|_| {},
    )
    .unwrap_err();
    match &err {
        cipherdm_models::ModelError::ShareFile(ShareFileError::Corrupt {
            party, name: n, ..
        }) => assert_eq!((*party, n.as_str()), (1, name.as_str())),
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains(&format!("`{name}`")), "{err}");
    // Flipped back, the same files sample again.
    bytes[at] ^= 0x10;
    std::fs::write(&paths[1], &bytes).unwrap();
    let again = sample_in_process(
        &req,
        PartyWeights::Files {
            paths,
            model_id: "cipherdm-tiny".into(),
        },
        None,
        &mem(),
        &|_| {},
    );
    assert!(again.is_ok());
}
