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

#[cfg(test)]
mod tests {
    use quarry_ingest::SqliteLedger;
    use serde_json::Value;

    use super::*;

    fn logged(dir: &std::path::Path) -> Vec<Value> {
        std::fs::read_to_string(crate::events::log_path(dir))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn saves_become_state_and_failure_events_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let events = JobEvents::open(dir.path(), &[]).unwrap();
        let inner = SqliteLedger::open(&dir.path().join("ledger.sqlite")).unwrap();
        let ledger = EventingLedger::new(Box::new(inner), events);
        let mut job = IngestionJob::starting("KB00000001", "DS00000001", None);
        ledger.save_job(&job).unwrap();
        job.status = JobStatus::InProgress;
        ledger.save_job(&job).unwrap();
        job.fail_document("s3://b/a.pdf", "malformed pdf: no pages");
        ledger.save_job(&job).unwrap();
        ledger.save_job(&job).unwrap(); // a progress save: nothing new
        job.fail_document("s3://b/c.png", "malformed png: bomb");
        job.status = JobStatus::Stopping;
        ledger.save_job(&job).unwrap();
        // The job itself fails: its reason is the state event's, not a document's.
        job.failure_reasons
            .push("data source unavailable: gone".into());
        job.status = JobStatus::Failed;
        ledger.save_job(&job).unwrap();
        // Saved again: nothing is told twice.
        ledger.save_job(&job).unwrap();

        let told: Vec<(String, String)> = logged(dir.path())
            .iter()
            .map(|e| {
                let what = e["documentUri"]
                    .as_str()
                    .unwrap_or(e["status"].as_str().unwrap());
                (e["type"].as_str().unwrap().to_owned(), what.to_owned())
            })
            .collect();
        let pair = |t: &str, w: &str| (t.to_owned(), w.to_owned());
        assert_eq!(
            told,
            [
                pair(crate::events::STATE, "STARTING"),
                pair(crate::events::STATE, "IN_PROGRESS"),
                pair(crate::events::DOCUMENT_FAILED, "s3://b/a.pdf"),
                pair(crate::events::DOCUMENT_FAILED, "s3://b/c.png"),
                pair(crate::events::STATE, "FAILED"),
            ]
        );
        let all = logged(dir.path());
        assert_eq!(all[2]["reason"], "malformed pdf: no pages");
        assert_eq!(all[4]["reason"], "data source unavailable: gone");
        assert_eq!(all[4]["statistics"]["numberOfDocumentsFailed"], 2);
        // Ids name the event: the same event has the same id, different ones differ.
        let ids: std::collections::HashSet<&str> =
            all.iter().map(|e| e["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), all.len());
        assert_eq!(state_event(&job)["id"], all[4]["id"]);
    }
}
