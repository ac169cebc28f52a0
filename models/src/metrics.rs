//! Sample-quality metrics: accuracy and macro F1 against requested labels, and a Fréchet
//! distance between Gaussian fits of the evaluation classifier's penultimate features
//! (`classifier-Fréchet distance`; the formula of FID, but not Inception features, so its
//! values are not comparable with published FIDs).

use crate::error::ModelError;

/// Fraction of `predicted[i] == requested[i]`.
pub fn accuracy(requested: &[usize], predicted: &[usize]) -> f64 {
    let hits = requested
        .iter()
        .zip(predicted)
        .filter(|(a, b)| a == b)
        .count();
    hits as f64 / requested.len().max(1) as f64
}

/// Macro F1 over the classes that were requested.
pub fn macro_f1(requested: &[usize], predicted: &[usize]) -> f64 {
    let mut classes: Vec<usize> = requested.to_vec();
    classes.sort_unstable();
    classes.dedup();
    let f1s: Vec<f64> = classes
        .iter()
        .map(|&c| {
            let tp = requested
                .iter()
                .zip(predicted)
                .filter(|&(&r, &p)| r == c && p == c)
                .count() as f64;
            let fp = requested
                .iter()
                .zip(predicted)
                .filter(|&(&r, &p)| r != c && p == c)
                .count() as f64;
            let fnn = requested
                .iter()
                .zip(predicted)
                .filter(|&(&r, &p)| r == c && p != c)
                .count() as f64;
            if tp == 0.0 {
                0.0
            } else {
                2.0 * tp / (2.0 * tp + fp + fnn)
            }
        })
        .collect();
    f1s.iter().sum::<f64>() / f1s.len().max(1) as f64
}

/// Mean and covariance (divided by n − 1) of `n` rows of `d` features.
pub fn gaussian_fit(rows: &[f64], d: usize) -> Result<(Vec<f64>, Vec<f64>), ModelError> {
    let n = rows.len() / d.max(1);
    if d == 0 || n < 2 || rows.len() != n * d {
        return Err(ModelError::Shape(format!(
            "need ≥ 2 rows of {d} features, got {} values",
            rows.len()
        )));
    }
    let mut mean = vec![0.0; d];
    for r in rows.chunks(d) {
        for (m, v) in mean.iter_mut().zip(r) {
            *m += v / n as f64;
        }
    }
    let mut cov = vec![0.0; d * d];
    for r in rows.chunks(d) {
        for i in 0..d {
            let di = r[i] - mean[i];
            for j in 0..d {
                cov[i * d + j] += di * (r[j] - mean[j]) / (n - 1) as f64;
            }
        }
    }
    Ok((mean, cov))
}

/// Eigenvalues and eigenvectors (columns of the returned `d×d`) of a symmetric matrix,
/// by cyclic Jacobi rotations.
pub fn symmetric_eigen(a: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut v: Vec<f64> = (0..d * d)
        .map(|k| if k / d == k % d { 1.0 } else { 0.0 })
        .collect();
    for _sweep in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * d + j].powi(2))
            .sum();
        let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().max(f64::MIN_POSITIVE);
        if off <= 1e-24 * scale {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = a[p * d + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * d + q] - a[p * d + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let (akp, akq) = (a[k * d + p], a[k * d + q]);
                    a[k * d + p] = c * akp - s * akq;
                    a[k * d + q] = s * akp + c * akq;
                }
                for k in 0..d {
                    let (apk, aqk) = (a[p * d + k], a[q * d + k]);
                    a[p * d + k] = c * apk - s * aqk;
                    a[q * d + k] = s * apk + c * aqk;
                }
                for k in 0..d {
                    let (vkp, vkq) = (v[k * d + p], v[k * d + q]);
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..d).map(|i| a[i * d + i]).collect(), v)
}

fn matmul(a: &[f64], b: &[f64], d: usize) -> Vec<f64> {
    let mut c = vec![0.0; d * d];
    for i in 0..d {
        for k in 0..d {
            let x = a[i * d + k];
            for j in 0..d {
                c[i * d + j] += x * b[k * d + j];
            }
        }
    }
    c
}

/// Fréchet distance between `N(m1, c1)` and `N(m2, c2)`:
/// `|m1 − m2|² + tr(c1 + c2 − 2 (c1^½ c2 c1^½)^½)`.
pub fn frechet_distance(m1: &[f64], c1: &[f64], m2: &[f64], c2: &[f64]) -> f64 {
    let d = m1.len();
    let (e, v) = symmetric_eigen(c1, d);
    // c1^½ = V diag(√λ) Vᵀ.
    let mut s = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..d {
            s[i * d + j] = (0..d)
                .map(|k| v[i * d + k] * e[k].max(0.0).sqrt() * v[j * d + k])
                .sum();
        }
    }
    let m = matmul(&matmul(&s, c2, d), &s, d);
    let (em, _) = symmetric_eigen(&m, d);
    let tr_sqrt: f64 = em.iter().map(|x| x.max(0.0).sqrt()).sum();
    let diff: f64 = m1.iter().zip(m2).map(|(a, b)| (a - b).powi(2)).sum();
    let tr: f64 = (0..d).map(|i| c1[i * d + i] + c2[i * d + i]).sum();
    diff + tr - 2.0 * tr_sqrt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f1_and_accuracy_on_a_hand_example() {
        let req = [0, 0, 1, 1];
        let pred = [0, 1, 1, 1];
        assert!((accuracy(&req, &pred) - 0.75).abs() < 1e-12);
        // class 0: tp 1, fn 1 → 2/3; class 1: tp 2, fp 1 → 0.8.
        assert!((macro_f1(&req, &pred) - (2.0 / 3.0 + 0.8) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn frechet_of_known_gaussians() {
        // Diagonal covariances: d² = |Δm|² + Σ (√a − √b)².
        let (m1, m2) = (vec![0.0, 1.0, 2.0], vec![1.0, 1.0, 0.0]);
        let c1 = vec![4.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 9.0];
        let c2 = vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 4.0];
        let want = 1.0 + 4.0 + 1.0 + 0.0 + 1.0;
        assert!((frechet_distance(&m1, &c1, &m2, &c2) - want).abs() < 1e-9);
        // A rotated full covariance against itself is at distance 0.
        let c = vec![2.0, 0.5, 0.1, 0.5, 1.0, 0.3, 0.1, 0.3, 1.5];
        assert!(frechet_distance(&m1, &c, &m1, &c).abs() < 1e-9);
    }
}
