//! Replicated arithmetic shares (ABY3): `x = x_0 + x_1 + x_2 mod 2^k`, and party `i`
//! holds the pair `(x_i, x_{i+1})`.
//!
//! A vector of shares is stored as two component vectors (struct of arrays): `this`
//! holds `x_i` and `next` holds `x_{i+1}` for every element. Any two parties together
//! hold all three components; any one party sees two uniformly random components.
//!
//! Local operations (addition, subtraction, negation, multiplication by a public
//! integer) live here because they need no communication; everything that talks is in
//! [`protocols`](crate::protocols).

use alloc::vec::Vec;

use crate::error::Error;
use crate::ring::Ring;
use crate::shape::Shape;
use crate::transport::PartyId;

/// One party's view of a secret-shared tensor over ring `R`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArithShare<R: Ring> {
    this: Vec<R>,
    next: Vec<R>,
    shape: Shape,
}

impl<R: Ring> ArithShare<R> {
    /// Builds a share from its two components; both must have `shape.numel()` elements.
    pub fn from_components(this: Vec<R>, next: Vec<R>, shape: Shape) -> Result<Self, Error> {
        if this.len() != shape.numel() || next.len() != shape.numel() {
            return Err(Error::LengthMismatch {
                what: "share components vs shape",
                expected: shape.numel(),
                got: if this.len() != shape.numel() {
                    this.len()
                } else {
                    next.len()
                },
            });
        }
        Ok(ArithShare { this, next, shape })
    }

    /// A share of the all-zero tensor (every component zero).
    pub fn zeros(shape: Shape) -> Self {
        let n = shape.numel();
        ArithShare {
            this: alloc::vec![R::ZERO; n],
            next: alloc::vec![R::ZERO; n],
            shape,
        }
    }

    /// A share of a public tensor: party 0 and party 2 put `values` in component `x_0`.
    pub fn from_public(me: PartyId, values: &[R], shape: Shape) -> Result<Self, Error> {
        let mut s = Self::zeros(shape);
        s.add_public_assign(me, values)?;
        Ok(s)
    }

    /// Component `x_i` of party `i`.
    pub fn this(&self) -> &[R] {
        &self.this
    }

    /// Component `x_{i+1}` of party `i`.
    pub fn next(&self) -> &[R] {
        &self.next
    }

    /// `x_i + x_{i+1}` per element: this party's two components summed, which with the
    /// third component `x_{i+2}` makes a two-term sharing (the local-sum trick).
    pub fn local_sum(&self) -> Vec<R> {
        self.this
            .iter()
            .zip(&self.next)
            .map(|(a, b)| a.wrapping_add(*b))
            .collect()
    }

    /// Consumes the share, returning `(x_i, x_{i+1})`.
    pub fn into_components(self) -> (Vec<R>, Vec<R>) {
        (self.this, self.next)
    }

    /// The tensor shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.this.len()
    }

    /// True for a tensor with no elements.
    pub fn is_empty(&self) -> bool {
        self.this.is_empty()
    }

    /// The same data under another shape with the same element count.
    pub fn reshape(mut self, shape: Shape) -> Result<Self, Error> {
        if shape.numel() != self.len() {
            return Err(Error::LengthMismatch {
                what: "reshape",
                expected: self.len(),
                got: shape.numel(),
            });
        }
        self.shape = shape;
        Ok(self)
    }

    /// Concatenates the elements of `parts` into one vector-shaped share (local).
    pub fn concat(parts: &[&Self]) -> Self {
        let n: usize = parts.iter().map(|s| s.len()).sum();
        let mut this = Vec::with_capacity(n);
        let mut next = Vec::with_capacity(n);
        for s in parts {
            this.extend_from_slice(&s.this);
            next.extend_from_slice(&s.next);
        }
        ArithShare {
            this,
            next,
            shape: Shape::vector(n),
        }
    }

    /// Elements `start..start + len` as a vector-shaped share (local).
    pub fn slice(&self, start: usize, len: usize) -> Result<Self, Error> {
        let end = start.checked_add(len).filter(|&e| e <= self.len());
        let end = end.ok_or(Error::LengthMismatch {
            what: "slice",
            expected: self.len(),
            got: start.saturating_add(len),
        })?;
        Ok(ArithShare {
            this: self.this[start..end].to_vec(),
            next: self.next[start..end].to_vec(),
            shape: Shape::vector(len),
        })
    }

    fn check_same(&self, other: &Self, what: &'static str) -> Result<(), Error> {
        if self.len() != other.len() {
            return Err(Error::LengthMismatch {
                what,
                expected: self.len(),
                got: other.len(),
            });
        }
        Ok(())
    }

    /// `[x + y]`, local.
    pub fn add(&self, other: &Self) -> Result<Self, Error> {
        self.check_same(other, "add")?;
        Ok(self.zip_with(other, R::wrapping_add))
    }

    /// `[x - y]`, local.
    pub fn sub(&self, other: &Self) -> Result<Self, Error> {
        self.check_same(other, "sub")?;
        Ok(self.zip_with(other, R::wrapping_sub))
    }

    /// `[-x]`, local.
    pub fn neg(&self) -> Self {
        self.map(R::wrapping_neg)
    }

    /// `[x] += [y]` in place, local.
    pub fn add_assign(&mut self, other: &Self) -> Result<(), Error> {
        self.check_same(other, "add_assign")?;
        for (a, b) in self.this.iter_mut().zip(&other.this) {
            *a = a.wrapping_add(*b);
        }
        for (a, b) in self.next.iter_mut().zip(&other.next) {
            *a = a.wrapping_add(*b);
        }
        Ok(())
    }

    /// `[x + c]` for a public tensor `c` of the same length (component `x_0` absorbs `c`).
    pub fn add_public(&self, me: PartyId, c: &[R]) -> Result<Self, Error> {
        let mut s = self.clone();
        s.add_public_assign(me, c)?;
        Ok(s)
    }

    /// In-place [`add_public`](Self::add_public).
    pub fn add_public_assign(&mut self, me: PartyId, c: &[R]) -> Result<(), Error> {
        if c.len() != self.len() {
            return Err(Error::LengthMismatch {
                what: "add_public",
                expected: self.len(),
                got: c.len(),
            });
        }
        // x_0 is `this` at party 0 and `next` at party 2.
        let comp = match me.index() {
            0 => &mut self.this,
            2 => &mut self.next,
            _ => return Ok(()),
        };
        for (a, b) in comp.iter_mut().zip(c) {
            *a = a.wrapping_add(*b);
        }
        Ok(())
    }

    /// `[x + c]` for one public scalar `c`.
    pub fn add_public_scalar(&self, me: PartyId, c: R) -> Self {
        let mut s = self.clone();
        let comp = match me.index() {
            0 => &mut s.this,
            2 => &mut s.next,
            _ => return s,
        };
        for a in comp.iter_mut() {
            *a = a.wrapping_add(c);
        }
        s
    }

    /// `[x * c]` elementwise for a public integer tensor `c`, local (no truncation).
    pub fn mul_public(&self, c: &[R]) -> Result<Self, Error> {
        if c.len() != self.len() {
            return Err(Error::LengthMismatch {
                what: "mul_public",
                expected: self.len(),
                got: c.len(),
            });
        }
        let mul = |v: &[R]| v.iter().zip(c).map(|(a, b)| a.wrapping_mul(*b)).collect();
        Ok(ArithShare {
            this: mul(&self.this),
            next: mul(&self.next),
            shape: self.shape.clone(),
        })
    }

    /// `[x * c]` for a public integer scalar `c`, local (no truncation).
    pub fn mul_public_scalar(&self, c: R) -> Self {
        self.map(|a| a.wrapping_mul(c))
    }

    /// `[x << bits]`, local.
    pub fn shl(&self, bits: u32) -> Self {
        self.map(|a| a.shl(bits))
    }

    fn map(&self, f: impl Fn(R) -> R) -> Self {
        ArithShare {
            this: self.this.iter().map(|&a| f(a)).collect(),
            next: self.next.iter().map(|&a| f(a)).collect(),
            shape: self.shape.clone(),
        }
    }

    fn zip_with(&self, other: &Self, f: impl Fn(R, R) -> R) -> Self {
        let z = |a: &[R], b: &[R]| a.iter().zip(b).map(|(x, y)| f(*x, *y)).collect();
        ArithShare {
            this: z(&self.this, &other.this),
            next: z(&self.next, &other.next),
            shape: self.shape.clone(),
        }
    }
}

/// Reconstructs the secret from all three parties' shares, checking that they are a
/// consistent replicated sharing (party `i`'s `next` equals party `i+1`'s `this`).
/// For tests and debugging: no deployment ever holds all three.
pub fn reconstruct<R: Ring>(shares: [&ArithShare<R>; 3]) -> Result<Vec<R>, Error> {
    let n = shares[0].len();
    for s in &shares {
        if s.len() != n {
            return Err(Error::LengthMismatch {
                what: "reconstruct",
                expected: n,
                got: s.len(),
            });
        }
    }
    for i in 0..3 {
        if shares[i].next != shares[(i + 1) % 3].this {
            return Err(Error::Inconsistent(
                "replicated components disagree between parties",
            ));
        }
    }
    Ok((0..n)
        .map(|j| {
            shares[0].this[j]
                .wrapping_add(shares[1].this[j])
                .wrapping_add(shares[2].this[j])
        })
        .collect())
}

/// Splits a plaintext tensor into three consistent replicated shares using `rng`.
/// For tests and for dealers that hold the secret (the model owner's share files).
pub fn share_locally<R: Ring, G: rand_core::Rng + ?Sized>(
    values: &[R],
    shape: Shape,
    rng: &mut G,
) -> Result<[ArithShare<R>; 3], Error> {
    if values.len() != shape.numel() {
        return Err(Error::LengthMismatch {
            what: "share_locally",
            expected: shape.numel(),
            got: values.len(),
        });
    }
    let n = values.len();
    let mut c0 = alloc::vec![R::ZERO; n];
    let mut c1 = alloc::vec![R::ZERO; n];
    R::fill_random(rng, &mut c0);
    R::fill_random(rng, &mut c1);
    let c2: Vec<R> = values
        .iter()
        .zip(c0.iter().zip(&c1))
        .map(|(v, (a, b))| v.wrapping_sub(*a).wrapping_sub(*b))
        .collect();
    let comps = [c0, c1, c2];
    let mk = |i: usize| ArithShare {
        this: comps[i].clone(),
        next: comps[(i + 1) % 3].clone(),
        shape: shape.clone(),
    };
    Ok([mk(0), mk(1), mk(2)])
}
