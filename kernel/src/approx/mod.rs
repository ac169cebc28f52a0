//! Approximation tables: one place for every coefficient of every nonlinearity, each
//! entry with its plaintext evaluator (used by tests and by plaintext-approximate
//! sampling) and its documented accuracy.
//!
//! An [`Entry`] is looked up by [`Profile`] and [`Function`] with [`entry`]. Profiles, from
//! CipherDM (Zhao et al., 2024), from "Secure Inference for Diffusion Models via
//! Unconditional Scores" (Song et al.) and our own:
//!
//! | profile | source | SiLU | GeLU | Mish | exp (x ≤ 0) | sigmoid |
//! |---|---|---|---|---|---|---|
//! | [`Profile::CipherDm`] | CipherDM's released code | 4 pieces, 7.48e-2 | – | 4 pieces, 1.27e-1 | Chebyshev deg 7 on [-14, 0], 4.85e-2 | – |
//! | [`Profile::Precise`] | Song et al., Appendix A | 4 pieces, 7.19e-2 | 4 pieces, 3.33e-2 | – | `(1 + x/256)^256`, 1.06e-3 | – |
//! | [`Profile::Loose`] | Song et al., Appendix A | 3 pieces, 7.19e-2 | 3 pieces, 8.31e-2 | – | deg 4 on [-4.8, 0], 1.19e-2 | – |
//! | [`Profile::Accurate`] | ours (`tools/fit.py`) | 5 pieces, 7.11e-4 | 5 pieces, 4.87e-4 | 5 pieces, 7.11e-4 | deg 10 on [-10, 0], 4.54e-5 | 5 pieces, 3.35e-4 |
//!
//! Figures are the maximum absolute error against the exact function over the whole
//! real line (exp: over `x ≤ 0`), measured on a 10^-4 grid; a test re-measures every one
//! of them, so a mistyped coefficient fails. A missing cell is an
//! [`Error::InvalidParameter`].
//!
//! The `Accurate` pieces were fitted by `tools/fit.py` (least squares refined towards
//! minimax by Lawson's reweighting) on the variable `u = x/4` (GeLU `x/2`, exp `x/5 + 1`),
//! using the symmetries `silu(x) = x + silu(-x)`, `gelu(x) = x + gelu(-x)` and
//! `σ(x) = 1 - σ(-x)` for the right-hand pieces and only the powers
//! `{1, 2, 4, 6}` for SiLU and GeLU, so that the secure evaluation needs 3
//! multiplications for the powers.
//!
//! ```
//! use cipherdm_kernel::approx::{entry, Function, Profile};
//! let silu = entry(Profile::Accurate, Function::Silu).unwrap();
//! let exact = 1.0 / (1.0 + (-1.0f64).exp());
//! assert!((silu.eval(1.0) - exact).abs() <= silu.max_error);
//! ```

mod tables;

pub use tables::{CHEXP_CHEBYSHEV, CHEXP_SEED2_MONOMIAL};

use crate::error::Error;

/// A family of approximations (see the [module table](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Profile {
    /// CipherDM's released code: 4-segment SiLU and Mish, degree-7 Chebyshev exp.
    CipherDm,
    /// The precise approximations of Song et al. (BumbleBee's segmentation).
    Precise,
    /// The relaxed approximations of Song et al.: fewer segments, cheaper.
    Loose,
    /// Ours: at most 1e-3 for SiLU, GeLU, Mish and sigmoid, 1e-4 for exp on `x ≤ 0`.
    Accurate,
}

impl Profile {
    /// Every profile, in the order of the tables.
    pub const ALL: [Profile; 4] = [
        Profile::CipherDm,
        Profile::Precise,
        Profile::Loose,
        Profile::Accurate,
    ];

    /// The profile's name on command lines and in reports (`cipherdm`, `precise`,
    /// `loose`, `accurate`).
    pub fn name(self) -> &'static str {
        match self {
            Profile::CipherDm => "cipherdm",
            Profile::Precise => "precise",
            Profile::Loose => "loose",
            Profile::Accurate => "accurate",
        }
    }
}

impl core::fmt::Display for Profile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A profile name that is not one of [`Profile::ALL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownProfile;

impl core::fmt::Display for UnknownProfile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("unknown approximation profile (accurate, precise, loose, cipherdm)")
    }
}

impl core::error::Error for UnknownProfile {}

impl core::str::FromStr for Profile {
    type Err = UnknownProfile;

    /// The one parser of profile names, case-insensitive.
    ///
    /// ```
    /// use cipherdm_kernel::approx::Profile;
    /// assert_eq!("CipherDM".parse(), Ok(Profile::CipherDm));
    /// assert_eq!("accurate".parse::<Profile>().unwrap().to_string(), "accurate");
    /// assert!("exact".parse::<Profile>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, UnknownProfile> {
        Profile::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
            .ok_or(UnknownProfile)
    }
}

/// A nonlinearity with tabulated approximations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Function {
    /// `x·σ(x)`.
    Silu,
    /// `x·Φ(x)`.
    Gelu,
    /// `x·tanh(ln(1 + e^x))`.
    Mish,
    /// `e^x` on `x ≤ 0` (the softmax exponent after max-subtraction).
    Exp,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
}

/// A piecewise polynomial. Piece `i` covers `[breaks[i-1], breaks[i])` (piece 0 everything
/// below `breaks[0]`, the last piece everything from the last break on) and is the
/// polynomial `Σ_j pieces[i][j]·u^j` in the variable `u = scale·x + shift`. An empty
/// piece is zero.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Piecewise {
    /// Ascending break points, in `x`.
    pub breaks: &'static [f64],
    /// Monomial coefficients in `u`, one slice per piece (`breaks.len() + 1` pieces).
    pub pieces: &'static [&'static [f64]],
    /// `u = scale·x + shift`.
    pub scale: f64,
    /// `u = scale·x + shift`.
    pub shift: f64,
    /// The secure evaluator computes powers of `v = u / 2^eval_shift` (coefficients
    /// rescaled by `2^(eval_shift·j)`, exactly) so that `|v| ≲ 2` on the non-trivial pieces
    /// and fixed-point powers keep their precision.
    pub eval_shift: u32,
}

/// How a function is approximated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Approximation {
    /// A piecewise polynomial.
    Piecewise(Piecewise),
    /// `(1 + x/2^squarings)^(2^squarings)` for `x >= cutoff`, zero below.
    CompoundExp {
        /// Below this the result is zero.
        cutoff: f64,
        /// Number of squarings `s` (the exponent is `2^s`).
        squarings: u32,
    },
}

/// One table entry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Entry {
    /// The profile it belongs to.
    pub profile: Profile,
    /// The function it approximates.
    pub function: Function,
    /// The approximation itself.
    pub approx: Approximation,
    /// Maximum absolute error against the exact function on [`domain`](Self::domain),
    /// measured; tests assert it.
    pub max_error: f64,
    /// Where `max_error` holds: `(lo, hi)`, infinite ends allowed.
    pub domain: (f64, f64),
    /// Where the coefficients come from.
    pub source: &'static str,
}

impl Piecewise {
    /// Index of the piece containing `x`.
    pub fn piece_of(&self, x: f64) -> usize {
        self.breaks.iter().filter(|&&t| x >= t).count()
    }

    /// Plaintext evaluation (Horner in `u`).
    pub fn eval(&self, x: f64) -> f64 {
        let u = self.scale * x + self.shift;
        self.pieces[self.piece_of(x)]
            .iter()
            .rev()
            .fold(0.0, |acc, &c| acc * u + c)
    }

    /// The highest power of `u` any piece uses.
    pub fn degree(&self) -> usize {
        self.pieces
            .iter()
            .map(|c| c.len().saturating_sub(1))
            .max()
            .unwrap_or(0)
    }
}

impl Approximation {
    /// Plaintext evaluation.
    pub fn eval(&self, x: f64) -> f64 {
        match self {
            Approximation::Piecewise(pw) => pw.eval(x),
            Approximation::CompoundExp { cutoff, squarings } => {
                if x < *cutoff {
                    return 0.0;
                }
                let mut y = 1.0 + x / (1u64 << squarings) as f64;
                for _ in 0..*squarings {
                    y *= y;
                }
                y
            }
        }
    }
}

impl Entry {
    /// Plaintext evaluation of the approximation.
    pub fn eval(&self, x: f64) -> f64 {
        self.approx.eval(x)
    }
}

/// The table entry for `function` under `profile`, or [`Error::InvalidParameter`] when the
/// profile does not define it.
pub fn entry(profile: Profile, function: Function) -> Result<&'static Entry, Error> {
    tables::ALL
        .iter()
        .find(|e| e.profile == profile && e.function == function)
        .ok_or(Error::InvalidParameter(
            "this approximation profile does not define that function",
        ))
}

/// Every entry of every profile.
pub fn all() -> &'static [Entry] {
    tables::ALL
}

/// Converts Chebyshev-series coefficients `Σ c_n T_n(u)` to monomial coefficients
/// `Σ m_j u^j` (same length), in `const` context.
pub const fn chebyshev_to_monomial<const N: usize>(c: [f64; N]) -> [f64; N] {
    // t_prev = T_{n-2}, t_cur = T_{n-1} as monomial coefficient arrays.
    let mut out = [0.0; N];
    let mut t_prev = [0.0; N];
    let mut t_cur = [0.0; N];
    if N == 0 {
        return out;
    }
    t_prev[0] = 1.0;
    out[0] = c[0];
    if N == 1 {
        return out;
    }
    t_cur[1] = 1.0;
    out[1] += c[1];
    let mut n = 2;
    while n < N {
        let mut t_next = [0.0; N];
        let mut j = 0;
        while j < N {
            if j + 1 < N {
                t_next[j + 1] += 2.0 * t_cur[j];
            }
            t_next[j] -= t_prev[j];
            j += 1;
        }
        let mut j = 0;
        while j < N {
            out[j] += c[n] * t_next[j];
            j += 1;
        }
        t_prev = t_cur;
        t_cur = t_next;
        n += 1;
    }
    out
}
