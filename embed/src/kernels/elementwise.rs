//! Row-wise and element-wise kernels: layer norm, exact GELU and softmax. Each is written as
//! plain branch-free loops over lanes of 16 that the compiler vectorises, compiled three
//! times (AVX-512, AVX2+FMA, baseline) and chosen at run time; large inputs are split across
//! the rayon pool. `reference.rs` holds the plain versions they are tested against.

use rayon::prelude::*;

/// Work per rayon task, in elements: big enough to amortise the split.
const PARALLEL_GRAIN: usize = 32 * 1024;

/// Runs `$body(args)` compiled for the best instruction set this CPU has.
macro_rules! dispatch {
    ($body:ident($($arg:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
            unsafe fn avx512(f: impl FnOnce()) { f() }
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2(f: impl FnOnce()) { f() }
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has the features this copy was compiled for.
                unsafe { avx512(#[inline(always)] || $body($($arg),*)) }
            } else if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: as above.
                unsafe { avx2(#[inline(always)] || $body($($arg),*)) }
            } else {
                $body($($arg),*)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $body($($arg),*)
        }
    }};
}

/// `e^x` for every lane, relative error below 2e-7 over the range that does not overflow;
/// below −87 it is 0 (as softmax wants), above 88 it saturates. Integer conversions go
/// through the float "magic number" trick so that every step stays in vector registers.
#[inline(always)]
fn exp_lanes(x: &mut [f32; 16]) {
    // 1.5·2^23: adding it rounds to an integer held in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    for v in x.iter_mut() {
        let x = v.clamp(-87.0, 88.0);
        // e^x = 2^n · e^r, n = round(x / ln 2), |r| ≤ ln 2 / 2.
        let shifted = x.mul_add(std::f32::consts::LOG2_E, MAGIC);
        let n = shifted - MAGIC;
        let r = n.mul_add(-0.693_145_75, x);
        let r = n.mul_add(-1.428_606_8e-6, r);
        // Taylor terms to r^7 (Horner form): error < 2e-7 on |r| ≤ 0.347.
        let p = 1.0 / 5040.0;
        let p = p * r + 1.0 / 720.0;
        let p = p * r + 1.0 / 120.0;
        let p = p * r + 1.0 / 24.0;
        let p = p * r + 1.0 / 6.0;
        let p = p * r + 0.5;
        let p = p * r + 1.0;
        let p = p * r + 1.0;
        // The low bits of `shifted` are n (offset by MAGIC's); 2^n's exponent field is n + 127.
        let exponent = shifted
            .to_bits()
            .wrapping_sub(MAGIC.to_bits())
            .wrapping_add(127);
        let scale = f32::from_bits(exponent << 23);
        *v = if *v < -87.0 { 0.0 } else { p * scale };
    }
}

/// Exact GELU, `x/2 · (1 + erf(x/√2))`, erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7).
#[inline(always)]
fn gelu_lanes(x: &mut [f32; 16]) {
    let mut e = [0.0f32; 16];
    let mut t = [0.0f32; 16];
    for i in 0..16 {
        let z = (x[i] * std::f32::consts::FRAC_1_SQRT_2).abs();
        t[i] = 1.0 / z.mul_add(0.327_591_1, 1.0);
        e[i] = -z * z;
    }
    exp_lanes(&mut e);
    for i in 0..16 {
        let t = t[i];
        let poly = ((((1.061_405_4 * t - 1.453_152_1) * t + 1.421_413_8) * t - 0.284_496_74) * t
            + 0.254_829_6)
            * t;
        let erf_abs = 1.0 - poly * e[i];
        let erf = if x[i] < 0.0 { -erf_abs } else { erf_abs };
        x[i] = 0.5 * x[i] * (1.0 + erf);
    }
}

#[inline(always)]
fn gelu_body(x: &mut [f32]) {
    let mut chunks = x.chunks_exact_mut(16);
    for c in &mut chunks {
        let lanes: &mut [f32; 16] = c.try_into().expect("chunks of 16");
        gelu_lanes(lanes);
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let mut lanes = [0.0f32; 16];
        lanes[..rest.len()].copy_from_slice(rest);
        gelu_lanes(&mut lanes);
        let n = rest.len();
        rest.copy_from_slice(&lanes[..n]);
    }
}

/// Exact (erf) GELU, as BERT's `hidden_act = "gelu"`, in place.
pub fn gelu(x: &mut [f32]) {
    x.par_chunks_mut(PARALLEL_GRAIN)
        .for_each(|part| dispatch!(gelu_body(part)));
}

/// Sum of a slice in 16 lanes (vectorisable, unlike a sequential float sum).
#[inline(always)]
fn sum_lanes(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for i in 0..16 {
            acc[i] += f(c[i]);
        }
    }
    let mut total: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for a in acc {
        total += a;
    }
    total
}

#[inline(always)]
fn layer_norm_body(
    rows: &mut [f32],
    residual: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) {
    let width = gamma.len();
    for (r, row) in rows.chunks_exact_mut(width).enumerate() {
        if let Some(res) = residual {
            for (v, add) in row.iter_mut().zip(&res[r * width..(r + 1) * width]) {
                *v += add;
            }
        }
        let mean = sum_lanes(row, |v| v) / width as f32;
        let var = sum_lanes(row, |v| (v - mean) * (v - mean)) / width as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
            *v = (*v - mean) * inv * g + b;
        }
    }
}

/// `x = layer_norm(x + residual)` row by row, in place.
pub fn add_layer_norm(
    x: &mut [f32],
    residual: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) {
    let width = gamma.len();
    let rows_per_task = (PARALLEL_GRAIN / width).max(1);
    x.par_chunks_mut(rows_per_task * width)
        .enumerate()
        .for_each(|(task, part)| {
            let first = task * rows_per_task * width;
            let res = residual.map(|r| &r[first..first + part.len()]);
            dispatch!(layer_norm_body(part, res, gamma, beta, eps))
        });
}

#[inline(always)]
fn softmax_numerators_body(x: &mut [f32], width: usize, scale: f32, inv_sums: &mut [f32]) {
    for (row, inv) in x.chunks_exact_mut(width).zip(inv_sums.iter_mut()) {
        let mut max = [f32::NEG_INFINITY; 16];
        let mut chunks = row.chunks_exact(16);
        for c in &mut chunks {
            for i in 0..16 {
                max[i] = max[i].max(c[i]);
            }
        }
        let max = chunks
            .remainder()
            .iter()
            .chain(&max)
            .fold(f32::NEG_INFINITY, |m, &v| m.max(v))
            * scale;
        let mut sums = [0.0f32; 16];
        let mut chunks = row.chunks_exact_mut(16);
        for c in &mut chunks {
            let c: &mut [f32; 16] = c.try_into().expect("chunks of 16");
            for v in c.iter_mut() {
                *v = *v * scale - max;
            }
            exp_lanes(c);
            for (s, v) in sums.iter_mut().zip(c.iter()) {
                *s += v;
            }
        }
        // The rest, padded with e^-1000, which `exp_lanes` makes exactly 0.
        let rest = chunks.into_remainder();
        let mut lanes = [-1000.0f32; 16];
        for (l, v) in lanes.iter_mut().zip(rest.iter()) {
            *l = v * scale - max;
        }
        exp_lanes(&mut lanes);
        let n = rest.len();
        rest.copy_from_slice(&lanes[..n]);
        for (s, l) in sums.iter_mut().zip(lanes) {
            *s += l;
        }
        *inv = 1.0 / sums.iter().sum::<f32>();
    }
}

/// Softmax without its last division: each row of `x` becomes e^(scale·x − max) in place and
/// `inv_sums` gets 1/Σ per row, for the caller to apply to a smaller product later (attention
/// scales its `len × d` output instead of the `len × len` weights).
pub fn softmax_numerators(x: &mut [f32], width: usize, scale: f32, inv_sums: &mut [f32]) {
    assert_eq!(x.len(), width * inv_sums.len(), "one sum per row");
    dispatch!(softmax_numerators_body(x, width, scale, inv_sums));
}

/// Softmax of each row of a row-major matrix, in place, after scaling by `scale`.
pub fn scaled_softmax_rows(x: &mut [f32], width: usize, scale: f32) {
    let mut inv_sums = vec![0.0; x.len() / width.max(1)];
    softmax_numerators(x, width, scale, &mut inv_sums);
    for (row, inv) in x.chunks_exact_mut(width).zip(inv_sums) {
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::reference;

    fn data(len: usize, seed: u32, range: f32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let u = (((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) % 10_000)
                    as f32
                    / 5_000.0
                    - 1.0;
                u * range
            })
            .collect()
    }

    #[test]
    fn exp_is_accurate_and_saturates() {
        for x in data(10_000, 7, 80.0)
            .into_iter()
            .chain([0.0, 1.0, -1.0, 88.0, -87.0])
        {
            let mut lanes = [x; 16];
            exp_lanes(&mut lanes);
            let want = x.exp();
            assert!(
                (lanes[0] - want).abs() <= 4e-7 * want,
                "exp({x}) = {} not {want}",
                lanes[0]
            );
        }
        let mut lanes = [-1000.0; 16];
        exp_lanes(&mut lanes);
        assert_eq!(lanes[0], 0.0);
    }

    #[test]
    fn gelu_matches_reference_on_odd_sizes() {
        for len in [1, 15, 16, 17, 1000, 70_001] {
            let mut got = data(len, 3, 6.0);
            let mut want = got.clone();
            gelu(&mut got);
            reference::gelu_reference(&mut want);
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() < 1e-6 * (1.0 + w.abs()),
                    "len {len}: {g} vs {w}"
                );
            }
        }
    }

    #[test]
    fn layer_norm_matches_reference_on_odd_sizes() {
        for (rows, width) in [(1, 7), (3, 33), (257, 384), (100, 17)] {
            let gamma = data(width, 1, 1.5);
            let beta = data(width, 2, 0.5);
            let residual = data(rows * width, 4, 2.0);
            let mut got = data(rows * width, 5, 3.0);
            let mut want = got.clone();
            add_layer_norm(&mut got, Some(&residual), &gamma, &beta, 1e-12);
            reference::add_layer_norm_reference(&mut want, Some(&residual), &gamma, &beta, 1e-12);
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() < 1e-4 * (1.0 + w.abs()),
                    "{rows}x{width}: {g} vs {w}"
                );
            }
        }
    }

    #[test]
    fn softmax_matches_reference_on_odd_sizes() {
        for (rows, width) in [(1, 1), (3, 15), (5, 17), (40, 253)] {
            let mut got = data(rows * width, 6, 20.0);
            let mut want = got.clone();
            scaled_softmax_rows(&mut got, width, 0.125);
            reference::scaled_softmax_rows_reference(&mut want, width, 0.125);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-6, "{rows}x{width}: {g} vs {w}");
            }
        }
    }
}
