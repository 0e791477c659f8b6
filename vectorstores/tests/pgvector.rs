//! The shared suite on PostgreSQL + pgvector. `make test` starts a real server
//! (`scripts/with-postgres.py`) and names it in QUARRY_TEST_PG_URL.

use std::path::Path;

use quarry_core::VectorStore;
use quarry_vectorstores::{FieldMapping, PgVectorConfig, PgVectorStore};

fn config(table: String, fields: FieldMapping) -> PgVectorConfig {
    let url = std::env::var("QUARRY_TEST_PG_URL").expect(
        "QUARRY_TEST_PG_URL is not set: run the tests with `make test`, which starts PostgreSQL + pgvector \
         (or wrap cargo in scripts/with-postgres.py)",
    );
    PgVectorConfig {
        url,
        table,
        password: None,
        fields,
    }
}

/// A table per test folder: tests run side by side, and reopening the folder reopens it.
fn table_for(dir: &Path) -> String {
    let name: String = dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    format!("suite_{}", name.to_lowercase())
}

fn open(dir: &Path, dimension: usize) -> Box<dyn VectorStore> {
    let store = PgVectorStore::open(&config(table_for(dir), FieldMapping::default()), dimension);
    Box::new(store.unwrap())
}

quarry_vectorstores::vector_store_suite!(open);

#[test]
fn a_table_of_another_dimension_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path(), 4));
    let err = PgVectorStore::open(&config(table_for(dir.path()), FieldMapping::default()), 8)
        .err()
        .expect("opened a vector(4) table for 8-dimensional vectors")
        .to_string();
    assert!(err.contains("vector(4)") && err.contains('8'), "{err}");
}

#[test]
fn bedrocks_field_mapping_names_the_columns() {
    let dir = tempfile::tempdir().unwrap();
    let fields = FieldMapping {
        primary_key: "chunk_uuid".into(),
        vector: "bedrock_vector".into(),
        text: "bedrock_text".into(),
        metadata: "bedrock_metadata".into(),
    };
    let store = PgVectorStore::open(&config(table_for(dir.path()), fields.clone()), 4).unwrap();
    let chunk = quarry_vectorstores::suite::chunk(
        "c1",
        "doc",
        vec![1.0, 0.0, 0.0, 0.0],
        Default::default(),
    );
    store.upsert(&[chunk]).unwrap();
    let hits = store.search(&[1.0, 0.0, 0.0, 0.0], 1, None).unwrap();
    assert_eq!(hits[0].chunk.id, "c1");
    assert_eq!(hits[0].chunk.text, "text of c1");
    assert_eq!(hits[0].chunk.document_key, "doc");
    assert_eq!(hits[0].chunk.span, 0..10);
    // Reopening the same table with the same mapping sees it.
    let again = PgVectorStore::open(&config(table_for(dir.path()), fields), 4).unwrap();
    assert_eq!(again.len().unwrap(), 1);
}
