//! The link's receive side on hostile bytes: records (plaintext or AES-GCM), frame
//! headers checked against the expected sequence and length, control messages. It must
//! return data or a typed error, never panic or buffer without bound.
#![no_main]

use cipherdm_transport_tcp::link::{Cipher, LinkState};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Some((lens, wire)) = rest.split_at_checked(4) else {
        return;
    };
    let cipher = if mode & 1 == 0 {
        Cipher::Plain
    } else {
        Cipher::from_keys([1; 32], [2; 32]).expect("valid keys")
    };
    let max_frame = 1 + (mode as u32 >> 1) * 97;
    let mut link = LinkState::new(cipher, max_frame);
    // The protocol's expectations come from the input too: two message lengths.
    let want = [
        lens[0] as usize * lens[1] as usize,
        lens[2] as usize + lens[3] as usize,
    ];
    let mut chunks = wire.chunks(1 + (mode as usize % 7) * 13);
    let mut bufs = [vec![0u8; want[0]], vec![0u8; want[1]]];
    let mut filled = [0usize; 2];
    let mut k = 0;
    loop {
        if k < 2 {
            match link.take_message(&mut bufs[k], &mut filled[k]) {
                Ok(true) => k += 1,
                Ok(false) => {}
                Err(_) => return,
            }
        } else if link.take_control(64).is_err() {
            return;
        }
        let Some(c) = chunks.next() else { return };
        if link.rx_room() == 0 {
            return;
        }
        if link.ingest(c).is_err() {
            return;
        }
        assert!(link.rx_room() <= LinkState::RX_CAP);
    }
});
