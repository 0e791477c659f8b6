//! The S3-watching ingestor: for each data source with an `sqs_queue_url`, a thread
//! long-polls the queue for the bucket's event notifications and syncs just the objects they
//! name. A message is deleted once its keys are handed to a sync; when that fails it is left
//! for SQS to deliver again.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use quarry_core::config::DataSourceConfig;
use quarry_ingest::notifications::SqsQueue;

use super::registry::KbEntry;
use super::state::AppState;

pub fn start(state: &Arc<AppState>) {
    for entry in state.registry.all() {
        for ds in &entry.kb.config.data_sources {
            let Some(url) = ds.sqs_queue_url.clone() else {
                continue;
            };
            let (state, entry, ds) = (state.clone(), entry.clone(), ds.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("sqs-{}", ds.id.get_ref()))
                .spawn(move || watch(&state, &entry, &ds, &url));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start an SQS watcher");
            }
        }
    }
}

fn watch(state: &AppState, entry: &KbEntry, ds: &DataSourceConfig, url: &str) {
    let s3 = &state.registry.config.s3;
    let endpoint = ds.endpoint_url.as_deref().or(s3.endpoint_url.as_deref());
    let region = ds.region.as_deref().or(s3.region.as_deref());
    let queue = match SqsQueue::connect(url, endpoint, region) {
        Ok(q) => q,
        Err(e) => {
            tracing::error!(queue = url, error = %e, "cannot watch the queue");
            return;
        }
    };
    tracing::info!(queue = url, data_source = %ds.id.get_ref(), "watching S3 event notifications");
    while !state.shutting_down.load(Ordering::Relaxed) {
        let notifications = match queue.receive(1) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(queue = url, error = %e, "polling the queue failed; retrying");
                std::thread::sleep(Duration::from_secs(5));
                continue;
            }
        };
        for n in notifications {
            let keys: Vec<String> = n
                .objects
                .into_iter()
                .filter(|(bucket, key)| {
                    ds.bucket.as_deref() == Some(bucket.as_str())
                        && (ds.inclusion_prefixes.is_empty()
                            || ds
                                .inclusion_prefixes
                                .iter()
                                .any(|p| key.starts_with(p.as_str())))
                })
                .map(|(_, key)| key)
                .collect();
            if !keys.is_empty()
                && let Err(e) = state.jobs.sync_keys(entry.kb.clone(), ds.clone(), keys)
            {
                tracing::warn!(error = %e, "could not sync notified keys; the message will come back");
                continue;
            }
            if let Err(e) = queue.delete(&n.receipt_handle) {
                tracing::warn!(error = %e, "could not delete a handled message");
            }
        }
    }
}
