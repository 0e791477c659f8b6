//! Quarry's shared vocabulary: the types every crate passes around (documents, chunks,
//! metadata, filters, configuration) and the traits each stage implements (`Parser`,
//! `Chunker`, `Embedder`, `VectorStore`). Nothing here does heavy work.
#![forbid(unsafe_code)]

pub mod chunk;
pub mod config;
pub mod document;
pub mod filter;
pub mod ids;
pub mod metadata;
pub mod traits;

pub use chunk::{Chunk, Passage, StoredChunk};
pub use document::{OcrPage, ParseOptions, ParsedDocument};
pub use filter::{Filter, FilterError, MetadataSource};
pub use metadata::{Metadata, MetadataValue};
pub use traits::{
    Chunker, EmbedError, Embedder, ParseError, Parser, SearchHit, StoreError, TokenCounter,
    VectorStore,
};
