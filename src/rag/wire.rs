//! RetrieveAndGenerate's citation JSON, as Bedrock sends it.

use quarry_core::SearchHit;
use quarry_generate::CitedPart;
use quarry_retrieve::RetrievalResult;
use serde_json::{Value, json};

/// A search result as a citation's `retrievedReferences` entry: content, location and
/// metadata, without the score.
pub fn reference(hit: &SearchHit) -> Value {
    let mut v = serde_json::to_value(RetrievalResult::from(hit.clone())).unwrap_or_default();
    if let Some(map) = v.as_object_mut() {
        map.remove("score");
    }
    v
}

/// One `Citation`: the cited span of the answer and the references behind it.
pub fn citation(part: &CitedPart, hits: &[SearchHit]) -> Value {
    json!({
        "generatedResponsePart": {
            "textResponsePart": {
                "text": part.text,
                "span": {"start": part.start, "end": part.end}
            }
        },
        "retrievedReferences": part.sources.iter().filter_map(|&i| hits.get(i)).map(reference).collect::<Vec<_>>()
    })
}
