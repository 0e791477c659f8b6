//! A thin wrapper over hnsw_rs's graph, in slot ids.

use hnsw_rs::hnsw::Hnsw;

use super::HnswParams;
use super::distance::UnitCosine;

pub(crate) struct Graph {
    hnsw: Hnsw<'static, f32, UnitCosine>,
}

impl Graph {
    pub fn new(params: &HnswParams, capacity: usize) -> Self {
        let max_layer = 16;
        Self {
            hnsw: Hnsw::new(
                params.max_connections,
                capacity.max(1024),
                max_layer,
                params.ef_construction,
                UnitCosine,
            ),
        }
    }

    pub fn insert(&self, points: &[(&[f32], usize)]) {
        if points.len() > 64 {
            self.hnsw.parallel_insert_slice(&points.to_vec());
        } else {
            for &(v, id) in points {
                self.hnsw.insert_slice((v, id));
            }
        }
    }

    /// Nearest slots to `query`, restricted to `allowed` (sorted) when given.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        allowed: Option<&[usize]>,
    ) -> Vec<(usize, f32)> {
        let found = match allowed {
            Some(slots) => {
                let filter = |id: &usize| slots.binary_search(id).is_ok();
                self.hnsw.search_filter(query, k, ef, Some(&filter))
            }
            None => self.hnsw.search(query, k, ef),
        };
        found
            .into_iter()
            .map(|n| (n.d_id, 1.0 - n.distance))
            .collect()
    }
}
