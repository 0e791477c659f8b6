//! `POST /events`: S3 "Object Created" / "Object Deleted" events as EventBridge delivers them
//! through an API destination, one or a batch (a JSON list). Each names a bucket and a key;
//! every S3 data source reading that bucket (and prefix) syncs just those keys. Events for
//! buckets no data source reads are ignored with a log line; repeated and out-of-order
//! events are harmless, because a sync looks at each object as it is now.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use quarry_core::config::DataSourceKind;
use serde_json::{Value, json};

use crate::server::auth::Principal;
use crate::server::error::{ApiError, ApiResult};
use crate::server::state::AppState;

const HANDLED: &[&str] = &["Object Created", "Object Deleted"];

/// (bucket, key) of an S3 event, if it is one we act on.
fn object_of(event: &Value) -> Option<(&str, &str)> {
    let kind = event.get("detail-type")?.as_str()?;
    if !HANDLED.contains(&kind) {
        return None;
    }
    let detail = event.get("detail")?;
    Some((
        detail.get("bucket")?.get("name")?.as_str()?,
        detail.get("object")?.get("key")?.as_str()?,
    ))
}

pub async fn receive(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let parsed: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::Validation(format!("request body: {e}")))?;
    let events: Vec<Value> = match parsed {
        Value::Array(events) => events,
        event @ Value::Object(_) => vec![event],
        _ => {
            return Err(ApiError::Validation(
                "expected an EventBridge event or a list of them".into(),
            ));
        }
    };
    // (kb id, data source id) → keys
    let mut work: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let (mut accepted, mut ignored) = (0, 0);
    for event in &events {
        let Some((bucket, key)) = object_of(event) else {
            ignored += 1;
            let kind = event.get("detail-type").cloned().unwrap_or_default();
            tracing::info!(%kind, "ignored an event that is not an S3 object change");
            continue;
        };
        let mut matched = false;
        for entry in state.registry.all() {
            if !principal.allows(entry.kb.id()) {
                continue;
            }
            for ds in &entry.kb.config.data_sources {
                let reads = ds.kind == DataSourceKind::S3
                    && ds.bucket.as_deref() == Some(bucket)
                    && (ds.inclusion_prefixes.is_empty()
                        || ds
                            .inclusion_prefixes
                            .iter()
                            .any(|p| key.starts_with(p.as_str())));
                if reads {
                    matched = true;
                    work.entry((entry.kb.id().to_owned(), ds.id.get_ref().to_string()))
                        .or_default()
                        .push(key.to_owned());
                }
            }
        }
        if matched {
            accepted += 1;
        } else {
            ignored += 1;
            tracing::info!(
                bucket,
                key,
                "ignored an S3 event: no data source reads this bucket and prefix"
            );
        }
    }
    let mut jobs = Vec::new();
    for ((kb_id, ds_id), keys) in work {
        let entry = state.registry.get(&kb_id)?;
        let Some(ds) = entry.kb.data_source(&ds_id).cloned() else {
            continue;
        };
        let (state, kb) = (state.clone(), entry.kb.clone());
        let started = tokio::task::spawn_blocking(move || state.jobs.sync_keys(kb, ds, keys))
            .await
            .map_err(ApiError::internal)??;
        jobs.push(match started {
            Some(job) => json!({ "knowledgeBaseId": kb_id, "dataSourceId": ds_id, "ingestionJobId": job.ingestion_job_id }),
            None => json!({ "knowledgeBaseId": kb_id, "dataSourceId": ds_id, "queued": true }),
        });
    }
    Ok(Json(
        json!({ "accepted": accepted, "ignored": ignored, "ingestionJobs": jobs }),
    ))
}
