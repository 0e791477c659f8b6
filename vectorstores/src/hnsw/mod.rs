//! The default store: chunks and vectors in SQLite (the durable copy), an HNSW graph in
//! memory, saved beside it (`graph.snapshot`) when a batch of writes ends and when the store
//! closes. Every write is also noted in the table's change log, in the same transaction, so
//! a graph saved before a crash is brought up to date by replaying the documents changed
//! since; a graph file that cannot be trusted is rebuilt from the table.
//!
//! Deletes and replacements leave tombstones in the graph that searches skip; the graph is
//! rebuilt when they pass a quarter of it. A filtered search first finds the chunks the
//! filter passes; when they are few it ranks them exactly rather than walking the graph,
//! which keeps very selective filters correct.

mod distance;
mod entries;
mod full_vectors;
mod graph;
mod snapshot;
mod sqlite;
mod vectors;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use quarry_core::{Filter, Metadata, SearchHit, StoreError, StoredChunk, VectorStore};

pub use self::distance::dot;
use self::entries::{Entry, Interner};
use self::full_vectors::FullVectors;
use self::graph::Graph;
use self::sqlite::ChunkTable;
pub use self::vectors::Quantization;
use self::vectors::Vectors;
use crate::metadata_document::check_dimension;

const NEVER_SAVED: i64 = -1;

/// Where the graph came from when the store opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// Read from its file, with this many documents changed since replayed from the table.
    Saved { replayed_documents: usize },
    /// Built from the table, for this reason (the file was missing, stale or corrupt).
    Rebuilt { why: String },
}

/// Tuning of the HNSW store.
#[derive(Debug, Clone)]
pub struct HnswParams {
    /// Filtered searches whose filter passes at most this many chunks rank them exactly.
    pub exact_search_below: usize,
    pub max_connections: usize,
    pub ef_construction: usize,
    /// Lower bound of the candidate list during search (it is at least 4·k).
    pub ef_search: usize,
    /// How the graph's vectors are held in memory; quantized ones are searched, then every
    /// candidate that may belong in the top k (within the rounding error's reach of the
    /// k-th best) is ranked again by its full-precision vector.
    pub quantization: Quantization,
}

/// A search's candidate: its slot, chunk id and similarity.
type Ranked = (u32, String, f32);

/// The candidates (best first, quantized scores) that may belong in the top `k`: the first
/// `k`, and every later one within `window` of the k-th.
fn within_reach(found: &mut Vec<(u32, f32)>, k: usize, window: f32) {
    if found.len() > k {
        let cut = found[k - 1].1 - window;
        let keep = k + found[k..].iter().take_while(|(_, s)| *s >= cut).count();
        found.truncate(keep);
    }
}

impl Default for HnswParams {
    fn default() -> Self {
        Self {
            exact_search_below: 20_000,
            max_connections: 16,
            ef_construction: 200,
            ef_search: 100,
            quantization: Quantization::None,
        }
    }
}

struct Index {
    graph: Graph,
    /// Each slot's vector (the graph's node ids are slots).
    vectors: Vectors,
    /// Slot → entry; `None` once deleted or replaced.
    slots: Vec<Option<Entry>>,
    by_chunk: HashMap<Arc<str>, u32>,
    live: usize,
    interner: Interner,
    /// Quantized graphs: each slot's full-precision vector, for rescoring.
    full: Option<Arc<FullVectors>>,
}

pub struct HnswStore {
    dir: PathBuf,
    table: Mutex<ChunkTable>,
    index: RwLock<Index>,
    /// The index's rescoring file (the same one whatever the index becomes), read without
    /// its lock.
    full: Option<Arc<FullVectors>>,
    dimension: usize,
    params: HnswParams,
    /// The change (in the table's change log) the saved graph includes.
    saved_through: Mutex<i64>,
    opened: Opened,
}

impl HnswStore {
    /// Opens (or creates) the store in `dir`, for vectors of `dimension`. The graph is read
    /// from its saved file and brought up to date from the table's change log; a file that
    /// is missing, from another build or settings, stale or corrupt is rebuilt from the table.
    pub fn open(dir: &Path, dimension: usize, params: HnswParams) -> Result<Self, StoreError> {
        let table = ChunkTable::open(&dir.join("vectors.sqlite"), dimension)?;
        let full = match params.quantization {
            Quantization::None => None,
            Quantization::Int8 => Some(Arc::new(
                FullVectors::open(&dir.join(full_vectors::FILE), dimension)
                    .map_err(|e| StoreError::Storage(format!("{}: {e}", full_vectors::FILE)))?,
            )),
        };
        let path = dir.join(snapshot::FILE);
        let (index, saved_through, opened) = match snapshot::load(&path, dimension, &params)
            .and_then(|(mut index, seq, current)| {
                index.full = full.clone();
                let (index, n) = replay(&table, index, seq)?;
                // (a file in an older format is written again in this one, below)
                Ok((index, if current { seq } else { NEVER_SAVED }, n))
            }) {
            Ok((index, seq, replayed_documents)) => {
                (index, seq, Opened::Saved { replayed_documents })
            }
            Err(why) => {
                if path.exists() {
                    tracing::warn!(file = %path.display(), why, "rebuilding the HNSW graph from the chunk table");
                }
                let started = std::time::Instant::now();
                let rows = table.load_all()?;
                let mut index = Index::new(&params, dimension, rows.len());
                index.full = full.clone();
                index.add(rows.into_iter().map(Entry::split).collect(), true);
                if index.live > 0 {
                    tracing::info!(
                        chunks = index.live,
                        seconds = started.elapsed().as_secs_f64(),
                        "HNSW graph built"
                    );
                }
                // Never saved: the first save writes it whatever changed.
                (index, NEVER_SAVED, Opened::Rebuilt { why })
            }
        };
        if let Some(full) = &index.full {
            fill_rescoring_file(full, &index, &table)?;
        }
        let store = Self {
            dir: dir.to_path_buf(),
            table: Mutex::new(table),
            index: RwLock::new(index),
            full,
            dimension,
            params,
            saved_through: Mutex::new(saved_through),
            opened,
        };
        // Rebuilt, or read from an older format: saved now, so the next start reads it (a
        // server stopped before its next sync would otherwise rebuild it again; a failed
        // save leaves the table, or the old file, to serve)
        if saved_through == NEVER_SAVED
            && store.index_read().live > 0
            && let Err(e) = store.save()
        {
            tracing::warn!(error = %e, "the HNSW graph was not saved after it was opened");
        }
        Ok(store)
    }

    /// The `k` chunk ids the graph finds for `query` with `ef` candidates, unfiltered: what
    /// a recall measurement compares with [`Self::exact_top`].
    pub fn graph_top(&self, query: &[f32], k: usize, ef: usize) -> Result<Vec<String>, StoreError> {
        let query = distance::normalized(query);
        let (ranked, rescore) = {
            let index = self.index_read();
            // (quantized: the whole candidate list, of which those within reach are rescored)
            let wanted = if index.quantized() { ef.max(k) } else { k };
            let found = index.unfiltered(&query, wanted, ef.max(wanted));
            index.candidates(found, k, &query)
        };
        let ranked = self.ranked(&query, ranked, rescore, k)?;
        Ok(ranked.into_iter().map(|(id, _)| id).collect())
    }

    /// A search's chunk ids and scores: rescored when the candidates are quantized ones.
    fn ranked(
        &self,
        query: &[f32],
        ranked: Vec<Ranked>,
        rescore: bool,
        k: usize,
    ) -> Result<Vec<(String, f32)>, StoreError> {
        if rescore {
            self.rescored(query, ranked, k)
        } else {
            Ok(ranked
                .into_iter()
                .map(|(_, id, score)| (id, score))
                .collect())
        }
    }

    /// Candidates ranked again by their full-precision vectors, the best `k`: read by slot
    /// from the rescoring file, or from the table for those it does not hold (then written
    /// to it, while the slot is still that chunk's).
    fn rescored(
        &self,
        query: &[f32],
        ranked: Vec<Ranked>,
        k: usize,
    ) -> Result<Vec<(String, f32)>, StoreError> {
        let full = &self.full;
        let mut out = Vec::with_capacity(ranked.len());
        let mut missing = Vec::new();
        let (mut record, mut vector) = (Vec::new(), Vec::new());
        for (slot, id, _) in ranked {
            match full {
                Some(f) if f.read_into(slot, &id, &mut record, &mut vector) => {
                    out.push((id, distance::dot(query, &vector)));
                }
                _ => missing.push((slot, id)),
            }
        }
        if !missing.is_empty() {
            let ids: Vec<String> = missing.iter().map(|(_, id)| id.clone()).collect();
            let vectors = self.table().load_vectors(&ids)?;
            let index = self.index_read();
            for (slot, id) in missing {
                let Some(v) = vectors.get(&id) else { continue };
                out.push((id.clone(), distance::dot(query, v)));
                let current = index.slots[slot as usize]
                    .as_ref()
                    .is_some_and(|e| *e.chunk_id == *id);
                if let Some(full) = full.as_ref().filter(|_| current) {
                    // (a cache: a failed write only means the table is read next time)
                    let _ = full.write(slot, &id, v);
                }
            }
        }
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out.truncate(k);
        Ok(out)
    }

    /// Every chunk's id and full-precision vector (for measuring recall against exact search).
    pub fn full_precision_vectors(&self) -> Result<Vec<(String, Vec<f32>)>, StoreError> {
        self.table().all_vectors()
    }

    /// Bytes the graph's vectors take in memory.
    pub fn vector_bytes(&self) -> usize {
        self.index_read().vectors.bytes()
    }

    /// The `k` chunk ids nearest `query` by exact cosine over every chunk.
    pub fn exact_top(&self, query: &[f32], k: usize) -> Vec<String> {
        let query = distance::normalized(query);
        let index = self.index_read();
        let all: Vec<u32> = (0..index.slots.len() as u32).collect();
        exact(&index, &all, &query, k)
            .into_iter()
            .filter_map(|(slot, _)| Some(index.slots[slot as usize].as_ref()?.chunk_id.to_string()))
            .collect()
    }

    /// Whether the graph was read from its file or rebuilt, and why.
    pub fn opened(&self) -> &Opened {
        &self.opened
    }

    /// Saves the graph if anything changed since it was last saved. Writes are held while
    /// it is written (searches are not), so the file and the change log agree.
    pub fn save(&self) -> Result<(), StoreError> {
        let mut table = self.table();
        let last = table.last_change()?;
        let mut saved = self.saved_through.lock().unwrap_or_else(|p| p.into_inner());
        // Change numbers start at 1, so a store never saved (NEVER_SAVED) always is.
        if last <= *saved {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let index = self.index_read();
        snapshot::save(&self.dir.join(snapshot::FILE), &index, last, &self.params)
            .map_err(|e| StoreError::Storage(format!("saving the HNSW graph: {e}")))?;
        drop(index);
        table.forget_changes_through(last)?;
        *saved = last;
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            "HNSW graph saved"
        );
        Ok(())
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

impl Drop for HnswStore {
    fn drop(&mut self) {
        if let Err(e) = self.save() {
            tracing::warn!(error = %e, "the HNSW graph was not saved; the next start replays the change log");
        }
    }
}

/// Writes every chunk's full-precision vector to a rescoring file that has none (the graph
/// was quantized by a build without the file, or the file was deleted); once, at open.
fn fill_rescoring_file(
    full: &FullVectors,
    index: &Index,
    table: &ChunkTable,
) -> Result<(), StoreError> {
    let failed = |e: std::io::Error| StoreError::Storage(format!("{}: {e}", full_vectors::FILE));
    if index.live == 0 || !full.is_empty().map_err(failed)? {
        return Ok(());
    }
    let started = std::time::Instant::now();
    table.each_vector(|id, vector| match index.by_chunk.get(id) {
        Some(&slot) => full.write(slot, id, vector).map_err(failed),
        None => Ok(()),
    })?;
    tracing::info!(
        chunks = index.live,
        seconds = started.elapsed().as_secs_f64(),
        "HNSW: full-precision vectors written for rescoring"
    );
    Ok(())
}

/// Brings a saved graph up to date: every document changed since `seq` is taken out and
/// read again from the table. A table that disagrees with the result is not trusted.
fn replay(table: &ChunkTable, mut index: Index, seq: i64) -> Result<(Index, usize), String> {
    let last = table.last_change().map_err(|e| e.to_string())?;
    if last < seq {
        return Err(format!(
            "the graph was saved at change {seq}, but the table's log ends at {last}"
        ));
    }
    let forgotten = table
        .changes_forgotten_through()
        .map_err(|e| e.to_string())?;
    if seq < forgotten {
        return Err(format!(
            "stale: saved at change {seq}, but the log only keeps changes after {forgotten}"
        ));
    }
    let changed = table
        .changed_documents_since(seq)
        .map_err(|e| e.to_string())?;
    if !changed.is_empty() {
        let lookup: HashSet<(&str, &str)> = changed
            .iter()
            .map(|(ds, doc)| (ds.as_str(), doc.as_str()))
            .collect();
        let stale: Vec<u32> = index
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                e.as_ref()
                    .filter(|e| lookup.contains(&(e.data_source_id(), e.document_key())))
                    .map(|_| i as u32)
            })
            .collect();
        for slot in stale {
            index.remove_slot(slot);
        }
        let rows = table.load_documents(&changed).map_err(|e| e.to_string())?;
        index.add(rows.into_iter().map(Entry::split).collect(), true);
        tracing::info!(
            documents = changed.len(),
            "HNSW graph: replayed changes since it was saved"
        );
    }
    let rows = table.len().map_err(|e| e.to_string())?;
    if rows != index.live {
        return Err(format!(
            "the graph holds {} chunks, the table {rows}",
            index.live
        ));
    }
    Ok((index, changed.len()))
}

impl Index {
    fn new(params: &HnswParams, dimension: usize, capacity: usize) -> Self {
        let mut vectors = Vectors::new(dimension, params.quantization);
        vectors.reserve(capacity);
        Self {
            graph: Graph::new(params.max_connections, params.ef_construction),
            vectors,
            slots: Vec::with_capacity(capacity),
            by_chunk: HashMap::with_capacity(capacity),
            live: 0,
            interner: Interner::default(),
            full: None,
        }
    }

    /// Adds chunks in new slots; `full_precision`: their vectors are the table's (not decoded
    /// from quantized ones), so they are written to the rescoring file.
    fn add(&mut self, entries: Vec<(Entry, Vec<f32>)>, full_precision: bool) {
        for (entry, _) in &entries {
            if let Some(old) = self.by_chunk.get(&entry.chunk_id).copied() {
                self.remove_slot(old);
            }
        }
        let mut unwritten = None;
        for (entry, vector) in entries {
            let entry = self.interner.share(entry);
            let slot = self.vectors.push(&vector);
            if let Some(full) = self.full.as_ref().filter(|_| full_precision)
                && let Err(e) = full.write(slot, &entry.chunk_id, &vector)
            {
                unwritten = Some(e);
            }
            self.graph.insert(&self.vectors);
            self.by_chunk.insert(entry.chunk_id.clone(), slot);
            self.slots.push(Some(entry));
            self.live += 1;
        }
        if let Some(e) = unwritten {
            tracing::warn!(error = %e, "full-precision vectors not written (rescoring reads the table)");
        }
    }

    fn remove_slot(&mut self, slot: u32) {
        if let Some(entry) = self.slots[slot as usize].take() {
            self.by_chunk.remove(&entry.chunk_id);
            self.live -= 1;
            if let Some(Err(e)) = self.full.as_ref().map(|f| f.wipe(slot)) {
                tracing::warn!(error = %e, slot, "a full-precision vector not wiped");
            }
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
        let mut old = std::mem::replace(self, Index::new(params, self.vectors.dim, self.live));
        // (quantized vectors keep their scales, so their codes come back exactly)
        self.vectors.keep_scales_of(&old.vectors);
        self.full = old.full.take();
        let entries: Vec<(Entry, Vec<f32>)> = old
            .slots
            .into_iter()
            .enumerate()
            .filter_map(|(i, e)| e.map(|e| (e, old.vectors.decoded(i as u32))))
            .collect();
        // Full-precision records move down with their chunks (in slot order: a record is
        // read before anything is written over it).
        if let Some(full) = &self.full {
            for (to, (entry, _)) in entries.iter().enumerate() {
                let from = old.by_chunk[&entry.chunk_id];
                if let Err(e) = full.moved(from, to as u32, &entry.chunk_id) {
                    tracing::warn!(error = %e, "full-precision vectors not moved (rescoring reads the table)");
                    break;
                }
            }
        }
        self.add(entries, false);
    }

    /// Whether the graph's vectors are quantized (once the scales are learnt; f32 until then).
    fn quantized(&self) -> bool {
        self.vectors.quantization() != Quantization::None
    }

    /// Every live node's `wanted` nearest (tombstones skipped when there are any).
    fn unfiltered(&self, query: &[f32], wanted: usize, ef: usize) -> Vec<(u32, f32)> {
        let alive = |n: u32| self.slots[n as usize].is_some();
        let allowed = (self.tombstones() > 0).then_some(&alive as &dyn Fn(u32) -> bool);
        self.graph.search(&self.vectors, query, wanted, ef, allowed)
    }

    /// A search's result as chunk ids (read under the search's lock, so a concurrent delete
    /// cannot pair a score with the wrong chunk), and whether they are to be rescored:
    /// quantized, every candidate within the rounding error's reach of the k-th; else the
    /// best `k`.
    fn candidates(
        &self,
        mut found: Vec<(u32, f32)>,
        k: usize,
        query: &[f32],
    ) -> (Vec<Ranked>, bool) {
        let rescore = self.quantized();
        if rescore {
            within_reach(&mut found, k, self.vectors.error_window(query));
        } else {
            found.truncate(k);
        }
        let ranked = found
            .into_iter()
            .filter_map(|(slot, score)| {
                let id = self.slots[slot as usize].as_ref()?.chunk_id.to_string();
                Some((slot, id, score))
            })
            .collect();
        (ranked, rescore)
    }

    /// The slots of these chunks (a document's, as the table lists them: found by its index,
    /// not by a walk over every slot).
    fn slots_of(&self, chunk_ids: &[String]) -> Vec<u32> {
        chunk_ids
            .iter()
            .filter_map(|id| self.by_chunk.get(id.as_str()).copied())
            .collect()
    }
}

impl VectorStore for HnswStore {
    fn dimension(&self) -> usize {
        self.dimension
    }

    /// A batch of writes (a sync) is over: the graph is saved if it changed.
    fn end_batch(&self) -> Result<(), StoreError> {
        self.save()
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
        // The table stays locked until the graph has the change, so a save sees both or neither.
        let mut table = self.table();
        table.upsert(&chunks)?;
        let entries = chunks.into_iter().map(Entry::split).collect();
        let mut index = self.index_write();
        index.add(entries, true);
        index.compact_if_needed(&self.params);
        drop(table);
        Ok(())
    }

    fn delete_document(
        &self,
        data_source_id: &str,
        document_key: &str,
    ) -> Result<usize, StoreError> {
        let mut table = self.table();
        let ids = table.document_chunk_ids(data_source_id, document_key)?;
        let removed = table.delete_document(data_source_id, document_key)?;
        let mut index = self.index_write();
        for slot in index.slots_of(&ids) {
            index.remove_slot(slot);
        }
        index.compact_if_needed(&self.params);
        drop(table);
        Ok(removed)
    }

    fn set_document_metadata(
        &self,
        data_source_id: &str,
        document_key: &str,
        metadata: &Metadata,
    ) -> Result<usize, StoreError> {
        let mut table = self.table();
        let updated = table.set_document_metadata(data_source_id, document_key, metadata)?;
        let ids = table.document_chunk_ids(data_source_id, document_key)?;
        let mut index = self.index_write();
        let metadata = Arc::new(metadata.clone());
        for slot in index.slots_of(&ids) {
            if let Some(entry) = index.slots[slot as usize].as_mut() {
                entry.metadata = metadata.clone();
            }
        }
        drop(table);
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
        let (ranked, rescore) = {
            let index = self.index_read();
            if index.live == 0 || k == 0 {
                return Ok(Vec::new());
            }
            // Quantized: more candidates, ranked again below at full precision.
            let ef = self.params.ef_search.max(4 * k);
            let wanted = if index.quantized() { ef } else { k };
            let found = match filter {
                Some(f) => {
                    let passing: Vec<u32> = index
                        .slots
                        .iter()
                        .enumerate()
                        .filter_map(|(i, e)| {
                            e.as_ref().filter(|e| f.matches_in(*e)).map(|_| i as u32)
                        })
                        .collect();
                    if passing.len() <= self.params.exact_search_below {
                        exact(&index, &passing, &query, wanted)
                    } else {
                        let allowed = |n: u32| passing.binary_search(&n).is_ok();
                        index
                            .graph
                            .search(&index.vectors, &query, wanted, ef, Some(&allowed))
                    }
                }
                None => index.unfiltered(&query, wanted, ef),
            };
            index.candidates(found, k, &query)
        };
        let ranked = self.ranked(&query, ranked, rescore, k)?;
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
fn exact(index: &Index, slots: &[u32], query: &[f32], k: usize) -> Vec<(u32, f32)> {
    let prepared = index.vectors.query(query);
    let mut scored: Vec<(u32, f32)> = slots
        .iter()
        .filter(|&&s| index.slots[s as usize].is_some())
        .map(|&s| (s, index.vectors.sim(&prepared, s)))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored.truncate(k);
    scored
}
