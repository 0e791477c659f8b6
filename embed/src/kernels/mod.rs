//! The encoder's compute kernels: matrix products (through the `gemm` crate, which picks
//! AVX-512, AVX2+FMA or scalar code for this CPU at run time), layer norm, GELU and softmax.
//! This is the one module of the encoder allowed `unsafe`; each kernel has a plain scalar
//! reference that the tests compare it with.
#![allow(unsafe_code)]

mod elementwise;
mod reference;

pub use elementwise::{add_layer_norm, gelu, scaled_softmax_rows, softmax_numerators};
pub use reference::matmul_reference;

/// A row-major matrix view with an explicit row stride, over a slice.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    /// Distance between consecutive rows.
    pub row_stride: usize,
    /// Distance between consecutive columns (1 for row-major; >1 reads a transpose).
    pub col_stride: usize,
}

impl<'a> Mat<'a> {
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of a row-major `rows × cols` block whose rows are `row_stride` apart.
    pub fn transposed(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        Self {
            data,
            rows: cols,
            cols: rows,
            row_stride: 1,
            col_stride: row_stride,
        }
    }

    fn span(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride + 1
        }
    }
}

/// `dst = a · b` (or `dst += a · b` with `accumulate`), `dst` row-major with row stride
/// `dst_stride`. `threads` > 1 splits the product across the rayon pool.
pub fn matmul(
    a: Mat<'_>,
    b: Mat<'_>,
    dst: &mut [f32],
    dst_stride: usize,
    accumulate: bool,
    threads: usize,
) {
    assert_eq!(a.cols, b.rows, "inner dimensions differ");
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        a.data.len() >= a.span() && b.data.len() >= b.span(),
        "operand out of bounds"
    );
    assert!(dst_stride >= n, "destination stride too small");
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        dst.len() >= (m - 1) * dst_stride + n,
        "destination out of bounds"
    );
    if k == 0 {
        if !accumulate {
            for row in dst.chunks_mut(dst_stride).take(m) {
                row[..n].fill(0.0);
            }
        }
        return;
    }
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above check that every element gemm reads or writes, given the
    // dimensions and strides passed, lies inside the slices; `dst` is borrowed mutably, so
    // it aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_stride as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                (((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) % 1000) as f32
                    / 500.0
                    - 1.0
            })
            .collect()
    }

    #[test]
    fn matmul_matches_reference_on_odd_sizes_and_strides() {
        for &(m, k, n) in &[
            (1, 1, 1),
            (3, 5, 7),
            (17, 33, 9),
            (64, 384, 1152),
            (131, 37, 61),
        ] {
            for threads in [1, 2] {
                let a_stride = k + 3;
                let a = data(m * a_stride, 1);
                let b = data(k * n, 2);
                let am = Mat {
                    data: &a,
                    rows: m,
                    cols: k,
                    row_stride: a_stride,
                    col_stride: 1,
                };
                let bm = Mat::row_major(&b, k, n);
                let mut got = data(m * (n + 2), 3);
                let mut want = got.clone();
                matmul(am, bm, &mut got, n + 2, true, threads);
                matmul_reference(am, bm, &mut want, n + 2, true);
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                        "{m}x{k}x{n}: {g} vs {w}"
                    );
                }
                // A transposed right-hand side, as attention's Q·Kᵀ reads it.
                let bt = data(n * (k + 1), 4);
                let btm = Mat::transposed(&bt, n, k, k + 1);
                let mut got = vec![0.0; m * n];
                let mut want = vec![0.0; m * n];
                matmul(am, btm, &mut got, n, false, threads);
                matmul_reference(am, btm, &mut want, n, false);
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                        "transposed {m}x{k}x{n}"
                    );
                }
            }
        }
    }

    #[test]
    fn softmax_rows_sum_to_one_and_keep_order() {
        let mut x = vec![1.0, 2.0, 3.0, 1000.0, 1000.0, -1000.0];
        scaled_softmax_rows(&mut x, 3, 0.5);
        assert!((x[..3].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(x[0] < x[1] && x[1] < x[2]);
        assert!((x[3] - 0.5).abs() < 1e-6 && x[5] == 0.0);
    }

    #[test]
    fn layer_norm_centres_and_scales() {
        let mut x = vec![1.0, 2.0, 3.0, 4.0];
        add_layer_norm(
            &mut x,
            Some(&[1.0, 1.0, 1.0, 1.0]),
            &[1.0; 4],
            &[0.5; 4],
            1e-12,
        );
        assert!((x.iter().sum::<f32>() / 4.0 - 0.5).abs() < 1e-6);
        let var = x.iter().map(|v| (v - 0.5) * (v - 0.5)).sum::<f32>() / 4.0;
        assert!((var - 1.0).abs() < 1e-4);
    }
}
