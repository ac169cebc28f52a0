//! Secure layers (`nn`) against plaintext references, with stated tolerances.

mod common;

use cipherdm_kernel::approx::Profile;
use cipherdm_kernel::nn::{self, ConvGeometry};
use cipherdm_kernel::protocols as pr;
use cipherdm_kernel::{ArithShare, Error, Party, Shape};
use cipherdm_transport_mem::{MemTransport, run3_with};
use common::*;

fn uniform(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut g = rng(seed);
    (0..n)
        .map(|_| {
            ((rand_core::Rng::next_u64(&mut g) >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
                * scale
        })
        .collect()
}

type Op<'a> = dyn Fn(&mut Party<MemTransport>, &[ArithShare<u64>]) -> Result<ArithShare<u64>, Error>
    + Sync
    + 'a;

/// Deals each `(values, shape)` input, runs `op` at every party and opens the result.
fn secure(inputs: &[(Vec<f64>, Vec<usize>)], op: &Op<'_>) -> (Vec<f64>, Vec<usize>) {
    let mut per_party: [Vec<ArithShare<u64>>; 3] = Default::default();
    for (i, (v, s)) in inputs.iter().enumerate() {
        let shares = deal(&enc(v), Shape::new(s).unwrap(), 100 + i as u64);
        for (q, sh) in shares.into_iter().enumerate() {
            per_party[q].push(sh);
        }
    }
    let out = ok3(run3_with(&cfg(), per_party, |p, xs| {
        let y = op(p, &xs)?;
        Ok((pr::open(p, &y)?, y.shape().dims().to_vec()))
    }));
    let (v, s) = out[0].clone();
    (dec(&v), s)
}

fn max_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Direct (definition) convolution with input dilation.
#[allow(clippy::too_many_arguments)]
fn conv_plain(
    x: &[f64],
    [b, cin, h, w]: [usize; 4],
    wt: &[f64],
    cout: usize,
    k: usize,
    bias: &[f64],
    g: &ConvGeometry,
) -> (Vec<f64>, [usize; 2]) {
    let (ho, wo) = g.output_size(h, w, k).unwrap();
    let d = g.lhs_dilation as isize;
    let mut out = vec![0.0; b * cout * ho * wo];
    for bi in 0..b {
        for o in 0..cout {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut s = bias[o];
                    for ci in 0..cin {
                        for ky in 0..k {
                            for kx in 0..k {
                                let yd = (oy * g.stride + ky) as isize - g.padding[0].0 as isize;
                                let xd = (ox * g.stride + kx) as isize - g.padding[1].0 as isize;
                                if yd < 0 || xd < 0 || yd % d != 0 || xd % d != 0 {
                                    continue;
                                }
                                let (iy, ix) = ((yd / d) as usize, (xd / d) as usize);
                                if iy >= h || ix >= w {
                                    continue;
                                }
                                s += x[((bi * cin + ci) * h + iy) * w + ix]
                                    * wt[((o * cin + ci) * k + ky) * k + kx];
                            }
                        }
                    }
                    out[((bi * cout + o) * ho + oy) * wo + ox] = s;
                }
            }
        }
    }
    (out, [ho, wo])
}

#[test]
fn conv2d_matches_the_definition_for_strides_padding_and_dilation() {
    let geometries = [
        ConvGeometry {
            stride: 1,
            padding: [(1, 1), (1, 1)],
            lhs_dilation: 1,
        },
        ConvGeometry {
            stride: 2,
            padding: [(0, 1), (0, 1)],
            lhs_dilation: 1,
        },
        ConvGeometry {
            stride: 1,
            padding: [(2, 1), (2, 1)],
            lhs_dilation: 2,
        },
        ConvGeometry {
            stride: 1,
            padding: [(0, 0), (0, 0)],
            lhs_dilation: 1,
        },
    ];
    let (b, cin, h, w, cout, k) = (2, 3, 6, 5, 4, 3);
    let x = uniform(b * cin * h * w, 1, 2.0);
    let wt = uniform(cout * cin * k * k, 2, 0.5);
    let bias = uniform(cout, 3, 0.5);
    for g in geometries {
        let (want, [ho, wo]) = conv_plain(&x, [b, cin, h, w], &wt, cout, k, &bias, &g);
        let inputs = [
            (x.clone(), vec![b, cin, h, w]),
            (wt.clone(), vec![cout, cin, k, k]),
            (bias.clone(), vec![cout]),
        ];
        let (got, shape) = secure(&inputs, &move |p, s| {
            nn::conv2d(p, &s[0], &s[1], Some(&s[2]), &g)
        });
        assert_eq!(shape, vec![b, cout, ho, wo], "{g:?}");
        // 27 products of ≤ 2^-18 rounding each plus one truncation LSB.
        assert!(
            max_err(&got, &want) < 1e-4,
            "{g:?}: {}",
            max_err(&got, &want)
        );
    }
}

#[test]
fn dense_and_global_mean_pool_match_plaintext() {
    let (b, n, out) = (3, 7, 5);
    let x = uniform(b * n, 4, 3.0);
    let wt = uniform(out * n, 5, 1.0);
    let bias = uniform(out, 6, 1.0);
    let want: Vec<f64> = (0..b * out)
        .map(|i| {
            let (r, o) = (i / out, i % out);
            bias[o] + (0..n).map(|j| x[r * n + j] * wt[o * n + j]).sum::<f64>()
        })
        .collect();
    let inputs = [(x, vec![b, n]), (wt, vec![out, n]), (bias, vec![out])];
    let (got, shape) = secure(&inputs, &|p, s| nn::dense(p, &s[0], &s[1], Some(&s[2])));
    assert_eq!(shape, vec![b, out]);
    assert!(max_err(&got, &want) < 1e-4);

    let x = uniform(2 * 3 * 4 * 4, 7, 4.0);
    let want: Vec<f64> = x.chunks(16).map(|c| c.iter().sum::<f64>() / 16.0).collect();
    let (got, shape) = secure(&[(x, vec![2, 3, 4, 4])], &|p, s| {
        nn::global_mean_pool(p, &s[0])
    });
    assert_eq!(shape, vec![2, 3]);
    assert!(max_err(&got, &want) < 1e-4);
}

#[test]
fn layout_ops_are_local_and_exact() {
    let a = uniform(2 * 2 * 2 * 3, 8, 1.0);
    let bb = uniform(2 * 3 * 2 * 3, 9, 1.0);
    let per_c = uniform(2 * 5, 10, 1.0);
    let inputs = [
        (a.clone(), vec![2, 2, 2, 3]),
        (bb.clone(), vec![2, 3, 2, 3]),
        (per_c.clone(), vec![2, 5]),
    ];
    let (got, shape) = secure(&inputs, &|p, s| {
        let before = p.costs().total().bytes_total();
        let cat = nn::concat_channels(&[&s[0], &s[1]])?;
        let split = nn::split_channels(&cat, 1, 3)?;
        let up = nn::upsample2(&split)?;
        let cat2 = nn::concat_channels(&[&up, &nn::upsample2(&s[0])?])?;
        let out = nn::add_broadcast(&cat2, &s[2])?;
        assert_eq!(
            p.costs().total().bytes_total(),
            before,
            "layout ops communicate"
        );
        Ok(out)
    });
    assert_eq!(shape, vec![2, 5, 4, 6]);
    // Plaintext: channels 1..4 of concat(a, b) = [a1, b0, b1], upsampled, then a upsampled.
    let at = |t: &[f64], c: usize, bi: usize, ch: usize, y: usize, x: usize| {
        t[((bi * c + ch) * 2 + y) * 3 + x]
    };
    for bi in 0..2 {
        for ch in 0..5 {
            for y in 0..4 {
                for x in 0..6 {
                    let src = match ch {
                        0 => at(&a, 2, bi, 1, y / 2, x / 2),
                        1 | 2 => at(&bb, 3, bi, ch - 1, y / 2, x / 2),
                        _ => at(&a, 2, bi, ch - 3, y / 2, x / 2),
                    };
                    let want = src + per_c[bi * 5 + ch];
                    let g = got[((bi * 5 + ch) * 4 + y) * 6 + x];
                    assert!(
                        (g - want).abs() < 1e-5,
                        "({bi},{ch},{y},{x}): {g} vs {want}"
                    );
                }
            }
        }
    }
}

#[test]
fn attention_matches_plaintext_with_the_accurate_exp() {
    let (b, c, h, w, heads) = (2, 4, 3, 3, 2);
    let n = h * w;
    let d = c / heads;
    let len = b * c * n;
    let (q, k, v) = (
        uniform(len, 11, 2.0),
        uniform(len, 12, 2.0),
        uniform(len, 13, 2.0),
    );
    let mut want = vec![0.0; len];
    for bi in 0..b {
        for hd in 0..heads {
            let at = |t: &[f64], ch: usize, pos: usize| t[(bi * c + hd * d + ch) * n + pos];
            for i in 0..n {
                let s: Vec<f64> = (0..n)
                    .map(|j| {
                        (0..d).map(|ch| at(&q, ch, i) * at(&k, ch, j)).sum::<f64>()
                            / (d as f64).sqrt()
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for ch in 0..d {
                    want[(bi * c + hd * d + ch) * n + i] =
                        (0..n).map(|j| e[j] / z * at(&v, ch, j)).sum();
                }
            }
        }
    }
    let shape = vec![b, c, h, w];
    let inputs = [(q, shape.clone()), (k, shape.clone()), (v, shape.clone())];
    // One chunk; chunks of 4 and 5 rows (cut inside a head's 9 rows and across heads);
    // one row per chunk. Each costs what the cost model says.
    for max_scores in [usize::MAX, 4 * n, 5 * n + 3, 1] {
        let bytes = std::sync::atomic::AtomicU64::new(0);
        let estimated = std::sync::atomic::AtomicU64::new(0);
        let (got, out_shape) = secure(&inputs, &|p, s| {
            let before = *p.costs().total();
            let y = nn::attention_chunked(
                p,
                &s[0],
                &s[1],
                &s[2],
                heads,
                Profile::Accurate,
                max_scores,
            )?;
            let spent = p.costs().total().since(&before);
            let est = cipherdm_kernel::estimate::attention(
                b,
                c,
                n,
                n,
                heads,
                Profile::Accurate,
                p.fixed().frac_bits(),
                max_scores,
            )?;
            assert_eq!(spent.rounds, est.rounds, "rounds, chunk {max_scores}");
            bytes.fetch_add(spent.bytes_total(), std::sync::atomic::Ordering::Relaxed);
            estimated.store(est.bytes, std::sync::atomic::Ordering::Relaxed);
            Ok(y)
        });
        // The estimate's bytes are summed over the parties.
        assert_eq!(
            bytes.into_inner(),
            estimated.into_inner(),
            "bytes, chunk {max_scores}"
        );
        assert_eq!(out_shape, shape);
        // Accurate exp: ≤ 1e-3 absolute per weight, |v| ≤ 2.
        let e = max_err(&got, &want);
        assert!(e < 5e-3, "chunk {max_scores}: {e}");
    }
}

#[test]
fn bad_shapes_are_typed_errors() {
    let x = (vec![0.0; 2 * 3 * 4 * 4], vec![2, 3, 4, 4]);
    let g = ConvGeometry {
        stride: 1,
        padding: [(0, 0); 2],
        lhs_dilation: 1,
    };
    let wrong_cin = (vec![0.0; 4 * 2 * 3 * 3], vec![4, 2, 3, 3]);
    let r = run3_with(&cfg(), [0, 1, 2], |p, _| {
        let fx = |v: &(Vec<f64>, Vec<usize>)| ArithShare::<u64>::zeros(Shape::new(&v.1).unwrap());
        let _ = p;
        Ok::<_, Error>((
            nn::conv2d(p, &fx(&x), &fx(&wrong_cin), None, &g).err(),
            nn::split_channels(&fx(&x), 2, 2).err(),
            nn::concat_channels::<u64>(&[]).err(),
            nn::add_broadcast(&fx(&x), &ArithShare::zeros(Shape::vector(5))).err(),
        ))
    });
    for out in r {
        let (a, b, c, d) = out.unwrap();
        assert!(matches!(a, Some(Error::InvalidShape(_))));
        assert!(matches!(b, Some(Error::InvalidShape(_))));
        assert!(matches!(c, Some(Error::InvalidShape(_))));
        assert!(matches!(d, Some(Error::LengthMismatch { .. })));
    }
    let big = ConvGeometry {
        stride: 1,
        padding: [(0, 0); 2],
        lhs_dilation: 1,
    };
    assert_eq!(big.output_size(2, 2, 3), None);
}
