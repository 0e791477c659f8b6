//! Job events: every ingestion job's state change (STARTING, IN_PROGRESS, COMPLETE, FAILED,
//! STOPPED) and every document that fails, as JSON events delivered to the configured sinks
//! (`[[server.event_sinks]]`: webhooks, EventBridge) at least once, in order per sink, with
//! an id that stays the same when an event is sent again. Events are taken from the job
//! record each time it is saved ([`EventingLedger`]), so every path that runs a job (the
//! server's jobs, change events, `quarry sync`) emits them. Each event is also appended to
//! `<data_dir>/events/log.jsonl`, which `quarry events tail` follows.

mod ledger;
mod outbox;
mod sinks;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{SecondsFormat, Utc};
use quarry_core::config::EventSinkConfig;
use quarry_ingest::{IngestionJob, JobStatus};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub use self::ledger::EventingLedger;
use self::outbox::Outbox;

/// `ingestion-job.state`: the job's status changed.
pub const STATE: &str = "ingestion-job.state";
/// `ingestion-job.document-failed`: a document of the job failed.
pub const DOCUMENT_FAILED: &str = "ingestion-job.document-failed";

fn status_name(status: JobStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// An id derived from what the event says, so the same event sent twice has the same id.
fn event_id(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for p in parts {
        hash.update(p.as_bytes());
        hash.update([0]);
    }
    hex::encode(&hash.finalize()[..16])
}

/// The event for a job's state.
pub fn state_event(job: &IngestionJob) -> Value {
    let status = status_name(job.status);
    let mut event = json!({
        "id": event_id(&[STATE, &job.ingestion_job_id, &status]),
        "type": STATE,
        "knowledgeBaseId": job.knowledge_base_id,
        "dataSourceId": job.data_source_id,
        "ingestionJobId": job.ingestion_job_id,
        "status": status,
        "statistics": job.statistics,
        "time": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
    });
    if job.status == JobStatus::Failed
        && let Some(reason) = job.failure_reasons.last()
    {
        event["reason"] = json!(reason);
    }
    event
}

/// The event for one failed document (`reason` as the job records it: `uri: why`).
pub fn document_failed_event(job: &IngestionJob, recorded: &str) -> Value {
    let (uri, reason) = recorded.split_once(": ").unwrap_or(("", recorded));
    json!({
        "id": event_id(&[DOCUMENT_FAILED, &job.ingestion_job_id, recorded]),
        "type": DOCUMENT_FAILED,
        "knowledgeBaseId": job.knowledge_base_id,
        "dataSourceId": job.data_source_id,
        "ingestionJobId": job.ingestion_job_id,
        "status": status_name(job.status),
        "statistics": job.statistics,
        "documentUri": uri,
        "reason": reason,
        "time": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
    })
}

/// `ingestion-job.regression`: the regression set's scores after a completed job.
pub const REGRESSION: &str = "ingestion-job.regression";

/// The event for a job's regression-set scores.
pub fn regression_event(job: &IngestionJob, result: &quarry_ingest::RegressionResult) -> Value {
    json!({
        "id": event_id(&[REGRESSION, &job.ingestion_job_id]),
        "type": REGRESSION,
        "knowledgeBaseId": job.knowledge_base_id,
        "dataSourceId": job.data_source_id,
        "ingestionJobId": job.ingestion_job_id,
        "status": status_name(job.status),
        "statistics": job.statistics,
        "regression": result,
        "time": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
    })
}

/// Where events go: the log, and an outbox per sink drained by a thread of its own.
pub struct JobEvents {
    log: Mutex<Option<std::fs::File>>,
    outboxes: Vec<Arc<Outbox>>,
}

/// The log of every event, one JSON object per line.
pub fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("events").join("log.jsonl")
}

impl JobEvents {
    /// Opens the log and the sinks' outboxes (resending what an earlier run left there).
    pub fn open(data_dir: &Path, sinks: &[EventSinkConfig]) -> anyhow::Result<Arc<Self>> {
        let dir = data_dir.join("events");
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path(data_dir))?;
        let mut outboxes = Vec::new();
        for config in sinks {
            let sink = sinks::build(config)?;
            outboxes.push(Outbox::start(&dir, sink, config.max_attempts())?);
        }
        Ok(Arc::new(Self {
            log: Mutex::new(Some(log)),
            outboxes,
        }))
    }

    /// Records an event and queues it for every sink.
    pub fn emit(&self, event: Value) {
        let line = event.to_string();
        if let Some(log) = self.log.lock().unwrap_or_else(|e| e.into_inner()).as_mut()
            && let Err(e) = writeln!(log, "{line}")
        {
            tracing::warn!(error = %e, "could not append to the job event log");
        }
        for outbox in &self.outboxes {
            if let Err(e) = outbox.push(&event) {
                tracing::error!(error = %e, sink = outbox.name(), "could not queue a job event");
            }
        }
    }

    /// Waits up to `timeout` for every queued event to be delivered (or dead-lettered); what
    /// is left stays in the outbox for the next run.
    pub fn drain(&self, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        self.outboxes.iter().all(|o| o.wait_empty(deadline))
    }
}
