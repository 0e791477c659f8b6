//! What `quarry inspect` knows, over the signed API, for the console: a knowledge base's
//! document and chunk counts, a data source's documents, and one document's chunks in order
//! with the text its parser extracted. Quarry's own operations (Bedrock has none of these),
//! under `/quarry/`; the caller's grant is checked as for any other.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use quarry_core::StoredChunk;
use quarry_core::config::DataSourceConfig;
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::{json, paged};
use super::data_sources::knowledge_base;
use crate::knowledge_base::{KnowledgeBase, source_for};
use crate::server::auth::Principal;
use crate::server::error::{ApiError, ApiResult};
use crate::server::state::AppState;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListRequest {
    #[serde(default)]
    max_results: Option<usize>,
    #[serde(default)]
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ChunksRequest {
    /// The document's key in its data source (a relative path, an S3 key or a custom id).
    document_key: String,
}

/// Runs blocking store and ledger reads off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::internal)?
}

/// `GET /quarry/knowledgebases/{kb}/summary`: chunks stored, and documents per data source.
pub async fn summary(
    State(state): State<Arc<AppState>>,
    Path(kb): Path<String>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Json<Value>> {
    let entry = knowledge_base(&state, &principal, &kb)?;
    let kb = entry.kb.clone();
    let progress = state.registry.switch_progress(kb.id());
    blocking(move || {
        let index = index_summary(&kb, progress.as_deref()).map_err(ApiError::internal)?;
        let ledger = kb.ledger();
        let mut sources = Vec::new();
        for ds in &kb.config.data_sources {
            let entries = ledger
                .entries(ds.id.get_ref().as_str())
                .map_err(ApiError::internal)?;
            let pending = entries.iter().filter(|e| e.pending).count();
            sources.push(json!({
                "dataSourceId": ds.id.get_ref(),
                "name": ds.name,
                "documents": entries.len() - pending,
                "pendingDocuments": pending,
            }));
        }
        Ok(Json(json!({
            "knowledgeBaseId": kb.id(),
            "chunks": kb.store.len().map_err(ApiError::internal)?,
            "dataSources": sources,
            "index": index,
        })))
    })
    .await
}

/// The serving index's generation and model, the switch being built (with its progress)
/// and the last one done.
fn index_summary(
    kb: &crate::knowledge_base::KnowledgeBase,
    progress: Option<&crate::generations::Progress>,
) -> anyhow::Result<Value> {
    use std::sync::atomic::Ordering::Relaxed;
    let state = crate::generations::IndexState::load(&kb.dir, kb.config.embedding_model.get_ref())?;
    let mut v = json!({
        "generation": kb.generation.number,
        "model": kb.generation.model,
        "retiredGenerations": state.retired,
        "lastSwitch": state.last_switch,
        "held": state.held,
    });
    if let Some(b) = &state.building {
        v["switch"] = json!({
            "generation": b.generation.number,
            "model": b.generation.model,
            "startedAt": b.started_at,
            "chunksDone": progress.map(|p| p.done.load(Relaxed)),
            "chunksTotal": progress.map(|p| p.total.load(Relaxed)),
            "percent": progress.map(|p| p.percent()),
        });
    }
    Ok(v)
}

/// `POST /quarry/knowledgebases/{kb}/datasources/{ds}/documents`: every document the
/// ledger holds for the data source, in key order, with its chunk count (local folders
/// included, which ListKnowledgeBaseDocuments refuses as Bedrock has none).
pub async fn documents(
    State(state): State<Arc<AppState>>,
    Path((kb, ds)): Path<(String, String)>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let (kb, ds) = data_source(&state, &principal, &kb, &ds)?;
    let req: ListRequest = json(&body)?;
    let all = blocking(move || {
        let entries = kb
            .ledger()
            .entries(ds.id.get_ref().as_str())
            .map_err(ApiError::internal)?;
        Ok(entries
            .into_iter()
            .map(|e| {
                json!({
                    "documentKey": e.key,
                    "status": if e.pending { "PENDING" } else { "INDEXED" },
                    "size": e.size,
                    "chunks": e.chunk_ids.len(),
                })
            })
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(Json(paged(
        "documents",
        &all,
        req.max_results,
        req.next_token.as_deref(),
    )?))
}

/// `POST /quarry/knowledgebases/{kb}/datasources/{ds}/documents/chunks`: one document's
/// chunks in text order with their pages, spans, token counts and metadata, and the text its
/// parser extracts from the document as the data source holds it now (when it can be read).
pub async fn chunks(
    State(state): State<Arc<AppState>>,
    Path((kb, ds)): Path<(String, String)>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let (kb, ds) = data_source(&state, &principal, &kb, &ds)?;
    let req: ChunksRequest = json(&body)?;
    let s3 = state.registry.config.s3.clone();
    let max_bytes = state.registry.config.server.max_document_bytes;
    // Parsing the document again is work like direct ingestion's, and shares its limit.
    let slot = state.document_slot()?;
    blocking(move || {
        let _slot = slot;
        let key = req.document_key;
        let ds_id = ds.id.get_ref().to_string();
        let ids = kb
            .store
            .document_chunk_ids(&ds_id, &key)
            .map_err(ApiError::internal)?;
        if ids.is_empty() && !ledger_has(&kb, &ds_id, &key)? {
            return Err(ApiError::NotFound(format!(
                "data source {ds_id} has no document {key:?}"
            )));
        }
        let mut chunks = kb.store.chunks(&ids).map_err(ApiError::internal)?;
        chunks.sort_by_key(|c| (c.span.start, c.span.end));
        let listed: Vec<Value> = chunks.iter().map(|c| chunk_json(&kb, c)).collect();
        let mut out = json!({
            "knowledgeBaseId": kb.id(),
            "dataSourceId": ds_id,
            "documentKey": key,
            "sourceUri": chunks.first().map(|c| c.source_uri.clone()),
            "chunks": listed,
        });
        match parsed_text(&ds, &s3, &key, max_bytes) {
            Ok(text) => out["parsedText"] = json!(text),
            Err(reason) => out["parsedTextUnavailable"] = json!(reason),
        }
        Ok(Json(out))
    })
    .await
}

fn ledger_has(kb: &KnowledgeBase, ds_id: &str, key: &str) -> ApiResult<bool> {
    Ok(kb
        .ledger()
        .entries(ds_id)
        .map_err(ApiError::internal)?
        .iter()
        .any(|e| e.key == key))
}

fn chunk_json(kb: &KnowledgeBase, c: &StoredChunk) -> Value {
    let metadata: serde_json::Map<String, Value> = c
        .full_metadata()
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or(Value::Null)))
        .collect();
    json!({
        "chunkId": c.id,
        "page": c.page,
        "span": { "start": c.span.start, "end": c.span.end },
        "tokens": kb.embedder.count_tokens(&c.text),
        "text": c.text,
        "metadata": metadata,
    })
}

/// The document read from its data source and parsed as a sync would (in a parse worker).
fn parsed_text(
    ds: &DataSourceConfig,
    s3: &quarry_core::config::S3Defaults,
    key: &str,
    max_bytes: u64,
) -> Result<String, String> {
    let source = source_for(ds, s3).map_err(|e| e.to_string())?;
    let bytes = source
        .fetch(key)
        .map_err(|e| format!("the data source cannot give the document now: {e}"))?;
    quarry_ingest::parsers::parse_document_with(key, &bytes, max_bytes, &ds.parse_options())
        .map(|parsed| parsed.text)
        .map_err(|e| format!("the document no longer parses: {e}"))
}

fn data_source(
    state: &AppState,
    principal: &Principal,
    kb: &str,
    ds: &str,
) -> ApiResult<(Arc<KnowledgeBase>, DataSourceConfig)> {
    let entry = knowledge_base(state, principal, kb)?;
    let source = entry.data_source(ds)?.clone();
    Ok((entry.kb.clone(), source))
}

/// `GET /quarry/models`: the models a request may name, by what they do (the console's
/// choices for CreateKnowledgeBase, the test pane's generation and reranking).
pub async fn models(State(state): State<Arc<AppState>>) -> Json<Value> {
    use quarry_core::config::ModelConfig;
    let (mut embedding, mut generation, mut reranking) = (vec![], vec![], vec![]);
    for (name, model) in &state.registry.config.models {
        match model {
            m if m.is_embedding() => embedding.push(name),
            ModelConfig::GgufLlama { .. } | ModelConfig::Openai { .. } => generation.push(name),
            ModelConfig::RerankApi { .. } | ModelConfig::BertCrossEncoder { .. } => {
                reranking.push(name)
            }
            _ => {}
        }
    }
    Json(json!({
        "embeddingModels": embedding,
        "generationModels": generation,
        "rerankingModels": reranking,
    }))
}
