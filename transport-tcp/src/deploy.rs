//! `deploy.toml`: the three parties, the clients and the session's limits, shared by
//! every host of a deployment (each host reads only its own secret key file).
//!
//! ```toml
//! session = "cipherdm-demo"          # session id: links of other sessions are refused
//! model = "mnist"                    # `tiny` or `mnist`: the graph every party runs
//! timeout_ms = 30000                 # longest wait for progress on any link
//! connect_deadline_ms = 60000        # how long parties retry reaching each other
//! handshake_deadline_ms = 10000      # time a connection has for its whole handshake
//! max_frame = 1048576                # largest frame on a link (bytes)
//! max_batch = 16                     # most images per job
//!
//! [[party]]
//! id = 0
//! address = "10.0.0.1:7100"          # where the others reach party 0
//! listen = "0.0.0.0:7100"            # optional: the local bind address
//! public_key = "…64 hex digits…"
//! secret_key = "keys/party0.key"     # read by party 0 only
//! shares = "shares/mnist.p0.shares"  # read by party 0 only
//! guidance = "guidance"              # optional: party 0's guidance share files
//!
//! [[client]]
//! name = "alice"
//! public_key = "…"
//! secret_key = "keys/alice.key"      # read by the client only
//! ```
//!
//! Relative paths are relative to the config file. Every problem is reported with the
//! field it concerns, e.g. ``party[1].address: `10.0.0.2` is not host:port``.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{LinkConfig, Mode, PublicKey};
use serde::Deserialize;

/// Largest config file read.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// A problem in the deployment config, naming the field.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {field}: {message}")]
#[non_exhaustive]
pub struct ConfigError {
    /// The config file.
    pub file: String,
    /// The field, e.g. `party[1].address`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// A problem with `field` of the config file `file`.
    pub fn new(file: &Path, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: file.display().to_string(),
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    session: String,
    model: String,
    timeout_ms: Option<u64>,
    connect_deadline_ms: Option<u64>,
    handshake_deadline_ms: Option<u64>,
    max_frame: Option<u32>,
    max_batch: Option<usize>,
    plaintext: Option<bool>,
    insecure_seed: Option<u64>,
    #[serde(default)]
    party: Vec<RawParty>,
    #[serde(default)]
    client: Vec<RawClient>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParty {
    id: Option<i64>,
    address: Option<String>,
    listen: Option<String>,
    public_key: Option<String>,
    secret_key: Option<String>,
    shares: Option<String>,
    guidance: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    name: Option<String>,
    public_key: Option<String>,
    secret_key: Option<String>,
}

/// One party as the config describes it.
#[derive(Clone, Debug)]
pub struct PartyEntry {
    /// 0, 1 or 2.
    pub id: usize,
    /// Where the others reach it (`host:port`).
    pub address: String,
    /// Where it binds (`host:port`), by default `address`.
    pub listen: String,
    /// Its pinned public key.
    pub public_key: PublicKey,
    /// Its secret key file.
    pub secret_key: PathBuf,
    /// Its share file.
    pub shares: PathBuf,
    /// The folder of its guidance share files (jobs with score guidance need one).
    pub guidance: Option<PathBuf>,
}

/// One client.
#[derive(Clone, Debug)]
pub struct ClientEntry {
    /// Name (`--client`).
    pub name: String,
    /// Its pinned public key.
    pub public_key: PublicKey,
    /// Its secret key file (read by the client only).
    pub secret_key: Option<PathBuf>,
}

/// A checked deployment config.
#[derive(Clone, Debug)]
pub struct DeployConfig {
    /// The file it came from.
    pub file: PathBuf,
    /// Session id.
    pub session: String,
    /// Model name (`tiny` or `mnist`).
    pub model: String,
    /// Link timing, size and mode.
    pub link: LinkConfig,
    /// Time an accepted connection has for its whole handshake (Noise, hello and, for
    /// a client, its job request), counted from the accept.
    pub handshake_deadline: Duration,
    /// Most images per job.
    pub max_batch: usize,
    /// Reproducible PRSS keys (tests only; logged as a warning).
    pub insecure_seed: Option<u64>,
    /// Parties 0, 1, 2 in order.
    pub parties: [PartyEntry; 3],
    /// Clients allowed to submit jobs.
    pub clients: Vec<ClientEntry>,
}

fn is_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}

impl DeployConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let err = |message: String| ConfigError {
            file: path.display().to_string(),
            field: "(file)".into(),
            message,
        };
        let size = std::fs::metadata(path)
            .map_err(|e| err(e.to_string()))?
            .len();
        if size > MAX_CONFIG_BYTES {
            return Err(err(format!(
                "{size} bytes; a deployment config is at most {MAX_CONFIG_BYTES}"
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        Self::parse(&text, path)
    }

    /// Parses and checks config text; relative paths resolve against `path`'s folder.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let err = |field: &str, message: String| ConfigError {
            file: file.clone(),
            field: field.to_string(),
            message,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let field = e
                .span()
                .map(|s| format!("at byte {}", s.start))
                .unwrap_or_else(|| "(syntax)".into());
            err(&field, e.message().to_string())
        })?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let resolve = |p: &str| {
            let p = PathBuf::from(p);
            if p.is_absolute() { p } else { base.join(p) }
        };
        if raw.session.trim().is_empty() || raw.session.len() > 64 {
            return Err(err("session", "must be 1 to 64 characters".into()));
        }
        if !matches!(raw.model.as_str(), "tiny" | "tiny-unaliased" | "mnist") {
            return Err(err(
                "model",
                format!(
                    "unknown model `{}` (tiny, tiny-unaliased, mnist)",
                    raw.model
                ),
            ));
        }
        let ms = |field: &str, v: Option<u64>, default: u64| -> Result<Duration, ConfigError> {
            match v.unwrap_or(default) {
                0 => Err(err(field, "must be positive".into())),
                v if v > 3_600_000 => Err(err(field, "at most one hour".into())),
                v => Ok(Duration::from_millis(v)),
            }
        };
        let timeout = ms("timeout_ms", raw.timeout_ms, 30_000)?;
        let connect_deadline = ms("connect_deadline_ms", raw.connect_deadline_ms, 60_000)?;
        let handshake_deadline = ms("handshake_deadline_ms", raw.handshake_deadline_ms, 10_000)?;
        let max_frame = raw.max_frame.unwrap_or(1 << 20);
        if !(1024..=(64 << 20)).contains(&max_frame) {
            return Err(err("max_frame", "must be 1 KiB to 64 MiB".into()));
        }
        let max_batch = raw.max_batch.unwrap_or(16);
        if !(1..=64).contains(&max_batch) {
            return Err(err("max_batch", "must be 1 to 64".into()));
        }
        if raw.party.len() != 3 {
            return Err(err(
                "party",
                format!(
                    "needs exactly three [[party]] tables, found {}",
                    raw.party.len()
                ),
            ));
        }
        let mut slots: [Option<PartyEntry>; 3] = Default::default();
        for (k, p) in raw.party.iter().enumerate() {
            let f = |name: &str| format!("party[{k}].{name}");
            let id = p.id.ok_or_else(|| err(&f("id"), "missing".into()))?;
            let id = usize::try_from(id)
                .ok()
                .filter(|&i| i < 3)
                .ok_or_else(|| err(&f("id"), format!("{id} is not 0, 1 or 2")))?;
            if slots[id].is_some() {
                return Err(err(&f("id"), format!("duplicate id {id}")));
            }
            let address = p
                .address
                .clone()
                .ok_or_else(|| err(&f("address"), "missing".into()))?;
            if !is_host_port(&address) {
                return Err(err(&f("address"), format!("`{address}` is not host:port")));
            }
            let listen = p.listen.clone().unwrap_or_else(|| address.clone());
            if !is_host_port(&listen) {
                return Err(err(&f("listen"), format!("`{listen}` is not host:port")));
            }
            let public_key = p
                .public_key
                .as_deref()
                .ok_or_else(|| err(&f("public_key"), "missing".into()))?
                .parse::<PublicKey>()
                .map_err(|e| err(&f("public_key"), e.to_string()))?;
            let secret_key = resolve(
                p.secret_key
                    .as_deref()
                    .ok_or_else(|| err(&f("secret_key"), "missing".into()))?,
            );
            let shares = resolve(
                p.shares
                    .as_deref()
                    .ok_or_else(|| err(&f("shares"), "missing".into()))?,
            );
            let guidance = p.guidance.as_deref().map(resolve);
            slots[id] = Some(PartyEntry {
                id,
                address,
                listen,
                public_key,
                secret_key,
                shares,
                guidance,
            });
        }
        let [a, b, c] = slots;
        let parties = [
            a.expect("three distinct ids"),
            b.expect("three distinct ids"),
            c.expect("three distinct ids"),
        ];
        let mut clients = Vec::new();
        for (k, c) in raw.client.iter().enumerate() {
            let f = |name: &str| format!("client[{k}].{name}");
            let name = c
                .name
                .clone()
                .ok_or_else(|| err(&f("name"), "missing".into()))?;
            if clients.iter().any(|x: &ClientEntry| x.name == name) {
                return Err(err(&f("name"), format!("duplicate client `{name}`")));
            }
            let public_key = c
                .public_key
                .as_deref()
                .ok_or_else(|| err(&f("public_key"), "missing".into()))?
                .parse::<PublicKey>()
                .map_err(|e| err(&f("public_key"), e.to_string()))?;
            clients.push(ClientEntry {
                name,
                public_key,
                secret_key: c.secret_key.as_deref().map(resolve),
            });
        }
        let mut keys: Vec<(String, PublicKey)> = parties
            .iter()
            .map(|p| (format!("party[{}].public_key", p.id), p.public_key))
            .collect();
        keys.extend(
            clients
                .iter()
                .enumerate()
                .map(|(k, c)| (format!("client[{k}].public_key"), c.public_key)),
        );
        for (i, (field, key)) in keys.iter().enumerate() {
            if let Some((other, _)) = keys[..i].iter().find(|(_, k)| k == key) {
                return Err(err(field, format!("the same key as {other}")));
            }
        }
        Ok(DeployConfig {
            file: path.to_path_buf(),
            session: raw.session,
            model: raw.model,
            link: LinkConfig {
                mode: if raw.plaintext.unwrap_or(false) {
                    Mode::Plaintext
                } else {
                    Mode::Encrypted
                },
                timeout,
                connect_deadline,
                max_frame,
            },
            handshake_deadline,
            max_batch,
            insecure_seed: raw.insecure_seed,
            parties,
            clients,
        })
    }

    /// The client called `name`, or the only client when `name` is `None`.
    pub fn client(&self, name: Option<&str>) -> Result<&ClientEntry, ConfigError> {
        let err = |message: String| ConfigError {
            file: self.file.display().to_string(),
            field: "client".into(),
            message,
        };
        match name {
            Some(n) => self
                .clients
                .iter()
                .find(|c| c.name == n)
                .ok_or_else(|| err(format!("no client named `{n}`"))),
            None => match self.clients.as_slice() {
                [one] => Ok(one),
                [] => Err(err("no [[client]] table".into())),
                _ => Err(err("several clients: choose one with --client".into())),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> String {
        format!("{b:02x}").repeat(32)
    }

    fn config(parties: &str) -> String {
        format!(
            "session = \"s\"\nmodel = \"tiny\"\n{parties}\n[[client]]\nname = \"c\"\npublic_key = \"{}\"\n",
            key(9)
        )
    }

    fn party(id: i64, addr: &str, k: u8) -> String {
        format!(
            "[[party]]\nid = {id}\naddress = \"{addr}\"\npublic_key = \"{}\"\nsecret_key = \"p{id}.key\"\nshares = \"p{id}.shares\"\n",
            key(k)
        )
    }

    fn parse(text: &str) -> Result<DeployConfig, ConfigError> {
        DeployConfig::parse(text, Path::new("/etc/cdm/deploy.toml"))
    }

    #[test]
    fn a_good_config_parses_with_paths_beside_it() {
        let t = config(&[party(0, "a:1", 1), party(2, "c:3", 3), party(1, "b:2", 2)].concat());
        let c = parse(&t).unwrap();
        assert_eq!(c.parties[1].address, "b:2");
        assert_eq!(c.parties[2].shares, PathBuf::from("/etc/cdm/p2.shares"));
        assert_eq!(c.link.mode, Mode::Encrypted);
        assert_eq!(c.client(None).unwrap().name, "c");
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                config(&[party(0, "a:1", 1), party(0, "b:2", 2), party(2, "c:3", 3)].concat()),
                "party[1].id",
                "duplicate id 0",
            ),
            (
                config(&[party(0, "a", 1), party(1, "b:2", 2), party(2, "c:3", 3)].concat()),
                "party[0].address",
                "not host:port",
            ),
            (
                config(&[party(0, "a:1", 1), party(1, "b:2", 1), party(2, "c:3", 3)].concat()),
                "party[1].public_key",
                "the same key as party[0].public_key",
            ),
            (
                config(&[party(0, "a:1", 1), party(1, "b:2", 2)].concat()),
                "party",
                "exactly three",
            ),
            (
                config(
                    &[
                        party(0, "a:1", 1),
                        party(1, "b:99999", 2),
                        party(5, "c:3", 3),
                    ]
                    .concat(),
                ),
                "party[1].address",
                "not host:port",
            ),
            (
                config(&[party(0, "a:1", 1), party(1, "b:2", 2), party(5, "c:3", 3)].concat()),
                "party[2].id",
                "5 is not 0, 1 or 2",
            ),
            (
                config(&[party(0, "a:1", 1), party(1, "b:2", 2), party(2, "c:3", 3)].concat())
                    .replace("model = \"tiny\"", "model = \"sd\""),
                "model",
                "unknown model",
            ),
            (
                config(&[party(0, "a:1", 1), party(1, "b:2", 2), party(2, "c:3", 3)].concat())
                    .replace(&key(2), "xyz"),
                "party[1].public_key",
                "64 hex digits",
            ),
        ];
        for (text, field, msg) in cases {
            let e = parse(&text).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.message.contains(msg), "{e}");
        }
        let e = parse("session = \"s\"\nmodel = \"tiny\"\nbogus = 1\n").unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
    }
}
