//! Direct ingestion, as Bedrock's IngestKnowledgeBaseDocuments, DeleteKnowledgeBaseDocuments,
//! GetKnowledgeBaseDocuments and ListKnowledgeBaseDocuments do it: documents given inline
//! (text, or bytes with a MIME type) or named by their S3 location, indexed at once with
//! the same write path (and crash safety) as a sync.

use chrono::{DateTime, Utc};
use quarry_core::{Metadata, ParsedDocument};

use crate::ledger::LedgerEntry;
use crate::parsers::parse_document_with;
use crate::sync::{DocumentError, SyncError, SyncTarget, sha256_hex, write_document};

/// How a document is named: Bedrock's `DocumentIdentifier`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentId {
    Custom(String),
    S3 { uri: String },
}

impl DocumentId {
    /// The document's key in the ledger and the store.
    fn key(&self, bucket: Option<&str>) -> Result<String, String> {
        match self {
            DocumentId::Custom(id) => Ok(id.clone()),
            DocumentId::S3 { uri } => {
                let (b, key) = uri
                    .strip_prefix("s3://")
                    .and_then(|rest| rest.split_once('/'))
                    .ok_or_else(|| format!("{uri} is not an s3://bucket/key URI"))?;
                match bucket {
                    Some(expected) if expected == b => Ok(key.to_owned()),
                    Some(expected) => Err(format!(
                        "{uri} is not in this data source's bucket {expected}"
                    )),
                    None => {
                        Err("this data source has no bucket; name documents by a custom id".into())
                    }
                }
            }
        }
    }
}

/// A document's content.
#[derive(Debug, Clone)]
pub enum Content {
    Text(String),
    Bytes {
        mime_type: String,
        data: Vec<u8>,
    },
    /// Read from the data source (an S3 document named by its location).
    FromSource,
}

#[derive(Debug, Clone)]
pub struct DirectDocument {
    pub id: DocumentId,
    pub content: Content,
    pub metadata: Metadata,
}

/// One document's state, as Bedrock's `KnowledgeBaseDocumentDetail` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentDetail {
    pub id: DocumentId,
    /// `INDEXED`, `FAILED`, `NOT_FOUND` or `DELETING`.
    pub status: &'static str,
    pub status_reason: Option<String>,
    pub updated_at: DateTime<Utc>,
}

fn detail(id: &DocumentId, status: &'static str, reason: Option<String>) -> DocumentDetail {
    DocumentDetail {
        id: id.clone(),
        status,
        status_reason: reason,
        updated_at: Utc::now(),
    }
}

/// The extension the parsers know a MIME type by.
fn extension_of(mime_type: &str) -> Option<&'static str> {
    let essence = mime_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    Some(match essence.as_str() {
        "text/plain" => "txt",
        "text/markdown" | "text/x-markdown" => "md",
        "text/html" | "application/xhtml+xml" => "html",
        "text/csv" => "csv",
        "application/pdf" => "pdf",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "application/vnd.ms-excel" => "xls",
        "image/png" => "png",
        "image/jpeg" => "jpeg",
        "image/tiff" => "tiff",
        "image/bmp" => "bmp",
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => return None,
    })
}

/// Indexes each document now; a document that fails is reported FAILED with its reason and
/// leaves the others alone.
pub fn ingest(
    target: &SyncTarget<'_>,
    bucket: Option<&str>,
    documents: &[DirectDocument],
) -> Result<Vec<DocumentDetail>, SyncError> {
    let mut out = Vec::with_capacity(documents.len());
    for doc in documents {
        match ingest_one(target, bucket, doc) {
            Ok(()) => out.push(detail(&doc.id, "INDEXED", None)),
            Err(DocumentError::Failed(reason)) => out.push(detail(&doc.id, "FAILED", Some(reason))),
            Err(DocumentError::Fatal(e)) => return Err(e),
        }
    }
    // A sync of the same knowledge base may be holding lexical changes back: these must be
    // searchable when the request returns.
    target.store.flush()?;
    Ok(out)
}

fn ingest_one(
    target: &SyncTarget<'_>,
    bucket: Option<&str>,
    doc: &DirectDocument,
) -> Result<(), DocumentError> {
    let key = doc.id.key(bucket).map_err(DocumentError::Failed)?;
    let (bytes, parsed): (Vec<u8>, ParsedDocument) = match &doc.content {
        Content::Text(text) => (
            text.as_bytes().to_vec(),
            ParsedDocument::plain(text.clone()),
        ),
        Content::Bytes { mime_type, data } => {
            let ext = extension_of(mime_type).ok_or_else(|| {
                DocumentError::Failed(format!("unsupported MIME type {mime_type:?}"))
            })?;
            let parsed = parse_document_with(
                &format!("document.{ext}"),
                data,
                target.max_document_bytes,
                &target.parse_options,
            )
            .map_err(|e| DocumentError::Failed(e.to_string()))?;
            (data.clone(), parsed)
        }
        Content::FromSource => {
            let data = target.source.fetch(&key)?;
            let parsed = parse_document_with(
                &key,
                &data,
                target.max_document_bytes,
                &target.parse_options,
            )
            .map_err(|e| DocumentError::Failed(e.to_string()))?;
            (data, parsed)
        }
    };
    if parsed.text.trim().is_empty() {
        return Err(DocumentError::Failed(
            quarry_core::ParseError::Empty.to_string(),
        ));
    }
    let source_uri = match &doc.id {
        DocumentId::Custom(id) => id.clone(),
        DocumentId::S3 { uri } => uri.clone(),
    };
    let metadata_json = serde_json::to_vec(&doc.metadata).unwrap_or_default();
    let entry = LedgerEntry {
        key: key.clone(),
        size: bytes.len() as u64,
        version: "direct".into(),
        content_hash: sha256_hex(&bytes),
        sidecar_version: String::new(),
        sidecar_hash: if doc.metadata.is_empty() {
            String::new()
        } else {
            sha256_hex(&metadata_json)
        },
        embedded_metadata_hash: String::new(),
        chunk_ids: Vec::new(),
        pending: true,
    };
    write_document(
        target,
        &key,
        &source_uri,
        &parsed,
        &doc.metadata,
        "",
        &(),
        entry,
    )?;
    Ok(())
}

/// Removes documents and their chunks; unknown ones are reported NOT_FOUND.
pub fn delete(
    target: &SyncTarget<'_>,
    bucket: Option<&str>,
    ids: &[DocumentId],
) -> Result<Vec<DocumentDetail>, SyncError> {
    let ds = target.data_source_id;
    let known = target.ledger.entries(ds)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let Ok(key) = id.key(bucket) else {
            out.push(detail(
                id,
                "NOT_FOUND",
                Some("not a document of this data source".into()),
            ));
            continue;
        };
        if !known.iter().any(|e| e.key == key) {
            out.push(detail(id, "NOT_FOUND", None));
            continue;
        }
        target.ledger.mark_pending(ds, &key)?;
        target.store.delete_document(ds, &key)?;
        target.ledger.remove(ds, &key)?;
        out.push(detail(id, "DELETING", None));
    }
    target.store.flush()?;
    Ok(out)
}

/// The state of the named documents.
pub fn get(
    target: &SyncTarget<'_>,
    bucket: Option<&str>,
    ids: &[DocumentId],
) -> Result<Vec<DocumentDetail>, SyncError> {
    let known = target.ledger.entries(target.data_source_id)?;
    Ok(ids
        .iter()
        .map(|id| {
            match id
                .key(bucket)
                .ok()
                .and_then(|k| known.iter().find(|e| e.key == k))
            {
                Some(e) if !e.pending => detail(id, "INDEXED", None),
                Some(_) => detail(id, "PENDING", None),
                None => detail(id, "NOT_FOUND", None),
            }
        })
        .collect())
}

/// Every document of the data source, in key order.
pub fn list(
    target: &SyncTarget<'_>,
    bucket: Option<&str>,
) -> Result<Vec<DocumentDetail>, SyncError> {
    Ok(target
        .ledger
        .entries(target.data_source_id)?
        .into_iter()
        .map(|e| {
            let id = match bucket {
                Some(b) => DocumentId::S3 {
                    uri: format!("s3://{b}/{}", e.key),
                },
                None => DocumentId::Custom(e.key.clone()),
            };
            detail(&id, if e.pending { "PENDING" } else { "INDEXED" }, None)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_types() {
        assert_eq!(
            DocumentId::Custom("doc-1".into()).key(None).unwrap(),
            "doc-1"
        );
        let s3 = DocumentId::S3 {
            uri: "s3://docs/a/b.txt".into(),
        };
        assert_eq!(s3.key(Some("docs")).unwrap(), "a/b.txt");
        assert!(s3.key(Some("other")).unwrap_err().contains("bucket other"));
        assert_eq!(extension_of("text/html; charset=utf-8"), Some("html"));
        assert_eq!(extension_of("image/png"), Some("png"));
        assert_eq!(extension_of("video/mp4"), None);
    }
}
