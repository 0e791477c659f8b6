//! The serving generation's vector store, wrapped so that a switch of the embedding model
//! loses no write, whichever process makes it:
//!
//! - every write holds `<kb dir>/locks/index-gate.lock` shared (the swap holds it alone), and
//!   under it reads the generations record: a write to a generation that a switch has
//!   replaced is refused; while a switch builds the next generation, the documents the write
//!   touches are first noted in that generation's dirty log (appended and synced), which the
//!   build replays into the new index.
//! - the builder takes the gate alone for a moment to learn how far the log is complete: every
//!   write noted before that point has landed.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use quarry_core::{Filter, Metadata, SearchHit, StoreError, StoredChunk, VectorStore};

use super::state::IndexState;

fn storage(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(format!("{}: {e}", path.display()))
}

/// The lock every write to a knowledge base's vectors holds shared, and a swap alone.
pub fn gate(kb_dir: &Path, exclusive: bool) -> std::io::Result<File> {
    let dir = kb_dir.join("locks");
    std::fs::create_dir_all(&dir)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join("index-gate.lock"))?;
    if exclusive {
        file.lock()?;
    } else {
        file.lock_shared()?;
    }
    Ok(file)
}

pub fn dirty_log_path(kb_dir: &Path, generation: u32) -> PathBuf {
    kb_dir.join(format!("switch-dirty-g{generation}.jsonl"))
}

/// The documents noted in a dirty log from byte `from` on, and where the log ended. A torn
/// last line (a note whose write never happened) is left for the next read.
pub fn read_dirty(path: &Path, from: u64) -> anyhow::Result<(BTreeSet<(String, String)>, u64)> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((BTreeSet::new(), from)),
        Err(e) => return Err(e.into()),
    };
    file.seek(SeekFrom::Start(from))?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let complete = text.rfind('\n').map_or(0, |i| i + 1);
    let documents = text[..complete]
        .lines()
        .filter_map(|l| serde_json::from_str::<(String, String)>(l).ok())
        .collect();
    Ok((documents, from + complete as u64))
}

/// The serving generation's vectors, with every write gated and noted.
pub struct GenerationStore {
    inner: Arc<dyn VectorStore>,
    kb_dir: PathBuf,
    generation: u32,
}

impl GenerationStore {
    pub fn new(inner: Arc<dyn VectorStore>, kb_dir: &Path, generation: u32) -> Self {
        Self {
            inner,
            kb_dir: kb_dir.to_owned(),
            generation,
        }
    }

    /// Runs a write under the shared gate: refused if this generation was replaced, noted
    /// first if a switch is building.
    fn write<T>(
        &self,
        documents: impl FnOnce() -> BTreeSet<(String, String)>,
        f: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _gate = gate(&self.kb_dir, false).map_err(|e| storage(&self.kb_dir, e))?;
        let state = match std::fs::read_to_string(super::state::path(&self.kb_dir)) {
            Ok(text) => Some(
                serde_json::from_str::<IndexState>(&text)
                    .map_err(|e| storage(&super::state::path(&self.kb_dir), e))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(storage(&super::state::path(&self.kb_dir), e)),
        };
        if let Some(state) = state {
            if state.active.number != self.generation {
                return Err(StoreError::Storage(format!(
                    "this index (generation {}) was replaced by generation {} when the embedding model was switched to {}; start the work again",
                    self.generation, state.active.number, state.active.model
                )));
            }
            if let Some(building) = &state.building {
                note(
                    &dirty_log_path(&self.kb_dir, building.generation.number),
                    &documents(),
                )?;
            }
        }
        f()
    }
}

fn note(path: &Path, documents: &BTreeSet<(String, String)>) -> Result<(), StoreError> {
    if documents.is_empty() {
        return Ok(());
    }
    let mut text = String::new();
    for d in documents {
        text.push_str(&serde_json::to_string(d).expect("strings serialize"));
        text.push('\n');
    }
    // One write of whole lines in append mode: notes of concurrent writers never interleave.
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| storage(path, e))?;
    file.write_all(text.as_bytes())
        .and_then(|_| file.sync_data())
        .map_err(|e| storage(path, e))
}

fn one(data_source_id: &str, document_key: &str) -> BTreeSet<(String, String)> {
    BTreeSet::from([(data_source_id.to_owned(), document_key.to_owned())])
}

impl VectorStore for GenerationStore {
    fn dimension(&self) -> usize {
        self.inner.dimension()
    }

    fn upsert(&self, chunks: &[StoredChunk]) -> Result<(), StoreError> {
        let documents = || {
            chunks
                .iter()
                .map(|c| (c.data_source_id.clone(), c.document_key.clone()))
                .collect()
        };
        self.write(documents, || self.inner.upsert(chunks))
    }

    fn begin_batch(&self) {
        self.inner.begin_batch()
    }

    fn end_batch(&self) -> Result<(), StoreError> {
        self.inner.end_batch()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }

    fn delete_document(
        &self,
        data_source_id: &str,
        document_key: &str,
    ) -> Result<usize, StoreError> {
        self.write(
            || one(data_source_id, document_key),
            || self.inner.delete_document(data_source_id, document_key),
        )
    }

    fn replace_document(
        &self,
        data_source_id: &str,
        document_key: &str,
        chunks: &[StoredChunk],
    ) -> Result<(), StoreError> {
        self.write(
            || one(data_source_id, document_key),
            || {
                self.inner
                    .replace_document(data_source_id, document_key, chunks)
            },
        )
    }

    fn set_document_metadata(
        &self,
        data_source_id: &str,
        document_key: &str,
        metadata: &Metadata,
    ) -> Result<usize, StoreError> {
        self.write(
            || one(data_source_id, document_key),
            || {
                self.inner
                    .set_document_metadata(data_source_id, document_key, metadata)
            },
        )
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&Filter>,
    ) -> Result<Vec<SearchHit>, StoreError> {
        self.inner.search(query, k, filter)
    }

    fn chunks(&self, ids: &[String]) -> Result<Vec<StoredChunk>, StoreError> {
        self.inner.chunks(ids)
    }

    fn document_chunk_ids(
        &self,
        data_source_id: &str,
        document_key: &str,
    ) -> Result<Vec<String>, StoreError> {
        self.inner.document_chunk_ids(data_source_id, document_key)
    }

    fn chunk_ids(&self) -> Result<Vec<String>, StoreError> {
        self.inner.chunk_ids()
    }

    fn len(&self) -> Result<usize, StoreError> {
        self.inner.len()
    }
}
