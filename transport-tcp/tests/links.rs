//! The TCP transport over real loopback sockets: full duplex under load, the kernel's
//! protocols bit-identical to the memory transport, and every refusal path.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use cipherdm_kernel::protocols::{mul, open};
use cipherdm_kernel::share::share_locally;
use cipherdm_kernel::{FixedPoint, PartyId, Shape, Transport, TransportError};
use cipherdm_transport_mem::MemConfig;
use cipherdm_transport_tcp::hello::{self, Hello, Role};
use cipherdm_transport_tcp::loopback::{LoopbackConfig, run3_with};
use cipherdm_transport_tcp::{Channel, KeyPair, LinkConfig, LinkError, Mode, TcpTransport};
use rand_chacha::ChaCha12Rng;
use rand_core::SeedableRng;

fn cfg(mode: Mode) -> LoopbackConfig {
    LoopbackConfig {
        link: LinkConfig {
            mode,
            timeout: Duration::from_secs(20),
            connect_deadline: Duration::from_secs(10),
            max_frame: 1 << 20,
        },
        fixed: FixedPoint::default(),
        seed: Some(5),
    }
}

#[test]
fn simultaneous_large_messages_do_not_deadlock() {
    // 24 MB each way on every link at once: far beyond any socket buffer.
    for mode in [Mode::Encrypted, Mode::Plaintext] {
        let n = 24 << 20;
        let res = run3_with(&cfg(mode), [(), (), ()], |p, ()| {
            let me = p.id();
            let msg: Vec<u8> = (0..n).map(|i| (i as u8) ^ (me.index() as u8)).collect();
            let t = p.transport_mut();
            t.send(me.next(), &msg).unwrap();
            t.send(me.prev(), &msg).unwrap();
            let mut a = vec![0u8; n];
            let mut b = vec![0u8; n];
            t.recv(me.prev(), &mut a).unwrap();
            t.recv(me.next(), &mut b).unwrap();
            t.flush().unwrap();
            let ok_a = a
                .iter()
                .enumerate()
                .all(|(i, &v)| v == (i as u8) ^ (me.prev().index() as u8));
            let ok_b = b
                .iter()
                .enumerate()
                .all(|(i, &v)| v == (i as u8) ^ (me.next().index() as u8));
            Ok((ok_a && ok_b, t.wire_stats()))
        });
        for r in res {
            let (ok, stats) = r.unwrap();
            assert!(ok, "{mode:?}: payload corrupted");
            for (_, s) in stats {
                // Framing (and tags when encrypted) are counted on the wire.
                assert!(s.sent > n as u64 && s.received > n as u64, "{s:?}");
                if mode == Mode::Encrypted {
                    assert!(s.sent > n as u64 + (n as u64 / 65_535) * 16);
                }
            }
        }
    }
}

type Job = (Vec<u64>, Vec<u64>);

fn job<T: Transport>(
    p: &mut cipherdm_kernel::Party<T>,
    s: cipherdm_kernel::ArithShare<u64>,
) -> Result<Job, cipherdm_kernel::Error> {
    let y = cipherdm_kernel::protocols::mul_fixed(p, &s, &s)?;
    let z = mul(p, &y, &s)?;
    let o = open(p, &z)?;
    Ok((y.into_components().0, o))
}

#[test]
fn protocols_over_tcp_equal_the_memory_transport_bit_for_bit() {
    let fixed = FixedPoint::default();
    let x: Vec<f64> = (0..1000).map(|i| (i as f64 - 500.0) / 97.0).collect();
    let mut enc = vec![0u64; x.len()];
    fixed.encode_slice(&x, &mut enc).unwrap();
    let mut rng = ChaCha12Rng::seed_from_u64(3);
    let shares = share_locally(&enc, Shape::new(&[1000]).unwrap(), &mut rng).unwrap();
    let mem = cipherdm_transport_mem::run3_with(
        &MemConfig {
            seed: Some(5),
            ..MemConfig::default()
        },
        shares.clone(),
        job,
    );
    let tcp = run3_with(&cfg(Mode::Encrypted), shares, |p, s| Ok(job(p, s)?));
    for (m, t) in mem.into_iter().zip(tcp) {
        assert_eq!(m.unwrap(), t.unwrap());
    }
}

fn pair(mode: Mode) -> (TcpListener, String, KeyPair, KeyPair, LinkConfig) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let cfg = LinkConfig {
        mode,
        timeout: Duration::from_millis(1500),
        connect_deadline: Duration::from_secs(5),
        max_frame: 1 << 16,
    };
    (
        l,
        addr,
        KeyPair::generate().unwrap(),
        KeyPair::generate().unwrap(),
        cfg,
    )
}

#[test]
fn a_stranger_key_is_refused_and_a_wrong_pin_fails_the_handshake() {
    let (l, addr, server, client, cfg) = pair(Mode::Encrypted);
    let stranger = KeyPair::generate().unwrap();
    let pinned = client.public;
    let srv_pub = server.public;
    let srv = std::thread::spawn(move || {
        let mut out = Vec::new();
        for _ in 0..3 {
            let (s, _) = l.accept().unwrap();
            out.push(Channel::accept(s, &server, &|k| *k == pinned, &cfg).map(|_| ()));
        }
        out
    });
    let server_pub = srv_pub;
    // 1. A stranger with its own key, pinning the right server key: refused.
    let e1 = Channel::connect(&addr, &stranger, &server_pub, &cfg);
    assert!(e1.is_err());
    // 2. Garbage bytes instead of a preamble: refused.
    let mut g = TcpStream::connect(&addr).unwrap();
    g.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut sink = Vec::new();
    let _ = g.read_to_end(&mut sink);
    // 3. The pinned client, pinning a wrong server key: the server cannot open it.
    let wrong = KeyPair::generate().unwrap().public;
    let e3 = Channel::connect(&addr, &client, &wrong, &cfg);
    assert!(e3.is_err());
    let server_side = srv.join().unwrap();
    assert!(server_side.iter().all(|r| r.is_err()), "{server_side:?}");
    let msgs: Vec<String> = server_side
        .into_iter()
        .map(|r| r.unwrap_err().to_string())
        .collect();
    assert!(msgs[1].contains("not a cipherdm link"), "{}", msgs[1]);
}

#[test]
fn pinned_peers_connect_and_mismatched_hellos_name_both_values() {
    let (l, addr, server, client, cfg) = pair(Mode::Encrypted);
    let (spub, cpub) = (server.public, client.public);
    let ours = Hello::new("demo", Role::Party(0), 64, 18, "mnist", [7; 32]);
    let theirs_ok = Hello {
        role: Role::Client,
        ..ours.clone()
    };
    let theirs_bad = Hello {
        session: "elsewhere".into(),
        ..theirs_ok.clone()
    };
    let srv = {
        let ours = ours.clone();
        std::thread::spawn(move || {
            let mut r = Vec::new();
            for _ in 0..2 {
                let (s, _) = l.accept().unwrap();
                let mut ch = Channel::accept(s, &server, &|k| *k == cpub, &cfg).unwrap();
                assert_eq!(*ch.peer_key(), cpub);
                r.push(hello::respond(&mut ch, &ours, Role::Client).map(|_| ()));
            }
            r
        })
    };
    let mut ch = Channel::connect(&addr, &client, &spub, &cfg).unwrap();
    hello::initiate(&mut ch, &theirs_ok, Role::Party(0)).unwrap();
    let mut ch = Channel::connect(&addr, &client, &spub, &cfg).unwrap();
    let e = hello::initiate(&mut ch, &theirs_bad, Role::Party(0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`demo`") && e.contains("`elsewhere`"), "{e}");
    let r = srv.join().unwrap();
    assert!(r[0].is_ok());
    let e = r[1].as_ref().unwrap_err().to_string();
    assert!(e.contains("session id") && e.contains("`elsewhere`"), "{e}");
}

/// A plaintext-mode peer written by hand: preamble, identity, then raw frames.
fn raw_plaintext_peer(addr: &str, me: &KeyPair) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"CDM\x01P\0\0\0").unwrap();
    s.write_all(&32u16.to_be_bytes()).unwrap();
    s.write_all(&me.public.0).unwrap();
    let mut reply = [0u8; 34];
    s.read_exact(&mut reply).unwrap();
    s
}

#[test]
fn an_oversized_frame_is_refused_from_its_header() {
    let (l, addr, server, client, cfg) = pair(Mode::Plaintext);
    let cpub = client.public;
    let srv = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut ch = Channel::accept(s, &server, &|k| *k == cpub, &cfg).unwrap();
        ch.recv(1 << 16)
    });
    let mut s = raw_plaintext_peer(&addr, &client);
    // Header: sequence 0, length 4 GB - 1; no payload follows.
    let mut h = 0u64.to_le_bytes().to_vec();
    h.extend_from_slice(&u32::MAX.to_le_bytes());
    s.write_all(&h).unwrap();
    let e = srv.join().unwrap().unwrap_err();
    assert!(
        matches!(
            e,
            LinkError::Frame(cipherdm_transport_tcp::frame::FrameError::TooLarge { .. })
        ),
        "{e}"
    );
}

#[test]
fn a_silent_peer_times_out_and_a_vanished_peer_is_closed() {
    let (l, addr, server, client, cfg) = pair(Mode::Encrypted);
    let cpub = client.public;
    let spub = server.public;
    let srv = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let ch = Channel::accept(s, &server, &|k| *k == cpub, &cfg).unwrap();
        let mut t = TcpTransport::new(PartyId::P0, vec![(PartyId::P1, ch)], cfg.timeout).unwrap();
        let t0 = Instant::now();
        let first = t.recv(PartyId::P1, &mut [0u8; 8]);
        let waited = t0.elapsed();
        let second = t.recv(PartyId::P1, &mut [0u8; 8]);
        (first, waited, second)
    });
    let ch = Channel::connect(&addr, &client, &spub, &cfg).unwrap();
    // Stay silent past the timeout, then go away.
    std::thread::sleep(cfg.timeout + Duration::from_millis(500));
    drop(ch);
    let (first, waited, second) = srv.join().unwrap();
    assert_eq!(
        first,
        Err(TransportError::Timeout {
            peer: PartyId::P1,
            after_ms: 1500
        })
    );
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    assert_eq!(second, Err(TransportError::Closed { peer: PartyId::P1 }));
}

#[test]
fn an_idle_party_sees_input_and_a_closed_link_at_once_and_a_left_client_is_gone() {
    let (l, addr, server, client, cfg) = pair(Mode::Encrypted);
    let cpub = client.public;
    let spub = server.public;
    let srv = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let ch = Channel::accept(s, &server, &|k| *k == cpub, &cfg).unwrap();
        let mut t = TcpTransport::new(PartyId::P0, vec![(PartyId::P1, ch)], cfg.timeout).unwrap();
        let quiet = t.idle(Duration::from_millis(50));
        let input = t.idle(Duration::from_secs(5));
        let mut b = [0u8; 3];
        t.recv(PartyId::P1, &mut b).unwrap();
        let t0 = Instant::now();
        let closed = t.idle(Duration::from_secs(10));
        (quiet, input, b, closed, t0.elapsed())
    });
    let ch = Channel::connect(&addr, &client, &spub, &cfg).unwrap();
    let mut t = TcpTransport::new(PartyId::P1, vec![(PartyId::P0, ch)], cfg.timeout).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    t.send(PartyId::P0, &[1, 2, 3]).unwrap();
    t.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(t);
    let (quiet, input, b, closed, waited) = srv.join().unwrap();
    assert_eq!(quiet, Ok(None));
    assert_eq!(input, Ok(Some(PartyId::P1)));
    assert_eq!(b, [1, 2, 3]);
    assert_eq!(closed, Err(TransportError::Closed { peer: PartyId::P1 }));
    assert!(waited < Duration::from_secs(2), "{waited:?}");

    // A control channel whose other side left reads as gone; a live one does not.
    let (l, addr, server, client, cfg) = pair(Mode::Encrypted);
    let cpub = client.public;
    let spub = server.public;
    let srv = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        Channel::accept(s, &server, &|k| *k == cpub, &cfg).unwrap()
    });
    let ch = Channel::connect(&addr, &client, &spub, &cfg).unwrap();
    let at_server = srv.join().unwrap();
    assert!(!at_server.peer_gone());
    drop(ch);
    let until = Instant::now() + Duration::from_secs(2);
    while !at_server.peer_gone() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(at_server.peer_gone());
}
