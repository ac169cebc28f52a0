//! The cost model (`models::secure::cost`, built on `kernel::estimate`) equals the
//! measured counters of a secure forward, layer by layer, on both U-Nets.

use cipherdm_bench::secure_forward;
use cipherdm_kernel::FixedPoint;
use cipherdm_kernel::approx::Profile;
use cipherdm_kernel::exec::cost;
use cipherdm_models::shipped;
use cipherdm_transport_mem::MemConfig;

fn check(model: &str, profile: Profile, batch: usize) {
    let (m, w) = shipped::model(model).unwrap();
    let f = FixedPoint::default().frac_bits();
    let est = cost::forward(&m.graph, batch, profile, f).unwrap();
    let run = secure_forward(&m, &w, profile, batch, &MemConfig::default()).unwrap();
    assert_eq!(est.len(), run.layers.len(), "{model}: layer count");
    for (e, r) in est.iter().zip(&run.layers) {
        assert_eq!(e.name, r.name);
        assert_eq!(
            (e.cost.bytes, e.cost.rounds),
            (r.cost.bytes_total(), r.cost.rounds),
            "{model} {profile:?} batch {batch}: layer `{}` ({}): estimate vs measured (bytes, rounds)",
            e.name,
            e.op
        );
    }
    let total: u64 = est.iter().map(|e| e.cost.bytes).sum();
    let rounds: u64 = est.iter().map(|e| e.cost.rounds).sum();
    assert_eq!(total, run.bytes(), "{model}: total bytes");
    assert_eq!(rounds, run.rounds(), "{model}: total rounds");
}

#[test]
fn cost_model_equals_the_measured_counters_on_tiny() {
    check("tiny", Profile::CipherDm, 1);
    check("tiny", Profile::Precise, 2);
}

#[test]
fn cost_model_equals_the_measured_counters_on_mnist() {
    check("mnist", Profile::Accurate, 1);
    check("mnist", Profile::Loose, 1);
}
