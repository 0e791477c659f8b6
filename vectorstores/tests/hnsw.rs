//! The shared suite on the HNSW store. A low exact-search threshold makes the broad filter
//! case walk the graph rather than rank exactly.

use std::path::Path;

use quarry_core::VectorStore;
use quarry_vectorstores::{HnswParams, HnswStore};

fn open(dir: &Path, dimension: usize) -> Box<dyn VectorStore> {
    let params = HnswParams {
        exact_search_below: 100,
        ..HnswParams::default()
    };
    Box::new(HnswStore::open(dir, dimension, params).unwrap())
}

quarry_vectorstores::vector_store_suite!(open);
