//! The shared test suite every `VectorStore` passes: upserts, replacement by id, deletes by
//! document, metadata updates, every filter operator with Bedrock's semantics, persistence
//! across reopening, and recall against brute force.
//!
//! A store's test file calls [`vector_store_suite!`](crate::vector_store_suite) with a
//! function that opens the store at a folder; reopening the same folder (or database) must
//! see the same data.

use std::collections::BTreeSet;
use std::path::Path;

use quarry_core::{Filter, Metadata, MetadataValue, StoredChunk, VectorStore};
use serde_json::json;

/// Opens a store of the given dimension whose data lives at (or is named by) the folder.
pub type OpenStore = dyn Fn(&Path, usize) -> Box<dyn VectorStore>;

/// Generates one `#[test]` per check for a store.
#[macro_export]
macro_rules! vector_store_suite {
    ($open:expr) => {
        $crate::vector_store_suite!(@tests $open;
            search_ranks_by_cosine, upsert_replaces_by_id, delete_removes_one_document,
            metadata_update_keeps_vectors, filters_follow_bedrock_semantics,
            reopening_keeps_everything, recall_against_brute_force,
            selective_and_broad_filters_stay_correct, wrong_dimension_is_refused);
    };
    (@tests $open:expr; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                let dir = tempfile::tempdir().unwrap();
                $crate::suite::$name(&$open, dir.path());
            }
        )*
    };
}

/// A deterministic pseudo-random generator, so failures reproduce.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn vector(&mut self, dim: usize) -> Vec<f32> {
        unit((0..dim).map(|_| self.next()).collect())
    }
}

fn unit(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub fn chunk(id: &str, doc: &str, vector: Vec<f32>, metadata: Metadata) -> StoredChunk {
    StoredChunk {
        id: id.into(),
        data_source_id: "DS00000001".into(),
        document_key: doc.into(),
        source_uri: format!("s3://bucket/{doc}"),
        text: format!("text of {id}"),
        span: 0..10,
        page: None,
        metadata,
        vector,
    }
}

fn meta(value: serde_json::Value) -> Metadata {
    value
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), MetadataValue::from_json(v).unwrap()))
        .collect()
}

fn ids(store: &dyn VectorStore, query: &[f32], k: usize, filter: Option<&Filter>) -> Vec<String> {
    store
        .search(query, k, filter)
        .unwrap()
        .into_iter()
        .map(|h| h.chunk.id)
        .collect()
}

fn basis(dim: usize, i: usize) -> Vec<f32> {
    let mut v = vec![0.0; dim];
    v[i] = 1.0;
    v
}

pub fn search_ranks_by_cosine(open: &OpenStore, dir: &Path) {
    let store = open(dir, 4);
    assert!(store.is_empty().unwrap());
    store
        .upsert(&[
            chunk("a", "d1", unit(vec![1.0, 0.0, 0.0, 0.0]), Metadata::new()),
            chunk("b", "d1", unit(vec![0.9, 0.1, 0.0, 0.0]), Metadata::new()),
            chunk("c", "d2", unit(vec![0.0, 1.0, 0.0, 0.0]), Metadata::new()),
            chunk("d", "d2", unit(vec![-1.0, 0.0, 0.0, 0.0]), Metadata::new()),
        ])
        .unwrap();
    let hits = store.search(&[2.0, 0.0, 0.0, 0.0], 3, None).unwrap();
    let order: Vec<&str> = hits.iter().map(|h| h.chunk.id.as_str()).collect();
    assert_eq!(order, ["a", "b", "c"]);
    assert!(
        (hits[0].score - 1.0).abs() < 1e-5,
        "score of an identical vector: {}",
        hits[0].score
    );
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    assert_eq!(hits[0].chunk.text, "text of a");
    assert_eq!(hits[0].chunk.source_uri, "s3://bucket/d1");
    assert_eq!(store.len().unwrap(), 4);
    assert_eq!(
        store.search(&[1.0, 0.0, 0.0, 0.0], 0, None).unwrap().len(),
        0
    );
    assert_eq!(
        store.search(&[1.0, 0.0, 0.0, 0.0], 10, None).unwrap().len(),
        4
    );
}

pub fn upsert_replaces_by_id(open: &OpenStore, dir: &Path) {
    let store = open(dir, 4);
    store
        .upsert(&[chunk("a", "d1", basis(4, 0), Metadata::new())])
        .unwrap();
    store
        .upsert(&[chunk("a", "d1", basis(4, 1), meta(json!({"v": 2})))])
        .unwrap();
    assert_eq!(store.len().unwrap(), 1);
    let hits = store.search(&basis(4, 1), 5, None).unwrap();
    assert_eq!(hits.len(), 1);
    assert!((hits[0].score - 1.0).abs() < 1e-5);
    assert_eq!(
        hits[0].chunk.metadata.get("v"),
        Some(&MetadataValue::Number(2.0))
    );
}

pub fn delete_removes_one_document(open: &OpenStore, dir: &Path) {
    let store = open(dir, 4);
    store
        .upsert(&[
            chunk("a1", "doc-a", basis(4, 0), Metadata::new()),
            chunk("a2", "doc-a", basis(4, 1), Metadata::new()),
            chunk("b1", "doc-b", basis(4, 2), Metadata::new()),
        ])
        .unwrap();
    assert_eq!(
        store.document_chunk_ids("DS00000001", "doc-a").unwrap(),
        ["a1", "a2"]
    );
    assert_eq!(store.chunk_ids().unwrap(), ["a1", "a2", "b1"]);
    let asked = ["b1", "gone", "a1"].map(String::from);
    let fetched: Vec<(String, String)> = store
        .chunks(&asked)
        .unwrap()
        .into_iter()
        .map(|c| (c.id, c.text))
        .collect();
    assert_eq!(
        fetched,
        [
            ("b1".into(), "text of b1".into()),
            ("a1".into(), "text of a1".into())
        ]
    );
    assert_eq!(store.delete_document("DS00000001", "doc-a").unwrap(), 2);
    assert_eq!(store.delete_document("DS00000001", "doc-a").unwrap(), 0);
    assert_eq!(store.len().unwrap(), 1);
    assert!(
        store
            .document_chunk_ids("DS00000001", "doc-a")
            .unwrap()
            .is_empty()
    );
    assert_eq!(ids(store.as_ref(), &basis(4, 0), 10, None), ["b1"]);
}

pub fn metadata_update_keeps_vectors(open: &OpenStore, dir: &Path) {
    let store = open(dir, 4);
    store
        .upsert(&[
            chunk("a", "doc", basis(4, 0), meta(json!({"team": "hr"}))),
            chunk("b", "other", basis(4, 1), meta(json!({"team": "hr"}))),
        ])
        .unwrap();
    assert_eq!(
        store
            .set_document_metadata("DS00000001", "doc", &meta(json!({"team": "it"})))
            .unwrap(),
        1
    );
    let it = Filter::from_json(&json!({"equals": {"key": "team", "value": "it"}})).unwrap();
    let hits = store.search(&basis(4, 0), 5, Some(&it)).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].chunk.id, "a");
    assert!((hits[0].score - 1.0).abs() < 1e-5, "vector changed");
    // System keys stay filterable after a metadata update.
    let by_uri = Filter::from_json(
        &json!({"equals": {"key": "x-amz-bedrock-kb-source-uri", "value": "s3://bucket/doc"}}),
    )
    .unwrap();
    assert_eq!(ids(store.as_ref(), &basis(4, 0), 5, Some(&by_uri)), ["a"]);
}

/// Chunks with every kind of attribute, and one with none.
fn filter_fixture(store: &dyn VectorStore) {
    let rows = [
        (
            "c1",
            json!({"year": 2021, "team": "hr", "tags": ["leave", "policy"], "public": true}),
        ),
        (
            "c2",
            json!({"year": 2023, "team": "it", "tags": ["laptop"], "public": false}),
        ),
        (
            "c3",
            json!({"year": 2024, "team": "hr-ops", "tags": ["policy"]}),
        ),
        ("c4", json!({"year": 2024.5, "team": "finance"})),
        ("c5", json!({})),
    ];
    let chunks: Vec<StoredChunk> = rows
        .iter()
        .enumerate()
        .map(|(i, (id, m))| chunk(id, &format!("doc-{id}"), basis(8, i), meta(m.clone())))
        .collect();
    store.upsert(&chunks).unwrap();
}

/// Every filter operator on the fixture, with the chunks Bedrock's semantics select.
fn filter_cases() -> Vec<(serde_json::Value, Vec<&'static str>)> {
    vec![
        (
            json!({"equals": {"key": "team", "value": "hr"}}),
            vec!["c1"],
        ),
        (
            json!({"notEquals": {"key": "team", "value": "hr"}}),
            vec!["c2", "c3", "c4", "c5"],
        ),
        (
            json!({"greaterThan": {"key": "year", "value": 2023}}),
            vec!["c3", "c4"],
        ),
        (
            json!({"greaterThanOrEquals": {"key": "year", "value": 2023}}),
            vec!["c2", "c3", "c4"],
        ),
        (
            json!({"lessThan": {"key": "year", "value": 2023}}),
            vec!["c1"],
        ),
        (
            json!({"lessThanOrEquals": {"key": "year", "value": 2023}}),
            vec!["c1", "c2"],
        ),
        (
            json!({"in": {"key": "team", "value": ["it", "finance"]}}),
            vec!["c2", "c4"],
        ),
        (
            json!({"notIn": {"key": "team", "value": ["it", "finance"]}}),
            vec!["c1", "c3", "c5"],
        ),
        (
            json!({"startsWith": {"key": "team", "value": "hr"}}),
            vec!["c1", "c3"],
        ),
        (
            json!({"listContains": {"key": "tags", "value": "policy"}}),
            vec!["c1", "c3"],
        ),
        (
            json!({"stringContains": {"key": "team", "value": "-op"}}),
            vec!["c3"],
        ),
        (
            json!({"stringContains": {"key": "tags", "value": "lap"}}),
            vec!["c2"],
        ),
        (
            json!({"equals": {"key": "public", "value": true}}),
            vec!["c1"],
        ),
        (
            json!({"notEquals": {"key": "public", "value": true}}),
            vec!["c2", "c3", "c4", "c5"],
        ),
        (
            json!({"andAll": [{"startsWith": {"key": "team", "value": "hr"}}, {"greaterThan": {"key": "year", "value": 2022}}]}),
            vec!["c3"],
        ),
        (
            json!({"orAll": [{"equals": {"key": "team", "value": "it"}}, {"equals": {"key": "year", "value": 2024.5}}]}),
            vec!["c2", "c4"],
        ),
        (
            json!({"equals": {"key": "x-amz-bedrock-kb-source-uri", "value": "s3://bucket/doc-c5"}}),
            vec!["c5"],
        ),
    ]
}

/// One filter case on one store: the operator, the filter, and whether the store selected
/// exactly what Bedrock's semantics select (with what it selected when not).
pub struct FilterOutcome {
    pub operator: String,
    pub filter: String,
    pub passed: bool,
    pub detail: String,
}

/// Runs every filter case, reporting rather than asserting (for the README's table).
pub fn filter_outcomes(open: &OpenStore, dir: &Path) -> Vec<FilterOutcome> {
    let store = open(dir, 8);
    filter_fixture(store.as_ref());
    let query = unit(vec![1.0; 8]);
    filter_cases()
        .into_iter()
        .map(|(filter_json, want)| {
            let filter = Filter::from_json(&filter_json).unwrap();
            let got: BTreeSet<String> = ids(store.as_ref(), &query, 100, Some(&filter))
                .into_iter()
                .collect();
            let want: BTreeSet<String> = want.into_iter().map(String::from).collect();
            FilterOutcome {
                operator: filter_json
                    .as_object()
                    .and_then(|o| o.keys().next().cloned())
                    .unwrap_or_default(),
                filter: filter_json.to_string(),
                passed: got == want,
                detail: format!("got {got:?}, want {want:?}"),
            }
        })
        .collect()
}

pub fn filters_follow_bedrock_semantics(open: &OpenStore, dir: &Path) {
    for outcome in filter_outcomes(open, dir) {
        assert!(
            outcome.passed,
            "filter {}: {}",
            outcome.filter, outcome.detail
        );
    }
}

pub fn reopening_keeps_everything(open: &OpenStore, dir: &Path) {
    let mut rng = Lcg(7);
    let vectors: Vec<Vec<f32>> = (0..50).map(|_| rng.vector(16)).collect();
    let before = {
        let store = open(dir, 16);
        let chunks: Vec<StoredChunk> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| {
                chunk(
                    &format!("c{i:02}"),
                    &format!("doc{}", i % 5),
                    v.clone(),
                    meta(json!({"n": i})),
                )
            })
            .collect();
        store.upsert(&chunks).unwrap();
        store.delete_document("DS00000001", "doc0").unwrap();
        ids(store.as_ref(), &vectors[1], 10, None)
    };
    let store = open(dir, 16);
    assert_eq!(store.len().unwrap(), 40);
    assert_eq!(ids(store.as_ref(), &vectors[1], 10, None), before);
    assert!(
        store
            .document_chunk_ids("DS00000001", "doc0")
            .unwrap()
            .is_empty()
    );
    let hit = &store.search(&vectors[3], 1, None).unwrap()[0];
    assert_eq!(hit.chunk.id, "c03");
    assert_eq!(
        hit.chunk.metadata.get("n"),
        Some(&MetadataValue::Number(3.0))
    );
}

/// Clustered data, like real embeddings, so nearest neighbours mean something.
fn clustered(rng: &mut Lcg, n: usize, dim: usize) -> Vec<Vec<f32>> {
    let centres: Vec<Vec<f32>> = (0..20).map(|_| rng.vector(dim)).collect();
    (0..n)
        .map(|i| {
            let c = &centres[i % centres.len()];
            unit(c.iter().map(|x| x + 0.35 * rng.next()).collect())
        })
        .collect()
}

fn recall(
    store: &dyn VectorStore,
    data: &[Vec<f32>],
    queries: &[Vec<f32>],
    filter: Option<&Filter>,
    allowed: &dyn Fn(usize) -> bool,
) -> f32 {
    let mut found = 0;
    let mut wanted = 0;
    for q in queries {
        let mut exact: Vec<(usize, f32)> = data
            .iter()
            .enumerate()
            .filter(|(i, _)| allowed(*i))
            .map(|(i, v)| (i, cosine(q, v)))
            .collect();
        exact.sort_by(|a, b| b.1.total_cmp(&a.1));
        let truth: BTreeSet<String> = exact
            .iter()
            .take(10)
            .map(|(i, _)| format!("c{i}"))
            .collect();
        let got: BTreeSet<String> = ids(store, q, 10, filter).into_iter().collect();
        wanted += truth.len();
        found += truth.intersection(&got).count();
    }
    found as f32 / wanted as f32
}

pub fn recall_against_brute_force(open: &OpenStore, dir: &Path) {
    let mut rng = Lcg(42);
    let data = clustered(&mut rng, 4000, 48);
    let store = open(dir, 48);
    let chunks: Vec<StoredChunk> = data
        .iter()
        .enumerate()
        .map(|(i, v)| {
            chunk(
                &format!("c{i}"),
                &format!("doc{}", i / 10),
                v.clone(),
                meta(json!({"bucket": i % 4})),
            )
        })
        .collect();
    store.upsert(&chunks).unwrap();
    let queries = clustered(&mut rng, 60, 48);
    let r = recall(store.as_ref(), &data, &queries, None, &|_| true);
    assert!(r >= 0.95, "recall@10 {r}");
    // After deleting a tenth of the documents, deleted chunks never come back and recall holds.
    for d in (0..400).step_by(10) {
        store
            .delete_document("DS00000001", &format!("doc{d}"))
            .unwrap();
    }
    let r = recall(store.as_ref(), &data, &queries, None, &|i| {
        (i / 10) % 10 != 0
    });
    assert!(r >= 0.95, "recall@10 after deletes {r}");
}

pub fn selective_and_broad_filters_stay_correct(open: &OpenStore, dir: &Path) {
    let mut rng = Lcg(3);
    let data = clustered(&mut rng, 3000, 32);
    let store = open(dir, 32);
    let chunks: Vec<StoredChunk> = data
        .iter()
        .enumerate()
        .map(|(i, v)| {
            chunk(
                &format!("c{i}"),
                &format!("doc{i}"),
                v.clone(),
                meta(json!({"n": i, "half": i % 2})),
            )
        })
        .collect();
    store.upsert(&chunks).unwrap();
    let queries = clustered(&mut rng, 40, 32);
    // Very selective: 12 chunks of 3000 pass; every one of the top 10 must be found.
    let rare = Filter::from_json(&json!({"lessThan": {"key": "n", "value": 12}})).unwrap();
    let r = recall(store.as_ref(), &data, &queries, Some(&rare), &|i| i < 12);
    assert!(r >= 0.999, "selective filter recall {r}");
    // Broad: half the chunks pass.
    let half = Filter::from_json(&json!({"equals": {"key": "half", "value": 0}})).unwrap();
    let r = recall(store.as_ref(), &data, &queries, Some(&half), &|i| {
        i % 2 == 0
    });
    assert!(r >= 0.95, "broad filter recall {r}");
}

pub fn wrong_dimension_is_refused(open: &OpenStore, dir: &Path) {
    let store = open(dir, 4);
    assert!(
        store
            .upsert(&[chunk("a", "d", vec![1.0, 0.0], Metadata::new())])
            .is_err()
    );
    assert!(store.search(&[1.0, 0.0, 0.0], 1, None).is_err());
    assert!(store.is_empty().unwrap());
}
