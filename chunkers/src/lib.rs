//! Chunking strategies, as Bedrock names them: `DEFAULT`, `FIXED_SIZE`, `NONE`,
//! `HIERARCHICAL` and `SEMANTIC`. Token
//! counts come from the embedding model's own tokenizer, so no chunk is silently truncated
//! by the encoder.
#![forbid(unsafe_code)]

mod hierarchical;
mod semantic;
mod sentence_packer;
mod sentences;
mod whole_document;

use std::sync::Arc;

use quarry_core::config::ChunkingConfig;
use quarry_core::{Chunker, Embedder, TokenCounter};

pub use hierarchical::Hierarchical;
pub use semantic::{Semantic, percentile};
pub use sentence_packer::SentencePacker;
pub use sentences::sentence_spans;
pub use whole_document::WholeDocument;

/// Bedrock's default chunk size, before the model's own limit is applied.
pub const DEFAULT_MAX_TOKENS: usize = 300;
pub const DEFAULT_OVERLAP_PERCENTAGE: u8 = 20;

#[derive(Debug, thiserror::Error)]
pub enum ChunkingError {
    #[error(
        "chunking max_tokens {max_tokens} is above the embedding model's limit of {model_limit} tokens"
    )]
    AboveModelLimit {
        max_tokens: usize,
        model_limit: usize,
    },
}

/// Builds the chunker a data source's configuration asks for. The embedder counts tokens
/// (and, for SEMANTIC, embeds sentences to find where the meaning changes).
pub fn chunker_for(
    config: &ChunkingConfig,
    embedder: Arc<dyn Embedder>,
) -> Result<Box<dyn Chunker>, ChunkingError> {
    let counter: Arc<dyn TokenCounter> = embedder.clone();
    let model_limit = counter.max_content_tokens();
    let fits = |max_tokens: usize| {
        if max_tokens > model_limit {
            Err(ChunkingError::AboveModelLimit {
                max_tokens,
                model_limit,
            })
        } else {
            Ok(())
        }
    };
    Ok(match *config {
        ChunkingConfig::Default => Box::new(SentencePacker::new(
            DEFAULT_MAX_TOKENS.min(model_limit),
            DEFAULT_OVERLAP_PERCENTAGE,
            counter,
        )),
        ChunkingConfig::FixedSize {
            max_tokens,
            overlap_percentage,
        } => {
            fits(max_tokens)?;
            Box::new(SentencePacker::new(max_tokens, overlap_percentage, counter))
        }
        ChunkingConfig::None => Box::new(WholeDocument::new(counter)),
        ChunkingConfig::Hierarchical {
            parent_max_tokens,
            child_max_tokens,
            overlap_tokens,
        } => {
            fits(child_max_tokens)?;
            Box::new(Hierarchical::new(
                parent_max_tokens,
                child_max_tokens,
                overlap_tokens,
                counter,
            ))
        }
        ChunkingConfig::Semantic {
            max_tokens,
            buffer_size,
            breakpoint_percentile_threshold,
        } => {
            fits(max_tokens)?;
            Box::new(Semantic::new(
                max_tokens,
                buffer_size,
                breakpoint_percentile_threshold,
                embedder,
            ))
        }
    })
}
