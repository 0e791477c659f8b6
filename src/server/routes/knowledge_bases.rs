//! Create, get, list, update and delete knowledge bases.

use std::collections::BTreeMap;
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
use super::storage::{self, StorageConfiguration};
use crate::server::auth::Principal;
use crate::server::client_tokens::Idempotency;
use crate::server::error::{ApiError, ApiResult};
use crate::server::state::AppState;

/// CreateKnowledgeBase's and UpdateKnowledgeBase's body (`clientToken` and `tags` are
/// Create's only).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KnowledgeBaseRequest {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    role_arn: Option<String>,
    knowledge_base_configuration: KnowledgeBaseConfiguration,
    #[serde(default)]
    storage_configuration: Option<StorageConfiguration>,
    #[serde(default)]
    client_token: Option<String>,
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KnowledgeBaseConfiguration {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    vector_knowledge_base_configuration: Option<VectorConfiguration>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct VectorConfiguration {
    embedding_model_arn: String,
    #[serde(default)]
    embedding_model_configuration: Option<EmbeddingModelConfiguration>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EmbeddingModelConfiguration {
    #[serde(default)]
    bedrock_embedding_model_configuration: Option<BedrockEmbeddingModel>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BedrockEmbeddingModel {
    #[serde(default)]
    dimensions: Option<usize>,
    #[serde(default)]
    embedding_data_type: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
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
    let vector = req
        .knowledge_base_configuration
        .vector_knowledge_base_configuration
        .as_ref()
        .ok_or_else(|| {
            ApiError::Validation(
                "knowledgeBaseConfiguration.vectorKnowledgeBaseConfiguration is required".into(),
            )
        })?;
    let arn = &vector.embedding_model_arn;
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
    if let Some(c) = vector
        .embedding_model_configuration
        .as_ref()
        .and_then(|c| c.bedrock_embedding_model_configuration.as_ref())
    {
        check_embedding_settings(state, model, c)?;
    }
    Ok(model.to_owned())
}

/// `bedrockEmbeddingModelConfiguration`: Quarry's models have one size and embed in float32,
/// so a request may only say what the model does.
fn check_embedding_settings(
    state: &AppState,
    model: &str,
    c: &BedrockEmbeddingModel,
) -> ApiResult<()> {
    const AT: &str = "knowledgeBaseConfiguration.vectorKnowledgeBaseConfiguration.embeddingModelConfiguration.bedrockEmbeddingModelConfiguration";
    if let Some(t) = c.embedding_data_type.as_deref()
        && t != "FLOAT32"
    {
        return Err(ApiError::Validation(format!(
            "{AT}.embeddingDataType {t}: Quarry embeds in FLOAT32 only"
        )));
    }
    if let Some(asked) = c.dimensions {
        let encoder = state
            .registry
            .encoder_for(model)
            .map_err(|e| ApiError::Validation(format!("{AT}: {e:#}")))?;
        let actual = encoder.embedder.dimension();
        if asked != actual {
            return Err(ApiError::Validation(format!(
                "{AT}.dimensions {asked}: model {model} makes vectors of {actual} dimensions"
            )));
        }
    }
    Ok(())
}

fn check_tags(tags: &BTreeMap<String, String>, at: &str) -> ApiResult<()> {
    super::tags::check(tags).map_err(|m| ApiError::Validation(format!("{at}: {m}")))
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
    let tags = req.tags.unwrap_or_default();
    check_tags(&tags, "tags")?;
    let vector_store = match req.storage_configuration {
        Some(s) => storage::vector_store(&state.registry.config.rds, s)?,
        None => VectorStoreConfig::default(),
    };
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
    let idempotency = Idempotency::new(
        format!("CreateKnowledgeBase {}", principal.name()),
        req.client_token,
        &body,
    )?;
    if let Some(id) = idempotency.earlier(state.client_tokens.as_ref())?
        && let Ok(entry) = state.knowledge_base(&principal, &id)
    {
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "knowledgeBase": shapes::knowledge_base(&entry, &state) })),
        ));
    }
    let id = ResourceId::random();
    let config = KnowledgeBaseConfig {
        id: Spanned::new(0..0, id),
        name: Spanned::new(0..0, req.name),
        description: req.description,
        embedding_model: Spanned::new(0..0, model),
        vector_store,
        data_sources: Vec::new(),
        role_arn: req.role_arn,
        tags,
        regression: None,
    };
    let entry = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || state.registry.create(config))
            .await
            .map_err(ApiError::internal)??
    };
    idempotency.made(state.client_tokens.as_ref(), entry.kb.id())?;
    state
        .grants
        .created(entry.kb.id(), entry.kb.name())
        .map_err(ApiError::internal)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "knowledgeBase": shapes::knowledge_base(&entry, &state) })),
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
        .map(|e| shapes::knowledge_base_summary(e, &state))
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
        json!({ "knowledgeBase": shapes::knowledge_base(&entry, &state) }),
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
    for (member, given) in [
        ("clientToken", req.client_token.is_some()),
        ("tags", req.tags.is_some()),
    ] {
        if given {
            return Err(ApiError::Validation(format!(
                "{member}: UpdateKnowledgeBase has no such member (use TagResource for tags)"
            )));
        }
    }
    valid_name(&req.name)?;
    check_description(&req.description)?;
    // A new model is switched to in the background (`crate::generations`).
    let model = model_of(&state, &req)?;
    if let Some(s) = req.storage_configuration {
        let asked = storage::vector_store(&state.registry.config.rds, s)?;
        if asked != entry.kb.config.vector_store {
            return Err(ApiError::Validation(
                "storageConfiguration: the vector store of a knowledge base cannot be changed"
                    .into(),
            ));
        }
    }
    let mut config = entry.kb.config.clone();
    config.name = Spanned::new(0..0, req.name);
    config.description = req.description;
    if req.role_arn.is_some() {
        config.role_arn = req.role_arn;
    }
    config.embedding_model = Spanned::new(0..0, model);
    let id = entry.kb.id().to_owned();
    let entry = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || {
            let entry = state.registry.update(&id, config)?;
            crate::server::switcher::start(&state, &id);
            Ok::<_, ApiError>(entry)
        })
        .await
        .map_err(ApiError::internal)??
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "knowledgeBase": shapes::knowledge_base(&entry, &state) })),
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
