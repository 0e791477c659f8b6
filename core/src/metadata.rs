//! Metadata attributes as Bedrock defines them: string, number, boolean or list of strings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The system keys Bedrock puts on every chunk.
pub const SOURCE_URI: &str = "x-amz-bedrock-kb-source-uri";
pub const CHUNK_ID: &str = "x-amz-bedrock-kb-chunk-id";
pub const DATA_SOURCE_ID: &str = "x-amz-bedrock-kb-data-source-id";
pub const PAGE_NUMBER: &str = "x-amz-bedrock-kb-document-page-number";
/// Set on chunks of pages read by OCR.
pub const OCR: &str = "x-quarry-ocr";
/// The OCR engine's mean word confidence on the chunk's page, 0–100.
pub const OCR_CONFIDENCE: &str = "x-quarry-ocr-confidence";

/// One attribute value. Serialises as plain JSON (`"x"`, `2024`, `true`, `["a","b"]`), the
/// shape Bedrock returns in `RetrieveResponse.retrievalResults[].metadata`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MetadataValue {
    Bool(bool),
    Number(f64),
    String(String),
    StringList(Vec<String>),
}

impl MetadataValue {
    /// Converts a plain JSON value; `None` for shapes Bedrock does not allow (objects,
    /// nulls, lists of non-strings).
    pub fn from_json(value: &serde_json::Value) -> Option<Self> {
        use serde_json::Value;
        match value {
            Value::Bool(b) => Some(Self::Bool(*b)),
            Value::Number(n) => n.as_f64().map(Self::Number),
            Value::String(s) => Some(Self::String(s.clone())),
            Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .map(Self::StringList),
            Value::Null | Value::Object(_) => None,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("metadata values always serialise")
    }

    /// The text form used when an attribute is included in the embedded text.
    pub fn as_text(&self) -> String {
        match self {
            Self::Bool(b) => b.to_string(),
            Self::Number(n) => n.to_string(),
            Self::String(s) => s.clone(),
            Self::StringList(items) => items.join(", "),
        }
    }
}

pub type Metadata = BTreeMap<String, MetadataValue>;
