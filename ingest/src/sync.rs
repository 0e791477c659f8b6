//! One sync of one data source: list, compare with the ledger, index what is new or changed,
//! update metadata that alone changed, remove what is gone. A document that cannot be read
//! or parsed fails alone, with its reason in the job; only a store, ledger or source outage
//! fails the job.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use quarry_core::{Chunker, Embedder, StoreError, StoredChunk, VectorStore};
use sha2::{Digest, Sha256};

use crate::job::{IngestionJob, JobStatus};
use crate::ledger::{Ledger, LedgerEntry, LedgerError};
use crate::parsers::parse_document;
use crate::sidecar::{Sidecar, described_document, parse_sidecar};
use crate::sources::{Source, SourceError, SourceObject};

/// Everything a sync of one data source works with.
pub struct SyncTarget<'a> {
    pub data_source_id: &'a str,
    pub source: &'a dyn Source,
    pub chunker: &'a dyn Chunker,
    pub embedder: &'a dyn Embedder,
    pub store: &'a dyn VectorStore,
    pub ledger: &'a Ledger,
    pub max_document_bytes: u64,
}

/// The stages of a sync, for timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    List,
    Fetch,
    Parse,
    Chunk,
    Embed,
    Index,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::List,
        Stage::Fetch,
        Stage::Parse,
        Stage::Chunk,
        Stage::Embed,
        Stage::Index,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::List => "list",
            Stage::Fetch => "fetch",
            Stage::Parse => "parse",
            Stage::Chunk => "chunk",
            Stage::Embed => "embed",
            Stage::Index => "index",
        }
    }
}

/// Told about progress, for progress bars, logs and benchmarks (from the job's thread and
/// from its look-ahead thread).
pub trait SyncObserver: Sync {
    fn listed(&self, _documents: usize) {}
    fn document_done(&self, _key: &str, _chunks: usize) {}
    /// Time spent in a stage; `bytes` read from the source, for fetches.
    fn stage(&self, _stage: Stage, _took: Duration, _bytes: usize) {}
}

/// Runs `f`, telling the observer how long it took.
fn timed<T>(observer: &dyn SyncObserver, stage: Stage, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    observer.stage(stage, started.elapsed(), 0);
    out
}

impl SyncObserver for () {}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("vector store: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The embedding server failed for good: every document would fail the same way, so
    /// the job stops and what is indexed stays as it was.
    #[error("{0}")]
    Embedding(String),
}

/// Why one document was not indexed, or why the job must stop.
pub(crate) enum DocumentError {
    Failed(String),
    Fatal(SyncError),
}

impl From<StoreError> for DocumentError {
    fn from(e: StoreError) -> Self {
        Self::Fatal(e.into())
    }
}
impl From<LedgerError> for DocumentError {
    fn from(e: LedgerError) -> Self {
        Self::Fatal(e.into())
    }
}
impl From<SourceError> for DocumentError {
    fn from(e: SourceError) -> Self {
        match e {
            SourceError::Object(reason) => Self::Failed(reason),
            fatal => Self::Fatal(fatal.into()),
        }
    }
}

enum Outcome {
    Unchanged,
    New,
    Modified { metadata_changed: bool },
    MetadataOnly,
}

/// Runs the job to its end (COMPLETE, FAILED or STOPPED), saving its record in the ledger
/// as it goes. `stop` asks it to stop after the current document.
pub fn run_sync(
    target: &SyncTarget<'_>,
    job: &mut IngestionJob,
    stop: &AtomicBool,
    observer: &dyn SyncObserver,
) {
    job.status = JobStatus::InProgress;
    save(target, job);
    let result = sync(target, job, stop, observer);
    finish(target, job, stop, result);
}

fn save(target: &SyncTarget<'_>, job: &mut IngestionJob) {
    job.updated_at = Utc::now();
    if let Err(e) = target.ledger.save_job(job) {
        tracing::warn!(error = %e, "could not save the ingestion job record");
    }
}

fn sync(
    target: &SyncTarget<'_>,
    job: &mut IngestionJob,
    stop: &AtomicBool,
    observer: &dyn SyncObserver,
) -> Result<(), SyncError> {
    let ds = target.data_source_id;
    let objects = timed(observer, Stage::List, || target.source.list())?;
    let mut sidecars: HashMap<&str, &SourceObject> = HashMap::new();
    let mut documents = Vec::new();
    for object in &objects {
        match described_document(&object.key) {
            Some(doc) => {
                sidecars.insert(doc, object);
            }
            None => documents.push(object),
        }
    }
    job.statistics.number_of_documents_scanned = documents.len() as u64;
    job.statistics.number_of_metadata_documents_scanned = sidecars.len() as u64;
    observer.listed(documents.len());

    let mut ledger: HashMap<String, LedgerEntry> = target
        .ledger
        .entries(ds)?
        .into_iter()
        .map(|e| (e.key.clone(), e))
        .collect();
    let present: std::collections::HashSet<&str> =
        documents.iter().map(|d| d.key.as_str()).collect();
    let gone: Vec<LedgerEntry> = ledger
        .values()
        .filter(|e| !present.contains(e.key.as_str()))
        .cloned()
        .collect();
    for entry in gone {
        remove_document(target, job, &entry)?;
        ledger.remove(&entry.key);
    }

    // The next documents are fetched and parsed on a look-ahead thread while this one
    // chunks, embeds and writes, so a remote embedding server (or the encoder) never waits
    // on the source or the parsers. Only this thread writes.
    let source = target.source;
    let max_bytes = target.max_document_bytes;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Prepared, DocumentError>>(LOOKAHEAD);
    std::thread::scope(|scope| {
        let ledger = &ledger;
        let sidecars = &sidecars;
        let documents = &documents;
        scope.spawn(move || {
            for doc in documents {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let sidecar = sidecars.get(doc.key.as_str()).copied();
                let prepared = prepare(
                    source,
                    max_bytes,
                    doc,
                    sidecar,
                    ledger.get(&doc.key),
                    observer,
                );
                if tx.send(prepared).is_err() {
                    break; // the job ended early
                }
            }
        });
        // Owned here, so that leaving early (an error, a stop) drops it before the scope
        // waits for the look-ahead thread, which then stops instead of waiting to send.
        let rx = rx;
        let mut last_save = Instant::now();
        for doc in documents {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let Ok(prepared) = rx.recv() else {
                break; // stopped
            };
            let chunks = process_document(target, job, doc, prepared, observer)?;
            observer.document_done(&doc.key, chunks);
            if last_save.elapsed() > Duration::from_secs(2) {
                save(target, job);
                last_save = Instant::now();
            }
        }
        Ok(())
    })
}

/// Documents fetched and parsed ahead of the one being embedded.
const LOOKAHEAD: usize = 4;

/// Writes one prepared document and counts its outcome in the job; returns its chunk count.
fn process_document(
    target: &SyncTarget<'_>,
    job: &mut IngestionJob,
    doc: &SourceObject,
    prepared: Result<Prepared, DocumentError>,
    observer: &dyn SyncObserver,
) -> Result<usize, SyncError> {
    let ds = target.data_source_id;
    let mut chunks = 0;
    match prepared.and_then(|p| commit(target, doc, p, &mut chunks, observer)) {
        Ok(Outcome::Unchanged) => {}
        Ok(Outcome::New) => job.statistics.number_of_new_documents_indexed += 1,
        Ok(Outcome::Modified { metadata_changed }) => {
            job.statistics.number_of_modified_documents_indexed += 1;
            if metadata_changed {
                job.statistics.number_of_metadata_documents_modified += 1;
            }
        }
        Ok(Outcome::MetadataOnly) => job.statistics.number_of_metadata_documents_modified += 1,
        Err(DocumentError::Failed(reason)) => {
            tracing::warn!(document = %doc.key, %reason, "document failed");
            // The index follows the source: a document that no longer parses keeps no
            // stale chunks, and is tried again by the next sync.
            target.ledger.mark_pending(ds, &doc.key)?;
            target.store.delete_document(ds, &doc.key)?;
            target.ledger.remove(ds, &doc.key)?;
            job.fail_document(&target.source.uri(&doc.key), &reason);
        }
        Err(DocumentError::Fatal(e)) => return Err(e),
    }
    Ok(chunks)
}

/// Removes a document the source no longer has.
fn remove_document(
    target: &SyncTarget<'_>,
    job: &mut IngestionJob,
    entry: &LedgerEntry,
) -> Result<(), SyncError> {
    let ds = target.data_source_id;
    target.ledger.mark_pending(ds, &entry.key)?;
    target.store.delete_document(ds, &entry.key)?;
    target.ledger.remove(ds, &entry.key)?;
    if !entry.content_hash.is_empty() {
        job.statistics.number_of_documents_deleted += 1;
    }
    Ok(())
}

/// Like [`run_sync`], for just the named objects (documents or sidecars), as change events
/// report them: each is looked up in the source as it is now, so duplicate and out-of-order
/// events do no harm.
pub fn run_sync_keys(
    target: &SyncTarget<'_>,
    job: &mut IngestionJob,
    keys: &[String],
    stop: &AtomicBool,
) {
    job.status = JobStatus::InProgress;
    save(target, job);
    let result = (|| -> Result<(), SyncError> {
        let mut documents: Vec<&str> = keys
            .iter()
            .map(|k| described_document(k).unwrap_or(k))
            .collect();
        documents.sort_unstable();
        documents.dedup();
        let ledger: HashMap<String, LedgerEntry> = target
            .ledger
            .entries(target.data_source_id)?
            .into_iter()
            .filter(|e| documents.binary_search(&e.key.as_str()).is_ok())
            .map(|e| (e.key.clone(), e))
            .collect();
        for key in documents {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let sidecar = target
                .source
                .stat(&format!("{key}{}", crate::sidecar::SIDECAR_SUFFIX))?;
            match target.source.stat(key)? {
                Some(doc) => {
                    job.statistics.number_of_documents_scanned += 1;
                    job.statistics.number_of_metadata_documents_scanned +=
                        u64::from(sidecar.is_some());
                    let prepared = prepare(
                        target.source,
                        target.max_document_bytes,
                        &doc,
                        sidecar.as_ref(),
                        ledger.get(key),
                        &(),
                    );
                    process_document(target, job, &doc, prepared, &())?;
                }
                None => {
                    if let Some(entry) = ledger.get(key) {
                        remove_document(target, job, entry)?;
                    }
                }
            }
        }
        Ok(())
    })();
    finish(target, job, stop, result);
}

fn finish(
    target: &SyncTarget<'_>,
    job: &mut IngestionJob,
    stop: &AtomicBool,
    result: Result<(), SyncError>,
) {
    match result {
        Ok(()) if stop.load(Ordering::Relaxed) => job.status = JobStatus::Stopped,
        Ok(()) => job.status = JobStatus::Complete,
        Err(e) => {
            tracing::error!(data_source = target.data_source_id, error = %e, "ingestion job failed");
            job.status = JobStatus::Failed;
            job.failure_reasons.push(e.to_string());
        }
    }
    save(target, job);
}

/// Chunks, embeds and writes one parsed document, replacing whatever the index held for it:
/// the ledger marks it pending first and records it (with `entry`'s state and the new chunk
/// ids) last, so a crash in between leaves it to be redone. Returns the chunk count.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_document(
    target: &SyncTarget<'_>,
    key: &str,
    source_uri: &str,
    parsed: &quarry_core::ParsedDocument,
    metadata: &quarry_core::Metadata,
    embedding_prefix: &str,
    observer: &dyn SyncObserver,
    mut entry: LedgerEntry,
) -> Result<usize, DocumentError> {
    let ds = target.data_source_id;
    let chunks = timed(observer, Stage::Chunk, || target.chunker.chunk(parsed));
    if chunks.is_empty() {
        return Err(DocumentError::Failed(
            quarry_core::ParseError::Empty.to_string(),
        ));
    }
    let texts: Vec<String> = chunks
        .iter()
        .map(|c| format!("{embedding_prefix}{}", c.text))
        .collect();
    let text_refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vectors = timed(observer, Stage::Embed, || target.embedder.embed(&text_refs)).map_err(
        |e| match e {
            quarry_core::EmbedError::Remote(reason) => DocumentError::Fatal(SyncError::Embedding(
                format!("embedding {key} failed: {reason}"),
            )),
            other => DocumentError::Failed(format!("embedding failed: {other}")),
        },
    )?;
    let stored: Vec<StoredChunk> = chunks
        .into_iter()
        .zip(vectors)
        .enumerate()
        .map(|(i, (chunk, vector))| {
            let passage = chunk.returned_passage();
            StoredChunk {
                id: chunk_id(ds, key, i, &chunk.text),
                data_source_id: ds.to_owned(),
                document_key: key.to_owned(),
                source_uri: source_uri.to_owned(),
                text: passage.text,
                span: passage.span,
                page: passage.page,
                metadata: metadata.clone(),
                vector,
            }
        })
        .collect();
    let started = Instant::now();
    target.ledger.mark_pending(ds, key)?;
    target.store.replace_document(ds, key, &stored)?;
    let count = stored.len();
    entry.chunk_ids = stored.into_iter().map(|c| c.id).collect();
    entry.pending = false;
    target.ledger.put(ds, &entry)?;
    observer.stage(Stage::Index, started.elapsed(), 0);
    Ok(count)
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A chunk's id: the same document, position and text always give the same id, so a
/// repeated upsert replaces rather than duplicates.
pub fn chunk_id(data_source_id: &str, key: &str, index: usize, text: &str) -> String {
    let mut h = Sha256::new();
    for part in [data_source_id, key, &index.to_string(), text] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..16])
}

/// What a document needs, found without writing anything: nothing, its metadata, or its
/// parsed text (chunked, embedded and written by [`commit`]).
pub(crate) enum Prepared {
    Unchanged,
    /// Same content and embedded metadata: the ledger entry (and the sidecar's attributes,
    /// when they changed) are all there is to write.
    Metadata {
        entry: LedgerEntry,
        attributes: Option<quarry_core::Metadata>,
    },
    Content {
        entry: LedgerEntry,
        parsed: quarry_core::ParsedDocument,
        attributes: quarry_core::Metadata,
        prefix: String,
        was_indexed: bool,
        sidecar_changed: bool,
    },
}

/// Reads what a document needs: its listing against the ledger, its sidecar, its bytes and
/// their hash, and, when the content or the embedded metadata changed, its parsed text.
fn prepare(
    source: &dyn Source,
    max_document_bytes: u64,
    doc: &SourceObject,
    sidecar_object: Option<&SourceObject>,
    entry: Option<&LedgerEntry>,
    observer: &dyn SyncObserver,
) -> Result<Prepared, DocumentError> {
    let fetch = |key: &str| -> Result<Vec<u8>, SourceError> {
        let started = Instant::now();
        let bytes = source.fetch(key)?;
        observer.stage(Stage::Fetch, started.elapsed(), bytes.len());
        Ok(bytes)
    };
    let indexed = entry.filter(|e| !e.pending);
    let sidecar_version = sidecar_object
        .map(|s| format!("{}:{}", s.size, s.version))
        .unwrap_or_default();
    let listing_same = indexed.is_some_and(|e| e.size == doc.size && e.version == doc.version);
    if listing_same && indexed.is_some_and(|e| e.sidecar_version == sidecar_version) {
        return Ok(Prepared::Unchanged);
    }
    if doc.size > max_document_bytes {
        return Err(DocumentError::Failed(
            quarry_core::ParseError::TooLarge {
                size: doc.size,
                limit: max_document_bytes,
            }
            .to_string(),
        ));
    }
    let (sidecar, sidecar_hash) = match sidecar_object {
        Some(object) => {
            let bytes = fetch(&object.key)?;
            let sidecar = parse_sidecar(&bytes)
                .map_err(|e| DocumentError::Failed(format!("{}: {e}", object.key)))?;
            (sidecar, sha256_hex(&bytes))
        }
        None => (Sidecar::default(), String::new()),
    };
    let prefix = sidecar.embedding_prefix();
    let embedded_metadata_hash = if prefix.is_empty() {
        String::new()
    } else {
        sha256_hex(prefix.as_bytes())
    };

    let mut bytes = None;
    let content_hash = match indexed {
        Some(e) if listing_same => e.content_hash.clone(),
        _ => {
            let b = fetch(&doc.key)?;
            let h = sha256_hex(&b);
            bytes = Some(b);
            h
        }
    };
    let content_changed = indexed.is_none_or(|e| e.content_hash != content_hash);
    let embedding_changed =
        indexed.is_none_or(|e| e.embedded_metadata_hash != embedded_metadata_hash);
    let sidecar_changed = indexed.is_some_and(|e| e.sidecar_hash != sidecar_hash);
    let new_entry = LedgerEntry {
        key: doc.key.clone(),
        size: doc.size,
        version: doc.version.clone(),
        content_hash,
        sidecar_version,
        sidecar_hash,
        embedded_metadata_hash,
        chunk_ids: indexed.map(|e| e.chunk_ids.clone()).unwrap_or_default(),
        pending: false,
    };

    if !content_changed && !embedding_changed {
        return Ok(Prepared::Metadata {
            entry: new_entry,
            attributes: sidecar_changed.then_some(sidecar.attributes),
        });
    }

    let bytes = match bytes {
        Some(b) => b,
        None => fetch(&doc.key)?,
    };
    let parsed = timed(observer, Stage::Parse, || {
        parse_document(&doc.key, &bytes, max_document_bytes)
    })
    .map_err(|e| DocumentError::Failed(e.to_string()))?;
    Ok(Prepared::Content {
        entry: new_entry,
        parsed,
        attributes: sidecar.attributes,
        prefix,
        was_indexed: indexed.is_some(),
        sidecar_changed,
    })
}

/// Writes what [`prepare`] found: the ledger entry, the metadata, or the chunks.
fn commit(
    target: &SyncTarget<'_>,
    doc: &SourceObject,
    prepared: Prepared,
    chunk_count: &mut usize,
    observer: &dyn SyncObserver,
) -> Result<Outcome, DocumentError> {
    let ds = target.data_source_id;
    match prepared {
        Prepared::Unchanged => Ok(Outcome::Unchanged),
        Prepared::Metadata { entry, attributes } => {
            let started = Instant::now();
            let changed = attributes.is_some();
            if let Some(attributes) = attributes {
                target
                    .store
                    .set_document_metadata(ds, &doc.key, &attributes)?;
            }
            target.ledger.put(ds, &entry)?;
            observer.stage(Stage::Index, started.elapsed(), 0);
            Ok(if changed {
                Outcome::MetadataOnly
            } else {
                Outcome::Unchanged
            })
        }
        Prepared::Content {
            entry,
            parsed,
            attributes,
            prefix,
            was_indexed,
            sidecar_changed,
        } => {
            *chunk_count = write_document(
                target,
                &doc.key,
                &target.source.uri(&doc.key),
                &parsed,
                &attributes,
                &prefix,
                observer,
                entry,
            )?;
            Ok(if was_indexed {
                Outcome::Modified {
                    metadata_changed: sidecar_changed,
                }
            } else {
                Outcome::New
            })
        }
    }
}
