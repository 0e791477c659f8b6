//! A ledger that emits job events as a job's record is saved: a new status is a state event,
//! each failure recorded since the last save a document-failed event.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use quarry_ingest::ledger::{LedgerEntry, LedgerError};
use quarry_ingest::{IngestionJob, JobStatus, Ledger};

use super::{JobEvents, document_failed_event, state_event};

/// What was last seen of a job: its status and how many failures had been told.
#[derive(Clone, Copy)]
struct Seen {
    status: JobStatus,
    failures_told: usize,
}

pub struct EventingLedger {
    inner: Box<dyn Ledger>,
    events: Arc<JobEvents>,
    seen: Mutex<HashMap<String, Seen>>,
}

impl EventingLedger {
    pub fn new(inner: Box<dyn Ledger>, events: Arc<JobEvents>) -> Self {
        Self {
            inner,
            events,
            seen: Mutex::new(HashMap::new()),
        }
    }

    fn observe(&self, job: &IngestionJob) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let before = seen.get(&job.ingestion_job_id).copied();
        // Documents failed are counted in the statistics; the reasons past them (a FAILED
        // job's own reason) belong to the state event.
        let failed =
            (job.statistics.number_of_documents_failed as usize).min(job.failure_reasons.len());
        let told = before.map_or(0, |s| s.failures_told);
        for reason in job.failure_reasons.iter().take(failed).skip(told) {
            self.events.emit(document_failed_event(job, reason));
        }
        // STOPPING is a request, not a state the consumers wait on; it is told when
        // the job has STOPPED.
        let changed = before.is_none_or(|s| s.status != job.status);
        if changed && job.status != JobStatus::Stopping {
            self.events.emit(state_event(job));
        }
        seen.insert(
            job.ingestion_job_id.clone(),
            Seen {
                status: job.status,
                failures_told: failed.max(told),
            },
        );
    }
}

impl Ledger for EventingLedger {
    fn entries(&self, data_source_id: &str) -> Result<Vec<LedgerEntry>, LedgerError> {
        self.inner.entries(data_source_id)
    }

    fn entry(&self, data_source_id: &str, key: &str) -> Result<Option<LedgerEntry>, LedgerError> {
        self.inner.entry(data_source_id, key)
    }

    fn put(&self, data_source_id: &str, entry: &LedgerEntry) -> Result<(), LedgerError> {
        self.inner.put(data_source_id, entry)
    }

    fn mark_pending(&self, data_source_id: &str, key: &str) -> Result<(), LedgerError> {
        self.inner.mark_pending(data_source_id, key)
    }

    fn remove(&self, data_source_id: &str, key: &str) -> Result<(), LedgerError> {
        self.inner.remove(data_source_id, key)
    }

    fn save_job(&self, job: &IngestionJob) -> Result<(), LedgerError> {
        self.inner.save_job(job)?;
        // Told once the record holds it, so an event never runs ahead of the job's record.
        self.observe(job);
        Ok(())
    }

    fn job(&self, ingestion_job_id: &str) -> Result<Option<IngestionJob>, LedgerError> {
        self.inner.job(ingestion_job_id)
    }

    fn jobs(&self, data_source_id: Option<&str>) -> Result<Vec<IngestionJob>, LedgerError> {
        self.inner.jobs(data_source_id)
    }
}
