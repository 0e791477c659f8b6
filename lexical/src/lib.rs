//! The lexical side of `HYBRID` search: a BM25 index (tantivy) over the same chunks as the
//! vector store, under the same chunk ids, kept in step by [`HybridStore`] so that every
//! sync, direct ingestion and delete reaches both.
#![forbid(unsafe_code)]

mod analyzer;
mod hybrid_store;
mod index;

pub use analyzer::analyze;
pub use hybrid_store::HybridStore;
pub use index::{LexicalError, LexicalIndex, LexicalOp, RebuildError};
