//! Retrieval: a query in, ranked passages out, in Bedrock's `RetrieveResponse` shape.
#![forbid(unsafe_code)]

pub mod fusion;
pub mod metrics;
mod search;
mod wire;

use quarry_core::{EmbedError, Embedder, Filter, StoreError};
use quarry_lexical::LexicalError;

pub use fusion::Fusion;
pub use search::{HYBRID_CANDIDATES, Indexes, SearchType, distinct, fused, lexical_hits, search};
pub use wire::{Content, Location, RetrievalResult, RetrieveResponse};

#[derive(Debug, thiserror::Error)]
pub enum RetrieveError {
    #[error("numberOfResults must be between 1 and 100, got {0}")]
    BadCount(usize),
    #[error("embedding the query failed: {0}")]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lexical(#[from] LexicalError),
    #[error("HYBRID search needs the knowledge base's lexical index, which this store has not got")]
    NoLexicalIndex,
}

/// Bedrock's bounds on `numberOfResults`.
pub const MAX_RESULTS: usize = 100;
pub const DEFAULT_RESULTS: usize = 5;

/// The `k` best passages for `query` among those the filter passes, best first.
pub fn retrieve(
    embedder: &dyn Embedder,
    indexes: Indexes<'_>,
    query: &str,
    k: usize,
    filter: Option<&Filter>,
    search_type: SearchType,
) -> Result<Vec<RetrievalResult>, RetrieveError> {
    if !(1..=MAX_RESULTS).contains(&k) {
        return Err(RetrieveError::BadCount(k));
    }
    let vector = embedder.embed(&[query])?.remove(0);
    let hits = search(indexes, query, &vector, k, filter, search_type)?;
    Ok(hits.into_iter().map(RetrievalResult::from).collect())
}
