//! The chunking strategies with the real model's tokenizer.

use std::path::PathBuf;
use std::sync::Arc;

use quarry_chunkers::{ChunkingError, chunker_for};
use quarry_core::config::ChunkingConfig;
use quarry_core::{ParsedDocument, TokenCounter};
use quarry_embed::{BertEmbedder, ModelFiles};

fn counter() -> Arc<dyn TokenCounter> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/all-MiniLM-L6-v2");
    let files = ModelFiles::locate(Some(&dir), None).expect("run `make models` first");
    Arc::new(BertEmbedder::load(files).unwrap())
}

fn essay() -> String {
    (0..120)
        .map(|i| {
            format!(
                "Sentence number {i} talks about topic {} in some detail.",
                i % 7
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn fixed_size_never_exceeds_max_tokens_and_overlaps() {
    let counter = counter();
    let config = ChunkingConfig::FixedSize {
        max_tokens: 60,
        overlap_percentage: 20,
    };
    let chunker = chunker_for(&config, counter.clone()).unwrap();
    let doc = ParsedDocument::plain(essay());
    let chunks = chunker.chunk(&doc);
    assert!(chunks.len() > 5);
    for pair in chunks.windows(2) {
        // The next chunk starts inside the previous one (overlap) but after its start.
        assert!(pair[1].span.start < pair[0].span.end, "no overlap");
        assert!(pair[1].span.start > pair[0].span.start);
    }
    for c in &chunks {
        assert!(
            counter.count_tokens(&c.text) <= 60,
            "{} tokens",
            counter.count_tokens(&c.text)
        );
        assert_eq!(&doc.text[c.span.clone()], c.text);
        assert!(
            c.text.starts_with("Sentence") && c.text.ends_with('.'),
            "not on sentence bounds: {:?}",
            c.text
        );
    }
    assert_eq!(chunks.last().unwrap().span.end, doc.text.len());
}

#[test]
fn default_uses_the_models_limit_and_twenty_percent_overlap() {
    let counter = counter();
    let chunker = chunker_for(&ChunkingConfig::Default, counter.clone()).unwrap();
    let chunks = chunker.chunk(&ParsedDocument::plain(essay()));
    let max = chunks
        .iter()
        .map(|c| counter.count_tokens(&c.text))
        .max()
        .unwrap();
    assert!(max <= 254 && max > 200, "largest chunk {max} tokens");
}

#[test]
fn a_sentence_longer_than_a_chunk_is_split_between_words() {
    let counter = counter();
    let config = ChunkingConfig::FixedSize {
        max_tokens: 20,
        overlap_percentage: 10,
    };
    let chunker = chunker_for(&config, counter.clone()).unwrap();
    let text = format!("{} end.", "alpha beta gamma delta ".repeat(30));
    let chunks = chunker.chunk(&ParsedDocument::plain(text));
    assert!(chunks.len() >= 6);
    assert!(chunks.iter().all(|c| counter.count_tokens(&c.text) <= 20));
}

#[test]
fn none_keeps_one_chunk_and_pages_follow_spans() {
    let counter = counter();
    let chunker = chunker_for(&ChunkingConfig::None, counter).unwrap();
    let doc = ParsedDocument {
        text: "  page one text\u{c}page two text ".into(),
        page_starts: vec![0, 16],
    };
    let chunks = chunker.chunk(&doc);
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0].text, "page one text\u{c}page two text");
    assert_eq!(chunks[0].page, Some(1));
    assert!(
        chunker
            .chunk(&ParsedDocument::plain("   ".into()))
            .is_empty()
    );
}

#[test]
fn max_tokens_above_the_models_limit_is_refused_naming_both() {
    let config = ChunkingConfig::FixedSize {
        max_tokens: 400,
        overlap_percentage: 20,
    };
    match chunker_for(&config, counter()) {
        Err(e @ ChunkingError::AboveModelLimit { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("400") && msg.contains("254"), "{msg}");
        }
        Ok(_) => panic!("accepted max_tokens 400"),
    }
}
