//! `NONE`: the whole document as one chunk.

use std::sync::Arc;

use quarry_core::{Chunk, Chunker, ParsedDocument, TokenCounter};

pub struct WholeDocument {
    counter: Arc<dyn TokenCounter>,
}

impl WholeDocument {
    pub fn new(counter: Arc<dyn TokenCounter>) -> Self {
        Self { counter }
    }
}

impl Chunker for WholeDocument {
    fn chunk(&self, document: &ParsedDocument) -> Vec<Chunk> {
        let text = document.text.trim();
        if text.is_empty() {
            return Vec::new();
        }
        let tokens = self.counter.count_tokens(text);
        let limit = self.counter.max_content_tokens();
        if tokens > limit {
            tracing::warn!(
                tokens,
                limit,
                "chunking NONE: the document is longer than the model takes; its embedding covers only the first {limit} tokens"
            );
        }
        let start = document.text.len() - document.text.trim_start().len();
        vec![Chunk {
            text: text.to_owned(),
            span: start..start + text.len(),
            page: document.page_at(start),
            parent: None,
        }]
    }
}
