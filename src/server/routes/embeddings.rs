//! `POST /v1/embeddings`: OpenAI's embeddings API answered by this server's own models, so a
//! Quarry on one machine can be the embedding server of Quarrys on others (or of any
//! OpenAI client). Requests go through the model's encoder queue, batched with the queries
//! waiting there; a full queue is a 429 at once. Errors have OpenAI's shape.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::server::error::ApiError;
use crate::server::state::AppState;

/// Inputs one request may carry, as OpenAI allows.
const MAX_INPUTS: usize = 2048;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbeddingsRequest {
    input: Value,
    model: String,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<usize>,
    /// OpenAI's end-user id, for abuse monitoring: written to the log, nothing else.
    #[serde(default)]
    user: Option<String>,
}

/// An error as OpenAI's clients read it: `{"error": {"message", "type", "param", "code"}}`.
struct OpenAiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    param: Option<&'static str>,
}

impl OpenAiError {
    fn invalid(message: impl Into<String>, param: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            message: message.into(),
            param: Some(param),
        }
    }
}

impl From<ApiError> for OpenAiError {
    fn from(e: ApiError) -> Self {
        let kind = match &e {
            ApiError::Throttling(_) => "rate_limit_error",
            ApiError::Internal(_) | ApiError::DependencyFailed(_) => "server_error",
            _ => "invalid_request_error",
        };
        Self {
            status: e.status(),
            kind,
            message: e.to_string(),
            param: None,
        }
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "message": self.message, "type": self.kind, "param": self.param, "code": null,
        }});
        (self.status, Json(body)).into_response()
    }
}

fn texts(input: Value) -> Result<Vec<String>, OpenAiError> {
    let texts = match input {
        Value::String(s) => vec![s],
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(OpenAiError::invalid(
                    "input must be a string or a list of strings (token arrays are not supported)",
                    "input",
                )),
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(OpenAiError::invalid(
                "input must be a string or a list of strings",
                "input",
            ));
        }
    };
    if texts.is_empty() || texts.len() > MAX_INPUTS {
        return Err(OpenAiError::invalid(
            format!("input must hold 1 to {MAX_INPUTS} texts"),
            "input",
        ));
    }
    if texts.iter().any(|t| t.is_empty()) {
        return Err(OpenAiError::invalid(
            "input texts must not be empty",
            "input",
        ));
    }
    Ok(texts)
}

pub async fn create(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    match embeddings(&state, &body).await {
        Ok(answer) => Json(answer).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn embeddings(state: &AppState, body: &Bytes) -> Result<Value, OpenAiError> {
    let req: EmbeddingsRequest = serde_json::from_slice(body)
        .map_err(|e| OpenAiError::invalid(format!("request body: {e}"), "body"))?;
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(OpenAiError::invalid(
                format!("encoding_format must be float or base64, got {other:?}"),
                "encoding_format",
            ));
        }
    };
    if !state.registry.embedding_model_exists(&req.model) {
        let known = state.registry.embedding_model_names();
        return Err(OpenAiError {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            message: format!(
                "the model {:?} does not exist here; embedding models: {}",
                req.model,
                known.join(", ")
            ),
            param: Some("model"),
        });
    }
    let encoder = state
        .registry
        .encoder_for(&req.model)
        .map_err(ApiError::internal)?;
    let dimension = encoder.embedder.dimension();
    if let Some(d) = req.dimensions
        && d != dimension
    {
        return Err(OpenAiError::invalid(
            format!(
                "the model {} gives vectors of {dimension} dimensions and cannot shorten them; got dimensions = {d}",
                req.model
            ),
            "dimensions",
        ));
    }
    if let Some(user) = &req.user {
        tracing::info!(target: "quarry::audit", user = %user, model = %req.model, "embeddings for an end user");
    }
    let texts = texts(req.input)?;
    let tokens: usize = texts
        .iter()
        .map(|t| {
            encoder
                .embedder
                .count_tokens(t)
                .min(encoder.embedder.max_content_tokens())
        })
        .sum();
    let vectors = encoder.embed_many(texts).await?;
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Ok(json!({
        "object": "list",
        "data": data,
        "model": req.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
}
