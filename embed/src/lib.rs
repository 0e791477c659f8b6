//! The embedding core: a BERT-family sentence encoder (BERT, MiniLM, BGE, E5, GTE layouts)
//! loaded from `config.json` + `model.safetensors` + `tokenizer.json`, with the pooling and
//! normalisation its sentence-transformers configuration asks for.
//!
//! Linear layers of a whole batch run as one matrix product over the real tokens of every
//! text (no padding); attention runs per text and head, so no text ever attends to padding
//! and a text alone gives the same vector as the same text inside a batch.
//!
//! [`CrossEncoder`] runs the same core with a sequence-classification head: a query and a
//! passage read as one pair, one relevance score out (reranking).
//!
//! `remote` holds the other kind of embedder: a model on an embedding server (OpenAI's
//! protocol or text-embeddings-inference's), reached over HTTP.
#![deny(unsafe_code)]

mod batching;
mod bert;
mod cross_encoder;
mod embedder;
mod error;
pub mod kernels;
mod model_files;
pub mod remote;
mod tokenize;

pub use cross_encoder::{Activation, CrossEncoder};
pub use embedder::BertEmbedder;
pub use error::LoadError;
pub use model_files::{ModelFiles, Pooling};
pub use remote::{Protocol, RemoteEmbedder};
