//! `POST /knowledgebases/{knowledgeBaseId}/retrieve`: Bedrock's Retrieve.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use quarry_retrieve::{MAX_RESULTS, RetrievalResult, RetrieveResponse};
use serde::Deserialize;
use serde_json::Value;

use super::body::json;
use super::search_config::{RetrievalConfiguration, SearchSettings};
use crate::server::auth::Principal;
use crate::server::error::{ApiError, ApiResult};
use crate::server::state::AppState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RetrieveRequest {
    retrieval_query: RetrievalQuery,
    #[serde(default)]
    retrieval_configuration: Option<RetrievalConfiguration>,
    #[serde(default)]
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetrievalQuery {
    #[serde(default)]
    text: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    image: Option<Value>,
}

const MAX_QUERY_CHARS: usize = 20_000;

pub async fn retrieve(
    State(state): State<Arc<AppState>>,
    Path(kb): Path<String>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> ApiResult<Json<RetrieveResponse>> {
    let entry = state.knowledge_base(&principal, &kb)?;
    let req: RetrieveRequest = json(&body)?;
    if req.retrieval_query.image.is_some() || req.retrieval_query.kind.as_deref() == Some("IMAGE") {
        return Err(ApiError::Validation(
            "retrievalQuery.image: Quarry does not support image queries; send text".into(),
        ));
    }
    let text = req
        .retrieval_query
        .text
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| ApiError::Validation("retrievalQuery.text is required".into()))?;
    if text.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::Validation(format!(
            "retrievalQuery.text is longer than {MAX_QUERY_CHARS} characters"
        )));
    }
    let SearchSettings {
        k,
        filter,
        search_type,
        reranking,
        implicit,
    } = SearchSettings::from_request(
        req.retrieval_configuration,
        "retrievalConfiguration",
        &state.rerankers,
        &state.generators,
    )?;
    let offset = match req.next_token.as_deref() {
        None => 0,
        Some(t) => quarry_protocol::page_token::parse_offset_token(t, MAX_RESULTS - 1).ok_or_else(
            || ApiError::Validation(format!("nextToken {t:?} is not one this server issued")),
        )?,
    };
    let wanted = (offset + k).min(MAX_RESULTS);
    let vector = entry.encoder.embed(text.clone()).await?;
    let kb = state.held.reader(&entry);
    let cancel = quarry_generate::Cancel::default().until(
        std::time::Instant::now()
            + std::time::Duration::from_secs(
                state.registry.config.server.limits.generation_timeout_secs,
            ),
    );
    let hits = tokio::task::spawn_blocking(move || {
        let filter = match &implicit {
            Some(i) => i.applied(&text, filter, &cancel)?,
            None => filter,
        };
        let hits = quarry_retrieve::search(
            kb.indexes(),
            &text,
            &vector,
            wanted,
            filter.as_ref(),
            search_type,
        )
        .map_err(ApiError::internal)?;
        // The candidates in the reranking model's order, with its scores.
        match &reranking {
            Some(r) => crate::rag::rerankers::rerank_hits(&text, hits, r)
                .map_err(ApiError::DependencyFailed),
            None => Ok(hits),
        }
    })
    .await
    .map_err(ApiError::internal)??;
    let full_page = hits.len() == wanted;
    let retrieval_results: Vec<RetrievalResult> = hits
        .into_iter()
        .skip(offset)
        .map(RetrievalResult::from)
        .collect();
    let next_token = (full_page && wanted < MAX_RESULTS)
        .then(|| quarry_protocol::page_token::offset_token(wanted));
    Ok(Json(RetrieveResponse {
        retrieval_results,
        next_token,
    }))
}
