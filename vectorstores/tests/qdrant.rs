//! The shared suite on Qdrant. `make test` starts a real Qdrant server
//! (`scripts/with-qdrant.py`) and names its gRPC address in QDRANT_URL.

use std::path::Path;

use quarry_core::VectorStore;
use quarry_vectorstores::{QdrantConfig, QdrantStore};

fn open(dir: &Path, dimension: usize) -> Box<dyn VectorStore> {
    let name: String = dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let config = QdrantConfig {
        url: std::env::var("QDRANT_URL").expect(
            "QDRANT_URL is not set: run the tests with `make test`, which starts Qdrant \
             (or wrap cargo in scripts/with-qdrant.py)",
        ),
        collection: format!("quarry_suite_{name}"),
        api_key: std::env::var("QDRANT_API_KEY").ok(),
        shard_number: None,
        replication_factor: None,
    };
    Box::new(QdrantStore::open(&config, dimension).unwrap())
}

quarry_vectorstores::vector_store_suite!(open);

/// A filter Qdrant cannot narrow by (`startsWith`), so selective that walking the graph
/// finds too few: the store ranks every passing point exactly and misses none.
#[test]
fn a_selective_filter_qdrant_cannot_express_misses_nothing() {
    use quarry_core::{Filter, Metadata, MetadataValue, StoredChunk};

    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 8);
    let mut state = 7u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    };
    let chunks: Vec<StoredChunk> = (0..12_000)
        .map(|i| {
            let mut metadata = Metadata::new();
            let code = if i % 2_400 == 0 { "rare" } else { "common" };
            metadata.insert("code".into(), MetadataValue::String(format!("{code}-{i}")));
            StoredChunk {
                id: format!("c{i}"),
                data_source_id: "DS".into(),
                document_key: format!("doc{i}"),
                source_uri: format!("file:///doc{i}"),
                text: format!("chunk {i}"),
                span: 0..1,
                page: None,
                metadata,
                vector: (0..8).map(|_| next()).collect(),
            }
        })
        .collect();
    for batch in chunks.chunks(2_000) {
        store.upsert(batch).unwrap();
    }
    let filter =
        Filter::from_json(&serde_json::json!({"startsWith": {"key": "code", "value": "rare-"}}))
            .unwrap();
    let query: Vec<f32> = (0..8).map(|_| next()).collect();
    let hits = store.search(&query, 10, Some(&filter)).unwrap();
    let mut found: Vec<&str> = hits.iter().map(|h| h.chunk.id.as_str()).collect();
    found.sort();
    assert_eq!(found, vec!["c0", "c2400", "c4800", "c7200", "c9600"]);
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
}
