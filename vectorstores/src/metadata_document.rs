//! A chunk's metadata as one JSON object, for stores that keep it whole (pgvector's JSONB
//! column, Qdrant's payload): the user's metadata, Bedrock's `x-amz-bedrock-kb-*` system keys
//! (so filters see what Retrieve returns) and Quarry's own `x-quarry-*` keys (the document key
//! and span), from which the chunk is rebuilt on the way back.

use quarry_core::metadata::{DATA_SOURCE_ID, PAGE_NUMBER, SOURCE_URI};
use quarry_core::{Metadata, MetadataValue, StoreError, StoredChunk};
use serde_json::{Map, Value, json};

pub const DOCUMENT_KEY: &str = "x-quarry-document-key";
pub const SPAN: &str = "x-quarry-span";

/// The chunk's metadata document.
pub fn to_document(chunk: &StoredChunk) -> Map<String, Value> {
    let mut m: Map<String, Value> = chunk
        .full_metadata()
        .iter()
        .map(|(k, v)| (k.clone(), v.to_json()))
        .collect();
    m.insert(DOCUMENT_KEY.into(), json!(chunk.document_key));
    m.insert(SPAN.into(), json!([chunk.span.start, chunk.span.end]));
    m
}

/// Keys a store writes itself, as opposed to the user's metadata.
pub fn is_system_key(k: &str) -> bool {
    k.starts_with("x-amz-bedrock-kb-") || k.starts_with("x-quarry-")
}

/// The chunk a metadata document describes, given what the store keeps beside it.
pub fn to_chunk(m: &Map<String, Value>, id: String, text: String, vector: Vec<f32>) -> StoredChunk {
    let text_of = |k: &str| {
        m.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let span = m
        .get(SPAN)
        .and_then(Value::as_array)
        .and_then(|a| Some(a.first()?.as_u64()? as usize..a.get(1)?.as_u64()? as usize))
        .unwrap_or(0..0);
    let metadata: Metadata = m
        .iter()
        .filter(|(k, _)| !is_system_key(k))
        .filter_map(|(k, v)| Some((k.clone(), MetadataValue::from_json(v)?)))
        .collect();
    StoredChunk {
        id,
        data_source_id: text_of(DATA_SOURCE_ID),
        document_key: text_of(DOCUMENT_KEY),
        source_uri: text_of(SOURCE_URI),
        text,
        span,
        page: m.get(PAGE_NUMBER).and_then(Value::as_f64).map(|p| p as u32),
        metadata,
        vector,
    }
}

/// The store's error for a vector of the wrong length.
pub fn check_dimension(expected: usize, v: &[f32]) -> Result<(), StoreError> {
    if v.len() == expected {
        Ok(())
    } else {
        Err(StoreError::WrongDimension {
            expected,
            got: v.len(),
        })
    }
}
