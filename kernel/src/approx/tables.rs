//! The coefficients. Seed coefficients are copied digit for digit from their sources;
//! `Accurate` ones are printed by `python3 tools/fit.py --tables`.

// Sources print more digits than an f64 holds; they are kept verbatim for auditing.
#![allow(clippy::excessive_precision)]

use super::{Approximation, Entry, Function, Piecewise, Profile, chebyshev_to_monomial};

const INF: f64 = f64::INFINITY;
const X: &[f64] = &[0.0, 1.0];

/// CipherDM's `chexp`: Chebyshev coefficients of `T_0..T_7` in `u = x/7 + 1`, as in the
/// released code.
pub const CHEXP_CHEBYSHEV: [f64; 8] = [
    0.14021878, 0.27541278, 0.22122865, 0.14934221, 0.0907736, 0.04369614, 0.02087868, 0.00996535,
];

/// The same polynomial in the monomial basis of `u`; "Secure Inference for Diffusion
/// Models via Unconditional Scores" (Song et al., Appendix A) prints these digits, which a
/// test checks.
const CHEXP_MONOMIAL: [f64; 8] = chebyshev_to_monomial(CHEXP_CHEBYSHEV);

/// Song et al.'s monomial form of CipherDM's exp, `c_0..c_7` (Appendix A), for that test.
pub const CHEXP_SEED2_MONOMIAL: [f64; 8] = [
    -0.01111495,
    -0.0238906,
    0.09208474,
    0.28150564,
    -0.27598784,
    -0.41698096,
    0.66811776,
    0.6377824,
];

const fn pw(
    breaks: &'static [f64],
    pieces: &'static [&'static [f64]],
    scale: f64,
    shift: f64,
    eval_shift: u32,
) -> Approximation {
    Approximation::Piecewise(Piecewise {
        breaks,
        pieces,
        scale,
        shift,
        eval_shift,
    })
}

const REAL_LINE: (f64, f64) = (-INF, INF);
const NON_POSITIVE: (f64, f64) = (-INF, 0.0);
const SEED1: &str = "CipherDM (Zhao et al., 2024), released code (scripts/flax_sample_hack.py)";
const SEED2: &str = "Song et al., Appendix A (BumbleBee segmentation)";
const OURS: &str = "ours: tools/fit.py --tables";

pub(super) static ALL: &[Entry] = &[
    // ---- CipherDm -------------------------------------------------------------------
    Entry {
        profile: Profile::CipherDm,
        function: Function::Silu,
        approx: pw(
            &[-6.0, -2.0, 6.0],
            &[
                &[],
                &[-0.52212664, -0.16910363, -0.01420163],
                &[
                    0.03453821,
                    0.49379432,
                    0.19784596,
                    0.0,
                    -0.00602401,
                    0.0,
                    0.00008032,
                ],
                X,
            ],
            1.0,
            0.0,
            2,
        ),
        max_error: 7.48e-2,
        domain: REAL_LINE,
        source: SEED1,
    },
    Entry {
        profile: Profile::CipherDm,
        function: Function::Mish,
        approx: pw(
            &[-6.0, -2.0, 6.0],
            &[
                &[],
                &[-0.55684445, -0.18375535, -0.01572019],
                &[
                    0.07559242,
                    0.54902050,
                    0.20152583,
                    0.0,
                    -0.00735309,
                    0.0,
                    0.00010786,
                ],
                X,
            ],
            1.0,
            0.0,
            2,
        ),
        max_error: 1.27e-1,
        domain: REAL_LINE,
        source: SEED1,
    },
    Entry {
        profile: Profile::CipherDm,
        function: Function::Exp,
        approx: pw(&[-14.0], &[&[], &CHEXP_MONOMIAL], 1.0 / 7.0, 1.0, 0),
        max_error: 4.85e-2,
        domain: NON_POSITIVE,
        source: SEED1,
    },
    // ---- Precise (Song et al.) -------------------------------------------------------
    Entry {
        profile: Profile::Precise,
        function: Function::Silu,
        approx: pw(
            &[-8.0, -4.0, 4.0],
            &[
                &[],
                &[
                    -0.3067541139982155,
                    -0.0819767021525476,
                    -0.0055465625580307,
                ],
                &[
                    0.0085064025895951,
                    0.5,
                    0.2281430841728270,
                    0.0,
                    -0.011113046708173,
                    0.0,
                    0.0002743776353465,
                ],
                X,
            ],
            1.0,
            0.0,
            2,
        ),
        max_error: 7.19e-2,
        domain: REAL_LINE,
        source: SEED2,
    },
    Entry {
        profile: Profile::Precise,
        function: Function::Gelu,
        approx: pw(
            &[-5.0, -1.97, 3.0],
            &[
                &[],
                &[
                    -0.5054031199708174,
                    -0.4222658115198386,
                    -0.1180761295118195,
                    -0.0110341340306157,
                ],
                &[
                    0.0085263215410380,
                    0.5,
                    0.3603292692789629,
                    0.0,
                    -0.037688200365904,
                    0.0,
                    0.0018067462606141,
                ],
                X,
            ],
            1.0,
            0.0,
            2,
        ),
        max_error: 3.33e-2,
        domain: REAL_LINE,
        source: SEED2,
    },
    Entry {
        profile: Profile::Precise,
        function: Function::Exp,
        approx: Approximation::CompoundExp {
            cutoff: -14.0,
            squarings: 8,
        },
        max_error: 1.06e-3,
        domain: NON_POSITIVE,
        source: SEED2,
    },
    // ---- Loose (Song et al.) -----------------------------------------------------------
    Entry {
        profile: Profile::Loose,
        function: Function::Silu,
        approx: pw(
            &[-5.4, 4.0],
            &[
                &[],
                &[
                    0.00882801754,
                    0.500011828,
                    0.228920817,
                    0.0,
                    -0.0118558684,
                    0.0,
                    0.000397939016,
                    0.0,
                    -0.00000528080234,
                ],
                X,
            ],
            1.0,
            0.0,
            2,
        ),
        max_error: 7.19e-2,
        domain: REAL_LINE,
        source: SEED2,
    },
    Entry {
        profile: Profile::Loose,
        function: Function::Gelu,
        approx: pw(
            &[-2.1, 3.0],
            &[
                &[],
                &[0.03222096, 0.49693733, 0.30074739, 0.0, -0.01625818],
                X,
            ],
            1.0,
            0.0,
            1,
        ),
        max_error: 8.31e-2,
        domain: REAL_LINE,
        source: SEED2,
    },
    Entry {
        profile: Profile::Loose,
        function: Function::Exp,
        approx: pw(
            &[-4.8],
            &[
                &[],
                &[0.98805643, 0.91766503, 0.36066246, 0.06755453, 0.00488676],
            ],
            1.0,
            0.0,
            2,
        ),
        max_error: 1.19e-2,
        domain: NON_POSITIVE,
        source: SEED2,
    },
    // ---- Accurate (ours) -----------------------------------------------------------------
    Entry {
        profile: Profile::Accurate,
        function: Function::Silu,
        approx: pw(
            &[-9.5, -2.5, 2.5, 9.5],
            &[
                &[],
                &[
                    -0.6061339781875272,
                    -0.9164815328083232,
                    -0.41450565972099135,
                    0.0,
                    0.033212454056610885,
                    0.0,
                    -0.0016147122493470854,
                ],
                &[
                    0.0007050403981655908,
                    2.000000000000003,
                    3.9339434687147934,
                    0.0,
                    -4.336859846709484,
                    0.0,
                    3.1106630718305666,
                ],
                &[
                    -0.6061339781875272,
                    4.916481532808323,
                    -0.41450565972099135,
                    0.0,
                    0.033212454056610885,
                    0.0,
                    -0.0016147122493470854,
                ],
                &[0.0, 4.0],
            ],
            0.25,
            0.0,
            0,
        ),
        max_error: 7.11e-4,
        domain: REAL_LINE,
        source: OURS,
    },
    Entry {
        profile: Profile::Accurate,
        function: Function::Gelu,
        approx: pw(
            &[-4.0, -1.5, 1.5, 4.0],
            &[
                &[],
                &[
                    -0.4678096619357897,
                    -0.7167540182697817,
                    -0.31406838526539943,
                    0.0,
                    0.01986058381765908,
                    0.0,
                    -0.00041927910159584783,
                ],
                &[
                    0.00014030542476942015,
                    1.0000000000000007,
                    1.5873319757950162,
                    0.0,
                    -0.9836743531705138,
                    0.0,
                    0.38294316725766725,
                ],
                &[
                    -0.4678096619357897,
                    2.7167540182697816,
                    -0.31406838526539943,
                    0.0,
                    0.01986058381765908,
                    0.0,
                    -0.00041927910159584783,
                ],
                &[0.0, 2.0],
            ],
            0.5,
            0.0,
            0,
        ),
        max_error: 4.87e-4,
        domain: REAL_LINE,
        source: OURS,
    },
    Entry {
        profile: Profile::Accurate,
        function: Function::Mish,
        approx: pw(
            &[-9.5, -2.5, 0.75, 5.0],
            &[
                &[],
                &[
                    -0.4984491942288941,
                    -0.2206507896759728,
                    1.1578547538674924,
                    1.709064671756531,
                    1.004155680545396,
                    0.2778364570607322,
                    0.03000025169908966,
                ],
                &[
                    -0.00012635601749294228,
                    2.393421938744256,
                    5.1445452346087945,
                    -0.4517047305860615,
                    -11.342713785033025,
                    -11.537103702267206,
                    -3.185121962860777,
                ],
                &[
                    0.03133752019532086,
                    1.7803072264794766,
                    9.834888139249665,
                    -18.321383483418693,
                    17.473065091096114,
                    -8.445839127770686,
                    1.6451505239353899,
                ],
                &[0.0, 4.0],
            ],
            0.25,
            0.0,
            0,
        ),
        max_error: 7.11e-4,
        domain: REAL_LINE,
        source: OURS,
    },
    Entry {
        profile: Profile::Accurate,
        function: Function::Sigmoid,
        approx: pw(
            &[-8.0, -2.0, 2.0, 8.0],
            &[
                &[],
                &[
                    0.595620575266834,
                    1.7269128979631052,
                    2.1464339434649493,
                    1.4431643270869279,
                    0.5455909309026363,
                    0.108234430784502,
                    0.008627191749472083,
                ],
                &[
                    0.5000000000000002,
                    0.9971604341969698,
                    0.0,
                    -1.2318899274975141,
                    0.0,
                    1.1646620767078548,
                ],
                &[
                    0.404379424733166,
                    1.7269128979631052,
                    -2.1464339434649493,
                    1.4431643270869279,
                    -0.5455909309026363,
                    0.108234430784502,
                    -0.008627191749472083,
                ],
                &[1.0],
            ],
            0.25,
            0.0,
            0,
        ),
        max_error: 3.35e-4,
        domain: REAL_LINE,
        source: OURS,
    },
    Entry {
        profile: Profile::Accurate,
        function: Function::Exp,
        approx: pw(
            &[-10.0],
            &[
                &[],
                &[
                    0.006732552736980116,
                    0.033830646224201705,
                    0.08454913105888258,
                    0.13760184640664377,
                    0.17222392274179593,
                    0.1906020684076063,
                    0.15821102467436735,
                    0.07130322716457524,
                    0.045280725580780695,
                    0.06662553955458093,
                    0.03302533974551899,
                ],
            ],
            0.2,
            1.0,
            0,
        ),
        max_error: 4.54e-5,
        domain: NON_POSITIVE,
        source: OURS,
    },
];
