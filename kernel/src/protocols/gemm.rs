//! Local ring matrix multiplication, the hot loop of `matmul`, convolution and attention.
//!
//! `c += a · b` over `Z_{2^k}` for row-major matrices. The loop order is i-k-j with four
//! rows of `a` per pass, so each row of `b` is loaded once for four rows of `c`, and the
//! column range is blocked so the four output rows stay in L1. The inner loop is a
//! straight multiply-add over contiguous slices, which LLVM vectorises.

use crate::ring::Ring;

/// Columns of `c` processed per block (4 rows × 256 × 8 bytes = 8 KiB in L1 for `u64`).
const COL_BLOCK: usize = 256;

/// `c[m×n] += a[m×k] · b[k×n]` (wrapping), all row-major.
///
/// # Panics
/// If a slice is shorter than its dimensions say; callers check shapes first.
pub fn gemm_acc<R: Ring>(m: usize, k: usize, n: usize, a: &[R], b: &[R], c: &mut [R]) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "gemm: short slice"
    );
    for j0 in (0..n).step_by(COL_BLOCK) {
        let j1 = (j0 + COL_BLOCK).min(n);
        let mut i = 0;
        while i + 4 <= m {
            let rows = &mut c[i * n..(i + 4) * n];
            let (c0, rest) = rows.split_at_mut(n);
            let (c1, rest) = rest.split_at_mut(n);
            let (c2, c3) = rest.split_at_mut(n);
            let (c0, c1, c2, c3) = (
                &mut c0[j0..j1],
                &mut c1[j0..j1],
                &mut c2[j0..j1],
                &mut c3[j0..j1],
            );
            for kk in 0..k {
                let br = &b[kk * n + j0..kk * n + j1];
                let a0 = a[i * k + kk];
                let a1 = a[(i + 1) * k + kk];
                let a2 = a[(i + 2) * k + kk];
                let a3 = a[(i + 3) * k + kk];
                for ((((&bv, x0), x1), x2), x3) in br
                    .iter()
                    .zip(c0.iter_mut())
                    .zip(c1.iter_mut())
                    .zip(c2.iter_mut())
                    .zip(c3.iter_mut())
                {
                    *x0 = x0.wrapping_add(a0.wrapping_mul(bv));
                    *x1 = x1.wrapping_add(a1.wrapping_mul(bv));
                    *x2 = x2.wrapping_add(a2.wrapping_mul(bv));
                    *x3 = x3.wrapping_add(a3.wrapping_mul(bv));
                }
            }
            i += 4;
        }
        for i in i..m {
            let cr = &mut c[i * n + j0..i * n + j1];
            for kk in 0..k {
                let av = a[i * k + kk];
                let br = &b[kk * n + j0..kk * n + j1];
                for (x, &bv) in cr.iter_mut().zip(br) {
                    *x = x.wrapping_add(av.wrapping_mul(bv));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    #[test]
    fn matches_naive_on_ragged_shapes() {
        for &(m, k, n) in &[(1, 1, 1), (5, 3, 7), (9, 17, 300), (4, 2, 513)] {
            let a: Vec<u64> = (0..m * k)
                .map(|i| (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
                .collect();
            let b: Vec<u64> = (0..k * n)
                .map(|i| (i as u64 + 3).wrapping_mul(0xbf58_476d_1ce4_e5b9))
                .collect();
            let mut c = vec![1u64; m * n];
            gemm_acc(m, k, n, &a, &b, &mut c);
            for i in 0..m {
                for j in 0..n {
                    let mut s = 1u64;
                    for t in 0..k {
                        s = s.wrapping_add(a[i * k + t].wrapping_mul(b[t * n + j]));
                    }
                    assert_eq!(c[i * n + j], s, "({m},{k},{n}) at ({i},{j})");
                }
            }
        }
    }
}
