//! Static X25519 key pairs of parties and clients, and their text form (64 hex digits).
//!
//! A deployment pins every party's and client's public key in its config; a link is
//! accepted only from a key the config names.
//!
//! ```
//! use cipherdm_transport_tcp::keys::{KeyPair, PublicKey};
//! let kp = KeyPair::generate().unwrap();
//! let text = kp.public.to_string();
//! assert_eq!(text.parse::<PublicKey>().unwrap(), kp.public);
//! ```

use core::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::error::LinkError;

/// A party's or client's public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; 32]);

/// A static key pair. The secret never leaves the process that loaded it.
#[derive(Clone)]
pub struct KeyPair {
    /// The public half, pinned by peers.
    pub public: PublicKey,
    secret: [u8; 32],
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::hex::encode(&self.0))
    }
}

impl FromStr for PublicKey {
    type Err = LinkError;
    fn from_str(s: &str) -> Result<Self, LinkError> {
        crate::hex::decode32(s)
            .map(PublicKey)
            .map_err(|e| LinkError::Key(format!("public key: {e}")))
    }
}

impl KeyPair {
    /// A fresh key pair from the OS's randomness.
    pub fn generate() -> Result<Self, LinkError> {
        let kp = snow::Builder::new(crate::channel::NOISE_PARAMS.parse().expect("valid"))
            .generate_keypair()
            .map_err(|e| LinkError::Key(format!("key generation: {e}")))?;
        Self::from_secret(&kp.private)
    }

    /// The key pair of a 32-byte secret.
    pub fn from_secret(secret: &[u8]) -> Result<Self, LinkError> {
        let secret: [u8; 32] = secret
            .try_into()
            .map_err(|_| LinkError::Key("a secret key has 32 bytes".into()))?;
        let public = public_of(&secret)?;
        Ok(KeyPair {
            public: PublicKey(public),
            secret,
        })
    }

    /// The secret bytes (for the Noise handshake).
    pub(crate) fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    /// Reads a secret key file (64 hex digits).
    pub fn load(path: &Path) -> Result<Self, LinkError> {
        let size = std::fs::metadata(path)
            .map_err(|e| LinkError::Key(format!("{}: {e}", path.display())))?
            .len();
        if size > 1024 {
            return Err(LinkError::Key(format!(
                "{}: {size} bytes is not a key file (64 hex digits)",
                path.display()
            )));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| LinkError::Key(format!("{}: {e}", path.display())))?;
        let secret = crate::hex::decode32(&text)
            .map_err(|e| LinkError::Key(format!("{}: secret key: {e}", path.display())))?;
        Self::from_secret(&secret)
    }

    /// Writes the secret to `path` (mode 0600 on Unix); an existing file is never overwritten.
    pub fn save(&self, path: &Path) -> Result<(), LinkError> {
        let mut text = String::with_capacity(65);
        for b in self.secret {
            text.push_str(&format!("{b:02x}"));
        }
        text.push('\n');
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        use std::io::Write;
        opts.open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| LinkError::Key(format!("{}: {e}", path.display())))
    }
}

/// X25519 public key of a secret scalar, via the Noise library's DH.
fn public_of(secret: &[u8; 32]) -> Result<[u8; 32], LinkError> {
    use snow::resolvers::{CryptoResolver, DefaultResolver};
    let mut dh = DefaultResolver
        .resolve_dh(&snow::params::DHChoice::Curve25519)
        .ok_or_else(|| LinkError::Key("no X25519 implementation".into()))?;
    dh.set(secret);
    let mut out = [0u8; 32];
    out.copy_from_slice(dh.pubkey());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_text_and_files() {
        let kp = KeyPair::generate().unwrap();
        let again = KeyPair::from_secret(kp.secret()).unwrap();
        assert_eq!(again.public, kp.public);
        let dir = std::env::temp_dir().join(format!("cdm-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k.key");
        let _ = std::fs::remove_file(&path);
        kp.save(&path).unwrap();
        assert_eq!(KeyPair::load(&path).unwrap().public, kp.public);
        // Never overwrite a key.
        assert!(kp.save(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn malformed_keys_are_typed_errors() {
        assert!(matches!("abc".parse::<PublicKey>(), Err(LinkError::Key(_))));
        let bad = "zz".repeat(32);
        let e = bad.parse::<PublicKey>().unwrap_err().to_string();
        assert!(e.contains("hex"), "{e}");
        // Regression (fuzz find, `deploy_config`): 64 bytes with a two-byte character
        // straddling a digit pair used to panic on a char boundary.
        let straddle = format!("{}\u{299}{}", "a".repeat(15), "b".repeat(47));
        assert_eq!(straddle.len(), 64);
        let e = straddle.parse::<PublicKey>().unwrap_err().to_string();
        assert!(e.contains("position 14"), "{e}");
        let upper = "AB".repeat(32).parse::<PublicKey>().unwrap();
        assert_eq!(upper.to_string(), "ab".repeat(32));
    }
}
