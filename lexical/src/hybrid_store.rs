//! A vector store with its lexical index kept in step: every upsert and delete goes to the
//! vectors first and then to the BM25 index, under the same chunk ids. Whoever writes
//! through it (a sync, a direct ingestion, a delete from the API) keeps both sides equal,
//! whichever store holds the vectors.

use std::sync::Arc;

use quarry_core::{Filter, Metadata, SearchHit, StoreError, StoredChunk, VectorStore};

use crate::{LexicalError, LexicalIndex};

pub struct HybridStore {
    vectors: Arc<dyn VectorStore>,
    lexical: Arc<LexicalIndex>,
}

impl HybridStore {
    pub fn new(vectors: Arc<dyn VectorStore>, lexical: Arc<LexicalIndex>) -> Self {
        Self { vectors, lexical }
    }

    pub fn lexical(&self) -> &Arc<LexicalIndex> {
        &self.lexical
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
        self.lexical.upsert(chunks).map_err(lexical_failed)
    }

    fn delete_document(
        &self,
        data_source_id: &str,
        document_key: &str,
    ) -> Result<usize, StoreError> {
        let removed = self.vectors.delete_document(data_source_id, document_key)?;
        self.lexical
            .delete_document(data_source_id, document_key)
            .map_err(lexical_failed)?;
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
        self.lexical
            .replace_document(data_source_id, document_key, chunks)
            .map_err(lexical_failed)
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
