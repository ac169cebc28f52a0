//! MNIST from the gzipped IDX files the project ships in `models/data/mnist/`
//! (MNIST database by LeCun, Cortes and Burges, CC BY-SA 3.0).
//!
//! The 10,000 test digits are compiled into the library ([`Mnist::test_set`]), so
//! evaluation works from any folder; the training digits are read from a folder
//! ([`Mnist::load_from`], or [`Mnist::load`] which finds it at run time).

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::ModelError;
use crate::tensor::Tensor;

/// A set of 28×28 digits with labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Mnist {
    /// Pixels, `n × 784`, 0–255.
    pub images: Vec<u8>,
    /// Labels 0–9.
    pub labels: Vec<u8>,
}

/// Which half of MNIST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// 60,000 training digits.
    Train,
    /// 10,000 test digits.
    Test,
}

/// Environment variable naming a folder of MNIST's four `*-ubyte.gz` files.
pub const DATA_ENV: &str = "CIPHERDM_MNIST";

/// The folder [`Mnist::load`] reads: `$CIPHERDM_MNIST` when set, otherwise
/// `models/data/mnist` under the current directory (a checkout's root), otherwise
/// `data/mnist` (the models crate's folder). Resolved at run time, never at build time.
pub fn data_dir() -> Result<PathBuf, ModelError> {
    if let Some(dir) = std::env::var_os(DATA_ENV) {
        return Ok(PathBuf::from(dir));
    }
    let tried = [Path::new("models/data/mnist"), Path::new("data/mnist")];
    tried
        .iter()
        .find(|d| d.join("train-labels-idx1-ubyte.gz").is_file())
        .map(|d| d.to_path_buf())
        .ok_or_else(|| {
            ModelError::Config(format!(
                "no MNIST folder: set {DATA_ENV}, or run from a checkout (looked in {} and {})",
                tried[0].display(),
                tried[1].display()
            ))
        })
}

const TEST_IMAGES: &[u8] = include_bytes!("../data/mnist/t10k-images-idx3-ubyte.gz");
const TEST_LABELS: &[u8] = include_bytes!("../data/mnist/t10k-labels-idx1-ubyte.gz");

const MAX_ITEMS: usize = 100_000;

fn read_gz(path: &Path, limit: usize) -> Result<Vec<u8>, ModelError> {
    let f = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    gunzip(f, limit).map_err(|e| ModelError::io(path, e))
}

fn gunzip(r: impl Read, limit: usize) -> Result<Vec<u8>, std::io::Error> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(r)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)?;
    if out.len() > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "larger than any MNIST file",
        ));
    }
    Ok(out)
}

fn be32(b: &[u8], at: usize, what: &str) -> Result<usize, ModelError> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize)
        .ok_or_else(|| ModelError::format(what, "truncated header"))
}

/// Parses an IDX image file (magic 0x803, n × 28 × 28).
pub fn parse_images(b: &[u8]) -> Result<Vec<u8>, ModelError> {
    if be32(b, 0, "IDX images")? != 0x803 {
        return Err(ModelError::format(
            "IDX images",
            "bad magic (expected 0x00000803)",
        ));
    }
    let (n, h, w) = (
        be32(b, 4, "IDX images")?,
        be32(b, 8, "IDX images")?,
        be32(b, 12, "IDX images")?,
    );
    if h != 28 || w != 28 || n > MAX_ITEMS {
        return Err(ModelError::format(
            "IDX images",
            format!("unexpected dimensions {n}×{h}×{w}"),
        ));
    }
    let body = &b[16..];
    if body.len() != n * 784 {
        return Err(ModelError::format(
            "IDX images",
            format!("{} pixel bytes for {n} images", body.len()),
        ));
    }
    Ok(body.to_vec())
}

/// Parses an IDX label file (magic 0x801), labels 0–9.
pub fn parse_labels(b: &[u8]) -> Result<Vec<u8>, ModelError> {
    if be32(b, 0, "IDX labels")? != 0x801 {
        return Err(ModelError::format(
            "IDX labels",
            "bad magic (expected 0x00000801)",
        ));
    }
    let n = be32(b, 4, "IDX labels")?;
    let body = &b[8..];
    if body.len() != n || n > MAX_ITEMS || body.iter().any(|&l| l > 9) {
        return Err(ModelError::format(
            "IDX labels",
            "length or label values out of range",
        ));
    }
    Ok(body.to_vec())
}

impl Mnist {
    /// Loads a split: the test split from the copy compiled into the library, the
    /// training split from [`data_dir`].
    pub fn load(split: Split) -> Result<Self, ModelError> {
        match split {
            Split::Test => Self::test_set(),
            Split::Train => Self::load_from(&data_dir()?, split),
        }
    }

    /// The 10,000 test digits, from the copy compiled into the library.
    pub fn test_set() -> Result<Self, ModelError> {
        let io = |e: std::io::Error| ModelError::format("built-in MNIST test set", e.to_string());
        let images = parse_images(&gunzip(TEST_IMAGES, 16 + MAX_ITEMS * 784).map_err(io)?)?;
        let labels = parse_labels(&gunzip(TEST_LABELS, 8 + MAX_ITEMS).map_err(io)?)?;
        if images.len() != labels.len() * 784 {
            return Err(ModelError::format("MNIST", "image and label counts differ"));
        }
        Ok(Self { images, labels })
    }

    /// Loads a split from `dir` (the four `*-ubyte.gz` files).
    pub fn load_from(dir: &Path, split: Split) -> Result<Self, ModelError> {
        let prefix = match split {
            Split::Train => "train",
            Split::Test => "t10k",
        };
        let images = parse_images(&read_gz(
            &dir.join(format!("{prefix}-images-idx3-ubyte.gz")),
            16 + MAX_ITEMS * 784,
        )?)?;
        let labels = parse_labels(&read_gz(
            &dir.join(format!("{prefix}-labels-idx1-ubyte.gz")),
            8 + MAX_ITEMS,
        )?)?;
        if images.len() != labels.len() * 784 {
            return Err(ModelError::format("MNIST", "image and label counts differ"));
        }
        Ok(Self { images, labels })
    }

    /// Number of digits.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Keeps only the digits in `classes`.
    pub fn filter(&self, classes: &[u8]) -> Self {
        let keep: Vec<usize> = (0..self.len())
            .filter(|&i| classes.contains(&self.labels[i]))
            .collect();
        Self {
            images: keep
                .iter()
                .flat_map(|&i| self.images[i * 784..(i + 1) * 784].iter().copied())
                .collect(),
            labels: keep.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    /// Digits `idx` as a `(B, 1, 28, 28)` tensor scaled to `[-1, 1]`.
    pub fn batch(&self, idx: &[usize]) -> Tensor<f32> {
        let data = idx
            .iter()
            .flat_map(|&i| {
                self.images[i * 784..(i + 1) * 784]
                    .iter()
                    .map(|&p| p as f32 / 127.5 - 1.0)
            })
            .collect();
        Tensor::new(vec![idx.len(), 1, 28, 28], data).expect("784 pixels per digit")
    }
}
