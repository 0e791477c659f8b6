//! The vectors of the graph's nodes, end to end: as they are (f32), or quantized to one byte
//! per dimension (int8: each dimension scaled by its own factor) so that a million
//! 384-dimensional vectors take 384 MB instead of 1.5 GB. The scales are learnt from the
//! first [`LEARN_AFTER`] vectors, which are held as f32 until then (a store of a few chunks
//! is not worth quantizing, and a few vectors would teach too narrow a range). Searches
//! compare a query (f32, folded once with the scales) with the stored codes; the store then
//! rescores the candidates within the rounding error's reach with the full-precision vectors
//! in SQLite.

use super::distance::{dot, dot_i8, dots_at};

/// How the graph's vectors are held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quantization {
    #[default]
    None,
    /// One signed byte per dimension, scaled per dimension.
    Int8,
}

impl Quantization {
    pub(crate) fn code(self) -> u32 {
        match self {
            Self::None => 0,
            Self::Int8 => 1,
        }
    }
}

/// Vectors held as f32 before int8 scales are learnt from them.
pub(crate) const LEARN_AFTER: usize = 1000;

/// Codes reach ±127; a dimension's scale leaves this much headroom above the largest value
/// seen when it was learnt, for vectors added later (beyond it they are clipped).
const HEADROOM: f32 = 1.25;

pub(crate) enum Storage {
    F32(Vec<f32>),
    Int8 {
        codes: Vec<i8>,
        /// Per dimension: value = code · scale.
        scale: Vec<f32>,
    },
}

pub(crate) struct Vectors {
    pub dim: usize,
    /// What the settings ask for (the storage is f32 until int8 scales are learnt).
    pub wanted: Quantization,
    pub storage: Storage,
}

/// A query as the stored vectors are compared with it (borrowed when nothing is folded in).
pub(crate) struct Query<'a>(std::borrow::Cow<'a, [f32]>);

impl Vectors {
    pub fn new(dim: usize, wanted: Quantization) -> Self {
        Self {
            dim,
            wanted,
            storage: Storage::F32(Vec::new()),
        }
    }

    /// How the vectors are held now.
    pub fn quantization(&self) -> Quantization {
        match self.storage {
            Storage::F32(_) => Quantization::None,
            Storage::Int8 { .. } => Quantization::Int8,
        }
    }

    pub fn len(&self) -> usize {
        let stored = match &self.storage {
            Storage::F32(d) => d.len(),
            Storage::Int8 { codes, .. } => codes.len(),
        };
        stored / self.dim.max(1)
    }

    pub fn reserve(&mut self, n: usize) {
        match &mut self.storage {
            Storage::F32(d) => d.reserve(n * self.dim),
            Storage::Int8 { codes, .. } => codes.reserve(n * self.dim),
        }
    }

    /// Bytes the vectors take in memory.
    pub fn bytes(&self) -> usize {
        match &self.storage {
            Storage::F32(d) => d.len() * 4,
            Storage::Int8 { codes, scale } => codes.len() + scale.len() * 4,
        }
    }

    /// Takes `other`'s int8 scales, if it has them (a rebuild from its decoded vectors, so
    /// their codes come back exactly).
    pub fn keep_scales_of(&mut self, other: &Vectors) {
        if let Storage::Int8 { scale, .. } = &other.storage
            && self.len() == 0
        {
            self.storage = Storage::Int8 {
                codes: Vec::new(),
                scale: scale.clone(),
            };
        }
    }

    pub fn push(&mut self, v: &[f32]) -> u32 {
        let node = self.len() as u32;
        match &mut self.storage {
            Storage::F32(d) => {
                d.extend_from_slice(v);
                if self.wanted == Quantization::Int8 && self.len() >= LEARN_AFTER {
                    self.quantize();
                }
            }
            Storage::Int8 { codes, scale } => codes.extend(encode(v, scale)),
        }
        node
    }

    /// Learns the int8 scales from the f32 vectors held and encodes them.
    fn quantize(&mut self) {
        let Storage::F32(data) = &self.storage else {
            return;
        };
        let mut largest = vec![0.0f32; self.dim];
        for v in data.chunks_exact(self.dim) {
            for (l, x) in largest.iter_mut().zip(v) {
                *l = l.max(x.abs());
            }
        }
        let scale: Vec<f32> = largest
            .into_iter()
            .map(|l| (l * HEADROOM).max(1e-6) / 127.0)
            .collect();
        let codes = data
            .chunks_exact(self.dim)
            .flat_map(|v| encode(v, &scale))
            .collect();
        self.storage = Storage::Int8 { codes, scale };
    }

    /// Node `n`'s vector as held (decoded when quantized).
    pub fn decoded(&self, n: u32) -> Vec<f32> {
        let at = n as usize * self.dim;
        match &self.storage {
            Storage::F32(d) => d[at..at + self.dim].to_vec(),
            Storage::Int8 { codes, scale } => codes[at..at + self.dim]
                .iter()
                .zip(scale)
                .map(|(&c, s)| f32::from(c) * s)
                .collect(),
        }
    }

    pub fn query<'a>(&self, q: &'a [f32]) -> Query<'a> {
        match &self.storage {
            Storage::Int8 { scale, .. } => Query(q.iter().zip(scale).map(|(x, s)| x * s).collect()),
            Storage::F32(_) => Query(std::borrow::Cow::Borrowed(q)),
        }
    }

    /// How far a quantized similarity to `q` may stray from the exact one: eight standard
    /// deviations of the rounding error (each code is off by up to half a step, uniformly),
    /// so a candidate whose quantized score is this far below the k-th best may still
    /// belong in the top k. Zero for f32 vectors.
    pub fn error_window(&self, q: &[f32]) -> f32 {
        match &self.storage {
            Storage::Int8 { scale, .. } => {
                let variance: f32 = q.iter().zip(scale).map(|(x, s)| x * x * s * s / 12.0).sum();
                8.0 * variance.sqrt()
            }
            Storage::F32(_) => 0.0,
        }
    }

    /// Node `n` as a query (to compare other nodes with it).
    pub fn node_query(&self, n: u32) -> Query<'_> {
        let at = n as usize * self.dim;
        match &self.storage {
            Storage::F32(d) => Query(std::borrow::Cow::Borrowed(&d[at..at + self.dim])),
            Storage::Int8 { .. } => Query(self.query(&self.decoded(n)).0.into_owned().into()),
        }
    }

    /// Similarities of `nodes` to `q`, into `out` (cleared first), in order.
    pub fn sims(&self, q: &Query<'_>, nodes: &[u32], out: &mut Vec<f32>) {
        match &self.storage {
            Storage::F32(d) => dots_at(&q.0, d, nodes, out),
            Storage::Int8 { codes, .. } => dots_at(&q.0, codes, nodes, out),
        }
    }

    /// Similarity of node `n` to `q`.
    pub fn sim(&self, q: &Query<'_>, n: u32) -> f32 {
        let at = n as usize * self.dim;
        match &self.storage {
            Storage::F32(d) => dot(&q.0, &d[at..at + self.dim]),
            Storage::Int8 { codes, .. } => dot_i8(&q.0, &codes[at..at + self.dim]),
        }
    }
}

fn encode<'a>(v: &'a [f32], scale: &'a [f32]) -> impl Iterator<Item = i8> + 'a {
    v.iter()
        .zip(scale)
        .map(|(x, s)| (x / s).round().clamp(-127.0, 127.0) as i8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_similarities_stay_close_to_exact_ones() {
        let dim = 384;
        let mut state = 7u64;
        let mut unit = || {
            let v: Vec<f32> = (0..dim)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                    ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
                })
                .collect();
            let n = dot(&v, &v).sqrt();
            v.into_iter().map(|x| x / n).collect::<Vec<f32>>()
        };
        let data: Vec<Vec<f32>> = (0..LEARN_AFTER + 200).map(|_| unit()).collect();
        let mut q8 = Vectors::new(dim, Quantization::Int8);
        for (i, v) in data.iter().enumerate() {
            q8.push(v);
            let want = if i + 1 < LEARN_AFTER {
                Quantization::None
            } else {
                Quantization::Int8
            };
            assert_eq!(q8.quantization(), want, "f32 until the scales are learnt");
        }
        assert_eq!(q8.bytes(), data.len() * dim + dim * 4);
        let query = unit();
        let prepared = q8.query(&query);
        for (i, v) in data.iter().enumerate() {
            let exact = dot(&query, v);
            let got = q8.sim(&prepared, i as u32);
            assert!((got - exact).abs() < 0.01, "{got} vs {exact}");
            let back = q8.decoded(i as u32);
            assert!(dot(&back, v) > 0.999);
        }
    }
}
