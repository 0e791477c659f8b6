//! `POST /rerank`: Bedrock's Rerank. Inline text or JSON documents scored against one text
//! query by a reranking model of `[models]` (named by `modelArn`), best first.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::json;
use super::search_config::{RerankingModel, reranking_model};
use crate::server::auth::Principal;
use crate::server::error::{ApiError, ApiResult};
use crate::server::state::AppState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RerankRequest {
    queries: Vec<Query>,
    sources: Vec<Source>,
    reranking_configuration: Configuration,
    #[serde(default)]
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Query {
    #[serde(rename = "type")]
    kind: String,
    text_query: TextDocument,
}

#[derive(Deserialize, serde::Serialize, Clone)]
#[serde(deny_unknown_fields)]
struct TextDocument {
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Source {
    #[serde(rename = "type")]
    kind: String,
    inline_document_source: Document,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Document {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text_document: Option<TextDocument>,
    #[serde(default)]
    json_document: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Configuration {
    #[serde(rename = "type")]
    kind: String,
    bedrock_reranking_configuration: BedrockConfiguration,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BedrockConfiguration {
    model_configuration: RerankingModel,
    #[serde(default)]
    number_of_results: Option<i64>,
}

const MAX_TEXT: usize = 32_000;

impl Document {
    /// What the reranker reads, and the document as the answer echoes it.
    fn checked(self, at: &str) -> ApiResult<(String, Value)> {
        match (self.kind.as_str(), self.text_document, self.json_document) {
            ("TEXT", Some(TextDocument { text: Some(text) }), None)
                if (1..=MAX_TEXT).contains(&text.chars().count()) =>
            {
                let echo = json!({"type": "TEXT", "textDocument": {"text": text}});
                Ok((text, echo))
            }
            ("TEXT", _, None) => Err(ApiError::Validation(format!(
                "{at}.textDocument.text must be 1 to {MAX_TEXT} characters"
            ))),
            ("JSON", None, Some(doc)) => {
                let echo = json!({"type": "JSON", "jsonDocument": doc});
                Ok((doc.to_string(), echo))
            }
            ("TEXT" | "JSON", _, _) => Err(ApiError::Validation(format!(
                "{at}: a TEXT document has textDocument, a JSON document jsonDocument, not both"
            ))),
            (other, _, _) => Err(ApiError::Validation(format!(
                "{at}.type must be TEXT or JSON, got {other:?}"
            ))),
        }
    }
}

pub async fn rerank(
    State(state): State<Arc<AppState>>,
    Extension(_principal): Extension<Principal>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let req: RerankRequest = json(&body)?;
    if let Some(t) = &req.next_token {
        return Err(ApiError::Validation(format!(
            "nextToken {t:?} is not one this server issued (Rerank answers in one page)"
        )));
    }
    let [query] = &req.queries[..] else {
        return Err(ApiError::Validation(format!(
            "queries must hold exactly one query, got {}",
            req.queries.len()
        )));
    };
    if query.kind != "TEXT" {
        return Err(ApiError::Validation(format!(
            "queries[0].type must be TEXT, got {:?}",
            query.kind
        )));
    }
    let text = query
        .text_query
        .text
        .clone()
        .filter(|t| (1..=MAX_TEXT).contains(&t.chars().count()))
        .ok_or_else(|| {
            ApiError::Validation(format!(
                "queries[0].textQuery.text must be 1 to {MAX_TEXT} characters"
            ))
        })?;
    if !(1..=1000).contains(&req.sources.len()) {
        return Err(ApiError::Validation(format!(
            "sources must hold 1 to 1000 documents, got {}",
            req.sources.len()
        )));
    }
    let mut documents = Vec::with_capacity(req.sources.len());
    let mut echoes = Vec::with_capacity(req.sources.len());
    for (i, source) in req.sources.into_iter().enumerate() {
        let at = format!("sources[{i}]");
        if source.kind != "INLINE" {
            return Err(ApiError::Validation(format!(
                "{at}.type must be INLINE, got {:?}",
                source.kind
            )));
        }
        let (doc, echo) = source
            .inline_document_source
            .checked(&format!("{at}.inlineDocumentSource"))?;
        documents.push(doc);
        echoes.push(echo);
    }
    let c = req.reranking_configuration;
    if c.kind != "BEDROCK_RERANKING_MODEL" {
        return Err(ApiError::Validation(format!(
            "rerankingConfiguration.type must be BEDROCK_RERANKING_MODEL, got {:?}",
            c.kind
        )));
    }
    let at = "rerankingConfiguration.bedrockRerankingConfiguration";
    let b = c.bedrock_reranking_configuration;
    let reranker = reranking_model(
        &b.model_configuration,
        &state.rerankers,
        &format!("{at}.modelConfiguration"),
    )?;
    let top_n = match b.number_of_results {
        None => documents.len(),
        Some(n) if (1..=1000).contains(&n) => n as usize,
        Some(n) => {
            return Err(ApiError::Validation(format!(
                "{at}.numberOfResults must be between 1 and 1000, got {n}"
            )));
        }
    };
    let ranked = tokio::task::spawn_blocking(move || reranker.rerank(&text, &documents, top_n))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::DependencyFailed(e.to_string()))?;
    let results: Vec<Value> = ranked
        .into_iter()
        .map(|r| {
            json!({
                "index": r.index,
                "relevanceScore": r.score,
                "document": echoes[r.index],
            })
        })
        .collect();
    Ok(Json(json!({ "results": results })))
}
