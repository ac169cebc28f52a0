//! Row-major tensor shapes.

use core::fmt;

use crate::error::Error;

/// Most dimensions a [`Shape`] can have (NCHW plus two spare).
pub const MAX_DIMS: usize = 6;

/// A row-major tensor shape of at most [`MAX_DIMS`] dimensions whose element count fits
/// in `usize`.
///
/// ```
/// use cipherdm_kernel::shape::Shape;
/// let s = Shape::new(&[2, 3, 4]).unwrap();
/// assert_eq!(s.numel(), 24);
/// assert_eq!(s.dims(), &[2, 3, 4]);
/// assert!(Shape::new(&[usize::MAX, 2]).is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape {
    dims: heapless::Vec<usize, MAX_DIMS>,
    numel: usize,
}

impl Shape {
    /// A shape with the given dimensions; errors on too many dimensions or an element
    /// count that overflows `usize`.
    pub fn new(dims: &[usize]) -> Result<Self, Error> {
        let mut v = heapless::Vec::new();
        let mut numel: usize = 1;
        for &d in dims {
            v.push(d)
                .map_err(|_| Error::InvalidShape("too many dimensions"))?;
            numel = numel
                .checked_mul(d)
                .ok_or(Error::InvalidShape("element count overflows usize"))?;
        }
        Ok(Shape { dims: v, numel })
    }

    /// A one-dimensional shape of `n` elements.
    pub fn vector(n: usize) -> Self {
        let mut dims = heapless::Vec::new();
        // One dimension always fits.
        let _ = dims.push(n);
        Shape { dims, numel: n }
    }

    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// Number of elements (product of the dimensions).
    pub fn numel(&self) -> usize {
        self.numel
    }

    /// The last dimension (1 for a scalar shape).
    pub fn last_dim(&self) -> usize {
        self.dims.last().copied().unwrap_or(1)
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.dims.as_slice())
    }
}
