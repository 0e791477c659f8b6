//! Cosine on unit vectors: their dot product. The loops are written in independent lanes
//! and compiled for the best instruction set this CPU has, chosen at run time (AVX-512, or
//! AVX2 with FMA, through `pulp`; plain code otherwise); `*_reference` are the plain sums the
//! tests hold them to. The one module of the crate allowed `unsafe`: for the prefetch hint.
#![allow(unsafe_code)]

use std::sync::LazyLock;

use pulp::{Arch, Simd, WithSimd};

static ARCH: LazyLock<Arch> = LazyLock::new(Arch::new);

/// Accumulators: four 256-bit registers' worth, enough to hide the FMA's latency.
const LANES: usize = 32;

/// `Σ a[i]·b[i]`: the cosine of unit vectors.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    dispatched(a, b)
}

/// `Σ q·c` over f32 weights and i8 codes.
pub(crate) fn dot_i8(q: &[f32], c: &[i8]) -> f32 {
    dispatched(q, c)
}

fn dispatched<B: Copy + Into<f32>>(a: &[f32], b: &[B]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    match *ARCH {
        // (without FMA, `mul_add` would be a library call per element)
        Arch::Scalar => lanes::<B, false>(a, b),
        arch => arch.dispatch(Fused(a, b)),
    }
}

/// `out[i] = q · data[nodes[i]·dim..][..dim]`: a node's neighbours scored in one dispatch,
/// each row fetched from memory while the one before it is summed (at a million vectors
/// nearly every row is a cache miss).
pub(crate) fn dots_at<B: Copy + Into<f32>>(
    q: &[f32],
    data: &[B],
    nodes: &[u32],
    out: &mut Vec<f32>,
) {
    out.clear();
    let rows = Rows {
        q,
        data,
        dim: q.len(),
        nodes,
        out,
    };
    match *ARCH {
        Arch::Scalar => rows.run::<false>(),
        arch => arch.dispatch(rows),
    }
}

struct Rows<'a, B> {
    q: &'a [f32],
    data: &'a [B],
    dim: usize,
    nodes: &'a [u32],
    out: &'a mut Vec<f32>,
}

impl<B: Copy + Into<f32>> Rows<'_, B> {
    /// How many rows ahead of the one being summed are fetched (measured at a million
    /// vectors: 8 against 1, 2, 4, 16 and 32).
    const AHEAD: usize = 8;
    fn row(&self, i: usize) -> &[B] {
        let at = self.nodes[i] as usize * self.dim;
        &self.data[at..at + self.dim]
    }

    #[inline(always)]
    fn run<const FUSED: bool>(self) {
        for i in 0..self.nodes.len().min(Self::AHEAD) {
            prefetch(self.row(i));
        }
        for i in 0..self.nodes.len() {
            if i + Self::AHEAD < self.nodes.len() {
                prefetch(self.row(i + Self::AHEAD));
            }
            let sim = lanes::<B, FUSED>(self.q, self.row(i));
            self.out.push(sim);
        }
    }
}

impl<B: Copy + Into<f32>> WithSimd for Rows<'_, B> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        self.run::<true>()
    }
}

/// Asks the CPU to bring `row` into its cache (a hint: it never faults, and does nothing on
/// other architectures).
#[inline(always)]
pub(crate) fn prefetch<B>(row: &[B]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let base = row.as_ptr().cast::<i8>();
        for offset in (0..std::mem::size_of_val(row)).step_by(64) {
            // SAFETY: `base + offset` lies inside `row` (offset < its size in bytes), and a
            // prefetch reads nothing the program can observe and cannot fault.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(base.add(offset)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

/// The fused loop, monomorphised inside the dispatcher's `#[target_feature]` function (a
/// closure would be called through a shim compiled without the features).
struct Fused<'a, B>(&'a [f32], &'a [B]);

impl<B: Copy + Into<f32>> WithSimd for Fused<'_, B> {
    type Output = f32;

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) -> f32 {
        lanes::<B, true>(self.0, self.1)
    }
}

/// `Σ a[i]·b[i]` in [`LANES`] independent sums, then the tail.
#[inline(always)]
fn lanes<B: Copy + Into<f32>, const FUSED: bool>(a: &[f32], b: &[B]) -> f32 {
    let step = |acc: f32, x: f32, y: B| {
        if FUSED {
            x.mul_add(y.into(), acc)
        } else {
            acc + x * y.into()
        }
    };
    let mut acc = [0.0f32; LANES];
    let whole = a.len().min(b.len()) / LANES * LANES;
    for (x, y) in a[..whole]
        .chunks_exact(LANES)
        .zip(b[..whole].chunks_exact(LANES))
    {
        for i in 0..LANES {
            acc[i] = step(acc[i], x[i], y[i]);
        }
    }
    let mut tail = 0.0;
    for (x, &y) in a[whole..].iter().zip(&b[whole..]) {
        tail = step(tail, *x, y);
    }
    acc.iter().sum::<f32>() + tail
}

pub(crate) fn normalized(v: &[f32]) -> Vec<f32> {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 {
        v.iter().map(|x| x / norm).collect()
    } else {
        v.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot_reference(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum()
    }

    fn data(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 2001) as f32 / 1000.0
                    - 1.0
            })
            .collect()
    }

    /// The dispatched loops (whatever this CPU selects) agree with a plain f64 sum on sizes
    /// around and between whole lane blocks.
    #[test]
    fn dot_products_match_the_reference_on_odd_sizes() {
        for n in [0, 1, 7, 31, 32, 33, 100, 384, 385, 1024, 1031] {
            let (a, b) = (data(n, 1), data(n, 7));
            let codes: Vec<i8> = b.iter().map(|x| (x * 127.0) as i8).collect();
            let wide: Vec<f32> = codes.iter().map(|&c| f32::from(c)).collect();
            let tolerance = 1e-4 * (n as f64).max(1.0);
            assert!(
                (f64::from(dot(&a, &b)) - dot_reference(&a, &b)).abs() < tolerance,
                "f32, {n}"
            );
            assert!(
                (f64::from(dot_i8(&a, &codes)) - dot_reference(&a, &wide)).abs()
                    < 100.0 * tolerance,
                "i8, {n}"
            );
        }
    }

    /// Rows scored together (prefetched ahead) score as each alone does.
    #[test]
    fn rows_score_as_single_dot_products() {
        fn alone<B>(
            q: &[f32],
            rows: &[B],
            nodes: &[u32],
            one: fn(&[f32], &[B]) -> f32,
        ) -> Vec<f32> {
            let dim = q.len();
            nodes
                .iter()
                .map(|&n| one(q, &rows[n as usize * dim..][..dim]))
                .collect()
        }
        let dim = 384;
        let data = data(dim * 50, 3);
        let codes: Vec<i8> = data.iter().map(|x| (x * 127.0) as i8).collect();
        let q = &data[dim * 7..dim * 8];
        for nodes in [vec![], vec![4], vec![9, 2], vec![0, 49, 13, 13, 30, 1, 7]] {
            let mut out = vec![1.0];
            dots_at(q, &data, &nodes, &mut out);
            assert_eq!(out, alone(q, &data, &nodes, dot), "f32 {nodes:?}");
            dots_at(q, &codes, &nodes, &mut out);
            assert_eq!(out, alone(q, &codes, &nodes, dot_i8), "i8 {nodes:?}");
        }
    }
}
