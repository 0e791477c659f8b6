//! RetrieveAndGenerate, shared by the server and `quarry ask`: search the knowledge base,
//! fold the best passages into the prompt, generate, and cite.
//!
//! Two steps, so a streaming caller can answer errors of the first (bad request, prompt too
//! long, search failed) as ordinary HTTP errors before the stream starts:
//! [`prepare`] (search and prompt) and [`generate`] (the model, streaming its text).

mod generators;
pub mod query_model;
pub mod rerankers;
mod wire;

use std::ops::ControlFlow;

use quarry_core::{Filter, SearchHit};
use quarry_generate::{
    CitationMarkers, GenerateError, GenerationRequest, Generator, PromptPassage, Turn,
    build_prompt, cite,
};
use quarry_retrieve::{Indexes, SearchType};
use serde_json::Value;

pub use self::generators::{Generators, model_name};
pub use self::rerankers::{MetadataSelection, Rerankers, Reranking, rerank_hits};

/// `textInferenceConfig`.
#[derive(Debug, Clone)]
pub struct Inference {
    pub max_tokens: usize,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop_sequences: Vec<String>,
}

/// Answers are this long at most unless `maxTokens` says otherwise.
pub const DEFAULT_MAX_TOKENS: usize = 256;

impl Default for Inference {
    fn default() -> Self {
        Self {
            max_tokens: DEFAULT_MAX_TOKENS,
            temperature: None,
            top_p: None,
            stop_sequences: Vec::new(),
        }
    }
}

pub struct Question {
    pub text: String,
    /// Earlier turns of the session, oldest first.
    pub history: Vec<Turn>,
    pub k: usize,
    pub filter: Option<Filter>,
    pub search_type: SearchType,
    pub template: Option<String>,
    pub inference: Inference,
    /// Candidates reranked by a model before the prompt takes the best.
    pub reranking: Option<Reranking>,
    /// When to stop generating (the caller left, a deadline, shutdown).
    pub cancel: quarry_generate::Cancel,
}

#[derive(Debug, thiserror::Error)]
pub enum RagError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Dependency(String),
    #[error("{0}")]
    Internal(String),
}

impl From<GenerateError> for RagError {
    fn from(e: GenerateError) -> Self {
        match e {
            GenerateError::Invalid(m) => Self::Invalid(m),
            GenerateError::Backend(m) => Self::Dependency(m),
        }
    }
}

/// What to search with: a follow-up question ("and in 2020?") carries the previous question
/// with it, so the search sees what it refers to.
pub fn retrieval_text(question: &Question) -> String {
    match question.history.last() {
        Some(previous) => format!("{}\n{}", previous.question, question.text),
        None => question.text.clone(),
    }
}

pub struct Prepared {
    hits: Vec<SearchHit>,
    request: GenerationRequest,
    passages_used: usize,
}

impl Prepared {
    /// The retrieved passages' texts, best first.
    pub fn passages(&self) -> Vec<&str> {
        self.hits.iter().map(|h| h.chunk.text.as_str()).collect()
    }
}

/// Searches (with `vector`, the embedding of [`retrieval_text`]) and builds the prompt.
pub fn prepare(
    indexes: Indexes<'_>,
    vector: &[f32],
    question: &Question,
    generator: &dyn Generator,
) -> Result<Prepared, RagError> {
    let search = (retrieval_text(question), vector.to_vec());
    prepare_from(indexes, std::slice::from_ref(&search), question, generator)
}

/// Searches once for each `(text, its embedding)` (the sub-questions of a decomposed
/// question), merges the passages (each sub-question's best in turn, each passage once, at
/// most `k`) and builds the prompt.
pub fn prepare_from(
    indexes: Indexes<'_>,
    searches: &[(String, Vec<f32>)],
    question: &Question,
    generator: &dyn Generator,
) -> Result<Prepared, RagError> {
    let mut found = Vec::with_capacity(searches.len());
    for (text, vector) in searches {
        found.push(
            quarry_retrieve::search(
                indexes,
                text,
                vector,
                question.k,
                question.filter.as_ref(),
                question.search_type,
            )
            .map_err(|e| RagError::Internal(e.to_string()))?,
        );
    }
    let hits = round_robin(found, question.k);
    let hits = match &question.reranking {
        Some(r) => rerankers::rerank_hits(&question.text, hits, r).map_err(RagError::Dependency)?,
        None => hits,
    };
    let passages: Vec<PromptPassage> = hits
        .iter()
        .map(|h| PromptPassage {
            text: h.chunk.text.clone(),
        })
        .collect();
    let prompt = build_prompt(
        question.template.as_deref(),
        &question.text,
        &question.history,
        &passages,
        generator,
        question.inference.max_tokens,
    )?;
    let inference = &question.inference;
    let request = GenerationRequest {
        messages: prompt.messages,
        max_tokens: inference.max_tokens,
        temperature: inference.temperature,
        top_p: inference.top_p,
        stop_sequences: inference.stop_sequences.clone(),
        seed: fastrand::u64(..),
        cancel: question.cancel.clone(),
    };
    Ok(Prepared {
        hits,
        request,
        passages_used: prompt.passages_used,
    })
}

/// Each list's best in turn, each chunk once, at most `k`.
fn round_robin(lists: Vec<Vec<SearchHit>>, k: usize) -> Vec<SearchHit> {
    if lists.len() == 1 {
        return lists.into_iter().next().unwrap_or_default();
    }
    let mut iters: Vec<_> = lists.into_iter().map(Vec::into_iter).collect();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let mut any = true;
    while any && out.len() < k {
        any = false;
        for it in &mut iters {
            for hit in it.by_ref() {
                any = true;
                if seen.insert(hit.chunk.id.clone()) {
                    out.push(hit);
                    break;
                }
            }
            if out.len() == k {
                break;
            }
        }
    }
    out
}

pub struct Answer {
    /// The answer without citation markers.
    pub text: String,
    /// Bedrock `Citation`s whose spans index `text` (characters, end exclusive).
    pub citations: Vec<Value>,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

impl Answer {
    /// Bedrock's RetrieveAndGenerate response.
    pub fn into_response(self, session_id: &str) -> Value {
        serde_json::json!({
            "output": { "text": self.text },
            "citations": self.citations,
            "sessionId": session_id,
        })
    }
}

/// Runs the model on a prepared prompt. `on_text` receives the answer (markers removed) as it
/// is produced; its pieces concatenate to [`Answer::text`].
pub fn generate(
    prepared: Prepared,
    generator: &dyn Generator,
    on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
) -> Result<Answer, RagError> {
    let mut markers = CitationMarkers::new(prepared.passages_used);
    let mut streamed = String::new();
    let generation = generator.generate(&prepared.request, &mut |piece| {
        let clean = markers.push(piece);
        if clean.is_empty() {
            return ControlFlow::Continue(());
        }
        streamed.push_str(&clean);
        on_text(&clean)
    })?;
    let tail = markers.finish();
    if !tail.is_empty() {
        streamed.push_str(&tail);
        let _ = on_text(&tail);
    }
    let hits = &prepared.hits[..prepared.passages_used];
    let texts: Vec<&str> = hits.iter().map(|h| h.chunk.text.as_str()).collect();
    let cited = cite(&generation.text, &texts);
    // One marker scanner made both, so they agree.
    debug_assert_eq!(cited.text, streamed);
    let mut citations: Vec<Value> = cited
        .parts
        .iter()
        .map(|p| wire::citation(p, hits))
        .collect();
    if citations.is_empty() && !cited.text.is_empty() {
        // Nothing in the answer rests on a passage: one citation of the whole answer with
        // no references, as Bedrock answers uncited text.
        citations.push(wire::citation(
            &quarry_generate::CitedPart {
                start: 0,
                end: cited.text.chars().count(),
                text: cited.text.clone(),
                sources: Vec::new(),
            },
            hits,
        ));
    }
    Ok(Answer {
        text: cited.text,
        citations,
        prompt_tokens: generation.prompt_tokens,
        completion_tokens: generation.completion_tokens,
    })
}
