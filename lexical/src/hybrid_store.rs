//! A vector store with its lexical index kept in step: every upsert and delete goes to the
//! vectors first and then to the BM25 index, under the same chunk ids. Whoever writes
//! through it (a sync, a direct ingestion, a delete from the API) keeps both sides equal,
//! whichever store holds the vectors.
//!
//! During a batch (a sync job: [`VectorStore::begin_batch`]) the lexical changes are held
//! back and applied together, one commit for up to 64 changes or 2 seconds of them, instead
//! of a commit per document (~40 ms each). While any are held back a marker file says so,
//! and a process that dies before applying them leaves the index to be rebuilt from the
//! store when it is next opened ([`LexicalIndex::rebuild_if_stale`]).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use quarry_core::{Filter, Metadata, SearchHit, StoreError, StoredChunk, VectorStore};

use crate::index::LexicalOp;
use crate::{LexicalError, LexicalIndex};

/// Changes held back at most before they are applied, by count and by age.
const MAX_HELD: usize = 64;
const MAX_AGE: Duration = Duration::from_secs(2);

pub struct HybridStore {
    vectors: Arc<dyn VectorStore>,
    lexical: Arc<LexicalIndex>,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    /// Batches open (several syncs may write one knowledge base at once).
    batches: usize,
    ops: Vec<LexicalOp>,
    since: Option<Instant>,
}

impl HybridStore {
    pub fn new(vectors: Arc<dyn VectorStore>, lexical: Arc<LexicalIndex>) -> Self {
        Self {
            vectors,
            lexical,
            held: Mutex::default(),
        }
    }

    pub fn lexical(&self) -> &Arc<LexicalIndex> {
        &self.lexical
    }

    fn held(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A change to the lexical side: applied now, or held back during a batch.
    fn lexical_change(&self, op: LexicalOp) -> Result<(), StoreError> {
        let mut held = self.held();
        if held.batches == 0 {
            drop(held);
            return self.lexical.apply(&[op]).map_err(lexical_failed);
        }
        if held.ops.is_empty() {
            self.lexical.mark_pending().map_err(lexical_failed)?;
            held.since = Some(Instant::now());
        }
        held.ops.push(op);
        if held.ops.len() >= MAX_HELD || held.since.is_some_and(|s| s.elapsed() >= MAX_AGE) {
            self.apply_held(&mut held)?;
        }
        Ok(())
    }

    fn apply_held(&self, held: &mut Held) -> Result<(), StoreError> {
        if held.ops.is_empty() {
            return Ok(());
        }
        self.lexical.apply(&held.ops).map_err(lexical_failed)?;
        held.ops.clear();
        held.since = None;
        self.lexical.clear_pending().map_err(lexical_failed)
    }
}

impl Drop for HybridStore {
    fn drop(&mut self) {
        let mut held = self.held();
        if let Err(e) = self.apply_held(&mut held) {
            tracing::warn!(error = %e, "could not apply held-back lexical changes; the index will be rebuilt when next opened");
        }
    }
}

fn lexical_failed(e: LexicalError) -> StoreError {
    StoreError::Storage(e.to_string())
}

impl VectorStore for HybridStore {
    fn dimension(&self) -> usize {
        self.vectors.dimension()
    }

    fn upsert(&self, chunks: &[StoredChunk]) -> Result<(), StoreError> {
        self.vectors.upsert(chunks)?;
        if chunks.is_empty() {
            return Ok(());
        }
        self.lexical_change(LexicalOp::Upsert(chunks.to_vec()))
    }

    fn begin_batch(&self) {
        self.held().batches += 1;
    }

    fn end_batch(&self) -> Result<(), StoreError> {
        let last = {
            let mut held = self.held();
            held.batches = held.batches.saturating_sub(1);
            self.apply_held(&mut held)?;
            held.batches == 0
        };
        // The vector store's own end of batch (the HNSW store saves its graph) once no
        // batch is open.
        if last {
            self.vectors.end_batch()?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        let mut held = self.held();
        self.apply_held(&mut held)
    }

    fn delete_document(
        &self,
        data_source_id: &str,
        document_key: &str,
    ) -> Result<usize, StoreError> {
        let removed = self.vectors.delete_document(data_source_id, document_key)?;
        self.lexical_change(LexicalOp::Delete {
            data_source_id: data_source_id.to_owned(),
            document_key: document_key.to_owned(),
        })?;
        Ok(removed)
    }

    fn replace_document(
        &self,
        data_source_id: &str,
        document_key: &str,
        chunks: &[StoredChunk],
    ) -> Result<(), StoreError> {
        self.vectors
            .replace_document(data_source_id, document_key, chunks)?;
        self.lexical_change(LexicalOp::Replace {
            data_source_id: data_source_id.to_owned(),
            document_key: document_key.to_owned(),
            chunks: chunks.to_vec(),
        })
    }

    /// Metadata lives in the vector store only; the lexical side holds ids and text.
    fn set_document_metadata(
        &self,
        data_source_id: &str,
        document_key: &str,
        metadata: &Metadata,
    ) -> Result<usize, StoreError> {
        self.vectors
            .set_document_metadata(data_source_id, document_key, metadata)
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&Filter>,
    ) -> Result<Vec<SearchHit>, StoreError> {
        self.vectors.search(query, k, filter)
    }

    fn chunks(&self, ids: &[String]) -> Result<Vec<StoredChunk>, StoreError> {
        self.vectors.chunks(ids)
    }

    fn document_chunk_ids(
        &self,
        data_source_id: &str,
        document_key: &str,
    ) -> Result<Vec<String>, StoreError> {
        self.vectors
            .document_chunk_ids(data_source_id, document_key)
    }

    fn chunk_ids(&self) -> Result<Vec<String>, StoreError> {
        self.vectors.chunk_ids()
    }

    fn len(&self) -> Result<usize, StoreError> {
        self.vectors.len()
    }
}
