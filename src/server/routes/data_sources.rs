//! List, get and create data sources.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use quarry_core::config::{ChunkingConfig, DataDeletionPolicy, DataSourceConfig, DataSourceKind};
use quarry_core::ids::ResourceId;
use serde::Deserialize;
use serde_json::{Value, json};
use serde_spanned::Spanned;

use super::body::{json, paged};
use super::shapes;
use crate::server::auth::Principal;
use crate::server::client_tokens::Idempotency;
use crate::server::error::{ApiError, ApiResult};
use crate::server::registry::KbEntry;
use crate::server::state::AppState;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
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
    state.knowledge_base(principal, kb)
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
    Ok(Json(paged(
        "dataSourceSummaries",
        &all,
        req.max_results,
        req.next_token.as_deref(),
    )?))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    Path((kb, ds)): Path<(String, String)>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Json<Value>> {
    let entry = knowledge_base(&state, &principal, &kb)?;
    let source = entry.data_source(&ds)?;
    Ok(Json(
        json!({ "dataSource": shapes::data_source(&entry, source) }),
    ))
}

/// CreateDataSource's and UpdateDataSource's body (`clientToken` is Create's only).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DataSourceRequest {
    name: String,
    #[serde(default)]
    description: Option<String>,
    data_source_configuration: DataSourceConfiguration,
    #[serde(default)]
    vector_ingestion_configuration: Option<VectorIngestionConfiguration>,
    #[serde(default)]
    data_deletion_policy: Option<String>,
    #[serde(default)]
    client_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DataSourceConfiguration {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    s3_configuration: Option<S3Configuration>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct S3Configuration {
    bucket_arn: String,
    #[serde(default)]
    inclusion_prefixes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct VectorIngestionConfiguration {
    #[serde(default)]
    chunking_configuration: Option<ChunkingConfiguration>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ChunkingConfiguration {
    chunking_strategy: String,
    #[serde(default)]
    fixed_size_chunking_configuration: Option<FixedSize>,
    #[serde(default)]
    hierarchical_chunking_configuration: Option<HierarchicalChunking>,
    #[serde(default)]
    semantic_chunking_configuration: Option<SemanticChunking>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HierarchicalChunking {
    level_configurations: Vec<Level>,
    overlap_tokens: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Level {
    max_tokens: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SemanticChunking {
    max_tokens: usize,
    buffer_size: usize,
    breakpoint_percentile_threshold: u8,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FixedSize {
    max_tokens: usize,
    overlap_percentage: u8,
}

fn required<T>(field: Option<T>, name: &str, strategy: &str) -> ApiResult<T> {
    field.ok_or_else(|| {
        ApiError::Validation(format!(
            "chunkingConfiguration.{name} is required for {strategy}"
        ))
    })
}

/// Bedrock's `chunkingConfiguration`, checked against Bedrock's bounds.
fn chunking_config(c: ChunkingConfiguration) -> ApiResult<ChunkingConfig> {
    let strategy = c.chunking_strategy.as_str();
    let config = match strategy {
        "FIXED_SIZE" => {
            let f = required(
                c.fixed_size_chunking_configuration,
                "fixedSizeChunkingConfiguration",
                strategy,
            )?;
            ChunkingConfig::FixedSize {
                max_tokens: f.max_tokens,
                overlap_percentage: f.overlap_percentage,
            }
        }
        "NONE" => ChunkingConfig::None,
        "HIERARCHICAL" => {
            let h = required(
                c.hierarchical_chunking_configuration,
                "hierarchicalChunkingConfiguration",
                strategy,
            )?;
            let [parent, child] = &h.level_configurations[..] else {
                return Err(ApiError::Validation(
                    "chunkingConfiguration.hierarchicalChunkingConfiguration.levelConfigurations must have two levels: parent, then child".into(),
                ));
            };
            ChunkingConfig::Hierarchical {
                parent_max_tokens: parent.max_tokens,
                child_max_tokens: child.max_tokens,
                overlap_tokens: h.overlap_tokens,
            }
        }
        "SEMANTIC" => {
            let m = required(
                c.semantic_chunking_configuration,
                "semanticChunkingConfiguration",
                strategy,
            )?;
            ChunkingConfig::Semantic {
                max_tokens: m.max_tokens,
                buffer_size: m.buffer_size,
                breakpoint_percentile_threshold: m.breakpoint_percentile_threshold,
            }
        }
        other => {
            return Err(ApiError::Validation(format!(
                "chunkingConfiguration.chunkingStrategy must be FIXED_SIZE, NONE, HIERARCHICAL or SEMANTIC, got {other}"
            )));
        }
    };
    if let Some((field, message)) = config.problem() {
        return Err(ApiError::Validation(format!(
            "chunkingConfiguration: {field} {message}"
        )));
    }
    Ok(config)
}

/// A data source's configuration from a Create/UpdateDataSource request.
fn data_source_config(
    state: &AppState,
    principal: &Principal,
    entry: &KbEntry,
    id: ResourceId,
    req: DataSourceRequest,
) -> ApiResult<DataSourceConfig> {
    super::knowledge_bases::valid_name(&req.name)?;
    let data_deletion_policy = match req.data_deletion_policy.as_deref() {
        None | Some("DELETE") => DataDeletionPolicy::Delete,
        Some("RETAIN") => DataDeletionPolicy::Retain,
        Some(other) => {
            return Err(ApiError::Validation(format!(
                "dataDeletionPolicy must be DELETE or RETAIN, got {other:?}"
            )));
        }
    };
    let chunking = match req
        .vector_ingestion_configuration
        .and_then(|v| v.chunking_configuration)
    {
        None => ChunkingConfig::Default,
        Some(c) => chunking_config(c)?,
    };
    let c = req.data_source_configuration;
    let mut ds = DataSourceConfig {
        id: Spanned::new(0..0, id),
        name: req.name,
        description: req.description,
        kind: DataSourceKind::Custom,
        path: None,
        bucket: None,
        inclusion_prefixes: Vec::new(),
        endpoint_url: None,
        region: None,
        chunking,
        sqs_queue_url: None,
        sync_interval: None,
        data_deletion_policy,
        tags: Default::default(),
        ocr: None,
    };
    match (c.kind.as_str(), c.s3_configuration) {
        ("CUSTOM", None) => {}
        ("CUSTOM", Some(_)) => {
            return Err(ApiError::Validation(
                "dataSourceConfiguration.s3Configuration is only for type S3".into(),
            ));
        }
        ("S3", Some(s3)) => {
            ds.kind = DataSourceKind::S3;
            ds.bucket = Some(checked_bucket(state, principal, &s3)?);
            ds.inclusion_prefixes = s3.inclusion_prefixes;
        }
        ("S3", None) => {
            return Err(ApiError::Validation(
                "dataSourceConfiguration.s3Configuration is required for type S3".into(),
            ));
        }
        (other, _) => {
            return Err(ApiError::Validation(format!(
                "dataSourceConfiguration.type {other} is not supported; use S3 or CUSTOM"
            )));
        }
    }
    entry
        .kb
        .chunker(&ds)
        .map_err(|e| ApiError::Validation(format!("{e:#}")))?;
    Ok(ds)
}

/// The bucket an `s3Configuration` names, if the caller may read it.
fn checked_bucket(
    state: &AppState,
    principal: &Principal,
    s3: &S3Configuration,
) -> ApiResult<String> {
    let bucket = s3.bucket_arn.strip_prefix("arn:aws:s3:::").ok_or_else(|| {
        ApiError::Validation(format!(
            "bucketArn {:?} must look like arn:aws:s3:::BUCKET",
            s3.bucket_arn
        ))
    })?;
    if let Some(problem) = quarry_core::ids::bucket_name_problem(bucket) {
        return Err(ApiError::Validation(format!(
            "dataSourceConfiguration.s3Configuration.bucketArn: {problem}"
        )));
    }
    if !state.auth.may_read_bucket(principal, bucket) {
        return Err(ApiError::AccessDenied(format!(
            "access key {} may not read bucket {bucket}: list it in [s3] allowed_buckets or the key's buckets",
            principal.name()
        )));
    }
    Ok(bucket.to_owned())
}

fn api_made(entry: &KbEntry) -> ApiResult<()> {
    if entry.from_api {
        Ok(())
    } else {
        Err(ApiError::Validation(format!(
            "knowledge base {} is declared in knowledge-bases.toml; change its data sources there",
            entry.kb.id()
        )))
    }
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    Path(kb): Path<String>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let entry = knowledge_base(&state, &principal, &kb)?;
    api_made(&entry)?;
    let mut req: DataSourceRequest = json(&body)?;
    let idempotency = Idempotency::new(
        format!("CreateDataSource {}", entry.kb.id()),
        req.client_token.take(),
        &body,
    )?;
    if let Some(id) = idempotency.earlier(state.client_tokens.as_ref())?
        && let Ok(ds) = entry.data_source(&id)
    {
        return Ok(Json(
            json!({ "dataSource": shapes::data_source(&entry, ds) }),
        ));
    }
    if entry
        .kb
        .config
        .data_sources
        .iter()
        .any(|d| d.name == req.name)
    {
        return Err(ApiError::Conflict(format!(
            "a data source named {} already exists",
            req.name
        )));
    }
    let ds = data_source_config(&state, &principal, &entry, ResourceId::random(), req)?;
    let mut config = entry.kb.config.clone();
    config.data_sources.push(ds.clone());
    let id = entry.kb.id().to_owned();
    let updated = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || state.registry.update(&id, config))
            .await
            .map_err(ApiError::internal)??
    };
    idempotency.made(state.client_tokens.as_ref(), ds.id.get_ref().as_str())?;
    Ok(Json(
        json!({ "dataSource": shapes::data_source(&updated, &ds) }),
    ))
}

pub async fn update(
    State(state): State<Arc<AppState>>,
    Path((kb, ds_id)): Path<(String, String)>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let entry = knowledge_base(&state, &principal, &kb)?;
    let old = entry.data_source(&ds_id)?.clone();
    api_made(&entry)?;
    let req: DataSourceRequest = json(&body)?;
    if req.client_token.is_some() {
        return Err(ApiError::Validation(
            "clientToken: UpdateDataSource has no such member".into(),
        ));
    }
    let kind = match req.data_source_configuration.kind.as_str() {
        "S3" => Some(DataSourceKind::S3),
        "CUSTOM" => Some(DataSourceKind::Custom),
        _ => None,
    };
    if kind.is_some_and(|k| k != old.kind) {
        return Err(ApiError::Validation(
            "dataSourceConfiguration.type: the type of a data source cannot be changed".into(),
        ));
    }
    let chunking_given = req
        .vector_ingestion_configuration
        .as_ref()
        .is_some_and(|v| v.chunking_configuration.is_some());
    let mut ds = data_source_config(&state, &principal, &entry, old.id.get_ref().clone(), req)?;
    // As Bedrock: the chunking of a data source is fixed when it is made.
    if !chunking_given {
        ds.chunking = old.chunking.clone();
    } else if ds.chunking != old.chunking {
        return Err(ApiError::Validation(
            "vectorIngestionConfiguration.chunkingConfiguration: the chunking strategy of a data source cannot be changed after it is created".into(),
        ));
    }
    ds.tags = old.tags.clone();
    let mut config = entry.kb.config.clone();
    for d in &mut config.data_sources {
        if d.id.get_ref() == ds.id.get_ref() {
            *d = ds.clone();
        }
    }
    let id = entry.kb.id().to_owned();
    let updated = tokio::task::spawn_blocking(move || state.registry.update(&id, config))
        .await
        .map_err(ApiError::internal)??;
    Ok(Json(
        json!({ "dataSource": shapes::data_source(&updated, &ds) }),
    ))
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path((kb, ds_id)): Path<(String, String)>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let entry = knowledge_base(&state, &principal, &kb)?;
    let ds = entry.data_source(&ds_id)?.clone();
    api_made(&entry)?;
    let ds_id = ds.id.get_ref().to_string();
    if state.jobs.is_running(entry.kb.id(), &ds_id) {
        return Err(ApiError::Conflict(format!(
            "data source {ds_id} has a running ingestion job"
        )));
    }
    let mut config = entry.kb.config.clone();
    config
        .data_sources
        .retain(|d| d.id.get_ref().as_str() != ds_id);
    let id = entry.kb.id().to_owned();
    let response = json!({ "knowledgeBaseId": id, "dataSourceId": ds_id, "status": "DELETING" });
    tokio::task::spawn_blocking(move || -> ApiResult<()> {
        // DELETE: the data source's chunks go with it; RETAIN: they stay in the store (and
        // are found by searches) while the ledger forgets them.
        {
            let retain = ds.data_deletion_policy == DataDeletionPolicy::Retain;
            let ledger = entry.kb.ledger();
            for doc in ledger.entries(&ds_id).map_err(ApiError::internal)? {
                if !retain {
                    ledger
                        .mark_pending(&ds_id, &doc.key)
                        .map_err(ApiError::internal)?;
                    entry
                        .kb
                        .store
                        .delete_document(&ds_id, &doc.key)
                        .map_err(ApiError::internal)?;
                }
                ledger
                    .remove(&ds_id, &doc.key)
                    .map_err(ApiError::internal)?;
            }
        }
        state.registry.update(&id, config)?;
        Ok(())
    })
    .await
    .map_err(ApiError::internal)??;
    Ok((StatusCode::ACCEPTED, Json(response)))
}
