//! The responder's handshake on hostile bytes: the preamble, the first Noise message and
//! the session hello. Each step must accept or refuse with a typed error.
#![no_main]

use cipherdm_transport_tcp::channel::{check_preamble, respond_noise};
use cipherdm_transport_tcp::hello::{Hello, Role};
use cipherdm_transport_tcp::{KeyPair, Mode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let me = KeyPair::from_secret(&[7; 32]).expect("a key");
    if let Some((pre, rest)) = data.split_first_chunk::<8>() {
        let _ = check_preamble(pre, Mode::Encrypted);
        let _ = check_preamble(pre, Mode::Plaintext);
        let _ = respond_noise(&me, rest);
    }
    if let Ok(theirs) = Hello::decode(data) {
        let ours = Hello::new("s", Role::Party(0), 64, 18, "tiny", [0; 32]);
        let _ = theirs.check_against(&ours);
    }
});
