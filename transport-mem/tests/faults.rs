//! Each injected fault gives its documented error within the timeout; nothing hangs.

use std::time::{Duration, Instant};

use cipherdm_kernel::protocols as pr;
use cipherdm_kernel::share::ArithShare;
use cipherdm_kernel::{Error, PartyId, Shape, TransportError};
use cipherdm_transport_mem::{Fault, FaultKind, MemConfig, run3};

const TIMEOUT: Duration = Duration::from_millis(300);

fn cfg(faults: Vec<Fault>) -> MemConfig {
    MemConfig {
        timeout: TIMEOUT,
        faults,
        seed: Some(1),
        ..MemConfig::default()
    }
}

/// Set-up (message 0 on every link) then one `mul` (message 1 from each party to its
/// predecessor) and one `open` (message 1 or 2 to the successor).
fn mul_then_open(cfg: &MemConfig) -> [Result<Vec<u64>, Error>; 3] {
    run3(cfg, |p| {
        let x = ArithShare::<u64>::zeros(Shape::vector(16)).add_public_scalar(p.id(), 3);
        let y = pr::mul(p, &x, &x)?;
        pr::open(p, &y)
    })
}

fn fault(from: usize, to: usize, nth: u64, kind: FaultKind) -> Fault {
    Fault {
        from: PartyId::new(from).unwrap(),
        to: PartyId::new(to).unwrap(),
        nth,
        kind,
    }
}

fn transport_err(r: &Result<Vec<u64>, Error>) -> &TransportError {
    match r {
        Err(Error::Transport(e)) => e,
        other => panic!("expected a transport error, got {other:?}"),
    }
}

#[test]
fn no_fault_works() {
    for r in mul_then_open(&cfg(vec![])) {
        assert_eq!(r.unwrap(), vec![9; 16]);
    }
}

#[test]
fn corrupt_is_detected() {
    // P1 -> P0 message 1 is P1's product share in `mul`.
    let out = mul_then_open(&cfg(vec![fault(1, 0, 1, FaultKind::Corrupt)]));
    assert_eq!(
        transport_err(&out[0]),
        &TransportError::Corrupt { peer: PartyId::P1 }
    );
}

#[test]
fn drop_without_followup_times_out() {
    // P1's `mul` message to P0 vanishes and P1 sends P0 nothing after it.
    let t = Instant::now();
    let out = mul_then_open(&cfg(vec![fault(1, 0, 1, FaultKind::Drop)]));
    // P0 waits for the lost message; P1 waits for P0 in `open`. Both time out after the
    // same delay, so P0 sees either its own timeout or P1 leaving first.
    assert!(matches!(
        transport_err(&out[0]),
        TransportError::Timeout {
            peer: PartyId::P1,
            after_ms: 300
        } | TransportError::Closed { peer: PartyId::P1 }
    ));
    assert!(out[1].is_err());
    assert!(
        t.elapsed() < TIMEOUT * 10,
        "the error came within the timeout"
    );
}

#[test]
fn drop_with_followup_is_out_of_sequence() {
    // Link P0 -> P1 carries message 0 (set-up) then message 1 (`open`). With message 0
    // dropped, P1's set-up receive gets message 1.
    let out = run3(&cfg(vec![fault(0, 1, 0, FaultKind::Drop)]), |p| {
        let x = ArithShare::<u64>::zeros(Shape::vector(4));
        pr::open(p, &x)
    });
    assert_eq!(
        transport_err(&out[1]),
        &TransportError::OutOfSequence {
            peer: PartyId::P0,
            expected: 0,
            got: 1
        }
    );
}

#[test]
fn short_delay_is_tolerated_and_long_delay_times_out() {
    let ok = mul_then_open(&cfg(vec![fault(1, 0, 1, FaultKind::Delay(TIMEOUT / 3))]));
    for r in ok {
        assert_eq!(r.unwrap(), vec![9; 16]);
    }
    let t = Instant::now();
    let out = mul_then_open(&cfg(vec![fault(1, 0, 1, FaultKind::Delay(TIMEOUT * 20))]));
    assert!(matches!(
        transport_err(&out[0]),
        TransportError::Timeout {
            peer: PartyId::P1,
            ..
        }
    ));
    assert!(t.elapsed() < TIMEOUT * 10);
}

#[test]
fn close_reports_closed() {
    let out = mul_then_open(&cfg(vec![fault(1, 0, 1, FaultKind::Close)]));
    assert_eq!(
        transport_err(&out[0]),
        &TransportError::Closed { peer: PartyId::P1 }
    );
}

#[test]
fn a_vanished_peer_is_an_error_not_a_hang() {
    let t = Instant::now();
    let out = run3(&cfg(vec![]), |p| {
        if p.id() == PartyId::P2 {
            return Ok(vec![]); // leaves the session: its links close
        }
        let x = ArithShare::<u64>::zeros(Shape::vector(4));
        let y = pr::mul(p, &x, &x)?;
        pr::open(p, &y)
    });
    assert!(out[2].is_ok());
    // P0 cannot send its product share to P2 and P1 cannot receive P2's; whichever
    // notices first, both stop with `Closed` (possibly naming each other as they leave).
    for r in &out[..2] {
        assert!(
            matches!(transport_err(r), TransportError::Closed { .. }),
            "{r:?}"
        );
    }
    assert!(t.elapsed() < TIMEOUT * 10);
}

#[test]
fn silent_peer_times_out() {
    let t = Instant::now();
    let out = run3(&cfg(vec![]), |p| {
        if p.id() == PartyId::P2 {
            std::thread::sleep(TIMEOUT * 3); // alive but silent
            return Ok(vec![]);
        }
        let x = ArithShare::<u64>::zeros(Shape::vector(4));
        pr::mul(p, &x, &x).map(|s| s.this().to_vec())
    });
    assert!(matches!(
        transport_err(&out[1]),
        TransportError::Timeout {
            peer: PartyId::P2,
            after_ms: 300
        }
    ));
    assert!(t.elapsed() < TIMEOUT * 10);
}
