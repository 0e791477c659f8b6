//! The machine's fp32 GEMM peak, measured, and the model's arithmetic per passage.

use std::time::Instant;

/// all-MiniLM-L6-v2's multiply-adds ×2 for one passage of `len` tokens: six layers of
/// QKV (384→1152), output (384→384), up (384→1536) and down (1536→384) projections, plus
/// attention's two `len × len × 384` products.
pub fn model_flops(len: usize) -> f64 {
    let (h, ff, layers) = (384.0, 1536.0, 6.0);
    let len = len as f64;
    let linear = 2.0 * len * (h * 3.0 * h + h * h + 2.0 * h * ff);
    let attention = 2.0 * 2.0 * len * len * h;
    layers * (linear + attention)
}

/// Best FLOP/s of repeated `1024×384 · 384×1536` products (the shape of BERT's feed-forward
/// layer on a batch) with the `gemm` crate on `threads` threads.
pub fn gemm_peak_flops(threads: usize) -> f64 {
    let (m, k, n) = (1024usize, 384usize, 1536usize);
    let a = vec![0.5f32; m * k];
    let b = vec![0.25f32; k * n];
    let mut c = vec![0.0f32; m * n];
    let mut best = 0.0f64;
    for _ in 0..20 {
        let started = Instant::now();
        for _ in 0..10 {
            // SAFETY: the dimensions and strides describe the three buffers exactly.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    1,
                    k as isize,
                    b.as_ptr(),
                    1,
                    n as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::Rayon(threads),
                );
            }
        }
        let secs = started.elapsed().as_secs_f64();
        best = best.max(10.0 * 2.0 * (m * k * n) as f64 / secs);
    }
    std::hint::black_box(&c);
    best
}
