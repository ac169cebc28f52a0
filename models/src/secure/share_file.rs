//! Share files: the model owner's weights split into three files, one per server.
//!
//! Layout: the 8-byte magic `CDMSHARE`, a little-endian `u32` header length, the header
//! (postcard), then for every tensor in the header's order this party's two components
//! (`x_i` then `x_{i+1}`, little-endian ring elements, canonical layout, fixed point).
//!
//! The header names the model, its graph's architecture hash
//! ([`Graph::architecture_hash`]), the ring,
//! the fraction bits, the party the file belongs to, and a SHA-256 commitment to the
//! fresh seed the shares were drawn from (the same in all three files of one split, so
//! the parties can check they hold matching files), and a SHA-256 digest of every
//! tensor's data in this file. A party checks all of it on load, and every tensor's name,
//! shape and byte range; each kind of bad file is its own [`ShareFileError`].
//!
//! Integrity: [`ShareFileSource`] hashes every tensor it reads and compares the digest in
//! the header before the data is used, so a flipped bit, a truncated write or a tensor
//! copied from another file fails the layer that reads it with
//! [`ShareFileError::Corrupt`], naming the party and the tensor. The digests protect
//! against accidents of disks and copies, not against an adversary who rewrites the
//! header too (the file is the party's own secret, and a semi-honest party computes
//! correctly by assumption).
//!
//! [`ShareFileSource`] reads one tensor when its layer asks for it (a [`WeightSource`]),
//! so a party never holds more than one layer's weight shares.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use cipherdm_kernel::exec::WeightSource;
use cipherdm_kernel::{ArithShare, FixedPoint, PartyId, Shape};
use rand_chacha::ChaCha12Rng;
use rand_core::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ModelError;
use crate::weights::Weights;
use cipherdm_kernel::graph::Graph;

/// The file magic.
pub const MAGIC: &[u8; 8] = b"CDMSHARE";
/// The format version this build writes and reads (2: per-tensor digests).
pub const VERSION: u16 = 2;
/// Largest header accepted (a header lists names and shapes, never data).
pub const MAX_HEADER_BYTES: u32 = 1 << 20;
/// Ring name written in the header.
pub const RING: &str = "Z2^64";

/// What a share file says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareHeader {
    /// Format version.
    pub version: u16,
    /// Model identifier chosen by the owner (e.g. `mnist`).
    pub model_id: String,
    /// SHA-256 of the graph the shares are for.
    pub architecture_hash: [u8; 32],
    /// Ring of the shares.
    pub ring: String,
    /// Fixed-point fraction bits of the encoding.
    pub frac_bits: u32,
    /// The party (0, 1, 2) this file belongs to.
    pub party: u8,
    /// SHA-256 commitment to the seed of the split (equal in the three files).
    pub seed_commitment: [u8; 32],
    /// Tensors in file order: name and canonical shape.
    pub tensors: Vec<(String, Vec<usize>)>,
    /// SHA-256 of each tensor's data in this file (its two components), in file order.
    pub digests: Vec<[u8; 32]>,
}

/// A bad share file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShareFileError {
    /// The file cannot be opened or read.
    #[error("{path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The magic is missing.
    #[error("{0}: not a cipherdm share file")]
    NotAShareFile(PathBuf),
    /// Written by another format version.
    #[error("{path}: share-file version {found}, this build reads {VERSION}")]
    Version {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u16,
    },
    /// The header cannot be decoded or is oversized.
    #[error("{path}: bad header: {detail}")]
    Header {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Shorter or longer than its header says.
    #[error("{path}: {got} bytes of share data, the header needs {expected}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header implies.
        expected: u64,
        /// Bytes present.
        got: u64,
    },
    /// Belongs to another party.
    #[error("{path}: share file of party {file}, but this is party {me}")]
    WrongParty {
        /// The file.
        path: PathBuf,
        /// The party in the header.
        file: u8,
        /// The loading party.
        me: u8,
    },
    /// Shares of another model.
    #[error("{path}: shares of model `{file}`, expected `{expected}`")]
    WrongModel {
        /// The file.
        path: PathBuf,
        /// Model id in the header.
        file: String,
        /// The expected model id.
        expected: String,
    },
    /// Same model id but another architecture.
    #[error("{0}: architecture hash differs from this build's graph")]
    WrongArchitecture(PathBuf),
    /// Another ring or fixed-point format.
    #[error(
        "{path}: encoded for {ring} with {frac_bits} fraction bits, session uses {RING} with {expected}"
    )]
    WrongEncoding {
        /// The file.
        path: PathBuf,
        /// Its ring.
        ring: String,
        /// Its fraction bits.
        frac_bits: u32,
        /// The session's fraction bits.
        expected: u32,
    },
    /// A tensor the graph needs is absent or has another shape.
    #[error("{path}: tensor `{name}`: {detail}")]
    Tensor {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// A guidance file made for another job (names the first differing field).
    #[error("{path}: guidance shares for another job: {detail}")]
    Binding {
        /// The file.
        path: PathBuf,
        /// What differs.
        detail: String,
    },
    /// A tensor's data does not match its digest in the header.
    #[error(
        "{path}: party {party}'s shares of tensor `{name}` do not match their digest: the file is corrupt"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The party the file belongs to.
        party: u8,
        /// The tensor.
        name: String,
    },
    /// A peer's share file comes from another split than this party's (found when the
    /// parties compare their seed commitments at the start of a job).
    #[error(
        "{path}: party {party}'s share file and party {peer}'s come from different splits (seed commitments differ)"
    )]
    SplitMismatch {
        /// This party's file.
        path: PathBuf,
        /// This party.
        party: u8,
        /// The peer whose commitment differs.
        peer: u8,
    },
    /// The three files of a session come from different splits.
    #[error("share files come from different splits (seed commitments differ)")]
    MixedSplits,
}

/// What every framed header carries: its format version, the party the file belongs to
/// and the encoding of its shares.
pub(crate) trait FramedHeader: serde::de::DeserializeOwned {
    /// The format version this build reads.
    const VERSION: u16;
    /// The header's format version.
    fn version(&self) -> u16;
    /// The party (0, 1, 2) the file belongs to.
    fn party(&self) -> u8;
    /// Ring and fraction bits of the shares.
    fn encoding(&self) -> (&str, u32);
}

impl FramedHeader for ShareHeader {
    const VERSION: u16 = VERSION;
    fn version(&self) -> u16 {
        self.version
    }
    fn party(&self) -> u8 {
        self.party
    }
    fn encoding(&self) -> (&str, u32) {
        (&self.ring, self.frac_bits)
    }
}

/// A file's framed header: `magic`, a little-endian `u32` length, a postcard header.
pub(crate) struct Framed<H> {
    /// The decoded header.
    pub header: H,
    /// The file's size in bytes.
    pub size: u64,
    /// The header's length in bytes.
    pub header_len: u32,
}

/// Creates (or truncates) a share or guidance file readable by its owner only (mode 0600
/// on Unix: a share is secret from everyone but the party it is for) and writes its framed
/// header — `magic`, the header's length as a little-endian `u32`, the postcard header —
/// leaving the writer at the first data byte. The counterpart of [`read_framed_header`];
/// `what` names the header in errors.
pub(crate) fn create_framed<H: Serialize>(
    path: &Path,
    magic: &[u8; 8],
    header: &H,
    what: &str,
) -> Result<std::io::BufWriter<File>, ModelError> {
    let bytes = postcard::to_stdvec(header).map_err(|e| ModelError::format(what, e.to_string()))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        opts.mode(0o600);
        // An existing file keeps its mode through `open`: narrow it too.
        if let Ok(meta) = std::fs::metadata(path) {
            let mut perm = meta.permissions();
            perm.set_mode(0o600);
            std::fs::set_permissions(path, perm).map_err(|e| ModelError::io(path, e))?;
        }
    }
    let mut f = std::io::BufWriter::new(opts.open(path).map_err(|e| ModelError::io(path, e))?);
    f.write_all(magic)
        .and_then(|_| f.write_all(&(bytes.len() as u32).to_le_bytes()))
        .and_then(|_| f.write_all(&bytes))
        .map_err(|e| ModelError::io(path, e))?;
    Ok(f)
}

/// Reads the framed header of a share or guidance file for party `me` in a session with
/// fixed point `fixed`, leaving `file` at the first data byte: refuses another magic, a
/// header longer than `max` or than the file, a header that does not decode, another format
/// version, another party's file and another encoding, each as its own [`ShareFileError`].
pub(crate) fn read_framed_header<H: FramedHeader, R: Read + Seek>(
    file: &mut R,
    path: &Path,
    magic: &[u8; 8],
    max: u32,
    me: PartyId,
    fixed: FixedPoint,
) -> Result<Framed<H>, ShareFileError> {
    let io = |e: std::io::Error| ShareFileError::Open {
        path: path.to_path_buf(),
        source: e,
    };
    let size = file.seek(SeekFrom::End(0)).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut found = [0u8; 8];
    if file.read_exact(&mut found).is_err() || &found != magic {
        return Err(ShareFileError::NotAShareFile(path.to_path_buf()));
    }
    let mut len = [0u8; 4];
    file.read_exact(&mut len).map_err(io)?;
    let len = u32::from_le_bytes(len);
    if len > max || 12 + len as u64 > size {
        return Err(ShareFileError::Header {
            path: path.to_path_buf(),
            detail: format!("header length {len} does not fit the file"),
        });
    }
    let mut bytes = vec![0u8; len as usize];
    file.read_exact(&mut bytes).map_err(io)?;
    let header: H = postcard::from_bytes(&bytes).map_err(|e| ShareFileError::Header {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    let path = path.to_path_buf();
    if header.version() != H::VERSION {
        return Err(ShareFileError::Version {
            path,
            found: header.version(),
        });
    }
    if header.party() as usize != me.index() {
        return Err(ShareFileError::WrongParty {
            path,
            file: header.party(),
            me: me.index() as u8,
        });
    }
    let (ring, frac_bits) = header.encoding();
    if ring != RING || frac_bits != fixed.frac_bits() {
        return Err(ShareFileError::WrongEncoding {
            path,
            ring: ring.into(),
            frac_bits,
            expected: fixed.frac_bits(),
        });
    }
    Ok(Framed {
        header,
        size,
        header_len: len,
    })
}

fn commitment(seed: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"cipherdm share-file seed v1");
    h.update(seed);
    h.finalize().into()
}

/// Splits canonical `weights` of `graph` into three share files `out/<stem>.p{0,1,2}.shares`
/// with fresh randomness (`seed = None`, the default of `cipherdm share-model`) or a given
/// seed (tests). Returns the three paths.
pub fn write_share_files(
    graph: &Graph,
    weights: &Weights<f64>,
    model_id: &str,
    fixed: FixedPoint,
    out: &Path,
    stem: &str,
    seed: Option<[u8; 32]>,
) -> Result<[PathBuf; 3], ModelError> {
    weights.check(graph)?;
    let seed = match seed {
        Some(s) => s,
        None => {
            let mut s = [0u8; 32];
            getrandom::fill(&mut s)
                .map_err(|e| ModelError::Config(format!("no OS randomness: {e}")))?;
            s
        }
    };
    let mut rng = ChaCha12Rng::from_seed(seed);
    std::fs::create_dir_all(out).map_err(|e| ModelError::io(out, e))?;
    let tensors: Vec<(String, Vec<usize>)> = graph
        .weights
        .iter()
        .map(|w| (w.name.clone(), w.shape.clone()))
        .collect();
    let paths = [0, 1, 2].map(|i| out.join(format!("{stem}.p{i}.shares")));
    let mut files = Vec::new();
    let mut headers = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let header = ShareHeader {
            version: VERSION,
            model_id: model_id.into(),
            architecture_hash: graph.architecture_hash(),
            ring: RING.into(),
            frac_bits: fixed.frac_bits(),
            party: i as u8,
            seed_commitment: commitment(&seed),
            tensors: tensors.clone(),
            // Written again with the real digests once the data is out (same length).
            digests: vec![[0; 32]; tensors.len()],
        };
        files.push(create_framed(path, MAGIC, &header, "share header")?);
        headers.push(header);
    }
    for spec in &graph.weights {
        let values = weights.get(&spec.name)?.data();
        let n = values.len();
        let mut comp = [vec![0u64; n], vec![0u64; n], vec![0u64; n]];
        for (j, &v) in values.iter().enumerate() {
            let enc: u64 = fixed
                .encode(v)
                .map_err(|e| ModelError::Weight(format!("`{}`: {e}", spec.name)))?;
            let (a, b) = (rng.next_u64(), rng.next_u64());
            comp[0][j] = a;
            comp[1][j] = b;
            comp[2][j] = enc.wrapping_sub(a).wrapping_sub(b);
        }
        for (i, f) in files.iter_mut().enumerate() {
            let mut digest = Sha256::new();
            for c in [&comp[i], &comp[(i + 1) % 3]] {
                let mut buf = Vec::with_capacity(8 * n);
                for v in c {
                    buf.extend_from_slice(&v.to_le_bytes());
                }
                digest.update(&buf);
                f.write_all(&buf)
                    .map_err(|e| ModelError::io(&paths[i], e))?;
            }
            let at = headers[i].tensors.iter().position(|(t, _)| *t == spec.name);
            if let Some(at) = at {
                headers[i].digests[at] = digest.finalize().into();
            }
        }
    }
    for ((f, header), path) in files.into_iter().zip(&headers).zip(&paths) {
        let io = |e: std::io::Error| ModelError::io(path, e);
        let mut f = f.into_inner().map_err(|e| io(e.into_error()))?;
        let bytes = postcard::to_stdvec(header)
            .map_err(|e| ModelError::format("share header", e.to_string()))?;
        f.seek(SeekFrom::Start(12))
            .and_then(|_| f.write_all(&bytes))
            .and_then(|_| f.sync_all())
            .map_err(io)?;
    }
    Ok(paths)
}

/// Reads one party's share file layer by layer, from a file ([`open`](Self::open)) or any
/// seekable reader ([`from_reader`](Self::from_reader): tests and fuzzers need no
/// temporary files).
#[derive(Debug)]
pub struct ShareFileSource<R = File> {
    path: PathBuf,
    file: R,
    header: ShareHeader,
    /// Byte offset of each tensor's data, by header order.
    offsets: Vec<u64>,
}

impl ShareFileSource<File> {
    /// Opens `path` for party `me`, checking it against `graph`, the expected model id and
    /// the session's fixed point. Nothing but the header is read.
    pub fn open(
        path: impl AsRef<Path>,
        me: PartyId,
        graph: &Graph,
        model_id: &str,
        fixed: FixedPoint,
    ) -> Result<Self, ShareFileError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| ShareFileError::Open {
            path: path.clone(),
            source: e,
        })?;
        Self::from_reader(file, path, me, graph, model_id, fixed)
    }
}

impl<R: Read + Seek> ShareFileSource<R> {
    /// Reads a share file from `file`, which errors call `path`, with the checks of
    /// [`ShareFileSource::open`].
    ///
    /// ```
    /// use std::io::Cursor;
    /// use cipherdm_kernel::{FixedPoint, PartyId, graph::GraphBuilder};
    /// use cipherdm_models::secure::{ShareFileError, ShareFileSource};
    /// let mut g = GraphBuilder::new();
    /// let x = g.input("x", vec![2]);
    /// let y = g.dense("fc", x, 2).unwrap();
    /// let graph = g.finish(y);
    /// let junk = Cursor::new(b"not a share file".to_vec());
    /// let e = ShareFileSource::<_>::from_reader(junk, "junk", PartyId::P0, &graph, "m", FixedPoint::default());
    /// assert!(matches!(e, Err(ShareFileError::NotAShareFile(_))));
    /// ```
    pub fn from_reader(
        mut file: R,
        path: impl Into<PathBuf>,
        me: PartyId,
        graph: &Graph,
        model_id: &str,
        fixed: FixedPoint,
    ) -> Result<Self, ShareFileError> {
        let path = path.into();
        let framed = read_framed_header::<ShareHeader, R>(
            &mut file,
            &path,
            MAGIC,
            MAX_HEADER_BYTES,
            me,
            fixed,
        )?;
        let (header, size, len) = (framed.header, framed.size, framed.header_len);
        if header.model_id != model_id {
            return Err(ShareFileError::WrongModel {
                path,
                file: header.model_id,
                expected: model_id.into(),
            });
        }
        if header.architecture_hash != graph.architecture_hash() {
            return Err(ShareFileError::WrongArchitecture(path));
        }
        if header.digests.len() != header.tensors.len() {
            return Err(ShareFileError::Header {
                path,
                detail: format!(
                    "{} digests for {} tensors",
                    header.digests.len(),
                    header.tensors.len()
                ),
            });
        }
        let mut offsets = Vec::with_capacity(header.tensors.len());
        let mut at = 12 + len as u64;
        for (name, shape) in &header.tensors {
            offsets.push(at);
            let n = shape
                .iter()
                .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
                .and_then(|n| n.checked_mul(16))
                .ok_or_else(|| ShareFileError::Tensor {
                    path: path.clone(),
                    name: name.clone(),
                    detail: "shape overflows".into(),
                })?;
            at = at.checked_add(n).ok_or_else(|| ShareFileError::Header {
                path: path.clone(),
                detail: "tensor sizes overflow".into(),
            })?;
        }
        if at != size {
            return Err(ShareFileError::Truncated {
                path,
                expected: at - 12 - len as u64,
                got: size.saturating_sub(12 + len as u64),
            });
        }
        for spec in &graph.weights {
            match header.tensors.iter().find(|(n, _)| *n == spec.name) {
                None => {
                    return Err(ShareFileError::Tensor {
                        path,
                        name: spec.name.clone(),
                        detail: "missing".into(),
                    });
                }
                Some((_, s)) if *s != spec.shape => {
                    return Err(ShareFileError::Tensor {
                        path,
                        name: spec.name.clone(),
                        detail: format!("shape {s:?}, the graph needs {:?}", spec.shape),
                    });
                }
                Some(_) => {}
            }
        }
        Ok(Self {
            path,
            file,
            header,
            offsets,
        })
    }

    /// The header.
    pub fn header(&self) -> &ShareHeader {
        &self.header
    }
}

impl ShareFileSource {
    /// Checks that three parties' files come from one split (same seed commitment).
    pub fn check_same_split(headers: [&ShareHeader; 3]) -> Result<(), ShareFileError> {
        if headers[0].seed_commitment == headers[1].seed_commitment
            && headers[1].seed_commitment == headers[2].seed_commitment
        {
            Ok(())
        } else {
            Err(ShareFileError::MixedSplits)
        }
    }
}

/// Compares this party's split commitment (its share file's header) with both peers' over
/// `transport` before a job: 32 bytes each way, one round. Every party runs it, so with
/// files of two splits every party fails before any protocol message, each naming a peer
/// whose commitment differs. The commitments are public (they hide the split's seed).
pub fn compare_splits<T: cipherdm_kernel::Transport>(
    transport: &mut T,
    me: PartyId,
    header: &ShareHeader,
    path: &Path,
) -> Result<(), ModelError> {
    let peers = [me.next(), me.prev()];
    for peer in peers {
        transport
            .send(peer, &header.seed_commitment)
            .map_err(cipherdm_kernel::Error::from)?;
    }
    transport.flush().map_err(cipherdm_kernel::Error::from)?;
    let mut mismatch = None;
    for peer in peers {
        let mut theirs = [0u8; 32];
        transport
            .recv(peer, &mut theirs)
            .map_err(cipherdm_kernel::Error::from)?;
        if theirs != header.seed_commitment && mismatch.is_none() {
            mismatch = Some(peer);
        }
    }
    match mismatch {
        None => Ok(()),
        Some(peer) => Err(ShareFileError::SplitMismatch {
            path: path.to_path_buf(),
            party: me.index() as u8,
            peer: peer.index() as u8,
        }
        .into()),
    }
}

impl<R: Read + Seek> WeightSource<u64> for ShareFileSource<R> {
    type Error = ModelError;

    fn fetch(&mut self, name: &str, shape: &Shape) -> Result<ArithShare<u64>, ModelError> {
        let tensor_err = |detail: String| ShareFileError::Tensor {
            path: self.path.clone(),
            name: name.into(),
            detail,
        };
        let i = self
            .header
            .tensors
            .iter()
            .position(|(n, _)| n == name)
            .ok_or_else(|| tensor_err("missing".into()))?;
        if self.header.tensors[i].1 != shape.dims() {
            return Err(tensor_err(format!(
                "shape {:?}, expected {:?}",
                self.header.tensors[i].1,
                shape.dims()
            ))
            .into());
        }
        let n = shape.numel();
        let mut bytes = vec![0u8; 16 * n];
        self.file
            .seek(SeekFrom::Start(self.offsets[i]))
            .and_then(|_| self.file.read_exact(&mut bytes))
            .map_err(|e| ModelError::io(&self.path, e))?;
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        if digest != self.header.digests[i] {
            return Err(ShareFileError::Corrupt {
                path: self.path.clone(),
                party: self.header.party,
                name: name.into(),
            }
            .into());
        }
        let words: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let (this, next) = words.split_at(n);
        Ok(ArithShare::from_components(
            this.to_vec(),
            next.to_vec(),
            shape.clone(),
        )?)
    }
}
