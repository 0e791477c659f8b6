//! The traits each stage of the pipeline implements. All are synchronous: CPU-bound engines
//! have no async runtime; the server hands them work on threads of their own.

use crate::chunk::{Chunk, StoredChunk};
use crate::document::{ParseOptions, ParsedDocument};
use crate::filter::Filter;
use crate::metadata::Metadata;

/// Why a document could not be parsed. Each is that document's failure, never the job's.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error("unsupported file type {0:?}")]
    Unsupported(String),
    #[error("file is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: u64, limit: u64 },
    #[error("malformed {format}: {reason}")]
    Malformed {
        format: &'static str,
        reason: String,
    },
    #[error("document has no text to index")]
    Empty,
}

/// Turns the bytes of one document into text.
pub trait Parser: Send + Sync {
    /// Short name of the format, e.g. `"html"`.
    fn format(&self) -> &'static str;
    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError>;
    /// Parses with a data source's options (formats that OCR use them).
    fn parse_with(
        &self,
        bytes: &[u8],
        _options: &ParseOptions,
    ) -> Result<ParsedDocument, ParseError> {
        self.parse(bytes)
    }
}

/// Counts tokens the way the embedding model will see them.
pub trait TokenCounter: Send + Sync {
    /// Tokens in `text`, without the model's special tokens.
    fn count_tokens(&self, text: &str) -> usize;
    /// The most content tokens one input can hold (the model's limit less its special tokens).
    fn max_content_tokens(&self) -> usize;
}

/// Splits a parsed document into chunks.
pub trait Chunker: Send + Sync {
    fn chunk(&self, document: &ParsedDocument) -> Vec<Chunk>;
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("tokenizer failed: {0}")]
    Tokenizer(String),
    #[error("model: {0}")]
    Model(String),
    /// A remote embedding server failed (after its retries) or answered something unusable.
    #[error("embedding server: {0}")]
    Remote(String),
}

/// Turns texts into unit-length vectors.
pub trait Embedder: TokenCounter {
    fn dimension(&self) -> usize;
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("vector has dimension {got}, the store holds {expected}")]
    WrongDimension { expected: usize, got: usize },
    #[error("storage: {0}")]
    Storage(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// One search result: the chunk (its vector may be left empty) and its cosine similarity.
#[derive(Debug, Clone)]
pub struct SearchHit {
    pub chunk: StoredChunk,
    pub score: f32,
}

/// Keeps chunk vectors and finds the nearest to a query. Every implementation passes the
/// shared suite in `vectorstores/src/suite.rs`.
pub trait VectorStore: Send + Sync {
    fn dimension(&self) -> usize;
    /// Inserts or replaces chunks by id.
    fn upsert(&self, chunks: &[StoredChunk]) -> Result<(), StoreError>;
    /// Writes from now until [`VectorStore::end_batch`] may be held back where a store keeps
    /// a second index beside its vectors (the lexical side of `HybridStore`) and applied
    /// together. The vectors themselves are written at once, as always.
    fn begin_batch(&self) {}
    /// Ends a batch and applies whatever it held back.
    fn end_batch(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Applies whatever is held back now (a write that must be visible when it returns).
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Removes every chunk of one document; returns how many were removed.
    fn delete_document(
        &self,
        data_source_id: &str,
        document_key: &str,
    ) -> Result<usize, StoreError>;
    /// Replaces every chunk of one document with `chunks` (all of that document). Stores that
    /// can do it in one step (the lexical index: one commit) override this.
    fn replace_document(
        &self,
        data_source_id: &str,
        document_key: &str,
        chunks: &[StoredChunk],
    ) -> Result<(), StoreError> {
        self.delete_document(data_source_id, document_key)?;
        self.upsert(chunks)
    }
    /// Replaces the user metadata of every chunk of one document, keeping the vectors.
    fn set_document_metadata(
        &self,
        data_source_id: &str,
        document_key: &str,
        metadata: &Metadata,
    ) -> Result<usize, StoreError>;
    /// The `k` chunks nearest to `query` among those the filter passes, best first.
    fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&Filter>,
    ) -> Result<Vec<SearchHit>, StoreError>;
    /// The chunks with these ids, in the order asked, skipping ids not stored. Vectors may
    /// be left empty.
    fn chunks(&self, ids: &[String]) -> Result<Vec<StoredChunk>, StoreError>;
    /// Ids of the chunks of one document, sorted.
    fn document_chunk_ids(
        &self,
        data_source_id: &str,
        document_key: &str,
    ) -> Result<Vec<String>, StoreError>;
    /// Ids of every chunk stored, sorted.
    fn chunk_ids(&self) -> Result<Vec<String>, StoreError>;
    /// Number of chunks stored.
    fn len(&self) -> Result<usize, StoreError>;
    fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }
}
