//! Direct ingestion: IngestKnowledgeBaseDocuments, DeleteKnowledgeBaseDocuments,
//! GetKnowledgeBaseDocuments and ListKnowledgeBaseDocuments. Documents are indexed (or
//! removed) before the response, on a thread of their own.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use base64::Engine;
use quarry_core::config::{DataSourceConfig, DataSourceKind};
use quarry_core::{Metadata, MetadataValue};
use quarry_ingest::SyncTarget;
use quarry_ingest::direct::{self, Content, DirectDocument, DocumentDetail, DocumentId};
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::{json, paged};
use super::data_sources::knowledge_base;
use super::members::{self, Members};
use super::shapes::timestamp;
use crate::knowledge_base::{KnowledgeBase, source_for};
use crate::server::auth::Principal;
use crate::server::client_tokens::Idempotency;
use crate::server::error::{ApiError, ApiResult};
use crate::server::state::AppState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IngestRequest {
    documents: Vec<Value>,
    #[serde(default)]
    client_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IdentifiersRequest {
    document_identifiers: Vec<Value>,
    /// DeleteKnowledgeBaseDocuments's only.
    #[serde(default)]
    client_token: Option<String>,
}

const LOCATION: Members = Members::Object(&[("uri", Members::Leaf)]);

/// What a `documentIdentifiers` entry may hold (Bedrock's members, and the nested forms
/// IngestKnowledgeBaseDocuments uses, which Quarry also takes here).
const IDENTIFIER: Members = Members::Object(&[
    ("dataSourceType", Members::Leaf),
    (
        "custom",
        Members::Object(&[
            ("id", Members::Leaf),
            (
                "customDocumentIdentifier",
                Members::Object(&[("id", Members::Leaf)]),
            ),
        ]),
    ),
    (
        "s3",
        Members::Object(&[("uri", Members::Leaf), ("s3Location", LOCATION)]),
    ),
]);

/// What a document of IngestKnowledgeBaseDocuments may hold.
const DOCUMENT: Members = Members::Object(&[
    (
        "content",
        Members::Object(&[
            ("dataSourceType", Members::Leaf),
            (
                "custom",
                Members::Object(&[
                    (
                        "customDocumentIdentifier",
                        Members::Object(&[("id", Members::Leaf)]),
                    ),
                    ("sourceType", Members::Leaf),
                    (
                        "inlineContent",
                        Members::Object(&[
                            ("type", Members::Leaf),
                            ("textContent", Members::Object(&[("data", Members::Leaf)])),
                            (
                                "byteContent",
                                Members::Object(&[
                                    ("mimeType", Members::Leaf),
                                    ("data", Members::Leaf),
                                ]),
                            ),
                        ]),
                    ),
                ]),
            ),
            ("s3", Members::Object(&[("s3Location", LOCATION)])),
        ]),
    ),
    (
        "metadata",
        Members::Object(&[
            ("type", Members::Leaf),
            (
                "inlineAttributes",
                Members::List(&Members::Object(&[
                    ("key", Members::Leaf),
                    (
                        "value",
                        Members::Object(&[
                            ("type", Members::Leaf),
                            ("stringValue", Members::Leaf),
                            ("numberValue", Members::Leaf),
                            ("booleanValue", Members::Leaf),
                            ("stringListValue", Members::Leaf),
                        ]),
                    ),
                ])),
            ),
        ]),
    ),
]);

impl IdentifiersRequest {
    fn identifiers(&self) -> ApiResult<Vec<DocumentId>> {
        self.document_identifiers
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let at = format!("documentIdentifiers[{i}]");
                members::check(v, &IDENTIFIER, &at)?;
                identifier(v, &at)
            })
            .collect()
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListRequest {
    #[serde(default)]
    max_results: Option<usize>,
    #[serde(default)]
    next_token: Option<String>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::Validation(message.into())
}

fn identifier(v: &Value, path: &str) -> ApiResult<DocumentId> {
    match v.get("dataSourceType").and_then(Value::as_str) {
        Some("CUSTOM") => v
            .pointer("/custom/id")
            .or_else(|| v.pointer("/custom/customDocumentIdentifier/id"))
            .and_then(Value::as_str)
            .map(|id| DocumentId::Custom(id.to_owned()))
            .ok_or_else(|| invalid(format!("{path}.custom.id is required"))),
        Some("S3") => v
            .pointer("/s3/uri")
            .or_else(|| v.pointer("/s3/s3Location/uri"))
            .and_then(Value::as_str)
            .map(|uri| DocumentId::S3 {
                uri: uri.to_owned(),
            })
            .ok_or_else(|| invalid(format!("{path}.s3.uri is required"))),
        _ => Err(invalid(format!(
            "{path}.dataSourceType must be CUSTOM or S3"
        ))),
    }
}

fn identifier_json(id: &DocumentId) -> Value {
    match id {
        DocumentId::Custom(id) => json!({ "dataSourceType": "CUSTOM", "custom": { "id": id } }),
        DocumentId::S3 { uri } => json!({ "dataSourceType": "S3", "s3": { "uri": uri } }),
    }
}

fn metadata(v: Option<&Value>, path: &str) -> ApiResult<Metadata> {
    let Some(v) = v else {
        return Ok(Metadata::new());
    };
    match v.get("type").and_then(Value::as_str) {
        Some("IN_LINE_ATTRIBUTE") => {}
        Some("S3_LOCATION") => {
            return Err(invalid(format!(
                "{path}.type S3_LOCATION is not supported; give inlineAttributes"
            )));
        }
        _ => return Err(invalid(format!("{path}.type must be IN_LINE_ATTRIBUTE"))),
    }
    let mut out = Metadata::new();
    for (i, attr) in v
        .get("inlineAttributes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let here = format!("{path}.inlineAttributes[{i}]");
        let key = attr
            .get("key")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("{here}.key is required")))?;
        let value = attr
            .get("value")
            .ok_or_else(|| invalid(format!("{here}.value is required")))?;
        let parsed = match value.get("type").and_then(Value::as_str) {
            Some("STRING") => value
                .get("stringValue")
                .and_then(Value::as_str)
                .map(|s| MetadataValue::String(s.into())),
            Some("NUMBER") => value
                .get("numberValue")
                .and_then(Value::as_f64)
                .map(MetadataValue::Number),
            Some("BOOLEAN") => value
                .get("booleanValue")
                .and_then(Value::as_bool)
                .map(MetadataValue::Bool),
            Some("STRING_LIST") => value
                .get("stringListValue")
                .and_then(MetadataValue::from_json),
            _ => None,
        };
        out.insert(
            key.to_owned(),
            parsed.ok_or_else(|| invalid(format!("{here}.value does not match its type")))?,
        );
    }
    Ok(out)
}

fn document(v: &Value, i: usize, ds: &DataSourceConfig) -> ApiResult<DirectDocument> {
    let path = format!("documents[{i}]");
    members::check(v, &DOCUMENT, &path)?;
    let content = v
        .get("content")
        .ok_or_else(|| invalid(format!("{path}.content is required")))?;
    let metadata = metadata(v.get("metadata"), &format!("{path}.metadata"))?;
    match content.get("dataSourceType").and_then(Value::as_str) {
        Some("CUSTOM") => {
            if ds.kind != DataSourceKind::Custom {
                return Err(invalid(format!(
                    "{path}.content: CUSTOM documents go to CUSTOM data sources"
                )));
            }
            let id = content
                .pointer("/custom/customDocumentIdentifier/id")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    invalid(format!(
                        "{path}.content.custom.customDocumentIdentifier.id is required"
                    ))
                })?;
            if content
                .pointer("/custom/sourceType")
                .and_then(Value::as_str)
                != Some("IN_LINE")
            {
                return Err(invalid(format!(
                    "{path}.content.custom.sourceType: only IN_LINE is supported"
                )));
            }
            let inline = content.pointer("/custom/inlineContent").ok_or_else(|| {
                invalid(format!("{path}.content.custom.inlineContent is required"))
            })?;
            let body = match inline.get("type").and_then(Value::as_str) {
                Some("TEXT") => Content::Text(
                    inline
                        .pointer("/textContent/data")
                        .and_then(Value::as_str)
                        .ok_or_else(|| invalid(format!("{path}: textContent.data is required")))?
                        .to_owned(),
                ),
                Some("BYTE") => {
                    let mime_type = inline
                        .pointer("/byteContent/mimeType")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned();
                    let encoded = inline
                        .pointer("/byteContent/data")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    let data = base64::engine::general_purpose::STANDARD
                        .decode(encoded)
                        .map_err(|e| {
                            invalid(format!("{path}: byteContent.data is not base64: {e}"))
                        })?;
                    Content::Bytes { mime_type, data }
                }
                _ => {
                    return Err(invalid(format!(
                        "{path}.content.custom.inlineContent.type must be TEXT or BYTE"
                    )));
                }
            };
            Ok(DirectDocument {
                id: DocumentId::Custom(id.to_owned()),
                content: body,
                metadata,
            })
        }
        Some("S3") => {
            if ds.kind != DataSourceKind::S3 {
                return Err(invalid(format!(
                    "{path}.content: S3 documents go to S3 data sources"
                )));
            }
            let uri = content
                .pointer("/s3/s3Location/uri")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("{path}.content.s3.s3Location.uri is required")))?;
            Ok(DirectDocument {
                id: DocumentId::S3 {
                    uri: uri.to_owned(),
                },
                content: Content::FromSource,
                metadata,
            })
        }
        _ => Err(invalid(format!(
            "{path}.content.dataSourceType must be CUSTOM or S3"
        ))),
    }
}

fn details_json(kb: &str, ds: &str, details: &[DocumentDetail]) -> Vec<Value> {
    details
        .iter()
        .map(|d| {
            let mut v = json!({
                "knowledgeBaseId": kb,
                "dataSourceId": ds,
                "status": d.status,
                "identifier": identifier_json(&d.id),
                "updatedAt": timestamp(&d.updated_at),
            });
            if let Some(r) = &d.status_reason {
                v["statusReason"] = json!(r);
            }
            v
        })
        .collect()
}

/// Runs `work` with a sync target for the data source, on a plain thread (the S3 client runs
/// a runtime of its own, which may not start inside the server's).
async fn with_target<T: Send + 'static>(
    state: &Arc<AppState>,
    kb: Arc<KnowledgeBase>,
    ds: DataSourceConfig,
    work: impl FnOnce(&SyncTarget<'_>, Option<&str>) -> Result<T, quarry_ingest::sync::SyncError>
    + Send
    + 'static,
) -> ApiResult<T> {
    let slot = state.document_slot()?;
    let s3 = state.registry.config.s3.clone();
    let max_document_bytes = state.registry.config.server.max_document_bytes;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _slot = slot;
        let result = (|| -> ApiResult<T> {
            let source = source_for(&ds, &s3).map_err(ApiError::internal)?;
            let chunker = kb.chunker(&ds).map_err(ApiError::internal)?;
            let ledger = kb.ledger();
            let target = SyncTarget {
                data_source_id: ds.id.get_ref().as_str(),
                source: source.as_ref(),
                chunker: chunker.as_ref(),
                embedder: kb.embedder.as_ref(),
                store: kb.store.as_ref(),
                ledger: ledger.as_ref(),
                max_document_bytes,
                parse_options: ds.parse_options(),
            };
            work(&target, ds.bucket.as_deref()).map_err(|e| match e {
                quarry_ingest::sync::SyncError::Embedding(reason) => {
                    ApiError::DependencyFailed(reason)
                }
                other => ApiError::internal(other),
            })
        })();
        let _ = tx.send(result);
    });
    rx.await.map_err(ApiError::internal)?
}

fn data_source(
    state: &AppState,
    principal: &Principal,
    kb: &str,
    ds: &str,
) -> ApiResult<(Arc<KnowledgeBase>, DataSourceConfig)> {
    let entry = knowledge_base(state, principal, kb)?;
    let source = entry.data_source(ds)?.clone();
    if source.kind == DataSourceKind::Local {
        return Err(invalid(format!(
            "data source {ds} is a local folder; its documents come from the folder"
        )));
    }
    Ok((entry.kb.clone(), source))
}

pub async fn ingest(
    State(state): State<Arc<AppState>>,
    Path((kb, ds)): Path<(String, String)>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (kb, ds) = data_source(&state, &principal, &kb, &ds)?;
    let req: IngestRequest = json(&body)?;
    if req.documents.is_empty() || req.documents.len() > 10 {
        return Err(invalid("documents must hold 1 to 10 documents"));
    }
    let documents = req
        .documents
        .iter()
        .enumerate()
        .map(|(i, d)| document(d, i, &ds))
        .collect::<ApiResult<Vec<_>>>()?;
    let (kb_id, ds_id) = (kb.id().to_owned(), ds.id.get_ref().to_string());
    let idempotency = Idempotency::new(
        format!("IngestKnowledgeBaseDocuments {kb_id} {ds_id}"),
        req.client_token,
        &body,
    )?;
    let repeated = idempotency.earlier(state.client_tokens.as_ref())?.is_some();
    let details = with_target(&state, kb, ds, move |t, bucket| {
        if repeated {
            // Sent before with this token: the documents' state now, not a second ingestion.
            let ids: Vec<DocumentId> = documents.iter().map(|d| d.id.clone()).collect();
            direct::get(t, bucket, &ids)
        } else {
            direct::ingest(t, bucket, &documents)
        }
    })
    .await?;
    idempotency.made(state.client_tokens.as_ref(), "")?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "documentDetails": details_json(&kb_id, &ds_id, &details) })),
    ))
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path((kb, ds)): Path<(String, String)>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (kb, ds) = data_source(&state, &principal, &kb, &ds)?;
    let req: IdentifiersRequest = json(&body)?;
    let ids = req.identifiers()?;
    let (kb_id, ds_id) = (kb.id().to_owned(), ds.id.get_ref().to_string());
    let idempotency = Idempotency::new(
        format!("DeleteKnowledgeBaseDocuments {kb_id} {ds_id}"),
        req.client_token,
        &body,
    )?;
    let repeated = idempotency.earlier(state.client_tokens.as_ref())?.is_some();
    let details = with_target(&state, kb, ds, move |t, bucket| {
        if repeated {
            direct::get(t, bucket, &ids)
        } else {
            direct::delete(t, bucket, &ids)
        }
    })
    .await?;
    idempotency.made(state.client_tokens.as_ref(), "")?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "documentDetails": details_json(&kb_id, &ds_id, &details) })),
    ))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    Path((kb, ds)): Path<(String, String)>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let (kb, ds) = data_source(&state, &principal, &kb, &ds)?;
    let req: IdentifiersRequest = json(&body)?;
    if req.client_token.is_some() {
        return Err(invalid(
            "clientToken: GetKnowledgeBaseDocuments has no such member",
        ));
    }
    let ids = req.identifiers()?;
    let (kb_id, ds_id) = (kb.id().to_owned(), ds.id.get_ref().to_string());
    let details = with_target(&state, kb, ds, move |t, bucket| {
        direct::get(t, bucket, &ids)
    })
    .await?;
    Ok(Json(
        json!({ "documentDetails": details_json(&kb_id, &ds_id, &details) }),
    ))
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    Path((kb, ds)): Path<(String, String)>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let (kb, ds) = data_source(&state, &principal, &kb, &ds)?;
    let req: ListRequest = json(&body)?;
    let (kb_id, ds_id) = (kb.id().to_owned(), ds.id.get_ref().to_string());
    let details = with_target(&state, kb, ds, direct::list).await?;
    let all = details_json(&kb_id, &ds_id, &details);
    Ok(Json(paged(
        "documentDetails",
        &all,
        req.max_results,
        req.next_token.as_deref(),
    )?))
}
