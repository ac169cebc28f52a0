//! The session handshake that follows the Noise handshake: both sides state protocol
//! version, session id, role, ring, fixed-point format and model, and a link is used only
//! when they agree. A mismatch is refused with an error naming both values, and the
//! refusing side tells the other why before closing.
//!
//! ```
//! use cipherdm_transport_tcp::hello::{Hello, Role};
//! let ours = Hello::new("demo", Role::Party(0), 64, 18, "mnist", [1; 32]);
//! let mut theirs = ours.clone();
//! theirs.session = "other".into();
//! let e = theirs.check_against(&ours).unwrap_err().to_string();
//! assert!(e.contains("demo") && e.contains("other"), "{e}");
//! ```

use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::error::LinkError;

/// Version of the session handshake and job messages.
pub const HELLO_VERSION: u32 = 1;
/// Largest hello message.
const HELLO_MAX: u32 = 4096;

/// Who is speaking.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Party `0..3`.
    Party(u8),
    /// A client (model user).
    Client,
}

impl core::fmt::Display for Role {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Role::Party(i) => write!(f, "party {i}"),
            Role::Client => f.write_str("a client"),
        }
    }
}

/// One side's session parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`HELLO_VERSION`].
    pub version: u32,
    /// Deployment session id (from the config).
    pub session: String,
    /// The speaker's role.
    pub role: Role,
    /// Ring bit width (64).
    pub ring_bits: u32,
    /// Fixed-point fraction bits.
    pub fraction_bits: u32,
    /// Model id.
    pub model_id: String,
    /// SHA-256 of the model's graph.
    pub model_hash: [u8; 32],
}

#[derive(Serialize, Deserialize)]
enum Reply {
    Welcome(Hello),
    Refused(String),
}

impl Hello {
    /// A hello at the current version.
    pub fn new(
        session: &str,
        role: Role,
        ring_bits: u32,
        fraction_bits: u32,
        model_id: &str,
        model_hash: [u8; 32],
    ) -> Self {
        Hello {
            version: HELLO_VERSION,
            session: session.into(),
            role,
            ring_bits,
            fraction_bits,
            model_id: model_id.into(),
            model_hash,
        }
    }

    /// Decodes a hello received from the wire.
    pub fn decode(bytes: &[u8]) -> Result<Hello, LinkError> {
        if bytes.len() > HELLO_MAX as usize {
            return Err(LinkError::Malformed(format!(
                "a hello of {} bytes (at most {HELLO_MAX})",
                bytes.len()
            )));
        }
        postcard::from_bytes::<Hello>(bytes)
            .map_err(|e| LinkError::Malformed(format!("hello: {e}")))
    }

    /// Checks every shared parameter (all but the role) against `ours`.
    pub fn check_against(&self, ours: &Hello) -> Result<(), LinkError> {
        let mismatch = |field, a: String, b: String| LinkError::Mismatch {
            field,
            ours: a,
            theirs: b,
        };
        if self.version != ours.version {
            return Err(mismatch(
                "protocol version",
                ours.version.to_string(),
                self.version.to_string(),
            ));
        }
        if self.session != ours.session {
            return Err(mismatch(
                "session id",
                format!("`{}`", ours.session),
                format!("`{}`", self.session),
            ));
        }
        if self.ring_bits != ours.ring_bits {
            return Err(mismatch(
                "ring",
                format!("Z2^{}", ours.ring_bits),
                format!("Z2^{}", self.ring_bits),
            ));
        }
        if self.fraction_bits != ours.fraction_bits {
            return Err(mismatch(
                "fraction bits",
                ours.fraction_bits.to_string(),
                self.fraction_bits.to_string(),
            ));
        }
        if self.model_id != ours.model_id {
            return Err(mismatch(
                "model id",
                format!("`{}`", ours.model_id),
                format!("`{}`", self.model_id),
            ));
        }
        if self.model_hash != ours.model_hash {
            return Err(mismatch(
                "model hash",
                crate::hex::encode(&ours.model_hash),
                crate::hex::encode(&self.model_hash),
            ));
        }
        Ok(())
    }

    fn check_role(&self, expected: Role) -> Result<(), LinkError> {
        if self.role != expected {
            return Err(LinkError::Mismatch {
                field: "role",
                ours: format!("{expected} (the role of its pinned key)"),
                theirs: self.role.to_string(),
            });
        }
        Ok(())
    }
}

/// The connecting side: sends `ours`, expects the responder to be `peer_role` with the
/// same parameters. Returns the responder's hello.
pub fn initiate(ch: &mut Channel, ours: &Hello, peer_role: Role) -> Result<Hello, LinkError> {
    let bytes = postcard::to_allocvec(ours).map_err(|e| LinkError::Malformed(e.to_string()))?;
    ch.send(&bytes)?;
    let reply = ch.recv(HELLO_MAX)?;
    match postcard::from_bytes::<Reply>(&reply)
        .map_err(|e| LinkError::Malformed(format!("hello reply: {e}")))?
    {
        Reply::Refused(why) => Err(LinkError::Refused(format!(
            "{} refused the session: {why}",
            ch.peer_addr()
        ))),
        Reply::Welcome(theirs) => {
            theirs.check_against(ours)?;
            theirs.check_role(peer_role)?;
            Ok(theirs)
        }
    }
}

/// The accepting side: reads the initiator's hello, which must be `peer_role` (the role
/// of its authenticated key) with our parameters; refuses with the reason otherwise.
pub fn respond(ch: &mut Channel, ours: &Hello, peer_role: Role) -> Result<Hello, LinkError> {
    let msg = ch.recv(HELLO_MAX)?;
    let check = Hello::decode(&msg).and_then(|theirs| {
        theirs.check_role(peer_role)?;
        theirs.check_against(ours)?;
        Ok(theirs)
    });
    let reply = match &check {
        Ok(_) => Reply::Welcome(ours.clone()),
        Err(e) => Reply::Refused(e.to_string()),
    };
    let bytes = postcard::to_allocvec(&reply).map_err(|e| LinkError::Malformed(e.to_string()))?;
    // A refusal is best effort: the peer may already be gone.
    let sent = ch.send(&bytes);
    let theirs = check?;
    sent?;
    Ok(theirs)
}
