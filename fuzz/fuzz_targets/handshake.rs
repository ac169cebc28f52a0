//! The responder's handshake on hostile bytes: the preamble, the first Noise message and
//! the session hello, and the acceptor's reading of an opening connection in pieces
//! (`opening::wanted`). Each step must accept or refuse with a typed error, and an opening
//! never asks for more than the preamble, a length and the largest handshake message.
#![no_main]

use cipherdm_transport_tcp::channel::{check_preamble, respond_noise};
use cipherdm_transport_tcp::hello::{Hello, Role};
use cipherdm_transport_tcp::opening::wanted;
use cipherdm_transport_tcp::{KeyPair, Mode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let me = KeyPair::from_secret(&[7; 32]).expect("a key");
    if let Some((pre, rest)) = data.split_first_chunk::<8>() {
        let _ = check_preamble(pre, Mode::Encrypted);
        let _ = check_preamble(pre, Mode::Plaintext);
        let _ = respond_noise(&me, rest);
    }
    // An opening fed in pieces as the acceptor reads them (at most 256 bytes a read).
    if let Some((&step, wire)) = data.split_first() {
        let step = 1 + step as usize;
        let mut buf = Vec::new();
        let mut at = 0;
        loop {
            match wanted(&buf, Mode::Encrypted) {
                Ok(0) => {
                    assert!(buf.len() <= 10 + 1024);
                    let _ = respond_noise(&me, &buf[10..]);
                    break;
                }
                Ok(n) => {
                    assert!(n <= 10 + 1024, "asked for {n} bytes");
                    let take = n.min(step).min(256).min(wire.len() - at);
                    if take == 0 {
                        break;
                    }
                    buf.extend_from_slice(&wire[at..at + take]);
                    at += take;
                }
                Err(_) => break,
            }
        }
    }
    if let Ok(theirs) = Hello::decode(data) {
        let ours = Hello::new("s", Role::Party(0), 64, 18, "tiny", [0; 32]);
        let _ = theirs.check_against(&ours);
    }
});
