//! RetrieveAndGenerate's generation side: the [`Generator`] backends (an in-process GGUF llama
//! and any OpenAI-compatible server), the prompt built from search results, the citations
//! recovered from the answer, and the sessions that keep earlier turns.

mod citations;
mod generator;
pub mod gguf_llama;
mod http;
mod openai;
mod prompt;
mod rerank;
mod sessions;
mod stop;

pub use citations::{CitationMarkers, Cited, CitedPart, cite};
pub use generator::{
    Cancel, FinishReason, GenerateError, Generation, GenerationRequest, Generator, Message, Role,
};
pub use gguf_llama::GgufLlama;
pub use openai::{OpenAiConfig, OpenAiGenerator};
pub use prompt::{
    DEFAULT_TEMPLATE, OUTPUT_FORMAT_INSTRUCTIONS, Prompt, PromptPassage, build_prompt,
    check_template,
};
pub use rerank::{Ranked, RerankApi, RerankApiConfig, RerankError, Reranker};
pub use sessions::{
    MAX_TURNS, SessionError, SessionStore, Sessions, Turn, suite as session_suite, valid_session_id,
};
pub use stop::StopScanner;
