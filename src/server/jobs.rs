//! Ingestion jobs started through the API: one running job per data source, each on a thread
//! of its own, stoppable. At shutdown running jobs are stopped and recorded, and started
//! again when the server next starts.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use chrono::Utc;
use quarry_core::config::{DataSourceConfig, S3Defaults};
use quarry_core::ids::ResourceId;
use quarry_ingest::{IngestionJob, JobStatus, Statistics, SyncTarget, run_sync};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::metrics::Metrics;
use crate::knowledge_base::{KnowledgeBase, source_for};

struct Running {
    job_id: String,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// (knowledge base id, data source id)
type Key = (String, String);

pub struct JobManager {
    running: Arc<Mutex<HashMap<Key, Running>>>,
    metrics: Arc<Metrics>,
    resume_file: PathBuf,
    max_document_bytes: u64,
    s3: S3Defaults,
}

#[derive(Serialize, Deserialize)]
struct Resume {
    knowledge_base_id: String,
    data_source_id: String,
}

impl JobManager {
    pub fn new(
        data_dir: PathBuf,
        max_document_bytes: u64,
        s3: S3Defaults,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            running: Default::default(),
            metrics,
            resume_file: data_dir.join("resume-jobs.json"),
            max_document_bytes,
            s3,
        }
    }

    /// Starts a sync of one data source, unless one is already running.
    pub fn start(
        &self,
        kb: Arc<KnowledgeBase>,
        ds: DataSourceConfig,
        description: Option<String>,
    ) -> ApiResult<IngestionJob> {
        let key = (kb.id().to_owned(), ds.id.get_ref().to_string());
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.retain(|_, r| !r.thread.is_finished());
        if let Some(r) = running.get(&key) {
            return Err(ApiError::Conflict(format!(
                "ingestion job {} is already running on data source {}",
                r.job_id, key.1
            )));
        }
        let chunker = kb
            .chunker(&ds)
            .map_err(|e| ApiError::Validation(format!("{e:#}")))?;
        let ledger = kb.open_ledger().map_err(ApiError::internal)?;
        let now = Utc::now();
        let mut job = IngestionJob {
            knowledge_base_id: key.0.clone(),
            data_source_id: key.1.clone(),
            ingestion_job_id: ResourceId::random().to_string(),
            description,
            status: JobStatus::Starting,
            statistics: Statistics::default(),
            failure_reasons: Vec::new(),
            started_at: now,
            updated_at: now,
        };
        ledger.save_job(&job).map_err(ApiError::internal)?;
        let started = job.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let metrics = self.metrics.clone();
        let max_document_bytes = self.max_document_bytes;
        let s3 = self.s3.clone();
        let thread = std::thread::Builder::new()
            .name(format!("sync-{}", key.1))
            .spawn(move || {
                let source = match source_for(&ds, &s3) {
                    Ok(source) => source,
                    Err(e) => {
                        job.status = JobStatus::Failed;
                        job.failure_reasons.push(e.to_string());
                        job.updated_at = Utc::now();
                        let _ = ledger.save_job(&job);
                        return;
                    }
                };
                let target = SyncTarget {
                    data_source_id: ds.id.get_ref().as_str(),
                    source: source.as_ref(),
                    chunker: chunker.as_ref(),
                    embedder: kb.embedder.as_ref(),
                    store: kb.store.as_ref(),
                    ledger: &ledger,
                    max_document_bytes,
                };
                run_sync(&target, &mut job, &thread_stop, &());
                let s = &job.statistics;
                metrics.add_documents("new", s.number_of_new_documents_indexed);
                metrics.add_documents("modified", s.number_of_modified_documents_indexed);
                metrics.add_documents("metadata_modified", s.number_of_metadata_documents_modified);
                metrics.add_documents("deleted", s.number_of_documents_deleted);
                metrics.add_documents("failed", s.number_of_documents_failed);
                tracing::info!(job = %job.ingestion_job_id, status = ?job.status, "ingestion job finished");
            })
            .map_err(ApiError::internal)?;
        running.insert(
            key,
            Running {
                job_id: started.ingestion_job_id.clone(),
                stop,
                thread,
            },
        );
        Ok(started)
    }

    /// Asks a running job to stop; its record says STOPPING until it has.
    pub fn stop(&self, kb: &KnowledgeBase, ds_id: &str, job_id: &str) -> ApiResult<IngestionJob> {
        let key = (kb.id().to_owned(), ds_id.to_owned());
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let ledger = kb.ledger();
        let mut job = ledger
            .job(job_id)
            .map_err(ApiError::internal)?
            .filter(|j| j.data_source_id == ds_id)
            .ok_or_else(|| ApiError::NotFound(format!("ingestion job {job_id} does not exist")))?;
        match running.get(&key) {
            Some(r) if r.job_id == job_id && !r.thread.is_finished() => {
                r.stop.store(true, Ordering::Relaxed);
                job.status = JobStatus::Stopping;
                job.updated_at = Utc::now();
                ledger.save_job(&job).map_err(ApiError::internal)?;
                Ok(job)
            }
            _ => Err(ApiError::Conflict(format!(
                "ingestion job {job_id} is not running (status {:?})",
                job.status
            ))),
        }
    }

    /// Stops every running job, waits for them, and records them to resume at next start.
    pub fn shutdown(&self) {
        let running: Vec<(Key, Running)> = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        let mut resume = Vec::new();
        for ((kb, ds), r) in running {
            if r.thread.is_finished() {
                continue;
            }
            tracing::info!(job = %r.job_id, "stopping the ingestion job for shutdown; it resumes at next start");
            r.stop.store(true, Ordering::Relaxed);
            let _ = r.thread.join();
            resume.push(Resume {
                knowledge_base_id: kb,
                data_source_id: ds,
            });
        }
        if !resume.is_empty()
            && let Err(e) = std::fs::write(
                &self.resume_file,
                serde_json::to_vec(&resume).unwrap_or_default(),
            )
        {
            tracing::warn!(error = %e, "could not record the jobs to resume");
        }
    }

    /// The data sources whose jobs a shutdown interrupted; the record is consumed.
    pub fn take_resumable(&self) -> Vec<(String, String)> {
        let Ok(bytes) = std::fs::read(&self.resume_file) else {
            return Vec::new();
        };
        let _ = std::fs::remove_file(&self.resume_file);
        serde_json::from_slice::<Vec<Resume>>(&bytes)
            .unwrap_or_default()
            .into_iter()
            .map(|r| (r.knowledge_base_id, r.data_source_id))
            .collect()
    }

    pub fn is_running(&self, kb_id: &str, ds_id: &str) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(kb_id.to_owned(), ds_id.to_owned()))
            .is_some_and(|r| !r.thread.is_finished())
    }
}
