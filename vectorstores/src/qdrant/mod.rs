//! The Qdrant store (qdrant-client, gRPC), for knowledge bases that outgrow one machine: a
//! collection of the model's dimension with cosine distance, created when missing (and refused
//! when an existing one has another dimension), its shards and replicas settable for a
//! cluster. A point per chunk: its id is the chunk id as a UUID, its payload the chunk's
//! metadata with Bedrock's system keys plus Quarry's (`x-quarry-*`: chunk id, document, span,
//! text). Filters run as Qdrant payload filters ([`filter`]) and every returned point is
//! checked with Bedrock's semantics.
//!
//! Tested against a real server only where `QDRANT_URL` is set: none can be installed here.

pub mod filter;

use std::collections::HashMap;
use std::sync::Mutex;

use qdrant_client::qdrant::{
    self, Condition, CountPointsBuilder, CreateCollectionBuilder,
    CreateFieldIndexCollectionBuilder, DeletePointsBuilder, Distance, FieldType, GetPointsBuilder,
    PointStruct, QueryPointsBuilder, ScrollPointsBuilder, SearchParamsBuilder,
    SetPayloadPointsBuilder, UpsertPointsBuilder, VectorParamsBuilder,
};
use qdrant_client::{Payload, Qdrant};
use quarry_core::metadata::DATA_SOURCE_ID;
use quarry_core::{Filter, Metadata, SearchHit, StoreError, StoredChunk, VectorStore};
use serde_json::{Map, Value, json};

use crate::metadata_document::{DOCUMENT_KEY, check_dimension, to_chunk, to_document};

/// How long opening waits for a collection that another replica is making.
const READY_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Why preparing the collection did not succeed: worth another try, or not.
enum Prepare {
    Failed(StoreError),
    Refused(StoreError),
}

const CHUNK: &str = "x-quarry-chunk-id";
const TEXT: &str = "x-quarry-text";
/// Most points one filtered search walks while checking them.
const MAX_WALK: u64 = 10_000;

#[derive(Debug, Clone)]
pub struct QdrantConfig {
    pub url: String,
    pub collection: String,
    pub api_key: Option<String>,
    /// For a new collection on a cluster: shards and copies of each.
    pub shard_number: Option<u32>,
    pub replication_factor: Option<u32>,
}

pub struct QdrantStore {
    client: Qdrant,
    runtime: tokio::runtime::Runtime,
    collection: String,
    dimension: usize,
    /// Payload keys already indexed for filtering.
    indexed: Mutex<Vec<String>>,
}

fn storage(e: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(format!("Qdrant: {e}"))
}

/// A chunk id (32 hex digits) as the UUID Qdrant takes for a point id; other ids are hashed.
pub fn point_id(chunk_id: &str) -> String {
    let hex: String = if chunk_id.len() == 32 && chunk_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        chunk_id.to_ascii_lowercase()
    } else {
        use std::hash::{Hash, Hasher};
        let mut parts = [0u64; 2];
        for (i, part) in parts.iter_mut().enumerate() {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (i, chunk_id).hash(&mut h);
            *part = h.finish();
        }
        format!("{:016x}{:016x}", parts[0], parts[1])
    };
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn document_filter(data_source_id: &str, document_key: &str) -> qdrant::Filter {
    qdrant::Filter::must([
        Condition::matches(DATA_SOURCE_ID, data_source_id.to_owned()),
        Condition::matches(DOCUMENT_KEY, document_key.to_owned()),
    ])
}

fn payload_of(chunk: &StoredChunk) -> Value {
    let mut m = to_document(chunk);
    m.insert(CHUNK.into(), json!(chunk.id));
    m.insert(TEXT.into(), json!(chunk.text));
    Value::Object(m)
}

fn chunk_from(payload: HashMap<String, qdrant::Value>, vector: Vec<f32>) -> StoredChunk {
    let m: Map<String, Value> = payload
        .into_iter()
        .map(|(k, v)| (k, v.into_json()))
        .collect();
    let text_of = |k: &str| {
        m.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    to_chunk(&m, text_of(CHUNK), text_of(TEXT), vector)
}

fn dense(vectors: Option<qdrant::VectorsOutput>) -> Vec<f32> {
    match vectors.and_then(|v| v.get_vector()) {
        Some(qdrant::vector_output::Vector::Dense(d)) => d.data,
        _ => Vec::new(),
    }
}

impl QdrantStore {
    /// Deletes the collection a configuration names, if it exists (a retired index's).
    pub fn remove(config: &QdrantConfig) -> Result<(), StoreError> {
        let mut builder = Qdrant::from_url(&config.url);
        if let Some(key) = &config.api_key {
            builder = builder.api_key(key.clone());
        }
        let client = builder.build().map_err(storage)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(storage)?;
        runtime.block_on(async {
            if client
                .collection_exists(&config.collection)
                .await
                .map_err(storage)?
            {
                client
                    .delete_collection(config.collection.clone())
                    .await
                    .map_err(storage)?;
            }
            Ok(())
        })
    }

    pub fn open(config: &QdrantConfig, dimension: usize) -> Result<Self, StoreError> {
        let mut builder = Qdrant::from_url(&config.url);
        if let Some(key) = &config.api_key {
            builder = builder.api_key(key.clone());
        }
        let client = builder.build().map_err(storage)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(storage)?;
        let store = Self {
            client,
            runtime,
            collection: config.collection.clone(),
            dimension,
            indexed: Mutex::new(Vec::new()),
        };
        // Replicas starting together race to create the collection, and the losers may find
        // it made but its shards not ready yet (Qdrant answers "0 of 0 read operations
        // failed"): such answers are tried again for a while before the start fails.
        let deadline = std::time::Instant::now() + READY_WAIT;
        loop {
            match store.prepare(config) {
                Ok(()) => return Ok(store),
                Err(Prepare::Refused(e)) => return Err(e),
                Err(Prepare::Failed(e)) if std::time::Instant::now() < deadline => {
                    tracing::info!(collection = %store.collection, error = %e, "the Qdrant collection is not ready; trying again");
                    std::thread::sleep(std::time::Duration::from_millis(250));
                }
                Err(Prepare::Failed(e)) => return Err(e),
            }
        }
    }

    /// Makes the collection if it is missing (checking the dimension of one that is there)
    /// and the payload indexes the store's own filters use.
    fn prepare(&self, config: &QdrantConfig) -> Result<(), Prepare> {
        let name = &self.collection;
        let exists = self
            .block(self.client.collection_exists(name))
            .map_err(|e| Prepare::Failed(storage(e)))?;
        if exists {
            self.check_dimension(name)?;
        } else {
            let mut create = CreateCollectionBuilder::new(name).vectors_config(
                VectorParamsBuilder::new(self.dimension as u64, Distance::Cosine),
            );
            if let Some(n) = config.shard_number {
                create = create.shard_number(n);
            }
            if let Some(n) = config.replication_factor {
                create = create.replication_factor(n);
            }
            // (one that loses the race to create it finds the winner's on the next try)
            self.block(self.client.create_collection(create))
                .map_err(|e| Prepare::Failed(storage(e)))?;
        }
        for key in [DATA_SOURCE_ID, DOCUMENT_KEY] {
            self.index(key).map_err(Prepare::Failed)?;
        }
        Ok(())
    }

    /// Refuses a collection made for vectors of another size.
    fn check_dimension(&self, name: &str) -> Result<(), Prepare> {
        let info = self
            .block(self.client.collection_info(name))
            .map_err(|e| Prepare::Failed(storage(e)))?;
        let size = info
            .result
            .and_then(|r| r.config)
            .and_then(|c| c.params)
            .and_then(|p| p.vectors_config)
            .and_then(|v| match v.config {
                Some(qdrant::vectors_config::Config::Params(p)) => Some(p.size),
                _ => None,
            });
        if size != Some(self.dimension as u64) {
            return Err(Prepare::Refused(StoreError::Storage(format!(
                "Qdrant collection {name} holds vectors of {}, but the model's have {} dimensions",
                size.map_or("another size".into(), |s| format!("{s} dimensions")),
                self.dimension
            ))));
        }
        Ok(())
    }

    /// Runs a request to completion on the store's runtime, from any thread (a thread of
    /// its own, so callers inside another runtime's blocking pool are fine).
    fn block<F: std::future::Future + Send>(&self, future: F) -> F::Output
    where
        F::Output: Send,
    {
        std::thread::scope(|s| {
            s.spawn(|| self.runtime.block_on(future))
                .join()
                .expect("Qdrant request thread panicked")
        })
    }

    /// A keyword index on a payload key filters use, once.
    fn index(&self, key: &str) -> Result<(), StoreError> {
        let mut indexed = self.indexed.lock().unwrap_or_else(|p| p.into_inner());
        if indexed.iter().any(|k| k == key) {
            return Ok(());
        }
        let request =
            CreateFieldIndexCollectionBuilder::new(&self.collection, key, FieldType::Keyword)
                .wait(true);
        self.block(self.client.create_field_index(request))
            .map_err(storage)?;
        indexed.push(key.to_owned());
        Ok(())
    }

    /// The `k` points nearest to `query` among those passing `pre` (in Qdrant) and `filter`
    /// (Bedrock's semantics), by cosine over every such point, a page at a time.
    fn exact_search(
        &self,
        query: &[f32],
        k: usize,
        pre: Option<qdrant::Filter>,
        filter: Option<&Filter>,
    ) -> Result<Vec<SearchHit>, StoreError> {
        let norm = |v: &[f32]| {
            v.iter()
                .map(|x| x * x)
                .sum::<f32>()
                .sqrt()
                .max(f32::MIN_POSITIVE)
        };
        let query_norm = norm(query);
        let mut best: Vec<SearchHit> = Vec::new();
        self.pages(pre, true, |page| {
            for chunk in page {
                if filter.is_some_and(|f| !f.matches(&chunk.full_metadata())) {
                    continue;
                }
                let dot: f32 = chunk.vector.iter().zip(query).map(|(a, b)| a * b).sum();
                let score = dot / (norm(&chunk.vector) * query_norm);
                best.push(SearchHit {
                    score,
                    chunk: StoredChunk {
                        vector: Vec::new(),
                        ..chunk
                    },
                });
            }
            best.sort_by(|a, b| b.score.total_cmp(&a.score));
            best.truncate(k);
        })?;
        Ok(best)
    }

    /// Every point of a filter, with payloads and (if asked) vectors.
    fn scroll(
        &self,
        filter: Option<qdrant::Filter>,
        vectors: bool,
    ) -> Result<Vec<StoredChunk>, StoreError> {
        let mut out = Vec::new();
        self.pages(filter, vectors, |page| out.extend(page))?;
        Ok(out)
    }

    /// Every point of a filter, a page of 1,000 at a time.
    fn pages(
        &self,
        filter: Option<qdrant::Filter>,
        vectors: bool,
        mut each: impl FnMut(Vec<StoredChunk>),
    ) -> Result<(), StoreError> {
        let mut offset: Option<qdrant::PointId> = None;
        loop {
            let mut request = ScrollPointsBuilder::new(&self.collection)
                .limit(1000)
                .with_payload(true)
                .with_vectors(vectors);
            if let Some(f) = filter.clone() {
                request = request.filter(f);
            }
            if let Some(o) = offset.take() {
                request = request.offset(o);
            }
            let page = self.block(self.client.scroll(request)).map_err(storage)?;
            each(
                page.result
                    .into_iter()
                    .map(|p| chunk_from(p.payload, dense(p.vectors)))
                    .collect(),
            );
            match page.next_page_offset {
                Some(next) => offset = Some(next),
                None => return Ok(()),
            }
        }
    }
}

impl VectorStore for QdrantStore {
    fn dimension(&self) -> usize {
        self.dimension
    }

    fn upsert(&self, chunks: &[StoredChunk]) -> Result<(), StoreError> {
        let mut points = Vec::with_capacity(chunks.len());
        for c in chunks {
            check_dimension(self.dimension, &c.vector)?;
            let payload = Payload::try_from(payload_of(c)).map_err(storage)?;
            points.push(PointStruct::new(point_id(&c.id), c.vector.clone(), payload));
        }
        for batch in points.chunks(256) {
            let request = UpsertPointsBuilder::new(&self.collection, batch.to_vec()).wait(true);
            self.block(self.client.upsert_points(request))
                .map_err(storage)?;
        }
        Ok(())
    }

    fn delete_document(
        &self,
        data_source_id: &str,
        document_key: &str,
    ) -> Result<usize, StoreError> {
        let filter = document_filter(data_source_id, document_key);
        let count = CountPointsBuilder::new(&self.collection)
            .filter(filter.clone())
            .exact(true);
        let n = self.block(self.client.count(count)).map_err(storage)?;
        let n = n.result.map_or(0, |r| r.count) as usize;
        if n > 0 {
            let request = DeletePointsBuilder::new(&self.collection)
                .points(filter)
                .wait(true);
            self.block(self.client.delete_points(request))
                .map_err(storage)?;
        }
        Ok(n)
    }

    fn set_document_metadata(
        &self,
        data_source_id: &str,
        document_key: &str,
        metadata: &Metadata,
    ) -> Result<usize, StoreError> {
        let chunks = self.scroll(Some(document_filter(data_source_id, document_key)), false)?;
        for chunk in &chunks {
            let updated = StoredChunk {
                metadata: metadata.clone(),
                ..chunk.clone()
            };
            let payload: HashMap<String, qdrant::Value> = Payload::try_from(payload_of(&updated))
                .map_err(storage)?
                .into();
            let request = SetPayloadPointsBuilder::new(&self.collection, payload)
                .points_selector(qdrant::PointsIdsList {
                    ids: vec![point_id(&chunk.id).into()],
                })
                .wait(true);
            // Overwrite, so user keys that are gone are gone.
            self.block(self.client.overwrite_payload(request))
                .map_err(storage)?;
        }
        Ok(chunks.len())
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&Filter>,
    ) -> Result<Vec<SearchHit>, StoreError> {
        check_dimension(self.dimension, query)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let pre = filter.and_then(filter::translate);
        if let Some(f) = filter {
            let mut keys = Vec::new();
            filter::keys(f, &mut keys);
            for key in keys {
                self.index(&key)?;
            }
        }
        let mut walk = k as u64;
        loop {
            let mut request = QueryPointsBuilder::new(&self.collection)
                .query(query.to_vec())
                .limit(walk)
                .with_payload(true)
                .params(SearchParamsBuilder::default().hnsw_ef((4 * walk).max(100)));
            if let Some(p) = pre.clone() {
                request = request.filter(p);
            }
            let response = self.block(self.client.query(request)).map_err(storage)?;
            let returned = response.result.len() as u64;
            let hits: Vec<SearchHit> = response
                .result
                .into_iter()
                .map(|p| SearchHit {
                    score: p.score,
                    chunk: chunk_from(p.payload, Vec::new()),
                })
                .filter(|h| filter.is_none_or(|f| f.matches(&h.chunk.full_metadata())))
                .take(k)
                .collect();
            if hits.len() >= k || returned < walk {
                return Ok(hits);
            }
            if walk >= MAX_WALK {
                // The pre-filter could not narrow enough (a part of the filter Qdrant cannot
                // express, such as startsWith): rank every point that passes, exactly.
                return self.exact_search(query, k, pre, filter);
            }
            walk = (walk * 4).min(MAX_WALK);
        }
    }

    fn chunks(&self, ids: &[String]) -> Result<Vec<StoredChunk>, StoreError> {
        let points: Vec<qdrant::PointId> = ids.iter().map(|id| point_id(id).into()).collect();
        let request = GetPointsBuilder::new(&self.collection, points)
            .with_payload(true)
            .with_vectors(true);
        let response = self
            .block(self.client.get_points(request))
            .map_err(storage)?;
        let mut by_id: HashMap<String, StoredChunk> = response
            .result
            .into_iter()
            .map(|p| chunk_from(p.payload, dense(p.vectors)))
            .map(|c| (c.id.clone(), c))
            .collect();
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    fn document_chunk_ids(
        &self,
        data_source_id: &str,
        document_key: &str,
    ) -> Result<Vec<String>, StoreError> {
        let mut ids: Vec<String> = self
            .scroll(Some(document_filter(data_source_id, document_key)), false)?
            .into_iter()
            .map(|c| c.id)
            .collect();
        ids.sort();
        Ok(ids)
    }

    fn chunk_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut ids: Vec<String> = self
            .scroll(None, false)?
            .into_iter()
            .map(|c| c.id)
            .collect();
        ids.sort();
        Ok(ids)
    }

    fn len(&self) -> Result<usize, StoreError> {
        let request = CountPointsBuilder::new(&self.collection).exact(true);
        let n = self.block(self.client.count(request)).map_err(storage)?;
        Ok(n.result.map_or(0, |r| r.count) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::point_id;

    #[test]
    fn chunk_ids_become_uuids_and_other_ids_stable_uuids() {
        assert_eq!(
            point_id("0123456789abcdef0123456789ABCDEF"),
            "01234567-89ab-cdef-0123-456789abcdef"
        );
        let a = point_id("doc-a");
        assert_eq!(a.len(), 36);
        assert_eq!(a, point_id("doc-a"));
        assert_ne!(a, point_id("doc-b"));
    }
}
