//! Retrieval: a query in, ranked passages out, in Bedrock's `RetrieveResponse` shape.
#![forbid(unsafe_code)]

pub mod metrics;
mod wire;

use quarry_core::{EmbedError, Embedder, Filter, StoreError, VectorStore};

pub use wire::{Content, Location, RetrievalResult, RetrieveResponse};

#[derive(Debug, thiserror::Error)]
pub enum RetrieveError {
    #[error("numberOfResults must be between 1 and 100, got {0}")]
    BadCount(usize),
    #[error("embedding the query failed: {0}")]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Bedrock's bounds on `numberOfResults`.
pub const MAX_RESULTS: usize = 100;
pub const DEFAULT_RESULTS: usize = 5;

/// The `k` passages nearest to `query` among those the filter passes, best first.
pub fn retrieve(
    embedder: &dyn Embedder,
    store: &dyn VectorStore,
    query: &str,
    k: usize,
    filter: Option<&Filter>,
) -> Result<Vec<RetrievalResult>, RetrieveError> {
    if !(1..=MAX_RESULTS).contains(&k) {
        return Err(RetrieveError::BadCount(k));
    }
    let vector = embedder.embed(&[query])?.remove(0);
    let hits = store.search(&vector, k, filter)?;
    Ok(hits.into_iter().map(RetrievalResult::from).collect())
}
