//! Chunks: what a chunker produces, and what a vector store keeps.

use std::ops::Range;

use crate::metadata::Metadata;

/// A piece of a document's text, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// What is embedded and searched.
    pub text: String,
    /// Byte range of the chunk in the parsed document's text.
    pub span: Range<usize>,
    pub page: Option<u32>,
    /// HIERARCHICAL chunking: the parent passage a search returns when this child matches.
    pub parent: Option<Passage>,
}

/// A passage of a document: its text and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Passage {
    pub text: String,
    pub span: Range<usize>,
    pub page: Option<u32>,
}

impl Chunk {
    /// What a search returns for this chunk: its parent's passage when it has one, else
    /// itself. Children of one parent share it, and searches return it once.
    pub fn returned_passage(&self) -> Passage {
        self.parent.clone().unwrap_or_else(|| Passage {
            text: self.text.clone(),
            span: self.span.clone(),
            page: self.page,
        })
    }
}

/// A chunk as stored: its text, vector, the document it belongs to and its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredChunk {
    /// Deterministic id (same document, position and text give the same id), so upserts are
    /// idempotent.
    pub id: String,
    pub data_source_id: String,
    /// The document's key within its data source (relative path or S3 key).
    pub document_key: String,
    pub source_uri: String,
    pub text: String,
    pub span: Range<usize>,
    pub page: Option<u32>,
    /// User metadata from the document's sidecar. System keys are added when results are
    /// returned (see [`StoredChunk::full_metadata`]).
    pub metadata: Metadata,
    pub vector: Vec<f32>,
}

impl StoredChunk {
    /// User metadata plus the `x-amz-bedrock-kb-*` system keys, as filters see it and as
    /// Retrieve returns it.
    pub fn full_metadata(&self) -> Metadata {
        use crate::metadata::{CHUNK_ID, DATA_SOURCE_ID, MetadataValue, PAGE_NUMBER, SOURCE_URI};
        let mut all = self.metadata.clone();
        all.insert(
            SOURCE_URI.into(),
            MetadataValue::String(self.source_uri.clone()),
        );
        all.insert(CHUNK_ID.into(), MetadataValue::String(self.id.clone()));
        all.insert(
            DATA_SOURCE_ID.into(),
            MetadataValue::String(self.data_source_id.clone()),
        );
        if let Some(page) = self.page {
            all.insert(PAGE_NUMBER.into(), MetadataValue::Number(f64::from(page)));
        }
        all
    }
}
