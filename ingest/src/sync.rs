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
use crate::prepare::{Prepared, prepare};
use crate::sidecar::described_document;
use crate::sources::{Source, SourceError, SourceObject};

/// Everything a sync of one data source works with.
pub struct SyncTarget<'a> {
    pub data_source_id: &'a str,
    pub source: &'a dyn Source,
    pub chunker: &'a dyn Chunker,
    pub embedder: &'a dyn Embedder,
    pub store: &'a dyn VectorStore,
    pub ledger: &'a dyn Ledger,
    pub max_document_bytes: u64,
    /// How the data source's documents are parsed (OCR languages).
    pub parse_options: quarry_core::ParseOptions,
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
pub(crate) fn timed<T>(observer: &dyn SyncObserver, stage: Stage, f: impl FnOnce() -> T) -> T {
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
    target.store.begin_batch();
    let result = sync(target, job, stop, observer);
    let applied = target.store.end_batch().map_err(SyncError::from);
    finish(target, job, stop, result.and(applied));
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
    let (source, chunker) = (target.source, target.chunker);
    let max_bytes = target.max_document_bytes;
    let parse_options = &target.parse_options;
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
                    chunker,
                    max_bytes,
                    parse_options,
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
        let mut next_document = documents.iter();
        while !stop.load(Ordering::Relaxed) {
            let Ok(first) = rx.recv() else {
                break; // every document is done, or the look-ahead stopped
            };
            // Whatever else is ready joins it, so small documents still make full batches.
            let mut size = texts_of(&first);
            let mut group = vec![first];
            while size < GROUP_TEXTS {
                match rx.try_recv() {
                    Ok(more) => {
                        size += texts_of(&more);
                        group.push(more);
                    }
                    Err(_) => break,
                }
            }
            let vectors = embed_group(target, &group, observer)?;
            for (prepared, vectors) in group.into_iter().zip(vectors) {
                let doc = next_document
                    .next()
                    .expect("the look-ahead sends one result per document, in order");
                let chunks = process_document(target, job, doc, prepared, vectors, observer)?;
                observer.document_done(&doc.key, chunks);
            }
            if last_save.elapsed() > Duration::from_secs(2) {
                save(target, job);
                last_save = Instant::now();
            }
        }
        Ok(())
    })
}

/// A document's vectors, or why it has none.
pub(crate) type DocumentVectors = Result<Vec<Vec<f32>>, DocumentError>;

/// Texts embedded together at most, across documents.
const GROUP_TEXTS: usize = 256;

fn texts_of(prepared: &Result<Prepared, DocumentError>) -> usize {
    match prepared {
        Ok(Prepared::Content { chunks, .. }) => chunks.len(),
        _ => 0,
    }
}

/// Embeds the chunks of a group of prepared documents in one call (the embedder batches
/// and, for a remote one, keeps several requests in flight); each document gets its own
/// vectors. A remote server that fails stops the job; any other failure is retried
/// document by document, so that only the document at fault fails.
pub(crate) fn embed_group(
    target: &SyncTarget<'_>,
    group: &[Result<Prepared, DocumentError>],
    observer: &dyn SyncObserver,
) -> Result<Vec<DocumentVectors>, SyncError> {
    let texts: Vec<Vec<String>> = group
        .iter()
        .map(|p| p.as_ref().map(Prepared::texts).unwrap_or_default())
        .collect();
    let all: Vec<&str> = texts.iter().flatten().map(String::as_str).collect();
    if all.is_empty() {
        return Ok(texts.iter().map(|_| Ok(Vec::new())).collect());
    }
    match timed(observer, Stage::Embed, || target.embedder.embed(&all)) {
        Ok(vectors) => {
            let mut vectors = vectors.into_iter();
            Ok(texts
                .iter()
                .map(|t| Ok(vectors.by_ref().take(t.len()).collect()))
                .collect())
        }
        Err(quarry_core::EmbedError::Remote(reason)) => Err(SyncError::Embedding(reason)),
        Err(_) if group.len() > 1 => {
            // Find the document at fault: each on its own.
            let mut out = Vec::with_capacity(texts.len());
            for t in &texts {
                let refs: Vec<&str> = t.iter().map(String::as_str).collect();
                if refs.is_empty() {
                    out.push(Ok(Vec::new()));
                    continue;
                }
                match embed_texts(target, &refs, observer) {
                    Ok(v) => out.push(Ok(v)),
                    Err(DocumentError::Fatal(e)) => return Err(e),
                    Err(failed) => out.push(Err(failed)),
                }
            }
            Ok(out)
        }
        Err(e) => Ok(vec![Err(DocumentError::Failed(format!(
            "embedding failed: {e}"
        )))]),
    }
}

/// Documents fetched and parsed ahead of the one being embedded.
const LOOKAHEAD: usize = 4;

/// Writes one prepared document and counts its outcome in the job; returns its chunk count.
pub(crate) fn process_document(
    target: &SyncTarget<'_>,
    job: &mut IngestionJob,
    doc: &SourceObject,
    prepared: Result<Prepared, DocumentError>,
    vectors: DocumentVectors,
    observer: &dyn SyncObserver,
) -> Result<usize, SyncError> {
    let ds = target.data_source_id;
    let mut chunks = 0;
    let written = prepared
        .and_then(|p| vectors.map(|v| (p, v)))
        .and_then(|(p, v)| commit(target, doc, p, v, &mut chunks, observer));
    match written {
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

/// Writes what [`prepare`] found: the ledger entry, the metadata, or the chunks.
fn commit(
    target: &SyncTarget<'_>,
    doc: &SourceObject,
    prepared: Prepared,
    vectors: Vec<Vec<f32>>,
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
            chunks,
            ocr_pages,
            attributes,
            was_indexed,
            sidecar_changed,
            ..
        } => {
            *chunk_count = write_chunks(
                target,
                &doc.key,
                &target.source.uri(&doc.key),
                chunks,
                vectors,
                &attributes,
                &ocr_pages,
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

/// Removes a document the source no longer has.
pub(crate) fn remove_document(
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
    target.store.begin_batch();
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
                        target.chunker,
                        target.max_document_bytes,
                        &target.parse_options,
                        &doc,
                        sidecar.as_ref(),
                        ledger.get(key),
                        &(),
                    );
                    let mut vectors = embed_group(target, std::slice::from_ref(&prepared), &())?;
                    let vectors = vectors.pop().unwrap_or_else(|| Ok(Vec::new()));
                    process_document(target, job, &doc, prepared, vectors, &())?;
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
    let applied = target.store.end_batch().map_err(SyncError::from);
    finish(target, job, stop, result.and(applied));
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

/// Chunks, embeds and writes one parsed document, replacing whatever the index held for it
/// (direct ingestion's path; a sync prepares and embeds ahead and calls [`write_chunks`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_document(
    target: &SyncTarget<'_>,
    key: &str,
    source_uri: &str,
    parsed: &quarry_core::ParsedDocument,
    metadata: &quarry_core::Metadata,
    embedding_prefix: &str,
    observer: &dyn SyncObserver,
    entry: LedgerEntry,
) -> Result<usize, DocumentError> {
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
    let vectors = embed_texts(target, &text_refs, observer)?;
    write_chunks(
        target,
        key,
        source_uri,
        chunks,
        vectors,
        metadata,
        &parsed.ocr_pages,
        observer,
        entry,
    )
}

/// A chunk's metadata: the document's, and for a page OCR read, `x-quarry-ocr` and the
/// page's `x-quarry-ocr-confidence` (0–100).
fn with_ocr(
    metadata: &quarry_core::Metadata,
    ocr_pages: &[quarry_core::OcrPage],
    page: Option<u32>,
) -> quarry_core::Metadata {
    let mut metadata = metadata.clone();
    if let Some(ocr) = page.and_then(|p| ocr_pages.iter().find(|o| o.page == p)) {
        use quarry_core::MetadataValue;
        metadata.insert(quarry_core::metadata::OCR.into(), MetadataValue::Bool(true));
        metadata.insert(
            quarry_core::metadata::OCR_CONFIDENCE.into(),
            MetadataValue::Number((ocr.confidence as f64 * 10.0).round() / 10.0),
        );
    }
    metadata
}

/// One document's texts embedded: a remote server that fails is fatal to the job, any other
/// failure is the document's.
fn embed_texts(
    target: &SyncTarget<'_>,
    texts: &[&str],
    observer: &dyn SyncObserver,
) -> Result<Vec<Vec<f32>>, DocumentError> {
    timed(observer, Stage::Embed, || target.embedder.embed(texts)).map_err(|e| match e {
        quarry_core::EmbedError::Remote(reason) => {
            DocumentError::Fatal(SyncError::Embedding(format!("embedding failed: {reason}")))
        }
        other => DocumentError::Failed(format!("embedding failed: {other}")),
    })
}

/// Writes a document's embedded chunks in place of whatever the index held for it: the
/// ledger marks it pending first and records it (with `entry`'s state and the new chunk ids)
/// last, so a crash in between leaves it to be redone. Returns the chunk count.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_chunks(
    target: &SyncTarget<'_>,
    key: &str,
    source_uri: &str,
    chunks: Vec<quarry_core::Chunk>,
    vectors: Vec<Vec<f32>>,
    metadata: &quarry_core::Metadata,
    ocr_pages: &[quarry_core::OcrPage],
    observer: &dyn SyncObserver,
    mut entry: LedgerEntry,
) -> Result<usize, DocumentError> {
    let ds = target.data_source_id;
    if vectors.len() != chunks.len() {
        return Err(DocumentError::Failed(format!(
            "embedding failed: {} vectors for {} chunks",
            vectors.len(),
            chunks.len()
        )));
    }
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
                metadata: with_ocr(metadata, ocr_pages, passage.page),
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
