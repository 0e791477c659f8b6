//! Start, get, list and stop ingestion jobs.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use quarry_ingest::IngestionJob;
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::{json, paged};
use super::data_sources::knowledge_base;
use crate::server::auth::Principal;
use crate::server::client_tokens::Idempotency;
use crate::server::error::{ApiError, ApiResult};
use crate::server::state::AppState;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StartRequest {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    client_token: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListRequest {
    #[serde(default)]
    filters: Option<Vec<JobFilter>>,
    #[serde(default)]
    sort_by: Option<SortBy>,
    #[serde(default)]
    max_results: Option<usize>,
    #[serde(default)]
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobFilter {
    attribute: String,
    operator: String,
    values: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SortBy {
    attribute: String,
    order: String,
}

fn status_name(job: &IngestionJob) -> String {
    serde_json::to_value(job.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub async fn start(
    State(state): State<Arc<AppState>>,
    Path((kb, ds)): Path<(String, String)>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let entry = knowledge_base(&state, &principal, &kb)?;
    let req: StartRequest = json(&body)?;
    let source = entry.data_source(&ds)?.clone();
    let idempotency = Idempotency::new(
        format!(
            "StartIngestionJob {} {}",
            entry.kb.id(),
            source.id.get_ref()
        ),
        req.client_token,
        &body,
    )?;
    if let Some(job_id) = idempotency.earlier(state.client_tokens.as_ref())? {
        let kb = entry.kb.clone();
        let earlier = tokio::task::spawn_blocking(move || kb.ledger().job(&job_id))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
        if let Some(job) = earlier {
            return Ok((StatusCode::ACCEPTED, Json(json!({ "ingestionJob": job }))));
        }
    }
    let kb = entry.kb.clone();
    let job = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || state.jobs.start(kb, source, req.description))
            .await
            .map_err(ApiError::internal)??
    };
    idempotency.made(state.client_tokens.as_ref(), &job.ingestion_job_id)?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "ingestionJob": job }))))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    Path((kb, ds, job)): Path<(String, String, String)>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Json<Value>> {
    let entry = knowledge_base(&state, &principal, &kb)?;
    let ds_id = entry.data_source(&ds)?.id.get_ref().to_string();
    let kb_handle = entry.kb.clone();
    let job_id = job.clone();
    let found = tokio::task::spawn_blocking(move || kb_handle.ledger().job(&job_id))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    match found {
        Some(j) if j.data_source_id == ds_id => Ok(Json(json!({ "ingestionJob": j }))),
        _ => Err(ApiError::NotFound(format!(
            "ingestion job {job} does not exist in data source {ds}"
        ))),
    }
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    Path((kb, ds)): Path<(String, String)>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let entry = knowledge_base(&state, &principal, &kb)?;
    let req: ListRequest = json(&body)?;
    let source = entry.data_source(&ds)?;
    let (kb_handle, ds_id) = (entry.kb.clone(), source.id.get_ref().to_string());
    let mut jobs = tokio::task::spawn_blocking(move || kb_handle.ledger().jobs(Some(&ds_id)))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    for f in req.filters.unwrap_or_default() {
        if f.attribute != "STATUS" || f.operator != "EQ" {
            return Err(ApiError::Validation(
                "filters: only attribute STATUS with operator EQ is supported".into(),
            ));
        }
        jobs.retain(|j| f.values.contains(&status_name(j)));
    }
    if let Some(sort) = req.sort_by {
        match sort.attribute.as_str() {
            "STARTED_AT" => jobs.sort_by_key(|j| j.started_at),
            "STATUS" => jobs.sort_by_key(status_name),
            other => {
                return Err(ApiError::Validation(format!(
                    "sortBy.attribute {other:?} must be STATUS or STARTED_AT"
                )));
            }
        }
        match sort.order.as_str() {
            "ASCENDING" => {}
            "DESCENDING" => jobs.reverse(),
            other => {
                return Err(ApiError::Validation(format!(
                    "sortBy.order {other:?} must be ASCENDING or DESCENDING"
                )));
            }
        }
    }
    let summaries: Vec<Value> = jobs
        .iter()
        .map(|j| {
            let mut v = serde_json::to_value(j).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.remove("failureReasons");
            }
            v
        })
        .collect();
    Ok(Json(paged(
        "ingestionJobSummaries",
        &summaries,
        req.max_results,
        req.next_token.as_deref(),
    )?))
}

pub async fn stop(
    State(state): State<Arc<AppState>>,
    Path((kb, ds, job)): Path<(String, String, String)>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let entry = knowledge_base(&state, &principal, &kb)?;
    let source = entry.data_source(&ds)?;
    let ds_id = source.id.get_ref().to_string();
    let stopped = tokio::task::spawn_blocking(move || state.jobs.stop(&entry.kb, &ds_id, &job))
        .await
        .map_err(ApiError::internal)??;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "ingestionJob": stopped })),
    ))
}
