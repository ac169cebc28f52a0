//! A plain dense tensor (row-major, shape + data) for the plaintext backends, the weight
//! files and the samplers.

use crate::error::ModelError;

/// Floating-point element types of the plaintext backends: `f32` and `f64`.
pub trait Float:
    num_traits::Float + Default + Send + Sync + core::fmt::Debug + core::iter::Sum + 'static
{
    /// Converts from `f64` (rounding for `f32`).
    fn of(v: f64) -> Self;
    /// Converts to `f64` (exact).
    fn as_f64(self) -> f64;
}

impl Float for f32 {
    fn of(v: f64) -> Self {
        v as f32
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Float for f64 {
    fn of(v: f64) -> Self {
        v
    }
    fn as_f64(self) -> f64 {
        self
    }
}

/// A row-major tensor. The first axis is the batch wherever a batch exists.
///
/// ```
/// use cipherdm_models::Tensor;
/// let t = Tensor::<f64>::new(vec![2, 3], vec![0.0; 6]).unwrap();
/// assert_eq!(t.shape(), &[2, 3]);
/// assert!(Tensor::<f64>::new(vec![2, 3], vec![0.0; 5]).is_err());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor<F> {
    shape: Vec<usize>,
    data: Vec<F>,
}

impl<F: Float> Tensor<F> {
    /// A tensor from its shape and data; the lengths must agree.
    pub fn new(shape: Vec<usize>, data: Vec<F>) -> Result<Self, ModelError> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(ModelError::Shape(format!(
                "shape {shape:?} holds {n} values but {} were given",
                data.len()
            )));
        }
        Ok(Self { shape, data })
    }

    /// All zeros.
    pub fn zeros(shape: Vec<usize>) -> Self {
        let n = shape.iter().product();
        Self {
            shape,
            data: vec![F::zero(); n],
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The values, row-major.
    pub fn data(&self) -> &[F] {
        &self.data
    }

    /// The values, mutable.
    pub fn data_mut(&mut self) -> &mut [F] {
        &mut self.data
    }

    /// Consumes the tensor, returning its values.
    pub fn into_data(self) -> Vec<F> {
        self.data
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Same data, another shape with the same number of elements.
    pub fn reshape(self, shape: Vec<usize>) -> Result<Self, ModelError> {
        Self::new(shape, self.data)
    }

    /// Converts every element to another float type.
    pub fn cast<G: Float>(&self) -> Tensor<G> {
        Tensor {
            shape: self.shape.clone(),
            data: self.data.iter().map(|v| G::of(v.as_f64())).collect(),
        }
    }

    /// Applies `f` to every element.
    pub fn map(&self, f: impl Fn(F) -> F) -> Self {
        Tensor {
            shape: self.shape.clone(),
            data: self.data.iter().map(|&v| f(v)).collect(),
        }
    }

    /// Largest absolute difference to `other` (which must have the same shape).
    pub fn max_abs_diff(&self, other: &Self) -> Result<f64, ModelError> {
        if self.shape != other.shape {
            return Err(ModelError::Shape(format!(
                "cannot compare shapes {:?} and {:?}",
                self.shape, other.shape
            )));
        }
        Ok(self
            .data
            .iter()
            .zip(&other.data)
            .map(|(a, b)| (a.as_f64() - b.as_f64()).abs())
            .fold(0.0, f64::max))
    }

    /// Items `start..start + len` of the batch axis.
    pub fn batch_slice(&self, start: usize, len: usize) -> Result<Self, ModelError> {
        let b = *self
            .shape
            .first()
            .ok_or_else(|| ModelError::Shape("a scalar has no batch axis".into()))?;
        if start + len > b {
            return Err(ModelError::Shape(format!(
                "batch items {start}..{} out of {b}",
                start + len
            )));
        }
        let per = self.data.len() / b.max(1);
        let mut shape = self.shape.clone();
        shape[0] = len;
        Self::new(shape, self.data[start * per..(start + len) * per].to_vec())
    }

    /// Concatenates tensors along the batch axis; the other axes must agree.
    pub fn concat_batch(parts: &[Self]) -> Result<Self, ModelError> {
        let first = parts
            .first()
            .ok_or_else(|| ModelError::Shape("nothing to concatenate".into()))?;
        let mut shape = first.shape.clone();
        let mut data = Vec::new();
        let mut b = 0;
        for p in parts {
            if p.shape.len() != shape.len() || p.shape[1..] != shape[1..] {
                return Err(ModelError::Shape(format!(
                    "cannot stack {:?} onto {:?}",
                    p.shape, shape
                )));
            }
            b += p.shape[0];
            data.extend_from_slice(&p.data);
        }
        shape[0] = b;
        Self::new(shape, data)
    }
}
