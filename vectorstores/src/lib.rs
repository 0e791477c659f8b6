//! Vector stores behind the `VectorStore` trait. `hnsw` (in-process, persisted in the data
//! directory) is the default. Every store runs the shared suite in [`suite`].
// (`unsafe` only in the distance kernels, for a prefetch hint)
#![deny(unsafe_code)]

pub mod hnsw;
mod metadata_document;
pub mod pgvector;
pub mod qdrant;
pub mod suite;

pub use hnsw::{HnswParams, HnswStore, Opened, Quantization};
pub use pgvector::{FieldMapping, PgVectorConfig, PgVectorStore};
pub use qdrant::{QdrantConfig, QdrantStore};
