//! The HNSW graph itself (Malkov and Yashunin, 2016), over node ids `0..n` whose vectors live
//! in a [`Vectors`] beside it. Laid out flat so it can be saved and read back as it is:
//! layer 0 is one array of `2·m` slots per node, the upper layers (a node reaches layer `l`
//! with probability `m^-l`) are `m` slots per layer of the few nodes that have them. Empty
//! slots hold [`NONE`]. Similarity is the dot product of unit vectors (cosine).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::distance::prefetch;
use super::vectors::{Query, Vectors};

pub(crate) const NONE: u32 = u32::MAX;

/// A node and its similarity to whatever is being searched for, ordered by similarity.
#[derive(Clone, Copy, PartialEq)]
struct Near(f32, u32);

impl Eq for Near {}

impl Ord for Near {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(other.1.cmp(&self.1))
    }
}

impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

pub(crate) struct Graph {
    pub m: usize,
    pub ef_construction: usize,
    /// The top layer of each node.
    pub levels: Vec<u8>,
    /// `2·m` neighbours per node on layer 0.
    pub layer0: Vec<u32>,
    /// For each node, `m` neighbours per layer from 1 up to its level (empty for most).
    pub upper: Vec<Box<[u32]>>,
    pub entry: u32,
}

impl Graph {
    pub fn new(m: usize, ef_construction: usize) -> Self {
        Self {
            m: m.max(2),
            ef_construction: ef_construction.max(1),
            levels: Vec::new(),
            layer0: Vec::new(),
            upper: Vec::new(),
            entry: NONE,
        }
    }

    pub fn len(&self) -> usize {
        self.levels.len()
    }

    fn m0(&self) -> usize {
        2 * self.m
    }

    fn top(&self) -> usize {
        if self.entry == NONE {
            0
        } else {
            usize::from(self.levels[self.entry as usize])
        }
    }

    /// A node's level, drawn from its id so a rebuild makes the same graph.
    fn level_for(&self, node: u32) -> u8 {
        let mut x = u64::from(node).wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        let uniform = ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let level = -uniform.ln() / (self.m as f64).ln();
        level.floor().min(30.0) as u8
    }

    fn slots(&self, node: u32, layer: usize) -> &[u32] {
        if layer == 0 {
            let m0 = self.m0();
            &self.layer0[node as usize * m0..(node as usize + 1) * m0]
        } else {
            &self.upper[node as usize][(layer - 1) * self.m..layer * self.m]
        }
    }

    fn slots_mut(&mut self, node: u32, layer: usize) -> &mut [u32] {
        if layer == 0 {
            let m0 = self.m0();
            &mut self.layer0[node as usize * m0..(node as usize + 1) * m0]
        } else {
            let m = self.m;
            &mut self.upper[node as usize][(layer - 1) * m..layer * m]
        }
    }

    fn neighbours(&self, node: u32, layer: usize) -> impl Iterator<Item = u32> + '_ {
        self.slots(node, layer)
            .iter()
            .copied()
            .take_while(|&n| n != NONE)
    }

    /// Checks what a read graph must hold before it is walked: every link names a node that
    /// reaches the link's layer, and the entry is a node on the top layer.
    pub fn check(&self) -> Result<(), String> {
        let n = self.len();
        if self.layer0.len() != n * self.m0() || self.upper.len() != n {
            return Err("the layers do not match the node count".into());
        }
        if self.entry == NONE {
            return if n == 0 {
                Ok(())
            } else {
                Err("nodes without an entry point".into())
            };
        }
        let top = self.levels.get(self.entry as usize).copied();
        if top.is_none_or(|t| self.levels.iter().any(|&l| l > t)) {
            return Err("the entry point is not on the top layer".into());
        }
        for node in 0..n as u32 {
            let level = usize::from(self.levels[node as usize]);
            if self.upper[node as usize].len() != level * self.m {
                return Err(format!("node {node}: its layers do not match its level"));
            }
            for layer in 0..=level {
                for other in self.neighbours(node, layer) {
                    if other as usize >= n || usize::from(self.levels[other as usize]) < layer {
                        return Err(format!("node {node}: a link on layer {layer} to {other}"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Adds node `self.len()`, whose vector is already in `vectors`.
    pub fn insert(&mut self, vectors: &Vectors) {
        let node = self.len() as u32;
        let level = self.level_for(node);
        self.levels.push(level);
        self.layer0.extend(std::iter::repeat_n(NONE, self.m0()));
        self.upper
            .push(vec![NONE; usize::from(level) * self.m].into_boxed_slice());
        if self.entry == NONE {
            self.entry = node;
            return;
        }
        let query = vectors.node_query(node);
        let query = &query;
        let top = self.top();
        let mut nearest = Near(vectors.sim(query, self.entry), self.entry);
        for layer in (usize::from(level) + 1..=top).rev() {
            nearest = self.greedy(vectors, query, nearest, layer);
        }
        let mut entries = vec![nearest];
        Visited::with(self.len(), |visited| {
            for layer in (0..=usize::from(level).min(top)).rev() {
                let found = self.search_layer(
                    vectors,
                    query,
                    &entries,
                    self.ef_construction,
                    layer,
                    None,
                    visited,
                );
                let width = if layer == 0 { self.m0() } else { self.m };
                let chosen = select(vectors, &found, self.m.min(width));
                write(self.slots_mut(node, layer), &chosen);
                for &Near(sim, other) in &chosen {
                    self.link(vectors, other, node, sim, layer);
                }
                entries = found;
            }
        });
        if usize::from(level) > top {
            self.entry = node;
        }
    }

    /// Adds `node` to `to`'s neighbours on `layer`, pruning them when full.
    fn link(&mut self, vectors: &Vectors, to: u32, node: u32, sim: f32, layer: usize) {
        let slots = self.slots_mut(to, layer);
        if let Some(free) = slots.iter_mut().find(|n| **n == NONE) {
            *free = node;
            return;
        }
        let width = slots.len();
        let base = vectors.node_query(to);
        let mut candidates: Vec<Near> = slots
            .iter()
            .map(|&n| Near(vectors.sim(&base, n), n))
            .collect();
        candidates.push(Near(sim, node));
        candidates.sort_by(|a, b| b.cmp(a));
        let chosen = select(vectors, &candidates, width);
        write(self.slots_mut(to, layer), &chosen);
    }

    fn greedy(&self, vectors: &Vectors, query: &Query<'_>, start: Near, layer: usize) -> Near {
        let mut best = start;
        let (mut nodes, mut sims) = (Vec::new(), Vec::new());
        loop {
            nodes.clear();
            nodes.extend(self.neighbours(best.1, layer));
            vectors.sims(query, &nodes, &mut sims);
            let mut moved = false;
            for (&n, &sim) in nodes.iter().zip(&sims) {
                if sim > best.0 {
                    best = Near(sim, n);
                    moved = true;
                }
            }
            if !moved {
                return best;
            }
        }
    }

    /// The `ef` nodes nearest `query` on `layer` reachable from `entries`, best first. With
    /// `allowed`, every node is walked but only allowed ones are returned.
    #[allow(clippy::too_many_arguments)]
    fn search_layer(
        &self,
        vectors: &Vectors,
        query: &Query<'_>,
        entries: &[Near],
        ef: usize,
        layer: usize,
        allowed: Option<&dyn Fn(u32) -> bool>,
        visited: &mut Visited,
    ) -> Vec<Near> {
        visited.clear();
        let admits = |n: u32| allowed.is_none_or(|f| f(n));
        // Candidates to expand, nearest first; results, worst first (so it can be evicted).
        let mut candidates: BinaryHeap<Near> = BinaryHeap::new();
        let mut results: BinaryHeap<std::cmp::Reverse<Near>> = BinaryHeap::new();
        for &e in entries {
            if visited.insert(e.1) {
                candidates.push(e);
                if admits(e.1) {
                    results.push(std::cmp::Reverse(e));
                }
            }
        }
        while results.len() > ef {
            results.pop();
        }
        // (a node's unseen neighbours, scored together)
        let (mut fresh, mut sims) = (Vec::with_capacity(self.m0()), Vec::with_capacity(self.m0()));
        while let Some(c) = candidates.pop() {
            if results.len() >= ef && results.peek().is_some_and(|w| c.0 < w.0.0) {
                break;
            }
            fresh.clear();
            fresh.extend(self.neighbours(c.1, layer).filter(|&n| visited.insert(n)));
            vectors.sims(query, &fresh, &mut sims);
            for (&n, &sim) in fresh.iter().zip(&sims) {
                let worst = results.peek().map_or(f32::MIN, |w| w.0.0);
                if results.len() < ef || sim > worst {
                    candidates.push(Near(sim, n));
                    if admits(n) {
                        results.push(std::cmp::Reverse(Near(sim, n)));
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            }
            // (the next node to expand: its links fetched while the heap is read)
            if let Some(next) = candidates.peek() {
                prefetch(self.slots(next.1, layer));
            }
        }
        let mut out: Vec<Near> = results.into_iter().map(|r| r.0).collect();
        out.sort_by(|a, b| b.cmp(a));
        out
    }

    /// The `k` nodes most similar to `query` (among `allowed` ones, when given), best first,
    /// with their similarities.
    pub fn search(
        &self,
        vectors: &Vectors,
        query: &[f32],
        k: usize,
        ef: usize,
        allowed: Option<&dyn Fn(u32) -> bool>,
    ) -> Vec<(u32, f32)> {
        if self.entry == NONE || k == 0 {
            return Vec::new();
        }
        let query = &vectors.query(query);
        let mut nearest = Near(vectors.sim(query, self.entry), self.entry);
        for layer in (1..=self.top()).rev() {
            nearest = self.greedy(vectors, query, nearest, layer);
        }
        let found = Visited::with(self.len(), |visited| {
            self.search_layer(vectors, query, &[nearest], ef.max(k), 0, allowed, visited)
        });
        found.into_iter().take(k).map(|n| (n.1, n.0)).collect()
    }
}

/// Hnswlib's neighbour heuristic: from candidates sorted best first, keep one only if it is
/// nearer the base than to every one already kept, up to `width`.
fn select(vectors: &Vectors, candidates: &[Near], width: usize) -> Vec<Near> {
    let mut kept: Vec<Near> = Vec::with_capacity(width);
    for &c in candidates {
        if kept.len() == width {
            break;
        }
        let v = vectors.node_query(c.1);
        if kept.iter().all(|k| vectors.sim(&v, k.1) < c.0) {
            kept.push(c);
        }
    }
    kept
}

fn write(slots: &mut [u32], chosen: &[Near]) {
    slots.fill(NONE);
    for (slot, n) in slots.iter_mut().zip(chosen) {
        *slot = n.1;
    }
}

/// Which nodes a search has seen: one bit each.
struct Visited(Vec<u64>);

thread_local! {
    /// Each thread's, kept between searches (a million nodes take 125 KB).
    static VISITED: std::cell::RefCell<Visited> = const { std::cell::RefCell::new(Visited(Vec::new())) };
}

impl Visited {
    /// Runs `f` with this thread's set, sized for `n` nodes (cleared by each layer's search).
    fn with<R>(n: usize, f: impl FnOnce(&mut Visited) -> R) -> R {
        VISITED.with_borrow_mut(|visited| {
            visited.0.resize(n.div_ceil(64), 0);
            f(visited)
        })
    }

    fn clear(&mut self) {
        self.0.fill(0);
    }

    /// Marks `n`; false when it was marked already.
    fn insert(&mut self, n: u32) -> bool {
        let (word, bit) = (n as usize / 64, 1u64 << (n % 64));
        let fresh = self.0[word] & bit == 0;
        self.0[word] |= bit;
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::super::distance::dot;
    use super::super::vectors::Quantization;
    use super::*;

    fn unit(v: Vec<f32>) -> Vec<f32> {
        let n = dot(&v, &v).sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    fn random(n: usize, dim: usize, seed: u64) -> Vectors {
        random_as(n, dim, seed, Quantization::None)
    }

    fn random_as(n: usize, dim: usize, seed: u64, quantization: Quantization) -> Vectors {
        let mut state = seed;
        let mut vectors = Vectors::new(dim, quantization);
        for _ in 0..n {
            let v: Vec<f32> = (0..dim)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                    ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
                })
                .collect();
            vectors.push(&unit(v));
        }
        vectors
    }

    #[test]
    fn finds_the_exact_neighbours_almost_always() {
        for quantization in [Quantization::None, Quantization::Int8] {
            finds_the_exact_neighbours_with(quantization);
        }
    }

    fn finds_the_exact_neighbours_with(quantization: Quantization) {
        let (n, dim) = (3000, 24);
        let vectors = random_as(n, dim, 3, quantization);
        let mut graph = Graph::new(12, 100);
        for _ in 0..n {
            graph.insert(&vectors);
        }
        let queries = random(100, dim, 99);
        let mut found = 0;
        for q in 0..100 {
            let query = &queries.decoded(q);
            let mut exact: Vec<(u32, f32)> = (0..n as u32)
                .map(|i| (i, dot(query, &vectors.decoded(i))))
                .collect();
            exact.sort_by(|a, b| b.1.total_cmp(&a.1));
            let want: Vec<u32> = exact[..10].iter().map(|e| e.0).collect();
            let got = graph.search(&vectors, query, 10, 64, None);
            assert!(got.windows(2).all(|w| w[0].1 >= w[1].1), "best first");
            found += got.iter().filter(|g| want.contains(&g.0)).count();
        }
        let recall = found as f64 / 1000.0;
        assert!(recall >= 0.95, "{quantization:?}: recall@10 {recall}");
    }

    #[test]
    fn a_filter_returns_only_allowed_nodes() {
        let vectors = random(500, 8, 5);
        let mut graph = Graph::new(8, 50);
        for _ in 0..500 {
            graph.insert(&vectors);
        }
        let even = |n: u32| n.is_multiple_of(2);
        let got = graph.search(&vectors, &vectors.decoded(7), 20, 50, Some(&even));
        assert_eq!(got.len(), 20);
        assert!(got.iter().all(|g| g.0.is_multiple_of(2)));
    }

    #[test]
    fn levels_thin_out_by_m() {
        let graph = Graph::new(16, 10);
        let above: usize = (0..100_000u32).filter(|&n| graph.level_for(n) >= 1).count();
        // 1/16 of the nodes reach layer 1.
        assert!((5_500..7_000).contains(&above), "{above}");
    }
}
