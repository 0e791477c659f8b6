//! A job shared by several workers (cluster mode): its documents are items that workers
//! claim in batches. [`list_items`] turns a full sync into items: every document listed and
//! every document the ledger has that is gone. [`prepare_items`] and [`write_items`] do a batch of them, each
//! looked up in the source as it is now (so an item done twice, or late, does no harm):
//! fetched, parsed and chunked, embedded together with the rest of the batch, written, or
//! removed when the source no longer has it. What came of each is returned, for the job's
//! statistics, which the shared queue counts once per item.

use std::collections::HashSet;

use crate::job::IngestionJob;
use crate::prepare::{Prepared, prepare};
use crate::sidecar::{SIDECAR_SUFFIX, described_document};
use crate::sources::SourceObject;
use crate::sync::DocumentError;
use crate::sync::{SyncError, SyncTarget, embed_group, process_document, remove_document};

/// What one item came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    Unchanged,
    New,
    Modified {
        metadata_changed: bool,
    },
    MetadataOnly,
    Deleted,
    /// Neither in the source nor indexed: nothing to do.
    Absent,
    /// The document failed; the reason names it.
    Failed(String),
}

/// One processed item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemReport {
    pub key: String,
    pub outcome: ItemOutcome,
    /// Whether a metadata sidecar was found for it.
    pub sidecar: bool,
}

/// A full sync's items.
pub struct Listing {
    /// Documents listed, then documents indexed that are gone.
    pub keys: Vec<String>,
    pub documents_scanned: u64,
    pub metadata_documents_scanned: u64,
}

/// Lists the source: the items of a full sync.
pub fn list_items(target: &SyncTarget<'_>) -> Result<Listing, SyncError> {
    let objects = target.source.list()?;
    let mut keys = Vec::new();
    let mut sidecars = 0;
    for object in &objects {
        match described_document(&object.key) {
            Some(_) => sidecars += 1,
            None => keys.push(object.key.clone()),
        }
    }
    let documents_scanned = keys.len() as u64;
    let present: HashSet<&str> = keys.iter().map(String::as_str).collect();
    let gone: Vec<String> = target
        .ledger
        .entries(target.data_source_id)?
        .into_iter()
        .filter(|e| !present.contains(e.key.as_str()))
        .map(|e| e.key)
        .collect();
    keys.extend(gone);
    Ok(Listing {
        keys,
        documents_scanned,
        metadata_documents_scanned: sidecars,
    })
}

/// A batch made ready to write without writing anything: each document's listing, sidecar,
/// bytes, text and chunks (or why it failed), or that the source no longer has it. A worker
/// prepares its next batch while it embeds and writes the current one.
pub struct PreparedItems {
    items: Vec<PreparedItem>,
}

enum PreparedItem {
    Present {
        doc: SourceObject,
        sidecar: bool,
        prepared: Box<Result<Prepared, DocumentError>>,
    },
    Gone(String),
}

/// Reads what a batch of document keys needs, as the source has them now.
pub fn prepare_items(target: &SyncTarget<'_>, keys: &[String]) -> Result<PreparedItems, SyncError> {
    let mut items = Vec::with_capacity(keys.len());
    for key in keys {
        match target.source.stat(key)? {
            Some(doc) => {
                let sidecar = target.source.stat(&format!("{key}{SIDECAR_SUFFIX}"))?;
                let entry = target.ledger.entry(target.data_source_id, key)?;
                let prepared = prepare(
                    target.source,
                    target.chunker,
                    target.max_document_bytes,
                    &target.parse_options,
                    &doc,
                    sidecar.as_ref(),
                    entry.as_ref(),
                    &(),
                );
                items.push(PreparedItem::Present {
                    doc,
                    sidecar: sidecar.is_some(),
                    prepared: Box::new(prepared),
                });
            }
            None => items.push(PreparedItem::Gone(key.clone())),
        }
    }
    Ok(PreparedItems { items })
}

/// Embeds a prepared batch together and writes it: chunks, metadata, ledger entries, and the
/// removal of documents the source no longer has. A store, ledger, source or
/// embedding-server outage is the job's error; anything else fails its document alone.
pub fn write_items(
    target: &SyncTarget<'_>,
    batch: PreparedItems,
) -> Result<Vec<ItemReport>, SyncError> {
    let mut reports = Vec::with_capacity(batch.items.len());
    let mut present = Vec::new();
    for item in batch.items {
        match item {
            PreparedItem::Present {
                doc,
                sidecar,
                prepared,
            } => present.push(((doc, sidecar), *prepared)),
            PreparedItem::Gone(key) => {
                let mut scratch = scratch_job(target);
                if let Some(entry) = target.ledger.entry(target.data_source_id, &key)? {
                    remove_document(target, &mut scratch, &entry)?;
                }
                let outcome = if scratch.statistics.number_of_documents_deleted > 0 {
                    ItemOutcome::Deleted
                } else {
                    ItemOutcome::Absent
                };
                reports.push(ItemReport {
                    key,
                    outcome,
                    sidecar: false,
                });
            }
        }
    }
    let (docs, prepared): (Vec<_>, Vec<_>) = present.into_iter().unzip();
    let vectors = embed_group(target, &prepared, &())?;
    for (((doc, sidecar), prepared), vectors) in docs.into_iter().zip(prepared).zip(vectors) {
        let mut scratch = scratch_job(target);
        process_document(target, &mut scratch, &doc, prepared, vectors, &())?;
        let s = &scratch.statistics;
        let outcome = if s.number_of_documents_failed > 0 {
            ItemOutcome::Failed(scratch.failure_reasons.pop().unwrap_or_default())
        } else if s.number_of_new_documents_indexed > 0 {
            ItemOutcome::New
        } else if s.number_of_modified_documents_indexed > 0 {
            ItemOutcome::Modified {
                metadata_changed: s.number_of_metadata_documents_modified > 0,
            }
        } else if s.number_of_metadata_documents_modified > 0 {
            ItemOutcome::MetadataOnly
        } else {
            ItemOutcome::Unchanged
        };
        reports.push(ItemReport {
            key: doc.key.clone(),
            outcome,
            sidecar,
        });
    }
    Ok(reports)
}

/// A job record that only counts what one document came to.
fn scratch_job(target: &SyncTarget<'_>) -> IngestionJob {
    IngestionJob::starting("", target.data_source_id, None)
}
