//! Guidance share files: the model owner's per-step score-guidance tensors for one job,
//! split into three files, one per server — what the deployment uses instead of an owner
//! online during the job.
//!
//! The tensors depend only on public values — the model, the noise seed, the step count,
//! the batch size, the guidance and (for the error-cancelling correction) the servers'
//! approximation profile — which the header binds them to ([`GuidanceBinding`]); a party
//! refuses a file whose binding differs from its job's before any work, naming the field.
//!
//! Layout: the 8-byte magic `CDMGUIDE`, a little-endian `u32` header length, the header
//! (postcard), then for every step this party's two components of the tensor
//! (`x_i` then `x_{i+1}`, little-endian ring elements, fixed point). Files are named
//! `<model>-<binding digest>.p<party>.guidance`, so a party finds a job's file by its
//! binding alone.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use cipherdm_kernel::approx::Profile;
use cipherdm_kernel::share::share_locally;
use cipherdm_kernel::{ArithShare, FixedPoint, PartyId, Shape};
use rand_chacha::ChaCha12Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::share_file::{FramedHeader, RING, ShareFileError, create_framed, read_framed_header};
use crate::error::ModelError;
use crate::guidance::{ScoreGuidance, owner_tensors};
use crate::model::Model;
use crate::plain::Nonlinearity;
use crate::schedule::DdimConfig;
use crate::weights::Weights;

/// The file magic.
pub const MAGIC: &[u8; 8] = b"CDMGUIDE";
/// The format version this build writes and reads.
pub const VERSION: u16 = 1;
/// Largest header accepted.
const MAX_HEADER_BYTES: u32 = 1 << 16;

/// The public values a job's guidance tensors are computed from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuidanceBinding {
    /// Model identifier (e.g. `mnist`).
    pub model_id: String,
    /// The model graph's architecture hash.
    pub architecture_hash: [u8; 32],
    /// Public seed of the initial noise.
    pub seed: u64,
    /// DDIM steps (CipherDM's spacing).
    pub steps: usize,
    /// Images in the batch.
    pub batch: usize,
    /// The guidance, as [`ScoreGuidance`] writes it.
    pub guidance: String,
    /// The servers' approximation profile where the tensors depend on it (the correction),
    /// otherwise empty.
    pub profile: String,
}

impl GuidanceBinding {
    /// The binding of a job.
    pub fn new(
        model_id: &str,
        model: &Model,
        seed: u64,
        steps: usize,
        batch: usize,
        guidance: &ScoreGuidance,
        profile: Profile,
    ) -> Self {
        Self {
            model_id: model_id.into(),
            architecture_hash: model.graph.architecture_hash(),
            seed,
            steps,
            batch,
            guidance: guidance.to_string(),
            profile: if guidance.needs_profile() {
                profile.name().into()
            } else {
                String::new()
            },
        }
    }

    /// The first 16 hex digits of SHA-256 of the binding: what names its files.
    pub fn digest(&self) -> String {
        let bytes = postcard::to_stdvec(self).unwrap_or_default();
        Sha256::digest(bytes)
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The file name of `party`'s guidance shares.
    pub fn file_name(&self, party: usize) -> String {
        format!("{}-{}.p{party}.guidance", self.model_id, self.digest())
    }

    /// The first field in which `self` (a file's) differs from `want` (the job's).
    fn first_difference(&self, want: &Self) -> Option<String> {
        let f = |name: &str, a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| {
            Some(format!("{name} is {a:?}, the job's is {b:?}"))
        };
        if self.model_id != want.model_id {
            return f("model", &self.model_id, &want.model_id);
        }
        if self.architecture_hash != want.architecture_hash {
            return Some("made for another architecture".into());
        }
        if self.seed != want.seed {
            return f("seed", &self.seed, &want.seed);
        }
        if self.steps != want.steps {
            return f("steps", &self.steps, &want.steps);
        }
        if self.batch != want.batch {
            return f("batch", &self.batch, &want.batch);
        }
        if self.guidance != want.guidance {
            return f("guidance", &self.guidance, &want.guidance);
        }
        if self.profile != want.profile {
            return f("profile", &self.profile, &want.profile);
        }
        None
    }
}

#[derive(Serialize, Deserialize)]
struct GuidanceHeader {
    version: u16,
    party: u8,
    ring: String,
    frac_bits: u32,
    binding: GuidanceBinding,
}

impl FramedHeader for GuidanceHeader {
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

/// The owner's side: computes the job's per-step tensors from the plaintext `weights`
/// under `binding` and writes one share file per party into `out`, with fresh randomness
/// from `rng`. Returns the three paths.
pub fn write_guidance_files(
    model: &Model,
    weights: &Weights<f64>,
    binding: &GuidanceBinding,
    fixed: FixedPoint,
    out: &Path,
    rng: &mut ChaCha12Rng,
) -> Result<[PathBuf; 3], ModelError> {
    let guidance: ScoreGuidance = binding.guidance.parse()?;
    let profile = if binding.profile.is_empty() {
        Nonlinearity::Exact
    } else {
        binding.profile.parse()?
    };
    let config = DdimConfig {
        steps: binding.steps,
        ..DdimConfig::cipherdm()
    };
    let tensors = owner_tensors(
        model,
        weights,
        &guidance,
        profile,
        &config,
        binding.batch,
        binding.seed,
    )?;
    std::fs::create_dir_all(out).map_err(|e| ModelError::io(out, e))?;
    let paths = [0, 1, 2].map(|i| out.join(binding.file_name(i)));
    let mut files = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let header = GuidanceHeader {
            version: VERSION,
            party: i as u8,
            ring: RING.into(),
            frac_bits: fixed.frac_bits(),
            binding: binding.clone(),
        };
        files.push(create_framed(path, MAGIC, &header, "guidance header")?);
    }
    for t in &tensors {
        let mut enc = vec![0u64; t.len()];
        fixed.encode_slice(t.data(), &mut enc)?;
        let shares = share_locally(&enc, Shape::new(t.shape())?, rng)?;
        for ((f, s), path) in files.iter_mut().zip(&shares).zip(&paths) {
            let mut buf = Vec::with_capacity(16 * s.len());
            for v in s.this().iter().chain(s.next()) {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            f.write_all(&buf).map_err(|e| ModelError::io(path, e))?;
        }
    }
    for (mut f, path) in files.into_iter().zip(&paths) {
        f.flush().map_err(|e| ModelError::io(path, e))?;
    }
    Ok(paths)
}

/// A party's side: reads its guidance shares for a job from `file` (called `path` in
/// errors), refusing another party's file, another encoding, a binding that differs from
/// `want` (naming the field) or a length the binding does not imply. `image` is the shape
/// of one step's tensor, `(batch, C, H, W)`.
pub fn read_guidance<R: Read + Seek>(
    mut file: R,
    path: impl Into<PathBuf>,
    me: PartyId,
    want: &GuidanceBinding,
    fixed: FixedPoint,
    image: &Shape,
) -> Result<Vec<ArithShare<u64>>, ShareFileError> {
    let path = path.into();
    let io = |e: std::io::Error| ShareFileError::Open {
        path: path.clone(),
        source: e,
    };
    let framed = read_framed_header::<GuidanceHeader, R>(
        &mut file,
        &path,
        MAGIC,
        MAX_HEADER_BYTES,
        me,
        fixed,
    )?;
    let (header, size, len) = (framed.header, framed.size, framed.header_len);
    if let Some(detail) = header.binding.first_difference(want) {
        return Err(ShareFileError::Binding { path, detail });
    }
    let n = image.numel();
    if image.dims().first() != Some(&want.batch) {
        return Err(ShareFileError::Binding {
            path,
            detail: format!(
                "the job's image {:?} is not a batch of {}",
                image.dims(),
                want.batch
            ),
        });
    }
    // Checked against the job's own (bounded) steps and batch, so no size comes from the file.
    let expected = (want.steps as u64) * 16 * n as u64;
    if size - 12 - len as u64 != expected {
        return Err(ShareFileError::Truncated {
            path,
            expected,
            got: size - 12 - len as u64,
        });
    }
    let mut out = Vec::with_capacity(want.steps);
    let mut buf = vec![0u8; 16 * n];
    for _ in 0..want.steps {
        file.read_exact(&mut buf).map_err(io)?;
        let words: Vec<u64> = buf
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        let (this, next) = words.split_at(n);
        let share = ArithShare::from_components(this.to_vec(), next.to_vec(), image.clone())
            .map_err(|e| ShareFileError::Header {
                path: path.clone(),
                detail: e.to_string(),
            })?;
        out.push(share);
    }
    Ok(out)
}

/// [`read_guidance`] of the file for `want` in folder `dir`.
pub fn open_guidance(
    dir: &Path,
    me: PartyId,
    want: &GuidanceBinding,
    fixed: FixedPoint,
    image: &Shape,
) -> Result<Vec<ArithShare<u64>>, ShareFileError> {
    let path = dir.join(want.file_name(me.index()));
    let file = File::open(&path).map_err(|e| ShareFileError::Open {
        path: path.clone(),
        source: e,
    })?;
    read_guidance(file, path, me, want, fixed, image)
}
