//! Lower-case hexadecimal text of byte strings: keys, job ids and architecture hashes in
//! files, logs and error messages. The one hex codec of the project.
//!
//! ```
//! use cipherdm_transport_tcp::hex;
//! assert_eq!(hex::encode(&[0x0f, 0xa0]), "0fa0");
//! let k = hex::decode32(&"ab".repeat(32)).unwrap();
//! assert_eq!(k, [0xab; 32]);
//! assert!(hex::decode32("abc").is_err());
//! ```

/// `bytes` as lower-case hex digits, two per byte.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 * bytes.len());
    for &b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// 32 bytes from exactly 64 hex digits (either case; surrounding white space ignored).
/// The error says what was found, in characters.
pub fn decode32(s: &str) -> Result<[u8; 32], String> {
    // Bytes, not `str` slices: a multi-byte character must give an error, not a panic on a
    // char boundary (found by the `deploy_config` fuzz target).
    let t = s.trim();
    let b = t.as_bytes();
    if b.len() != 64 {
        return Err(format!(
            "expected 64 hex digits, found {} characters",
            t.chars().count()
        ));
    }
    let digit = |c: u8| (c as char).to_digit(16).filter(|_| c.is_ascii());
    let mut out = [0u8; 32];
    for (i, (o, pair)) in out.iter_mut().zip(b.chunks_exact(2)).enumerate() {
        let (Some(hi), Some(lo)) = (digit(pair[0]), digit(pair[1])) else {
            return Err(format!("not a hex digit pair at position {}", 2 * i));
        };
        *o = (hi * 16 + lo) as u8;
    }
    Ok(out)
}
