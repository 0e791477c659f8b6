//! Bedrock's `RetrieveResponse` JSON, field for field.

use quarry_core::SearchHit;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetrieveResponse {
    pub retrieval_results: Vec<RetrievalResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RetrievalResult {
    pub content: Content,
    pub location: Location,
    /// SEMANTIC: cosine similarity of the query and the passage, in [-1, 1]. HYBRID: the
    /// fused score, in [0, 1]. Higher is closer either way.
    pub score: f64,
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Content {
    pub text: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// Where a passage came from: an S3 object, or (for local folders) a custom document
/// location holding the `file://` URI.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    S3 { uri: String },
    Custom { id: String },
}

impl Location {
    pub fn from_uri(uri: &str) -> Self {
        if uri.starts_with("s3://") {
            Self::S3 {
                uri: uri.to_owned(),
            }
        } else {
            Self::Custom { id: uri.to_owned() }
        }
    }

    pub fn uri(&self) -> &str {
        match self {
            Self::S3 { uri } => uri,
            Self::Custom { id } => id,
        }
    }
}

impl Serialize for Location {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        match self {
            Self::S3 { uri } => {
                map.serialize_entry("type", "S3")?;
                map.serialize_entry("s3Location", &serde_json::json!({ "uri": uri }))?;
            }
            Self::Custom { id } => {
                map.serialize_entry("type", "CUSTOM")?;
                map.serialize_entry("customDocumentLocation", &serde_json::json!({ "id": id }))?;
            }
        }
        map.end()
    }
}

impl From<SearchHit> for RetrievalResult {
    fn from(hit: SearchHit) -> Self {
        let metadata = hit
            .chunk
            .full_metadata()
            .into_iter()
            .map(|(k, v)| (k, v.to_json()))
            .collect();
        RetrievalResult {
            location: Location::from_uri(&hit.chunk.source_uri),
            content: Content {
                text: hit.chunk.text,
                kind: "TEXT",
            },
            score: f64::from(hit.score),
            metadata,
        }
    }
}

#[cfg(test)]
mod tests {
    use quarry_core::{Metadata, MetadataValue, StoredChunk};

    use super::*;

    #[test]
    fn serialises_like_bedrock() {
        let mut metadata = Metadata::new();
        metadata.insert("year".into(), MetadataValue::Number(2024.0));
        let hit = SearchHit {
            chunk: StoredChunk {
                id: "abc".into(),
                data_source_id: "DS00000001".into(),
                document_key: "a.pdf".into(),
                source_uri: "s3://bucket/a.pdf".into(),
                text: "hello".into(),
                span: 0..5,
                page: Some(2),
                metadata,
                vector: vec![],
            },
            score: 0.5,
        };
        let v = serde_json::to_value(RetrieveResponse {
            retrieval_results: vec![hit.into()],
            next_token: None,
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"retrievalResults": [{
                "content": {"text": "hello", "type": "TEXT"},
                "location": {"type": "S3", "s3Location": {"uri": "s3://bucket/a.pdf"}},
                "score": 0.5,
                "metadata": {
                    "year": 2024.0,
                    "x-amz-bedrock-kb-source-uri": "s3://bucket/a.pdf",
                    "x-amz-bedrock-kb-chunk-id": "abc",
                    "x-amz-bedrock-kb-data-source-id": "DS00000001",
                    "x-amz-bedrock-kb-document-page-number": 2.0
                }
            }]})
        );
        let local = Location::from_uri("file:///tmp/a.txt");
        assert_eq!(
            serde_json::to_value(local).unwrap(),
            serde_json::json!({"type": "CUSTOM", "customDocumentLocation": {"id": "file:///tmp/a.txt"}})
        );
    }
}
