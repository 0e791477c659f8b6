//! List, get and create data sources.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::{json, page};
use super::shapes;
use crate::server::auth::Principal;
use crate::server::error::{ApiError, ApiResult};
use crate::server::registry::KbEntry;
use crate::server::state::AppState;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ListRequest {
    #[serde(default)]
    max_results: Option<usize>,
    #[serde(default)]
    next_token: Option<String>,
}

/// The knowledge base of a request, if the caller may use it.
pub(super) fn knowledge_base(
    state: &AppState,
    principal: &Principal,
    kb: &str,
) -> ApiResult<Arc<KbEntry>> {
    let entry = state.registry.get(kb)?;
    principal.check(entry.kb.id(), entry.kb.name())?;
    Ok(entry)
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    Path(kb): Path<String>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let entry = knowledge_base(&state, &principal, &kb)?;
    let req: ListRequest = json(&body)?;
    let all: Vec<Value> = entry
        .kb
        .config
        .data_sources
        .iter()
        .map(|ds| shapes::data_source_summary(&entry, ds))
        .collect();
    let (items, next) = page(&all, req.max_results, req.next_token.as_deref())?;
    let mut out = json!({ "dataSourceSummaries": items });
    if let Some(n) = next {
        out["nextToken"] = json!(n);
    }
    Ok(Json(out))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    Path((kb, ds)): Path<(String, String)>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Json<Value>> {
    let entry = knowledge_base(&state, &principal, &kb)?;
    let source = entry.kb.data_source(&ds).ok_or_else(|| {
        ApiError::NotFound(format!(
            "data source {ds} does not exist in knowledge base {kb}"
        ))
    })?;
    Ok(Json(
        json!({ "dataSource": shapes::data_source(&entry, source) }),
    ))
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    Path(kb): Path<String>,
    Extension(principal): Extension<Principal>,
    _body: Bytes,
) -> ApiResult<Json<Value>> {
    knowledge_base(&state, &principal, &kb)?;
    Err(ApiError::Validation(
        "this server serves the data sources declared in knowledge-bases.toml (local folders); data sources of type S3 created through the API need S3 support, which it does not have yet".into(),
    ))
}
