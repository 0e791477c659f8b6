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

/// The same suite with the graph's vectors quantized to int8 (ranked again at full precision).
mod int8 {
    use std::path::Path;

    use quarry_core::VectorStore;
    use quarry_vectorstores::{HnswParams, HnswStore, Quantization};

    fn open(dir: &Path, dimension: usize) -> Box<dyn VectorStore> {
        let params = HnswParams {
            exact_search_below: 100,
            quantization: Quantization::Int8,
            ..HnswParams::default()
        };
        Box::new(HnswStore::open(dir, dimension, params).unwrap())
    }

    quarry_vectorstores::vector_store_suite!(open);
}

/// The graph on disk: saved, reopened, replayed after a crash, rebuilt when it cannot be
/// trusted; each time the searches must be what they were.
mod saved_graph {
    use std::path::Path;

    use quarry_core::{StoredChunk, VectorStore};
    use quarry_vectorstores::{HnswParams, HnswStore, Opened};

    const DIM: usize = 16;

    fn chunks(doc: usize, count: usize) -> Vec<StoredChunk> {
        (0..count)
            .map(|i| {
                let mut state = (doc * 1000 + i) as u64 * 2_654_435_761 + 1;
                let vector: Vec<f32> = (0..DIM)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6_364_136_223_846_793_005)
                            .wrapping_add(1_442_695_040_888_963_407);
                        ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
                    })
                    .collect();
                let mut c = quarry_vectorstores::suite::chunk(
                    &format!("doc{doc}-{i}"),
                    &format!("doc{doc}"),
                    vector,
                    Default::default(),
                );
                c.metadata
                    .insert("n".into(), quarry_core::MetadataValue::Number(i as f64));
                c
            })
            .collect()
    }

    fn open(dir: &Path) -> HnswStore {
        HnswStore::open(dir, DIM, HnswParams::default()).unwrap()
    }

    /// Top 10s (ids and scores) of some queries, filtered and not.
    fn answers(store: &HnswStore) -> Vec<Vec<(String, f32)>> {
        let filter = quarry_core::Filter::from_json(
            &serde_json::json!({"greaterThan": {"key": "n", "value": 3}}),
        )
        .unwrap();
        (0..20)
            .flat_map(|q| {
                let query = chunks(900 + q, 1).remove(0).vector;
                [None, Some(&filter)].map(|f| {
                    store
                        .search(&query, 10, f)
                        .unwrap()
                        .into_iter()
                        .map(|h| (h.chunk.id, h.score))
                        .collect::<Vec<_>>()
                })
            })
            .collect()
    }

    /// The graph came from its file, with this many documents replayed.
    fn assert_read_from_file(store: &HnswStore, replayed_documents: usize) {
        assert_eq!(store.opened(), &Opened::Saved { replayed_documents });
    }

    fn fill(store: &HnswStore, docs: std::ops::Range<usize>) {
        for doc in docs {
            store.upsert(&chunks(doc, 8)).unwrap();
        }
    }

    #[test]
    fn a_saved_graph_reopens_with_the_same_answers() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        assert!(matches!(store.opened(), Opened::Rebuilt { .. }));
        fill(&store, 0..300);
        store.delete_document("DS00000001", "doc7").unwrap();
        store.end_batch().unwrap();
        let before = answers(&store);
        drop(store);

        let store = open(dir.path());
        assert_read_from_file(&store, 0);
        assert_eq!(store.len().unwrap(), 299 * 8);
        assert_eq!(answers(&store), before);
        // Text and metadata still come from the table.
        let hit = &store.search(&chunks(3, 1)[0].vector, 1, None).unwrap()[0];
        assert_eq!(hit.chunk.text, "text of doc3-0");
    }

    #[test]
    fn changes_after_the_last_save_are_replayed_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        fill(&store, 0..200);
        store.end_batch().unwrap();
        // Changed, added and deleted documents after the save; then the process dies
        // without saving again.
        let mut changed = chunks(5, 3);
        changed.iter_mut().for_each(|c| c.vector.reverse());
        store.delete_document("DS00000001", "doc5").unwrap();
        store.upsert(&changed).unwrap();
        fill(&store, 200..230);
        store.delete_document("DS00000001", "doc9").unwrap();
        let mut metadata = quarry_core::Metadata::new();
        metadata.insert("n".into(), quarry_core::MetadataValue::Number(100.0));
        store
            .set_document_metadata("DS00000001", "doc11", &metadata)
            .unwrap();
        let before = answers(&store);
        std::mem::forget(store);

        let store = open(dir.path());
        assert_read_from_file(&store, 33);
        assert_eq!(store.len().unwrap(), 228 * 8 + 3);
        assert_eq!(answers(&store), before);
    }

    #[test]
    fn a_torn_or_corrupt_file_is_rebuilt_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        fill(&store, 0..100);
        drop(store);
        let file = dir.path().join("graph.snapshot");
        let good = std::fs::read(&file).unwrap();
        let before = answers(&open(dir.path()));

        let mut flipped = good.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0x40;
        for (damage, bytes) in [
            ("checksum", flipped),
            ("ends early", good[..good.len() * 2 / 3].to_vec()),
            ("not a graph file", b"garbage".repeat(100)),
        ] {
            std::fs::write(&file, &bytes).unwrap();
            let store = open(dir.path());
            match store.opened() {
                Opened::Rebuilt { why } => assert!(why.contains(damage), "{why}"),
                other => panic!("{damage}: {other:?}"),
            }
            assert_eq!(answers(&store), before, "{damage}");
            drop(store);
            // The rebuilt graph was saved again, whole.
            assert_eq!(std::fs::read(&file).unwrap(), good, "{damage}");
        }
    }

    #[test]
    fn an_int8_graph_answers_as_the_f32_one_and_reopens_with_the_same_answers() {
        let int8 = HnswParams {
            quantization: quarry_vectorstores::Quantization::Int8,
            ..HnswParams::default()
        };
        let (f32_dir, int8_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let exact = open(f32_dir.path());
        let store = HnswStore::open(int8_dir.path(), DIM, int8.clone()).unwrap();
        for s in [&exact, &store] {
            fill(s, 0..200); // 1,600 chunks: quantized after the first 1,000
            s.delete_document("DS00000001", "doc3").unwrap();
            s.end_batch().unwrap();
        }
        assert!(
            store.vector_bytes() <= 1600 * DIM + 4 * DIM,
            "a byte per dimension: {}",
            store.vector_bytes()
        );
        assert!(exact.vector_bytes() >= 1600 * DIM * 4);
        // Candidates are ranked again at full precision: the same chunks, the same scores.
        let (want, got) = (answers(&exact), answers(&store));
        let same = want
            .iter()
            .zip(&got)
            .map(|(w, g)| g.iter().filter(|x| w.contains(x)).count())
            .sum::<usize>();
        assert!(
            same as f64 >= 0.95 * 400.0,
            "{same} of 400 results as exact"
        );
        drop(store);
        let store = HnswStore::open(int8_dir.path(), DIM, int8).unwrap();
        assert_read_from_file(&store, 0);
        assert_eq!(answers(&store), got);
    }

    /// `doc`'s chunks under their ids with other vectors (a document edited).
    fn edited(doc: usize) -> Vec<StoredChunk> {
        let mut out = chunks(doc + 5000, 8);
        for (i, c) in out.iter_mut().enumerate() {
            c.id = format!("doc{doc}-{i}");
            c.document_key = format!("doc{doc}");
        }
        out
    }

    /// Every hit's score is the chunk's current full-precision cosine, to the bit.
    fn assert_rescored_from(
        store: &HnswStore,
        current: &std::collections::HashMap<String, Vec<f32>>,
    ) {
        let unit = |v: &[f32]| {
            let n = quarry_vectorstores::hnsw::dot(v, v).sqrt();
            v.iter().map(|x| x / n).collect::<Vec<f32>>()
        };
        for q in 0..20 {
            let raw = chunks(900 + q, 1).remove(0).vector;
            let (hits, query) = (store.search(&raw, 10, None).unwrap(), unit(&raw));
            assert_eq!(hits.len(), 10);
            for h in hits {
                let want = quarry_vectorstores::hnsw::dot(&query, &unit(&current[&h.chunk.id]));
                assert_eq!(h.score, want, "{}", h.chunk.id);
            }
        }
    }

    #[test]
    fn int8_candidates_are_rescored_with_current_vectors_whatever_the_rescoring_file_holds() {
        let int8 = HnswParams {
            quantization: quarry_vectorstores::Quantization::Int8,
            ..HnswParams::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let store = HnswStore::open(dir.path(), DIM, int8.clone()).unwrap();
        let mut current = std::collections::HashMap::new();
        for doc in 0..200 {
            store.upsert(&chunks(doc, 8)).unwrap();
            current.extend(chunks(doc, 8).into_iter().map(|c| (c.id, c.vector)));
        }
        assert_rescored_from(&store, &current);
        // Edited documents leave 1,200 tombstones of 2,800 slots: the graph is compacted and
        // the slots renumbered; old records of the same chunk ids must not be read.
        for doc in 0..150 {
            store.upsert(&edited(doc)).unwrap();
            current.extend(edited(doc).into_iter().map(|c| (c.id, c.vector)));
        }
        assert_rescored_from(&store, &current);
        store.end_batch().unwrap();
        drop(store);
        let file = dir.path().join("vectors.f32");
        assert!(std::fs::metadata(&file).unwrap().len() >= 1600 * (DIM as u64 * 4 + 8));

        // Garbage, a short file, no file: the table answers.
        let garbage: Vec<u8> = (0..std::fs::metadata(&file).unwrap().len())
            .map(|i| (i * 7919 % 251) as u8)
            .collect();
        std::fs::write(&file, garbage).unwrap();
        let store = HnswStore::open(dir.path(), DIM, int8.clone()).unwrap();
        assert_rescored_from(&store, &current);
        drop(store);
        let half = std::fs::metadata(&file).unwrap().len() / 2;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(half)
            .unwrap();
        let store = HnswStore::open(dir.path(), DIM, int8.clone()).unwrap();
        assert_rescored_from(&store, &current);
        drop(store);
        std::fs::remove_file(&file).unwrap();
        let store = HnswStore::open(dir.path(), DIM, int8).unwrap();
        assert_rescored_from(&store, &current);
    }

    #[test]
    fn a_rebuilt_graph_is_saved_at_once_so_a_killed_process_does_not_rebuild_it_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        fill(&store, 0..50);
        store.end_batch().unwrap();
        drop(store);
        std::fs::write(dir.path().join("graph.snapshot"), b"torn").unwrap();
        let store = open(dir.path());
        assert!(matches!(store.opened(), Opened::Rebuilt { .. }));
        let before = answers(&store);
        // Killed: no save on the way out.
        std::mem::forget(store);
        let store = open(dir.path());
        assert_read_from_file(&store, 0);
        assert_eq!(answers(&store), before);
    }

    #[test]
    fn a_stale_file_or_other_settings_are_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        fill(&store, 0..50);
        store.end_batch().unwrap();
        let file = dir.path().join("graph.snapshot");
        let old = std::fs::read(&file).unwrap();
        fill(&store, 50..80);
        store.delete_document("DS00000001", "doc1").unwrap();
        store.end_batch().unwrap();
        let before = answers(&store);
        drop(store);

        // A graph saved before changes the log no longer holds.
        std::fs::write(&file, &old).unwrap();
        let store = open(dir.path());
        match store.opened() {
            Opened::Rebuilt { why } => assert!(why.contains("stale"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(answers(&store), before);
        drop(store);

        // Quantized vectors instead of the saved f32 ones: rebuilt.
        let int8 = HnswParams {
            quantization: quarry_vectorstores::Quantization::Int8,
            ..HnswParams::default()
        };
        let store = HnswStore::open(dir.path(), DIM, int8).unwrap();
        match store.opened() {
            Opened::Rebuilt { why } => assert!(why.contains("quantization"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(answers(&store), before, "(few chunks: held as f32 still)");
        drop(store);

        // Other graph settings than the file was built with.
        let params = HnswParams {
            max_connections: 8,
            ..HnswParams::default()
        };
        let store = HnswStore::open(dir.path(), DIM, params).unwrap();
        match store.opened() {
            Opened::Rebuilt { why } => assert!(why.contains("m = 16"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
