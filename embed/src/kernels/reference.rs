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

#[cfg(test)]
/// Exact GELU with the standard library's `exp`, in f64.
pub fn gelu_reference(x: &mut [f32]) {
    for v in x {
        let z = f64::from(*v);
        *v = (0.5 * z * (1.0 + erf_f64(z / std::f64::consts::SQRT_2))) as f32;
    }
}

#[cfg(test)]
/// erf to about 1e-15 (its Taylor series near 0, its continued fraction beyond).
fn erf_f64(x: f64) -> f64 {
    let a = x.abs();
    let value = if a < 2.5 {
        // Σ (−1)^n x^(2n+1) / (n! (2n+1)) · 2/√π
        let mut term = a;
        let mut sum = a;
        let mut n = 0.0;
        while term.abs() > 1e-17 * sum.abs() {
            n += 1.0;
            term *= -a * a / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // erfc by Lentz's continued fraction.
        let mut f = a;
        let mut c = a;
        let mut d = 0.0;
        for k in 1..200 {
            let k = f64::from(k) / 2.0;
            d = 1.0 / (a + k * d);
            c = a + k / c;
            f *= c * d;
        }
        1.0 - (-a * a).exp() / (f * std::f64::consts::PI.sqrt())
    };
    value.copysign(x)
}

#[cfg(test)]
/// `x = layer_norm(x + residual)` row by row, in f64.
pub fn add_layer_norm_reference(
    x: &mut [f32],
    residual: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) {
    let width = gamma.len();
    for (r, row) in x.chunks_exact_mut(width).enumerate() {
        let values: Vec<f64> = row
            .iter()
            .enumerate()
            .map(|(i, v)| f64::from(*v) + residual.map_or(0.0, |res| f64::from(res[r * width + i])))
            .collect();
        let mean = values.iter().sum::<f64>() / width as f64;
        let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / width as f64;
        let inv = 1.0 / (var + f64::from(eps)).sqrt();
        for (i, v) in row.iter_mut().enumerate() {
            *v = ((values[i] - mean) * inv * f64::from(gamma[i]) + f64::from(beta[i])) as f32;
        }
    }
}

#[cfg(test)]
/// Softmax of each row after scaling, in f64.
pub fn scaled_softmax_rows_reference(x: &mut [f32], width: usize, scale: f32) {
    for row in x.chunks_exact_mut(width) {
        let scaled: Vec<f64> = row
            .iter()
            .map(|v| f64::from(*v) * f64::from(scale))
            .collect();
        let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exps: Vec<f64> = scaled.iter().map(|v| (v - max).exp()).collect();
        let sum: f64 = exps.iter().sum();
        for (v, e) in row.iter_mut().zip(exps) {
            *v = (e / sum) as f32;
        }
    }
}
