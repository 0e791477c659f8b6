//! `HIERARCHICAL`: the document packed into parents of up to `parent_max_tokens`, each
//! parent packed into children of up to `child_max_tokens` that overlap by about
//! `overlap_tokens`. Children are embedded and searched; each carries its parent, which is
//! what a search returns (once, however many of its children match).

use std::sync::Arc;

use quarry_core::{Chunk, Chunker, ParsedDocument, Passage, TokenCounter};

use crate::SentencePacker;

pub struct Hierarchical {
    parents: SentencePacker,
    children: SentencePacker,
}

impl Hierarchical {
    pub fn new(
        parent_max_tokens: usize,
        child_max_tokens: usize,
        overlap_tokens: usize,
        counter: Arc<dyn TokenCounter>,
    ) -> Self {
        Self {
            parents: SentencePacker::with_overlap_tokens(parent_max_tokens, 0, counter.clone()),
            children: SentencePacker::with_overlap_tokens(
                child_max_tokens,
                overlap_tokens,
                counter,
            ),
        }
    }
}

impl Chunker for Hierarchical {
    fn chunk(&self, document: &ParsedDocument) -> Vec<Chunk> {
        let mut chunks = Vec::new();
        for parent in self.parents.chunk(document) {
            let passage = Passage {
                text: parent.text,
                span: parent.span.clone(),
                page: parent.page,
            };
            for mut child in self.children.chunk_range(document, parent.span) {
                child.parent = Some(passage.clone());
                chunks.push(child);
            }
        }
        chunks
    }
}
