//! What the index keeps of each chunk besides its vector, held compactly. A chunk's metadata
//! as filters see it is its user metadata plus the system keys (source URI, data source, chunk
//! id, page); held as one map per chunk that was about 1.2 KB a chunk, more than an int8
//! vector. Here a chunk holds its id, its document (shared by the document's chunks, which
//! arrive together) and its user metadata (shared by every chunk whose metadata is the same,
//! as a document's chunks' usually is); the system keys are answered from those.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use quarry_core::metadata::{CHUNK_ID, DATA_SOURCE_ID, PAGE_NUMBER, SOURCE_URI};
use quarry_core::{Metadata, MetadataSource, MetadataValue, StoredChunk};

/// A document, shared by its chunks' entries. The system values are kept as metadata values
/// so a filter reads them without copying.
#[derive(PartialEq)]
pub(super) struct Document {
    pub document_key: String,
    data_source_id: MetadataValue,
    source_uri: MetadataValue,
}

impl Document {
    pub fn new(data_source_id: String, document_key: String, source_uri: String) -> Self {
        Self {
            document_key,
            data_source_id: MetadataValue::String(data_source_id),
            source_uri: MetadataValue::String(source_uri),
        }
    }

    pub fn data_source_id(&self) -> &str {
        text(&self.data_source_id)
    }

    pub fn source_uri(&self) -> &str {
        text(&self.source_uri)
    }
}

fn text(value: &MetadataValue) -> &str {
    match value {
        MetadataValue::String(s) => s,
        _ => "",
    }
}

/// What searches need of each live chunk besides its vector; text and spans stay in SQLite.
pub(super) struct Entry {
    pub chunk_id: Arc<str>,
    pub document: Arc<Document>,
    /// The user metadata, without the system keys.
    pub metadata: Arc<Metadata>,
    pub page: Option<u32>,
}

impl Entry {
    /// A chunk's entry (not yet shared with its neighbours': see [`Interner`]) and its vector.
    pub fn split(chunk: StoredChunk) -> (Self, Vec<f32>) {
        let entry = Entry {
            chunk_id: chunk.id.into(),
            document: Arc::new(Document::new(
                chunk.data_source_id,
                chunk.document_key,
                chunk.source_uri,
            )),
            metadata: Arc::new(chunk.metadata),
            page: chunk.page,
        };
        (entry, chunk.vector)
    }

    pub fn data_source_id(&self) -> &str {
        self.document.data_source_id()
    }

    pub fn document_key(&self) -> &str {
        &self.document.document_key
    }
}

/// The system keys first (they win over user keys of the same name, as in
/// `StoredChunk::full_metadata`), then the user metadata.
impl MetadataSource for Entry {
    fn value(&self, key: &str) -> Option<Cow<'_, MetadataValue>> {
        match key {
            SOURCE_URI => Some(Cow::Borrowed(&self.document.source_uri)),
            DATA_SOURCE_ID => Some(Cow::Borrowed(&self.document.data_source_id)),
            CHUNK_ID => Some(Cow::Owned(MetadataValue::String(self.chunk_id.to_string()))),
            PAGE_NUMBER if self.page.is_some() => self
                .page
                .map(|p| Cow::Owned(MetadataValue::Number(f64::from(p)))),
            _ => self.metadata.get(key).map(Cow::Borrowed),
        }
    }
}

/// Shares documents and metadata maps between entries: a document with the entry added just
/// before it (a document's chunks arrive together), a metadata map with every equal one seen
/// (keyed by its JSON, which a sorted map makes canonical). Maps stay known while the index
/// lives; a compaction starts a new interner.
#[derive(Default)]
pub(super) struct Interner {
    maps: HashMap<String, Arc<Metadata>>,
    last_document: Option<Arc<Document>>,
}

impl Interner {
    pub fn share(&mut self, mut entry: Entry) -> Entry {
        entry.document = self.document(entry.document);
        let key = serde_json::to_string(&*entry.metadata).unwrap_or_default();
        entry.metadata = self.maps.entry(key).or_insert(entry.metadata).clone();
        entry
    }

    pub fn document(&mut self, document: Arc<Document>) -> Arc<Document> {
        match &self.last_document {
            Some(last) if **last == *document => last.clone(),
            _ => {
                self.last_document = Some(document.clone());
                document
            }
        }
    }

    /// The map a JSON text holds, parsed only the first time it is seen.
    pub fn metadata_json(&mut self, json: String) -> Result<Arc<Metadata>, serde_json::Error> {
        if let Some(map) = self.maps.get(&json) {
            return Ok(map.clone());
        }
        let map: Arc<Metadata> = Arc::new(serde_json::from_str(&json)?);
        self.maps.insert(json, map.clone());
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use quarry_core::Filter;
    use serde_json::json;

    use super::*;

    fn chunk(id: &str, doc: &str, page: Option<u32>, meta: serde_json::Value) -> StoredChunk {
        StoredChunk {
            id: id.into(),
            data_source_id: "DS".into(),
            document_key: doc.into(),
            source_uri: format!("s3://b/{doc}"),
            text: "t".into(),
            span: 0..1,
            page,
            metadata: meta
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), MetadataValue::from_json(v).unwrap()))
                .collect(),
            vector: vec![1.0],
        }
    }

    /// Every filter sees an entry exactly as it sees the chunk's full metadata.
    #[test]
    fn filters_see_an_entry_as_the_full_metadata() {
        let chunks = [
            chunk("c1", "a.txt", Some(3), json!({"year": 2024, "team": "hr"})),
            chunk("c2", "b.txt", None, json!({"tags": ["x", "y"]})),
            // a user key named like a system key loses to the system value
            chunk(
                "c3",
                "c.txt",
                Some(1),
                json!({(PAGE_NUMBER): 9, "year": 2020}),
            ),
        ];
        let filters = [
            json!({"equals": {"key": SOURCE_URI, "value": "s3://b/a.txt"}}),
            json!({"startsWith": {"key": SOURCE_URI, "value": "s3://b/"}}),
            json!({"equals": {"key": DATA_SOURCE_ID, "value": "DS"}}),
            json!({"equals": {"key": CHUNK_ID, "value": "c2"}}),
            json!({"equals": {"key": PAGE_NUMBER, "value": 3}}),
            json!({"equals": {"key": PAGE_NUMBER, "value": 9}}),
            json!({"notEquals": {"key": PAGE_NUMBER, "value": 1}}),
            json!({"greaterThan": {"key": "year", "value": 2021}}),
            json!({"listContains": {"key": "tags", "value": "y"}}),
            json!({"andAll": [{"equals": {"key": "team", "value": "hr"}}, {"lessThan": {"key": PAGE_NUMBER, "value": 5}}]}),
            json!({"notIn": {"key": "team", "value": ["hr"]}}),
        ];
        let mut interner = Interner::default();
        for c in chunks {
            let full = c.full_metadata();
            let entry = interner.share(Entry::split(c).0);
            for f in &filters {
                let f = Filter::from_json(f).unwrap();
                assert_eq!(f.matches_in(&entry), f.matches(&full), "{f:?} on {full:?}");
            }
        }
    }

    #[test]
    fn equal_maps_and_a_documents_chunks_are_shared() {
        let mut interner = Interner::default();
        let a1 = interner.share(Entry::split(chunk("1", "a", None, json!({"k": 1}))).0);
        let a2 = interner.share(Entry::split(chunk("2", "a", None, json!({"k": 1}))).0);
        let b = interner.share(Entry::split(chunk("3", "b", None, json!({"k": 1}))).0);
        let c = interner.share(Entry::split(chunk("4", "b", None, json!({"k": 2}))).0);
        assert!(Arc::ptr_eq(&a1.document, &a2.document));
        assert!(!Arc::ptr_eq(&a1.document, &b.document));
        assert!(Arc::ptr_eq(&b.document, &c.document));
        assert!(Arc::ptr_eq(&a1.metadata, &b.metadata));
        assert!(!Arc::ptr_eq(&b.metadata, &c.metadata));
        let json = serde_json::to_string(&*a1.metadata).unwrap();
        let parsed = interner.metadata_json(json).unwrap();
        assert!(Arc::ptr_eq(&parsed, &a1.metadata));
    }
}
