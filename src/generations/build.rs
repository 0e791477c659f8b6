//! Filling a new generation's vectors from the serving one's stored chunks: each chunk's text
//! embedded again with the new model (nothing is parsed again), then the documents written
//! meanwhile replayed from the dirty log.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::Context;
use quarry_core::{Embedder, StoredChunk, VectorStore};

/// How far a build is, for the console, the API and the logs.
#[derive(Default)]
pub struct Progress {
    pub done: AtomicUsize,
    pub total: AtomicUsize,
    /// Set to make the build stop at its next batch (shutdown); it resumes at the next start.
    pub stop: std::sync::Arc<AtomicBool>,
}

impl Progress {
    pub fn percent(&self) -> f64 {
        let total = self.total.load(Ordering::Relaxed).max(1);
        (self.done.load(Ordering::Relaxed) as f64 * 100.0 / total as f64).min(100.0)
    }
}

/// Why a build ended before its swap.
#[derive(Debug, thiserror::Error)]
pub enum Interrupted {
    #[error("stopped")]
    Stopped,
    #[error("the planned switch changed")]
    Replanned,
}

const BATCH: usize = 64;

/// Embeds `chunks` again with `embedder`.
fn embedded(embedder: &dyn Embedder, chunks: Vec<StoredChunk>) -> anyhow::Result<Vec<StoredChunk>> {
    let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
    let vectors = embedder
        .embed(&texts)
        .context("embedding with the new model")?;
    Ok(chunks
        .into_iter()
        .zip(vectors)
        .map(|(mut c, v)| {
            c.vector = v;
            c
        })
        .collect())
}

/// Copies every chunk of `from` that `to` lacks, embedded with the new model. `check` is
/// asked between batches whether to go on.
pub fn fill(
    from: &dyn VectorStore,
    to: &dyn VectorStore,
    embedder: &dyn Embedder,
    progress: &Progress,
    check: &dyn Fn() -> Result<(), Interrupted>,
) -> anyhow::Result<()> {
    let have: HashSet<String> = to.chunk_ids()?.into_iter().collect();
    let ids = from.chunk_ids()?;
    let missing: Vec<String> = ids
        .iter()
        .filter(|id| !have.contains(*id))
        .cloned()
        .collect();
    progress.total.store(ids.len(), Ordering::Relaxed);
    progress
        .done
        .store(ids.len() - missing.len(), Ordering::Relaxed);
    for batch in missing.chunks(BATCH) {
        check()?;
        let chunks = from.chunks(batch)?;
        to.upsert(&embedded(embedder, chunks)?)?;
        progress.done.fetch_add(batch.len(), Ordering::Relaxed);
    }
    Ok(())
}

/// Makes each document's chunks in `to` exactly its chunks in `from`, embedded anew (none:
/// the document's chunks are removed).
pub fn replay(
    from: &dyn VectorStore,
    to: &dyn VectorStore,
    embedder: &dyn Embedder,
    documents: &BTreeSet<(String, String)>,
) -> anyhow::Result<()> {
    for (data_source_id, key) in documents {
        let ids = from.document_chunk_ids(data_source_id, key)?;
        let chunks = from.chunks(&ids)?;
        if chunks.is_empty() {
            to.delete_document(data_source_id, key)?;
        } else {
            to.replace_document(data_source_id, key, &embedded(embedder, chunks)?)?;
        }
    }
    Ok(())
}
