//! Create, get, list, update and delete knowledge bases.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use quarry_core::config::{KnowledgeBaseConfig, VectorStoreConfig};
use quarry_core::ids::ResourceId;
use serde::Deserialize;
use serde_json::{Value, json};
use serde_spanned::Spanned;

use super::body::{json, paged};
use super::shapes;
use crate::server::auth::Principal;
use crate::server::error::{ApiError, ApiResult};
use crate::server::state::AppState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KnowledgeBaseRequest {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    role_arn: Option<String>,
    knowledge_base_configuration: KnowledgeBaseConfiguration,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KnowledgeBaseConfiguration {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    vector_knowledge_base_configuration: Option<VectorConfiguration>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VectorConfiguration {
    embedding_model_arn: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ListRequest {
    #[serde(default)]
    max_results: Option<usize>,
    #[serde(default)]
    next_token: Option<String>,
}

pub(super) fn valid_name(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !name.contains("--")
        && !name.contains("__");
    if ok {
        Ok(())
    } else {
        Err(ApiError::Validation(format!(
            "name {name:?} must match ([0-9a-zA-Z][_-]?){{1,100}}"
        )))
    }
}

fn check_description(d: &Option<String>) -> ApiResult<()> {
    match d {
        Some(d) if d.is_empty() || d.chars().count() > 200 => Err(ApiError::Validation(
            "description must be 1 to 200 characters".into(),
        )),
        _ => Ok(()),
    }
}

fn model_of(state: &AppState, req: &KnowledgeBaseRequest) -> ApiResult<String> {
    if req.knowledge_base_configuration.kind != "VECTOR" {
        return Err(ApiError::Validation(format!(
            "knowledgeBaseConfiguration.type {} is not supported; use VECTOR",
            req.knowledge_base_configuration.kind
        )));
    }
    let arn = &req
        .knowledge_base_configuration
        .vector_knowledge_base_configuration
        .as_ref()
        .ok_or_else(|| {
            ApiError::Validation(
                "knowledgeBaseConfiguration.vectorKnowledgeBaseConfiguration is required".into(),
            )
        })?
        .embedding_model_arn;
    let model = shapes::model_from_arn(arn);
    if !state.registry.embedding_model_exists(model) {
        let known: Vec<&String> = state
            .registry
            .config
            .models
            .iter()
            .filter(|(_, m)| m.is_embedding())
            .map(|(n, _)| n)
            .collect();
        return Err(ApiError::Validation(format!(
            "embeddingModelArn {arn}: no embedding model {model:?} is configured (known: {known:?})"
        )));
    }
    Ok(model.to_owned())
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: KnowledgeBaseRequest = json(&body)?;
    valid_name(&req.name)?;
    check_description(&req.description)?;
    let model = model_of(&state, &req)?;
    let id = ResourceId::random();
    if !principal.is_unrestricted()
        && !principal
            .access_key_id
            .as_deref()
            .is_some_and(|key| state.grants.may_create(key, &req.name))
    {
        return Err(ApiError::AccessDenied(format!(
            "access key {} may not create a knowledge base named {}: its knowledge_bases line does not name it",
            principal.name(),
            req.name
        )));
    }
    let config = KnowledgeBaseConfig {
        id: Spanned::new(0..0, id),
        name: Spanned::new(0..0, req.name),
        description: req.description,
        embedding_model: Spanned::new(0..0, model),
        vector_store: VectorStoreConfig::Hnsw,
        data_sources: Vec::new(),
    };
    let entry = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || state.registry.create(config))
            .await
            .map_err(ApiError::internal)??
    };
    state
        .grants
        .created(entry.kb.id(), entry.kb.name())
        .map_err(ApiError::internal)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "knowledgeBase": shapes::knowledge_base(&entry) })),
    ))
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let req: ListRequest = json(&body)?;
    if state.registry.is_cluster() {
        let state = state.clone();
        tokio::task::spawn_blocking(move || state.refresh_cluster())
            .await
            .map_err(ApiError::internal)?;
    }
    let visible: Vec<Value> = state
        .registry
        .all()
        .iter()
        .filter(|e| principal.allows(e.kb.id()))
        .map(|e| shapes::knowledge_base_summary(e))
        .collect();
    Ok(Json(paged(
        "knowledgeBaseSummaries",
        &visible,
        req.max_results,
        req.next_token.as_deref(),
    )?))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    Path(kb): Path<String>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Json<Value>> {
    let entry = state.knowledge_base(&principal, &kb)?;
    Ok(Json(
        json!({ "knowledgeBase": shapes::knowledge_base(&entry) }),
    ))
}

pub async fn update(
    State(state): State<Arc<AppState>>,
    Path(kb): Path<String>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let entry = state.knowledge_base(&principal, &kb)?;
    let req: KnowledgeBaseRequest = json(&body)?;
    valid_name(&req.name)?;
    check_description(&req.description)?;
    let model = model_of(&state, &req)?;
    if &model != entry.kb.config.embedding_model.get_ref() {
        return Err(ApiError::Validation(
            "the embedding model of a knowledge base cannot be changed".into(),
        ));
    }
    let mut config = entry.kb.config.clone();
    config.name = Spanned::new(0..0, req.name);
    config.description = req.description;
    let id = entry.kb.id().to_owned();
    let entry = tokio::task::spawn_blocking(move || state.registry.update(&id, config))
        .await
        .map_err(ApiError::internal)??;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "knowledgeBase": shapes::knowledge_base(&entry) })),
    ))
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path(kb): Path<String>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let entry = state.knowledge_base(&principal, &kb)?;
    let id = entry.kb.id().to_owned();
    if entry
        .kb
        .config
        .data_sources
        .iter()
        .any(|ds| state.jobs.is_running(&id, ds.id.get_ref().as_str()))
    {
        return Err(ApiError::Conflict(format!(
            "knowledge base {id} has a running ingestion job"
        )));
    }
    drop(entry);
    let deleted = tokio::task::spawn_blocking(move || state.registry.delete(&id))
        .await
        .map_err(ApiError::internal)??;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "knowledgeBaseId": deleted.kb.id(), "status": "DELETING" })),
    ))
}
