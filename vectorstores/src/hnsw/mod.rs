//! The default store: chunks and vectors in SQLite (the durable copy), an HNSW graph
//! (hnsw_rs) in memory, rebuilt from SQLite when the store opens.
//!
//! Deletes and replacements leave tombstones in the graph that searches skip; the graph is
//! rebuilt when they pass a quarter of it. A filtered search first finds the chunks the
//! filter passes; when they are few it ranks them exactly rather than walking the graph,
//! which keeps very selective filters correct.

mod distance;
mod graph;
mod sqlite;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, RwLock};

use quarry_core::{Filter, Metadata, SearchHit, StoreError, StoredChunk, VectorStore};

use self::graph::Graph;
use self::sqlite::ChunkTable;
use crate::metadata_document::check_dimension;

/// Tuning of the HNSW store.
#[derive(Debug, Clone)]
pub struct HnswParams {
    /// Filtered searches whose filter passes at most this many chunks rank them exactly.
    pub exact_search_below: usize,
    pub max_connections: usize,
    pub ef_construction: usize,
    /// Lower bound of the candidate list during search (it is at least 4·k).
    pub ef_search: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self {
            exact_search_below: 20_000,
            max_connections: 16,
            ef_construction: 200,
            ef_search: 100,
        }
    }
}

/// What the graph needs of each live chunk; text and spans stay in SQLite.
struct Entry {
    chunk_id: String,
    data_source_id: String,
    document_key: String,
    /// User metadata with the system keys, as filters see it.
    metadata: Metadata,
    vector: Vec<f32>,
}

struct Index {
    graph: Graph,
    /// Slot (the graph's id) → entry; `None` once deleted or replaced.
    slots: Vec<Option<Entry>>,
    by_chunk: HashMap<String, usize>,
    live: usize,
}

pub struct HnswStore {
    table: Mutex<ChunkTable>,
    index: RwLock<Index>,
    dimension: usize,
    params: HnswParams,
}

impl HnswStore {
    /// Opens (or creates) the store in `dir`, for vectors of `dimension`.
    pub fn open(dir: &Path, dimension: usize, params: HnswParams) -> Result<Self, StoreError> {
        let table = ChunkTable::open(&dir.join("vectors.sqlite"), dimension)?;
        let rows = table.load_all()?;
        let mut index = Index {
            graph: Graph::new(&params, rows.len()),
            slots: Vec::with_capacity(rows.len()),
            by_chunk: HashMap::with_capacity(rows.len()),
            live: 0,
        };
        index.add(rows.into_iter().map(Entry::from).collect());
        Ok(Self {
            table: Mutex::new(table),
            index: RwLock::new(index),
            dimension,
            params,
        })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, ChunkTable> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn index_read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    fn index_write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl Index {
    fn add(&mut self, entries: Vec<Entry>) {
        let first = self.slots.len();
        for entry in &entries {
            if let Some(old) = self.by_chunk.get(&entry.chunk_id).copied() {
                self.remove_slot(old);
            }
        }
        for (i, entry) in entries.into_iter().enumerate() {
            self.by_chunk.insert(entry.chunk_id.clone(), first + i);
            self.slots.push(Some(entry));
            self.live += 1;
        }
        let new: Vec<(&[f32], usize)> = self.slots[first..]
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|e| (e.vector.as_slice(), first + i)))
            .collect();
        self.graph.insert(&new);
    }

    fn remove_slot(&mut self, slot: usize) {
        if let Some(entry) = self.slots[slot].take() {
            self.by_chunk.remove(&entry.chunk_id);
            self.live -= 1;
        }
    }

    fn tombstones(&self) -> usize {
        self.slots.len() - self.live
    }

    /// Rebuilds the graph without tombstones once they are a quarter of it.
    fn compact_if_needed(&mut self, params: &HnswParams) {
        if self.tombstones() < 1000 || self.tombstones() * 4 < self.slots.len() {
            return;
        }
        let entries: Vec<Entry> = std::mem::take(&mut self.slots)
            .into_iter()
            .flatten()
            .collect();
        *self = Index {
            graph: Graph::new(params, entries.len()),
            slots: Vec::with_capacity(entries.len()),
            by_chunk: HashMap::with_capacity(entries.len()),
            live: 0,
        };
        self.add(entries);
    }

    fn document_slots(&self, data_source_id: &str, document_key: &str) -> Vec<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                e.as_ref()
                    .filter(|e| {
                        e.data_source_id == data_source_id && e.document_key == document_key
                    })
                    .map(|_| i)
            })
            .collect()
    }
}

impl VectorStore for HnswStore {
    fn dimension(&self) -> usize {
        self.dimension
    }

    fn upsert(&self, chunks: &[StoredChunk]) -> Result<(), StoreError> {
        for c in chunks {
            check_dimension(self.dimension, &c.vector)?;
        }
        let chunks: Vec<StoredChunk> = chunks
            .iter()
            .map(|c| StoredChunk {
                vector: distance::normalized(&c.vector),
                ..c.clone()
            })
            .collect();
        self.table().upsert(&chunks)?;
        let entries = chunks.into_iter().map(Entry::from).collect();
        let mut index = self.index_write();
        index.add(entries);
        index.compact_if_needed(&self.params);
        Ok(())
    }

    fn delete_document(
        &self,
        data_source_id: &str,
        document_key: &str,
    ) -> Result<usize, StoreError> {
        let removed = self.table().delete_document(data_source_id, document_key)?;
        let mut index = self.index_write();
        for slot in index.document_slots(data_source_id, document_key) {
            index.remove_slot(slot);
        }
        index.compact_if_needed(&self.params);
        Ok(removed)
    }

    fn set_document_metadata(
        &self,
        data_source_id: &str,
        document_key: &str,
        metadata: &Metadata,
    ) -> Result<usize, StoreError> {
        let updated = self
            .table()
            .set_document_metadata(data_source_id, document_key, metadata)?;
        let mut index = self.index_write();
        for slot in index.document_slots(data_source_id, document_key) {
            if let Some(entry) = index.slots[slot].as_mut() {
                let system: Vec<_> = entry
                    .metadata
                    .iter()
                    .filter(|(k, _)| k.starts_with("x-amz-bedrock-kb-"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                entry.metadata = metadata.clone();
                entry.metadata.extend(system);
            }
        }
        Ok(updated)
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&Filter>,
    ) -> Result<Vec<SearchHit>, StoreError> {
        check_dimension(self.dimension, query)?;
        let query = distance::normalized(query);
        // Chunk ids and scores, read under one lock so a concurrent delete cannot pair a
        // score with the wrong chunk.
        let ranked: Vec<(String, f32)> = {
            let index = self.index_read();
            if index.live == 0 || k == 0 {
                return Ok(Vec::new());
            }
            let ef = self.params.ef_search.max(4 * k);
            match filter {
                Some(f) => {
                    let passing: Vec<usize> = index
                        .slots
                        .iter()
                        .enumerate()
                        .filter_map(|(i, e)| {
                            e.as_ref().filter(|e| f.matches(&e.metadata)).map(|_| i)
                        })
                        .collect();
                    if passing.len() <= self.params.exact_search_below {
                        exact(&index, &passing, &query, k)
                    } else {
                        index.graph.search(&query, k, ef, Some(&passing))
                    }
                }
                None if index.tombstones() == 0 => index.graph.search(&query, k, ef, None),
                None => {
                    let alive: Vec<usize> = (0..index.slots.len())
                        .filter(|&i| index.slots[i].is_some())
                        .collect();
                    index.graph.search(&query, k, ef, Some(&alive))
                }
            }
            .into_iter()
            .filter_map(|(slot, _)| {
                let entry = index.slots[slot].as_ref()?;
                Some((entry.chunk_id.clone(), distance::dot(&query, &entry.vector)))
            })
            .collect()
        };
        let ids: Vec<String> = ranked.iter().map(|(id, _)| id.clone()).collect();
        let mut rows = self.table().load_chunks(&ids)?;
        let mut hits: Vec<SearchHit> = ranked
            .iter()
            .filter_map(|(id, score)| {
                rows.remove(id).map(|chunk| SearchHit {
                    chunk,
                    score: *score,
                })
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(hits)
    }

    fn chunks(&self, ids: &[String]) -> Result<Vec<StoredChunk>, StoreError> {
        let mut rows = self.table().load_chunks(ids)?;
        Ok(ids.iter().filter_map(|id| rows.remove(id)).collect())
    }

    fn document_chunk_ids(
        &self,
        data_source_id: &str,
        document_key: &str,
    ) -> Result<Vec<String>, StoreError> {
        self.table()
            .document_chunk_ids(data_source_id, document_key)
    }

    fn chunk_ids(&self) -> Result<Vec<String>, StoreError> {
        self.table().chunk_ids()
    }

    fn len(&self) -> Result<usize, StoreError> {
        Ok(self.index_read().live)
    }
}

/// The `k` best of `slots` by exact cosine.
fn exact(index: &Index, slots: &[usize], query: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut scored: Vec<(usize, f32)> = slots
        .iter()
        .filter_map(|&s| {
            index.slots[s]
                .as_ref()
                .map(|e| (s, distance::dot(query, &e.vector)))
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored.truncate(k);
    scored
}

impl From<StoredChunk> for Entry {
    fn from(chunk: StoredChunk) -> Self {
        Entry {
            metadata: chunk.full_metadata(),
            chunk_id: chunk.id,
            data_source_id: chunk.data_source_id,
            document_key: chunk.document_key,
            vector: chunk.vector,
        }
    }
}
