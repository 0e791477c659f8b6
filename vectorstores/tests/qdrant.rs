//! The shared suite on Qdrant, against the server named by QDRANT_URL (e.g.
//! `QDRANT_URL=http://127.0.0.1:6334 make test`). No Qdrant server can be installed on the
//! machines Quarry is built on, so without it these tests are listed as ignored, with that
//! reason; the filter translation is tested on its own in `src/qdrant/filter.rs`.

use std::path::Path;

use quarry_core::VectorStore;
use quarry_vectorstores::{QdrantConfig, QdrantStore};

#[allow(dead_code)]
fn open(dir: &Path, dimension: usize) -> Box<dyn VectorStore> {
    let name: String = dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let config = QdrantConfig {
        url: std::env::var("QDRANT_URL").expect("QDRANT_URL"),
        collection: format!("quarry_suite_{name}"),
        api_key: std::env::var("QDRANT_API_KEY").ok(),
        shard_number: None,
        replication_factor: None,
    };
    Box::new(QdrantStore::open(&config, dimension).unwrap())
}

#[cfg(qdrant_url)]
quarry_vectorstores::vector_store_suite!(open);

#[cfg(not(qdrant_url))]
quarry_vectorstores::vector_store_suite!(ignored "needs a Qdrant server in QDRANT_URL (none can be installed here)"; open);
