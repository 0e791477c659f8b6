//! `<document>.metadata.json` sidecars, in both of Bedrock's forms:
//! plain `{"metadataAttributes": {"year": 2024}}` and typed
//! `{"metadataAttributes": {"k": {"value": {"type": "STRING", "stringValue": "x"}, "includeForEmbedding": true}}}`.

use quarry_core::{Metadata, MetadataValue};
use serde_json::Value;

/// Bedrock's limit on a metadata file.
pub const MAX_SIDECAR_BYTES: usize = 10 * 1024;
pub const SIDECAR_SUFFIX: &str = ".metadata.json";

/// Attributes from a sidecar. Those marked `includeForEmbedding` are also embedded with the
/// text, so changing them means re-embedding.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sidecar {
    pub attributes: Metadata,
    pub embedded: Vec<String>,
}

impl Sidecar {
    /// The lines prepended to each chunk's text for embedding.
    pub fn embedding_prefix(&self) -> String {
        self.embedded
            .iter()
            .filter_map(|k| {
                self.attributes
                    .get(k)
                    .map(|v| format!("{k}: {}\n", v.as_text()))
            })
            .collect()
    }
}

/// The document a sidecar key describes, if it is a sidecar.
pub fn described_document(key: &str) -> Option<&str> {
    key.strip_suffix(SIDECAR_SUFFIX)
        .filter(|d| !d.is_empty() && !d.ends_with('/'))
}

pub fn parse_sidecar(bytes: &[u8]) -> Result<Sidecar, String> {
    if bytes.len() > MAX_SIDECAR_BYTES {
        return Err(format!(
            "metadata file is {} bytes, over Bedrock's 10 KB limit",
            bytes.len()
        ));
    }
    let json: Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("metadata file is not valid JSON: {e}"))?;
    let attributes = json
        .get("metadataAttributes")
        .and_then(Value::as_object)
        .ok_or("metadata file needs a \"metadataAttributes\" object")?;
    let mut sidecar = Sidecar::default();
    for (key, value) in attributes {
        if key.starts_with("x-amz-bedrock-kb-") {
            return Err(format!("metadata key {key:?} is reserved"));
        }
        let (value, embed) = match value.get("value") {
            Some(typed) if value.is_object() => (
                typed_value(key, typed)?,
                value
                    .get("includeForEmbedding")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            ),
            _ => (
                MetadataValue::from_json(value).ok_or_else(|| {
                    format!(
                        "metadata {key:?}: must be a string, number, boolean or list of strings"
                    )
                })?,
                false,
            ),
        };
        if embed {
            sidecar.embedded.push(key.clone());
        }
        sidecar.attributes.insert(key.clone(), value);
    }
    Ok(sidecar)
}

fn typed_value(key: &str, typed: &Value) -> Result<MetadataValue, String> {
    let bad =
        || format!("metadata {key:?}: typed value needs \"type\" and the matching *Value field");
    let kind = typed.get("type").and_then(Value::as_str).ok_or_else(bad)?;
    let value = match kind {
        "STRING" => typed
            .get("stringValue")
            .and_then(Value::as_str)
            .map(|s| MetadataValue::String(s.into())),
        "NUMBER" => typed
            .get("numberValue")
            .and_then(Value::as_f64)
            .map(MetadataValue::Number),
        "BOOLEAN" => typed
            .get("booleanValue")
            .and_then(Value::as_bool)
            .map(MetadataValue::Bool),
        "STRING_LIST" => typed
            .get("stringListValue")
            .and_then(MetadataValue::from_json)
            .filter(|v| matches!(v, MetadataValue::StringList(_))),
        other => return Err(format!("metadata {key:?}: unknown type {other:?}")),
    };
    value.ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_forms() {
        let plain = parse_sidecar(br#"{"metadataAttributes": {"year": 2024, "team": "hr", "tags": ["a", "b"], "ok": true}}"#).unwrap();
        assert_eq!(plain.attributes["year"], MetadataValue::Number(2024.0));
        assert_eq!(
            plain.attributes["tags"],
            MetadataValue::StringList(vec!["a".into(), "b".into()])
        );
        assert!(plain.embedded.is_empty());
        let typed = parse_sidecar(
            br#"{"metadataAttributes": {
                "team": {"value": {"type": "STRING", "stringValue": "hr"}, "includeForEmbedding": true},
                "year": {"value": {"type": "NUMBER", "numberValue": 2023}, "includeForEmbedding": false},
                "tags": {"value": {"type": "STRING_LIST", "stringListValue": ["x"]}}}}"#,
        )
        .unwrap();
        assert_eq!(typed.attributes["team"], MetadataValue::String("hr".into()));
        assert_eq!(typed.attributes["year"], MetadataValue::Number(2023.0));
        assert_eq!(typed.embedded, ["team"]);
        assert_eq!(typed.embedding_prefix(), "team: hr\n");
    }

    #[test]
    fn refuses_bad_sidecars_with_reasons() {
        assert!(parse_sidecar(b"{").unwrap_err().contains("not valid JSON"));
        assert!(
            parse_sidecar(br#"{"attrs": {}}"#)
                .unwrap_err()
                .contains("metadataAttributes")
        );
        let big = format!(
            r#"{{"metadataAttributes": {{"a": "{}"}}}}"#,
            "x".repeat(11_000)
        );
        assert!(parse_sidecar(big.as_bytes()).unwrap_err().contains("10 KB"));
        assert!(
            parse_sidecar(br#"{"metadataAttributes": {"k": {"value": {"type": "DATE"}}}}"#)
                .unwrap_err()
                .contains("unknown type")
        );
        assert!(
            parse_sidecar(br#"{"metadataAttributes": {"x-amz-bedrock-kb-source-uri": "a"}}"#)
                .unwrap_err()
                .contains("reserved")
        );
    }

    #[test]
    fn names_the_document_a_sidecar_describes() {
        assert_eq!(
            described_document("dir/a.pdf.metadata.json"),
            Some("dir/a.pdf")
        );
        assert_eq!(described_document(".metadata.json"), None);
        assert_eq!(described_document("a.pdf"), None);
    }
}
