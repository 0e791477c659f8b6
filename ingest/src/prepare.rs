//! A document made ready to write, on the sync's look-ahead thread: its listing compared
//! with the ledger, its sidecar read, its bytes fetched and hashed, and, when they changed,
//! parsed and chunked. Nothing here writes; `sync.rs` embeds and writes what comes out.

use std::time::Instant;

use quarry_core::{Chunk, Chunker};

use crate::ledger::LedgerEntry;
use crate::parsers::parse_document_with;
use crate::sidecar::{Sidecar, parse_sidecar};
use crate::sources::{Source, SourceError, SourceObject};
use crate::sync::{DocumentError, Stage, SyncObserver, sha256_hex, timed};

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
        chunks: Vec<Chunk>,
        /// The pages OCR read, for their chunks' metadata.
        ocr_pages: Vec<quarry_core::OcrPage>,
        attributes: quarry_core::Metadata,
        prefix: String,
        was_indexed: bool,
        sidecar_changed: bool,
    },
}

/// Reads what a document needs: its listing against the ledger, its sidecar, its bytes and
/// their hash, and, when the content or the embedded metadata changed, its chunks.
#[allow(clippy::too_many_arguments)]
pub(crate) fn prepare(
    source: &dyn Source,
    chunker: &dyn Chunker,
    max_document_bytes: u64,
    options: &quarry_core::ParseOptions,
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
        parse_document_with(&doc.key, &bytes, max_document_bytes, options)
    })
    .map_err(|e| DocumentError::Failed(e.to_string()))?;
    for warning in &parsed.warnings {
        tracing::warn!(document = %doc.key, %warning, "indexed without what could not be read");
    }
    let chunks = timed(observer, Stage::Chunk, || chunker.chunk(&parsed));
    if chunks.is_empty() {
        return Err(DocumentError::Failed(
            quarry_core::ParseError::Empty.to_string(),
        ));
    }
    Ok(Prepared::Content {
        entry: new_entry,
        chunks,
        ocr_pages: parsed.ocr_pages,
        attributes: sidecar.attributes,
        prefix,
        was_indexed: indexed.is_some(),
        sidecar_changed,
    })
}

impl Prepared {
    /// The texts this document needs embedded (its chunks with the embedded metadata).
    pub(crate) fn texts(&self) -> Vec<String> {
        match self {
            Prepared::Content { chunks, prefix, .. } => chunks
                .iter()
                .map(|c| format!("{prefix}{}", c.text))
                .collect(),
            _ => Vec::new(),
        }
    }
}
