//! `POST /retrieveAndGenerate` and `POST /retrieveAndGenerateStream`: Bedrock's
//! RetrieveAndGenerate, whole or as an event stream.
//!
//! Both check the request, embed the question, search and build the prompt before anything
//! is sent, so those failures are ordinary HTTP errors. The stream also waits for the
//! model's first piece: a backend that fails at once is a 424, not a broken stream.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use quarry_generate::{Cancel, Generator, SessionError, Turn, check_template, valid_session_id};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use super::body::json;
use super::search_config::{ImplicitFilter, RetrievalConfiguration, SearchSettings};
use crate::rag::query_model;
use crate::rag::{self, Inference, Prepared, Question, RagError};
use crate::server::auth::Principal;
use crate::server::error::{ApiError, ApiResult};
use crate::server::registry::KbEntry;
use crate::server::state::AppState;
use quarry_protocol::eventstream;

pub const SESSION_HEADER: &str = "x-amzn-bedrock-knowledge-base-session-id";
const MAX_INPUT_CHARS: usize = 1000;
const MAX_TEMPLATE_CHARS: usize = 4000;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RagRequest {
    input: Input,
    #[serde(default)]
    retrieve_and_generate_configuration: Option<RagConfiguration>,
    #[serde(default)]
    session_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    text: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RagConfiguration {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    knowledge_base_configuration: Option<KbConfiguration>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KbConfiguration {
    knowledge_base_id: String,
    model_arn: String,
    #[serde(default)]
    retrieval_configuration: Option<RetrievalConfiguration>,
    #[serde(default)]
    generation_configuration: Option<GenerationConfiguration>,
    #[serde(default)]
    orchestration_configuration: Option<OrchestrationConfiguration>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OrchestrationConfiguration {
    #[serde(default)]
    query_transformation_configuration: Option<QueryTransformation>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct QueryTransformation {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GenerationConfiguration {
    #[serde(default)]
    prompt_template: Option<PromptTemplate>,
    #[serde(default)]
    inference_config: Option<InferenceConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PromptTemplate {
    #[serde(default)]
    text_prompt_template: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InferenceConfig {
    #[serde(default)]
    text_inference_config: Option<TextInferenceConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TextInferenceConfig {
    #[serde(default)]
    max_tokens: Option<i64>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    stop_sequences: Option<Vec<String>>,
}

const AT: &str = "retrieveAndGenerateConfiguration.knowledgeBaseConfiguration";

fn inference(config: Option<TextInferenceConfig>) -> ApiResult<Inference> {
    let mut out = Inference::default();
    let Some(c) = config else {
        return Ok(out);
    };
    let at = format!("{AT}.generationConfiguration.inferenceConfig.textInferenceConfig");
    if let Some(n) = c.max_tokens {
        if !(1..=65_536).contains(&n) {
            return Err(ApiError::Validation(format!(
                "{at}.maxTokens must be between 1 and 65536, got {n}"
            )));
        }
        out.max_tokens = n as usize;
    }
    for (name, value) in [("temperature", c.temperature), ("topP", c.top_p)] {
        if let Some(v) = value
            && !(0.0..=1.0).contains(&v)
        {
            return Err(ApiError::Validation(format!(
                "{at}.{name} must be between 0 and 1, got {v}"
            )));
        }
    }
    out.temperature = c.temperature;
    out.top_p = c.top_p;
    if let Some(stops) = c.stop_sequences {
        if stops.len() > 4 || stops.iter().any(|s| s.is_empty() || s.len() > 1000) {
            return Err(ApiError::Validation(format!(
                "{at}.stopSequences takes at most 4 sequences of 1 to 1000 characters"
            )));
        }
        out.stop_sequences = stops;
    }
    Ok(out)
}

/// A checked request: the knowledge base, the backend, the question and its session.
struct Ready {
    entry: Arc<KbEntry>,
    /// The `[models]` name, for metrics.
    model: String,
    generator: Arc<dyn Generator>,
    question: Question,
    session_id: String,
    /// Whose session it is: `access key/knowledge base id`.
    owner: String,
    /// One of the server's generation slots, held until the answer is done.
    _slot: OwnedSemaphorePermit,
    /// Set when the caller goes away (see [`CancelOnDrop`]).
    caller_gone: Arc<AtomicBool>,
    timeout: Duration,
    /// The model's filter, asked for before the search.
    implicit: Option<ImplicitFilter>,
    /// Search each sub-question the model finds (QUERY_DECOMPOSITION).
    decompose: bool,
}

/// Sets its flag when dropped: held by the request's future (or its response stream), it
/// tells the generation that nobody is waiting for the answer any more.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Why an answer was cut off, when it was not the caller leaving.
fn cut_off(state: &AppState, ready: &Ready, cancel: &Cancel) -> Option<ApiError> {
    if cancel.timed_out() {
        Some(ApiError::DependencyFailed(format!(
            "the answer took longer than the server's limit of {} s (generation_timeout_secs) and was cut off",
            ready.timeout.as_secs()
        )))
    } else if state.shutting_down.load(Ordering::Relaxed) {
        Some(ApiError::Throttling(
            "the server is shutting down; retry on another replica or later".into(),
        ))
    } else {
        None
    }
}

fn session_error(e: SessionError) -> ApiError {
    match e {
        SessionError::Unknown(_) => ApiError::Validation(e.to_string()),
        SessionError::Io(e) => ApiError::internal(e),
    }
}

fn rag_error(e: RagError) -> ApiError {
    match e {
        RagError::Invalid(m) => ApiError::Validation(m),
        RagError::Dependency(m) => ApiError::DependencyFailed(m),
        RagError::Internal(m) => ApiError::internal(m),
    }
}

async fn ready(state: &AppState, principal: &Principal, body: &Bytes) -> ApiResult<Ready> {
    let req: RagRequest = json(body)?;
    let text = req.input.text.trim().to_string();
    if text.is_empty() {
        return Err(ApiError::Validation("input.text is required".into()));
    }
    if req.input.text.chars().count() > MAX_INPUT_CHARS {
        return Err(ApiError::Validation(format!(
            "input.text is longer than {MAX_INPUT_CHARS} characters"
        )));
    }
    let config = req.retrieve_and_generate_configuration.ok_or_else(|| {
        ApiError::Validation("retrieveAndGenerateConfiguration is required".into())
    })?;
    if config.kind != "KNOWLEDGE_BASE" {
        return Err(ApiError::Validation(format!(
            "retrieveAndGenerateConfiguration.type {:?} is not supported; use KNOWLEDGE_BASE",
            config.kind
        )));
    }
    let kb_config = config
        .knowledge_base_configuration
        .ok_or_else(|| ApiError::Validation(format!("{AT} is required for type KNOWLEDGE_BASE")))?;
    let decompose = match kb_config
        .orchestration_configuration
        .and_then(|o| o.query_transformation_configuration)
    {
        None => false,
        Some(t) if t.kind == "QUERY_DECOMPOSITION" => true,
        Some(t) => {
            return Err(ApiError::Validation(format!(
                "{AT}.orchestrationConfiguration.queryTransformationConfiguration.type must be QUERY_DECOMPOSITION, got {:?}",
                t.kind
            )));
        }
    };
    let entry = state.knowledge_base(principal, &kb_config.knowledge_base_id)?;
    let owner = format!("{}/{}", principal.name(), entry.kb.id());
    let generator = state
        .generators
        .for_arn(&kb_config.model_arn)
        .map_err(ApiError::Validation)?;
    let search = SearchSettings::from_request(
        kb_config.retrieval_configuration,
        &format!("{AT}.retrievalConfiguration"),
        &state.rerankers,
        &state.generators,
    )?;
    let generation = kb_config.generation_configuration;
    let (template, text_inference) = match generation {
        Some(g) => (
            g.prompt_template.and_then(|p| p.text_prompt_template),
            g.inference_config.and_then(|i| i.text_inference_config),
        ),
        None => (None, None),
    };
    if let Some(t) = &template {
        let at = format!("{AT}.generationConfiguration.promptTemplate.textPromptTemplate");
        if t.chars().count() > MAX_TEMPLATE_CHARS {
            return Err(ApiError::Validation(format!(
                "{at} is longer than {MAX_TEMPLATE_CHARS} characters"
            )));
        }
        check_template(t).map_err(ApiError::Validation)?;
    }
    let inference = inference(text_inference)?;
    let (session_id, history) = match req.session_id {
        Some(id) => {
            if !valid_session_id(&id) {
                return Err(ApiError::Validation(format!(
                    "sessionId {id:?} must be 2 to 100 of [0-9a-zA-Z._:-]"
                )));
            }
            let history = state
                .sessions
                .turns(&id, Some(&owner))
                .map_err(session_error)?;
            (id, history)
        }
        None => (String::new(), Vec::new()),
    };
    let limits = &state.registry.config.server.limits;
    let slot = state
        .generation_slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::Throttling(format!(
                "{} answers are being generated already (max_concurrent_generations); retry later",
                limits.max_concurrent_generations
            ))
        })?;
    let timeout = Duration::from_secs(limits.generation_timeout_secs);
    let caller_gone = Arc::new(AtomicBool::new(false));
    let cancel = Cancel::default()
        .on(caller_gone.clone())
        .on(state.shutting_down.clone())
        .until(Instant::now() + timeout);
    Ok(Ready {
        entry,
        model: rag::model_name(&kb_config.model_arn).to_string(),
        generator,
        question: Question {
            text,
            history,
            k: search.k,
            filter: search.filter,
            search_type: search.search_type,
            template,
            inference,
            reranking: search.reranking,
            cancel,
        },
        session_id,
        owner,
        _slot: slot,
        caller_gone,
        timeout,
        implicit: search.implicit,
        decompose,
    })
}

/// Embeds the question, searches and builds the prompt; starts the session when new.
async fn prepared(state: &AppState, mut ready: Ready) -> ApiResult<(Ready, Prepared)> {
    // What the model does to the query first: an implicit filter, sub-questions.
    let implicit = ready.implicit.take();
    let decompose = ready.decompose;
    let generator = ready.generator.clone();
    let mut question = ready.question;
    let (question, texts) = tokio::task::spawn_blocking(move || -> ApiResult<_> {
        if let Some(i) = &implicit {
            question.filter =
                i.applied(&question.text, question.filter.take(), &question.cancel)?;
        }
        let texts = if decompose {
            query_model::sub_questions(generator.as_ref(), &question.text, &question.cancel)
                .map_err(rag_error)?
        } else {
            vec![rag::retrieval_text(&question)]
        };
        Ok((question, texts))
    })
    .await
    .map_err(ApiError::internal)??;
    let mut searches = Vec::with_capacity(texts.len());
    for text in texts {
        let vector = ready.entry.encoder.embed(text.clone()).await?;
        searches.push((text, vector));
    }
    let kb = state.held.reader(&ready.entry);
    let generator = ready.generator.clone();
    let (question, prepared) = tokio::task::spawn_blocking(move || {
        let prepared = rag::prepare_from(kb.indexes(), &searches, &question, generator.as_ref());
        (question, prepared)
    })
    .await
    .map_err(ApiError::internal)?;
    ready.question = question;
    let prepared = prepared.map_err(rag_error)?;
    if ready.session_id.is_empty() {
        ready.session_id = state.sessions.create(&ready.owner).map_err(session_error)?;
    }
    Ok((ready, prepared))
}

/// Records a finished answer: the session's new turn and the token counts.
fn remember(state: &AppState, ready: &Ready, answer: &rag::Answer) {
    state
        .metrics
        .add_generation(&ready.model, answer.prompt_tokens, answer.completion_tokens);
    let turn = Turn {
        question: ready.question.text.clone(),
        answer: answer.text.clone(),
    };
    if let Err(e) = state
        .sessions
        .append(&ready.session_id, Some(&ready.owner), turn)
    {
        tracing::warn!(session = %ready.session_id, error = %e, "could not record the turn");
    }
}

pub async fn retrieve_and_generate(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let ready = ready(&state, &principal, &body).await?;
    // Dropped with this future when the client hangs up: the generation then stops.
    let _gone = CancelOnDrop(ready.caller_gone.clone());
    let (ready, prepared) = prepared(&state, ready).await?;
    let generator = ready.generator.clone();
    let cancel = ready.question.cancel.clone();
    let answer = tokio::task::spawn_blocking(move || {
        rag::generate(prepared, generator.as_ref(), &mut |_| {
            ControlFlow::Continue(())
        })
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(rag_error)?;
    if let Some(e) = cut_off(&state, &ready, &cancel) {
        return Err(e);
    }
    remember(&state, &ready, &answer);
    Ok(Json(answer.into_response(&ready.session_id)))
}

enum StreamEvent {
    Text(String),
    Citations(Vec<Value>),
    Failed(ApiError),
}

/// The event-stream member for an error: its Bedrock name in lower camel case
/// (`DependencyFailedException` → `dependencyFailedException`).
fn exception_name(e: &ApiError) -> String {
    let name = e.name();
    name[..1].to_ascii_lowercase() + &name[1..]
}

/// A framed event, or, for one too large to frame, an exception saying so.
fn framed(message: Result<Vec<u8>, eventstream::FrameError>) -> Vec<u8> {
    message.unwrap_or_else(|e| {
        eventstream::exception(
            "internalServerException",
            &format!("cannot frame the event: {e}"),
        )
        .expect("a short exception always frames")
    })
}

fn frame(event: StreamEvent) -> Vec<Vec<u8>> {
    match event {
        StreamEvent::Text(text) => vec![framed(eventstream::event(
            "output",
            &json!({ "text": text }),
        ))],
        StreamEvent::Citations(citations) => citations
            .into_iter()
            .map(|c| {
                let mut payload = json!({ "citation": c.clone() });
                if let (Some(p), Some(c)) = (payload.as_object_mut(), c.as_object()) {
                    for (k, v) in c {
                        p.insert(k.clone(), v.clone());
                    }
                }
                framed(eventstream::event("citation", &payload))
            })
            .collect(),
        StreamEvent::Failed(e) => vec![framed(eventstream::exception(
            &exception_name(&e),
            &e.to_string(),
        ))],
    }
}

pub async fn retrieve_and_generate_stream(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> ApiResult<Response> {
    let ready = ready(&state, &principal, &body).await?;
    // Moves into the response stream below; dropped when the client hangs up.
    let gone = CancelOnDrop(ready.caller_gone.clone());
    let (ready, prepared) = prepared(&state, ready).await?;
    let session_id = ready.session_id.clone();
    let (tx, mut rx) = mpsc::channel::<StreamEvent>(64);
    let worker_state = state.clone();
    tokio::task::spawn_blocking(move || {
        let generator = ready.generator.clone();
        let cancel = ready.question.cancel.clone();
        let result = rag::generate(prepared, generator.as_ref(), &mut |piece| {
            match tx.blocking_send(StreamEvent::Text(piece.to_string())) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()), // the client went away
            }
        });
        if let Some(e) = cut_off(&worker_state, &ready, &cancel) {
            let _ = tx.blocking_send(StreamEvent::Failed(e));
            return;
        }
        match result {
            Ok(answer) => {
                remember(&worker_state, &ready, &answer);
                let _ = tx.blocking_send(StreamEvent::Citations(answer.citations));
            }
            Err(e) => {
                let _ = tx.blocking_send(StreamEvent::Failed(rag_error(e)));
            }
        }
    });
    // A failure before the first piece is still an ordinary error response.
    let first = match rx.recv().await {
        Some(StreamEvent::Failed(e)) => return Err(e),
        Some(event) => event,
        None => return Err(ApiError::internal("the generation ended without an answer")),
    };
    let frames = futures_frames(first, rx, gone);
    let mut response = Body::from_stream(frames).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.amazon.eventstream"),
    );
    headers.insert(
        SESSION_HEADER,
        HeaderValue::from_str(&session_id).map_err(ApiError::internal)?,
    );
    Ok(response)
}

/// The stream of framed messages: the first event, then the rest as they come.
fn futures_frames(
    first: StreamEvent,
    rx: mpsc::Receiver<StreamEvent>,
    gone: CancelOnDrop,
) -> impl tokio_stream::Stream<Item = Result<Bytes, std::convert::Infallible>> {
    use tokio_stream::StreamExt;
    let rest = tokio_stream::wrappers::ReceiverStream::new(rx);
    tokio_stream::once(first).chain(rest).map(move |event| {
        let _held = &gone; // lives as long as the stream
        Ok(Bytes::from(frame(event).concat()))
    })
}
