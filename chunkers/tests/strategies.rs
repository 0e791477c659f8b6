//! The chunking strategies with the real model's tokenizer.

use std::path::PathBuf;
use std::sync::Arc;

use quarry_chunkers::{ChunkingError, chunker_for};
use quarry_core::config::ChunkingConfig;
use quarry_core::{Embedder, ParsedDocument};
use quarry_embed::{BertEmbedder, ModelFiles};

fn counter() -> Arc<dyn Embedder> {
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
        ..ParsedDocument::default()
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

#[test]
fn hierarchical_children_nest_in_parents_that_they_share() {
    let counter = counter();
    let config = ChunkingConfig::Hierarchical {
        parent_max_tokens: 150,
        child_max_tokens: 40,
        // A sentence of the essay is about 13 tokens; overlap is in whole sentences.
        overlap_tokens: 15,
    };
    let chunker = chunker_for(&config, counter.clone()).unwrap();
    let doc = ParsedDocument::plain(essay());
    let chunks = chunker.chunk(&doc);
    let mut parents: Vec<std::ops::Range<usize>> = Vec::new();
    for c in &chunks {
        let parent = c.parent.as_ref().expect("every child has its parent");
        assert!(counter.count_tokens(&c.text) <= 40);
        assert!(counter.count_tokens(&parent.text) <= 150);
        assert_eq!(&doc.text[parent.span.clone()], parent.text);
        assert!(parent.span.start <= c.span.start && c.span.end <= parent.span.end);
        assert_eq!(c.returned_passage().text, parent.text);
        if parents.last() != Some(&parent.span) {
            parents.push(parent.span.clone());
        }
    }
    // Several parents, several children each, parents tiling the document in order.
    assert!(parents.len() >= 5, "{} parents", parents.len());
    assert!(chunks.len() >= 3 * parents.len());
    for pair in parents.windows(2) {
        assert!(pair[0].end <= pair[1].start);
    }
    // Children of one parent overlap.
    let first: Vec<_> = chunks
        .iter()
        .filter(|c| c.parent.as_ref().unwrap().span == parents[0])
        .collect();
    assert!(first[1].span.start < first[0].span.end);
}

#[test]
fn hierarchical_child_size_is_held_to_the_models_limit() {
    let config = ChunkingConfig::Hierarchical {
        parent_max_tokens: 1500,
        child_max_tokens: 300,
        overlap_tokens: 60,
    };
    assert!(matches!(
        chunker_for(&config, counter()),
        Err(ChunkingError::AboveModelLimit {
            max_tokens: 300,
            model_limit: 254
        })
    ));
}

#[test]
fn semantic_breaks_where_the_topic_changes() {
    let counter = counter();
    let cooking = [
        "Whisk the eggs with sugar until pale.",
        "Fold in the flour gently with a spatula.",
        "Bake the cake batter for forty minutes in a hot oven.",
        "Let the sponge cool before icing it with buttercream.",
    ];
    let space = [
        "The rocket reached orbit after the second stage burn.",
        "Astronauts docked the capsule with the space station.",
        "Solar panels on the spacecraft unfolded in orbit.",
        "Mission control tracked the satellite across the sky.",
    ];
    let text = cooking
        .iter()
        .chain(&space)
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let config = ChunkingConfig::Semantic {
        max_tokens: 200,
        buffer_size: 1,
        breakpoint_percentile_threshold: 90,
    };
    let chunker = chunker_for(&config, counter.clone()).unwrap();
    let doc = ParsedDocument::plain(text);
    let chunks = chunker.chunk(&doc);
    // With seven gaps, the 90th percentile leaves one break: between the topics.
    let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(texts, [cooking.join(" "), space.join(" ")], "{texts:#?}");
    for c in &chunks {
        assert_eq!(&doc.text[c.span.clone()], c.text);
    }
}

#[test]
fn semantic_pieces_above_max_tokens_are_split_further() {
    let counter = counter();
    let config = ChunkingConfig::Semantic {
        max_tokens: 30,
        buffer_size: 0,
        breakpoint_percentile_threshold: 99,
    };
    let chunker = chunker_for(&config, counter.clone()).unwrap();
    let chunks = chunker.chunk(&ParsedDocument::plain(essay()));
    assert!(chunks.len() > 10);
    assert!(chunks.iter().all(|c| counter.count_tokens(&c.text) <= 30));
}

/// A remote OpenAI model: chunks are measured in its own tokens (cl100k_base) and limited
/// by its own `max_tokens`; nothing is sent to count them.
#[test]
fn chunks_for_a_remote_model_count_its_tokens() {
    use quarry_core::config::RemoteEmbeddingConfig;
    use quarry_embed::{Protocol, RemoteEmbedder};

    let remote = RemoteEmbeddingConfig {
        base_url: "http://127.0.0.1:9/v1".into(),
        base_urls: Vec::new(),
        model: Some("text-embedding-3-small".into()),
        api_key_env: None,
        dimensions: 1536,
        tokenizer: Some("cl100k_base".into()),
        max_tokens: 120,
        batch_size: 32,
        max_concurrent: 4,
        timeout_secs: 5,
        max_retries: 0,
    };
    let embedder: Arc<dyn Embedder> =
        Arc::new(RemoteEmbedder::new(Protocol::OpenAi, remote).unwrap());
    assert_eq!(embedder.count_tokens("hello world"), 2);
    assert_eq!(embedder.count_tokens(&" word".repeat(1000)), 1000);
    let config = ChunkingConfig::FixedSize {
        max_tokens: 60,
        overlap_percentage: 10,
    };
    let chunker = chunker_for(&config, embedder.clone()).unwrap();
    let text: String = (0..200)
        .map(|i| format!("Robot unit {i} passed inspection step {}. ", i % 7))
        .collect();
    let chunks = chunker.chunk(&ParsedDocument::plain(text));
    assert!(chunks.len() > 5);
    for (i, c) in chunks.iter().enumerate() {
        let n = embedder.count_tokens(&c.text);
        let least = if i + 1 == chunks.len() { 1 } else { 30 };
        assert!((least..=60).contains(&n), "{n} tokens: {}", c.text);
    }
    let too_big = ChunkingConfig::FixedSize {
        max_tokens: 200,
        overlap_percentage: 10,
    };
    assert!(matches!(
        chunker_for(&too_big, embedder),
        Err(ChunkingError::AboveModelLimit {
            max_tokens: 200,
            model_limit: 120
        })
    ));
}
