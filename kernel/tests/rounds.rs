//! The round scheduler: merged rounds equal the longer branch, errors keep their kind,
//! and a protocol that breaks the round discipline is an error, never a hang.

mod common;

use cipherdm_kernel::protocols as pr;
use cipherdm_kernel::{Error, Shape};
use cipherdm_transport_mem::run3_with;
use common::*;

#[test]
fn a_join_takes_the_rounds_of_its_longer_branch_and_both_results_are_right() {
    let x: Vec<u64> = enc(&[1.5, -2.0, 0.25, 3.0]);
    let shares = deal(&x, Shape::vector(4), 3);
    let out = ok3(run3_with(&cfg(), shares, |p, s| {
        let before = p.costs().total().rounds;
        let (sq, half) = p.run(async |br| {
            br.join(
                async |a| pr::mul_fixed_async(a, &s, &s).await,
                async |b| pr::trunc::trunc_async(b, &s, 1).await,
            )
            .await
        })?;
        let rounds = p.costs().total().rounds - before;
        Ok((pr::open(p, &sq)?, pr::open(p, &half)?, rounds))
    }));
    // mul_fixed (2 rounds) beside a truncation (2 rounds): 2, not 4.
    assert_eq!(out[0].2, 2);
    let want = [2.25, 4.0, 0.0625, 9.0];
    for (got, w) in dec(&out[0].0).iter().zip(want) {
        assert!((got - w).abs() < 1e-4, "{got} vs {w}");
    }
    for (got, w) in dec(&out[0].1).iter().zip([0.75, -1.0, 0.125, 1.5]) {
        assert!((got - w).abs() < 1e-4, "{got} vs {w}");
    }
}

#[test]
fn a_protocol_error_keeps_its_kind_even_with_receives_pending() {
    let out = run3_with(&cfg(), [(), (), ()], |p, ()| {
        let peer = p.id().next();
        p.run(async |br| -> Result<(), Error> {
            let _pending = br.recv_bytes(peer, 8)?;
            Err(Error::InvalidParameter("the protocol's own error"))
        })
    });
    for r in out {
        assert!(
            matches!(r, Err(Error::InvalidParameter("the protocol's own error"))),
            "{r:?}"
        );
    }
}

#[test]
fn waiting_on_nothing_is_an_inconsistency_not_a_hang() {
    let out = run3_with(&cfg(), [(), (), ()], |p, ()| {
        p.run(async |_| -> Result<(), Error> {
            core::future::pending::<()>().await;
            Ok(())
        })
    });
    for r in out {
        assert!(matches!(r, Err(Error::Inconsistent(_))), "{r:?}");
    }
}
