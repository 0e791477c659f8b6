//! The lexical index follows the vector store through adds, edits and deletes, and a
//! deleted document never comes back through it.

use std::path::Path;
use std::sync::Arc;

use quarry_core::{StoredChunk, VectorStore};
use quarry_lexical::{HybridStore, LexicalIndex};
use quarry_vectorstores::{HnswParams, HnswStore};

fn chunk(id: &str, doc: &str, text: &str) -> StoredChunk {
    StoredChunk {
        id: id.into(),
        data_source_id: "DS00000001".into(),
        document_key: doc.into(),
        source_uri: format!("s3://bucket/{doc}"),
        text: text.into(),
        span: 0..text.len(),
        page: None,
        metadata: Default::default(),
        vector: vec![1.0, 0.0],
    }
}

fn open(dir: &Path) -> HybridStore {
    let vectors = Arc::new(HnswStore::open(&dir.join("hnsw"), 2, HnswParams::default()).unwrap());
    let lexical = Arc::new(LexicalIndex::open(&dir.join("lexical")).unwrap());
    HybridStore::new(vectors, lexical)
}

fn found(store: &HybridStore, query: &str) -> Vec<String> {
    store
        .lexical()
        .search(query, 10)
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

#[test]
fn adds_edits_and_deletes_reach_the_lexical_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .upsert(&[
            chunk("a1", "a.txt", "Penguins and more penguins huddle together."),
            chunk("a2", "a.txt", "Emperor penguins breed in winter."),
            chunk("b1", "b.txt", "Volcanoes erupt molten rock."),
        ])
        .unwrap();
    assert_eq!(store.lexical().len(), 3);
    // Stemming: "penguin" finds "Penguins"; the chunk naming it twice ranks first.
    assert_eq!(found(&store, "penguin"), ["a1", "a2"]);
    assert_eq!(found(&store, "erupting volcano"), ["b1"]);

    // An edit: the same id with new text replaces the old text.
    store
        .upsert(&[chunk("b1", "b.txt", "Glaciers carve valleys.")])
        .unwrap();
    assert_eq!(store.lexical().len(), 3);
    assert!(found(&store, "volcano").is_empty());
    assert_eq!(found(&store, "glacier"), ["b1"]);

    // A delete removes every chunk of the document, from both sides.
    assert_eq!(store.delete_document("DS00000001", "a.txt").unwrap(), 2);
    assert!(found(&store, "penguin").is_empty());
    assert_eq!(store.lexical().len(), 1);
    assert_eq!(store.len().unwrap(), 1);
}

#[test]
fn a_deleted_document_stays_deleted_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store
            .upsert(&[
                chunk("a1", "a.txt", "Penguins huddle."),
                chunk("b1", "b.txt", "Penguins swim."),
            ])
            .unwrap();
        store.delete_document("DS00000001", "a.txt").unwrap();
    }
    let store = open(dir.path());
    assert_eq!(found(&store, "penguins"), ["b1"]);
}

#[test]
fn a_missing_lexical_index_is_rebuilt_from_the_vector_store() {
    let dir = tempfile::tempdir().unwrap();
    let vectors = HnswStore::open(&dir.path().join("hnsw"), 2, HnswParams::default()).unwrap();
    vectors
        .upsert(&[
            chunk("a1", "a.txt", "Penguins huddle."),
            chunk("b1", "b.txt", "Lava flows."),
        ])
        .unwrap();
    let lexical = LexicalIndex::open(&dir.path().join("lexical")).unwrap();
    assert!(lexical.is_empty());
    assert!(lexical.rebuild_if_stale(&vectors).unwrap());
    let ids: Vec<String> = lexical
        .search("lava", 10)
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, ["b1"]);
    assert!(!lexical.rebuild_if_stale(&vectors).unwrap());
}

#[test]
fn queries_of_stop_words_or_punctuation_match_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .upsert(&[chunk("a1", "a.txt", "The cat sat.")])
        .unwrap();
    assert!(found(&store, "the of and").is_empty());
    assert!(found(&store, "?!\"(*").is_empty());
}

/// In a batch the lexical changes are held back and applied together at its end; a process
/// that dies with some held back leaves a marker, and the index is rebuilt from the vectors
/// when next opened — even when the chunk counts happen to agree.
#[test]
fn a_batch_holds_changes_back_and_a_crash_mid_batch_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .upsert(&[chunk("a1", "a.txt", "Penguins huddle together.")])
        .unwrap();
    store.begin_batch();
    store
        .replace_document(
            "DS00000001",
            "a.txt",
            &[chunk("a1", "a.txt", "Glaciers carve valleys.")],
        )
        .unwrap();
    assert_eq!(found(&store, "glacier"), Vec::<String>::new(), "held back");
    assert!(dir.path().join("lexical.pending").exists());
    store.end_batch().unwrap();
    assert_eq!(found(&store, "glacier"), ["a1"]);
    assert!(!dir.path().join("lexical.pending").exists());

    // Dies mid-batch (no end, no drop): same count on both sides, but stale text.
    store.begin_batch();
    store
        .replace_document(
            "DS00000001",
            "a.txt",
            &[chunk("a1", "a.txt", "Volcanoes erupt molten rock.")],
        )
        .unwrap();
    std::mem::forget(store);
    let vectors: Arc<dyn VectorStore> =
        Arc::new(HnswStore::open(&dir.path().join("hnsw"), 2, HnswParams::default()).unwrap());
    let lexical = LexicalIndex::open(&dir.path().join("lexical")).unwrap();
    assert_eq!(lexical.len(), 1);
    assert!(lexical.rebuild_if_stale(vectors.as_ref()).unwrap());
    let hits: Vec<String> = lexical
        .search("volcano", 10)
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(hits, ["a1"]);
    assert!(lexical.search("glacier", 10).unwrap().is_empty());
    assert!(!dir.path().join("lexical.pending").exists());

    // Many changes in one batch are applied in bounded groups, not all at the end.
    let store = HybridStore::new(vectors, Arc::new(lexical));
    store.begin_batch();
    for i in 0..70 {
        store
            .upsert(&[chunk(
                &format!("n{i}"),
                &format!("n{i}.txt"),
                "Notes about penguins.",
            )])
            .unwrap();
    }
    assert!(store.lexical().len() >= 64, "applied after 64 held back");
    store.end_batch().unwrap();
    assert_eq!(store.lexical().len(), 71);
}
