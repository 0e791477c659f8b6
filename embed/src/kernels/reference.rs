//! Plain scalar versions of the kernels, the reference the optimised ones are tested against.

use super::Mat;

/// `dst = a · b` (or `dst += a · b`), one multiply-add at a time, in f64.
pub fn matmul_reference(
    a: Mat<'_>,
    b: Mat<'_>,
    dst: &mut [f32],
    dst_stride: usize,
    accumulate: bool,
) {
    assert_eq!(a.cols, b.rows);
    for i in 0..a.rows {
        for j in 0..b.cols {
            let mut sum = 0.0f64;
            for p in 0..a.cols {
                let x = a.data[i * a.row_stride + p * a.col_stride];
                let y = b.data[p * b.row_stride + j * b.col_stride];
                sum += f64::from(x) * f64::from(y);
            }
            let out = &mut dst[i * dst_stride + j];
            *out = if accumulate {
                *out + sum as f32
            } else {
                sum as f32
            };
        }
    }
}
