//! Ingestion jobs started by the server (API, change events, schedules): one running job per
//! data source, each on a thread of its own, stoppable. Keys reported by change events while
//! a job runs are queued and synced by that thread when its job ends. At shutdown running
//! jobs are stopped and recorded, and started again when the server next starts.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use chrono::Utc;
use quarry_core::config::{DataSourceConfig, S3Defaults};
use quarry_ingest::lock::Holder;
use quarry_ingest::{
    DataSourceLock, IngestionJob, JobStatus, Ledger, SyncTarget, run_sync, run_sync_keys,
};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::metrics::Metrics;
use crate::cluster::jobs::{ClusterJobs, JobError};
use crate::events::{EventingLedger, JobEvents};
use crate::knowledge_base::{KnowledgeBase, source_for};

/// (knowledge base id, data source id)
type Key = (String, String);

struct Running {
    job_id: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

#[derive(Default)]
struct Jobs {
    running: HashMap<Key, Running>,
    /// Keys reported changed while a job ran, per data source.
    pending: HashMap<Key, BTreeSet<String>>,
}

/// What a job does.
enum Work {
    Everything,
    Keys(Vec<String>),
}

struct Settings {
    metrics: Arc<Metrics>,
    max_document_bytes: u64,
    s3: S3Defaults,
    /// Where the jobs' events go.
    events: Arc<JobEvents>,
    /// Copies of indexes held while the regression guard judges a sync.
    held: Arc<super::held_copies::HeldCopies>,
}

pub struct JobManager {
    jobs: Arc<Mutex<Jobs>>,
    settings: Arc<Settings>,
    resume_file: PathBuf,
    /// In cluster mode jobs are the cluster's: rows every replica reads, documents every
    /// replica's worker claims (`crate::server::replica`).
    cluster: Option<ClusterJobs>,
}

#[derive(Serialize, Deserialize)]
struct Resume {
    knowledge_base_id: String,
    data_source_id: String,
}

impl JobManager {
    pub fn new(
        held: Arc<super::held_copies::HeldCopies>,
        data_dir: PathBuf,
        max_document_bytes: u64,
        s3: S3Defaults,
        metrics: Arc<Metrics>,
        events: Arc<JobEvents>,
        cluster: Option<ClusterJobs>,
    ) -> Self {
        Self {
            cluster,
            jobs: Default::default(),
            settings: Arc::new(Settings {
                metrics,
                max_document_bytes,
                s3,
                events,
                held,
            }),
            resume_file: data_dir.join("resume-jobs.json"),
        }
    }

    /// The cluster's jobs, in cluster mode.
    pub fn cluster(&self) -> Option<&ClusterJobs> {
        self.cluster.as_ref()
    }

    fn lock(&self) -> MutexGuard<'_, Jobs> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a full sync of one data source, unless one is already running.
    pub fn start(
        &self,
        kb: Arc<KnowledgeBase>,
        ds: DataSourceConfig,
        description: Option<String>,
    ) -> ApiResult<IngestionJob> {
        if ds.kind == quarry_core::config::DataSourceKind::Custom {
            return Err(ApiError::Validation(format!(
                "data source {} is a CUSTOM data source: its documents arrive through IngestKnowledgeBaseDocuments, not ingestion jobs",
                ds.id.get_ref()
            )));
        }
        if let Some(cluster) = &self.cluster {
            kb.chunker(&ds)
                .map_err(|e| ApiError::Validation(format!("{e:#}")))?;
            return cluster
                .start(kb.id(), ds.id.get_ref().as_str(), description)
                .map_err(job_error);
        }
        let mut jobs = self.lock();
        let key = (kb.id().to_owned(), ds.id.get_ref().to_string());
        if let Some(r) = jobs.running.get(&key) {
            return Err(ApiError::Conflict(format!(
                "ingestion job {} is already running on data source {}",
                r.job_id.lock().unwrap_or_else(|p| p.into_inner()),
                key.1
            )));
        }
        self.spawn(&mut jobs, kb, ds, description, Work::Everything)
    }

    /// Syncs just these keys of a data source: now, or when its running job ends.
    pub fn sync_keys(
        &self,
        kb: Arc<KnowledgeBase>,
        ds: DataSourceConfig,
        keys: Vec<String>,
    ) -> ApiResult<Option<IngestionJob>> {
        if let Some(cluster) = &self.cluster {
            return cluster
                .sync_keys(kb.id(), ds.id.get_ref().as_str(), &keys)
                .map_err(ApiError::internal);
        }
        let mut jobs = self.lock();
        let key = (kb.id().to_owned(), ds.id.get_ref().to_string());
        if jobs.running.contains_key(&key) {
            jobs.pending.entry(key).or_default().extend(keys);
            return Ok(None);
        }
        self.spawn(
            &mut jobs,
            kb,
            ds,
            Some("change events".into()),
            Work::Keys(keys),
        )
        .map(Some)
    }

    fn spawn(
        &self,
        jobs: &mut Jobs,
        kb: Arc<KnowledgeBase>,
        ds: DataSourceConfig,
        description: Option<String>,
        work: Work,
    ) -> ApiResult<IngestionJob> {
        let key = (kb.id().to_owned(), ds.id.get_ref().to_string());
        let chunker = kb
            .chunker(&ds)
            .map_err(|e| ApiError::Validation(format!("{e:#}")))?;
        let ledger: Box<dyn Ledger> = Box::new(EventingLedger::new(
            kb.open_ledger().map_err(ApiError::internal)?,
            self.settings.events.clone(),
        ));
        let job = IngestionJob::starting(kb.id(), &key.1, description);
        let lock = match DataSourceLock::try_acquire(&kb.dir, &key.1, &job.ingestion_job_id)
            .map_err(ApiError::internal)?
        {
            Ok(lock) => lock,
            Err(Holder(holder)) => {
                return Err(ApiError::Conflict(format!(
                    "{holder} is already running on data source {}",
                    key.1
                )));
            }
        };
        kb.check_current()
            .map_err(|e| ApiError::Conflict(format!("{e:#}")))?;
        ledger.save_job(&job).map_err(ApiError::internal)?;
        let started = job.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let job_id = Arc::new(Mutex::new(job.ingestion_job_id.clone()));
        let (thread_stop, thread_job_id, all_jobs, settings, thread_key) = (
            stop.clone(),
            job_id.clone(),
            self.jobs.clone(),
            self.settings.clone(),
            key.clone(),
        );
        let thread = std::thread::Builder::new()
            .name(format!("sync-{}", key.1))
            .spawn(move || {
                let _lock = lock;
                let mut job = job;
                let mut work = work;
                loop {
                    run_job(
                        &kb,
                        &ds,
                        ledger.as_ref(),
                        chunker.as_ref(),
                        &settings,
                        &mut job,
                        &work,
                        &thread_stop,
                    );
                    // Keys that arrived meanwhile get a job of their own; the decision and
                    // the removal from `running` happen under one lock, so none is lost.
                    let mut jobs = all_jobs.lock().unwrap_or_else(|p| p.into_inner());
                    let keys = jobs.pending.remove(&thread_key).unwrap_or_default();
                    if keys.is_empty() || thread_stop.load(Ordering::Relaxed) {
                        if !keys.is_empty() {
                            jobs.pending.insert(thread_key.clone(), keys);
                        }
                        jobs.running.remove(&thread_key);
                        return;
                    }
                    job = IngestionJob::starting(
                        kb.id(),
                        &thread_key.1,
                        Some("change events".into()),
                    );
                    *thread_job_id.lock().unwrap_or_else(|p| p.into_inner()) =
                        job.ingestion_job_id.clone();
                    drop(jobs);
                    let _ = ledger.save_job(&job);
                    work = Work::Keys(keys.into_iter().collect());
                }
            })
            .map_err(ApiError::internal)?;
        jobs.running.insert(
            key,
            Running {
                job_id,
                stop,
                thread,
            },
        );
        Ok(started)
    }

    /// Asks a running job to stop; its record says STOPPING until it has.
    pub fn stop(&self, kb: &KnowledgeBase, ds_id: &str, job_id: &str) -> ApiResult<IngestionJob> {
        if let Some(cluster) = &self.cluster {
            return cluster.stop(kb.id(), ds_id, job_id).map_err(job_error);
        }
        let key = (kb.id().to_owned(), ds_id.to_owned());
        let jobs = self.lock();
        let ledger = kb.ledger();
        let mut job = ledger
            .job(job_id)
            .map_err(ApiError::internal)?
            .filter(|j| j.data_source_id == ds_id)
            .ok_or_else(|| ApiError::NotFound(format!("ingestion job {job_id} does not exist")))?;
        match jobs.running.get(&key) {
            Some(r)
                if *r.job_id.lock().unwrap_or_else(|p| p.into_inner()) == job_id
                    && !r.thread.is_finished() =>
            {
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
        let running: Vec<(Key, Running)> = self.lock().running.drain().collect();
        let mut resume = Vec::new();
        for ((kb, ds), r) in running {
            if r.thread.is_finished() {
                continue;
            }
            tracing::info!(data_source = %ds, "stopping the ingestion job for shutdown; it resumes at next start");
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
        if let Some(cluster) = &self.cluster {
            return cluster.is_running(kb_id, ds_id).unwrap_or(true);
        }
        self.lock()
            .running
            .get(&(kb_id.to_owned(), ds_id.to_owned()))
            .is_some_and(|r| !r.thread.is_finished())
    }
}

fn job_error(e: JobError) -> ApiError {
    match e {
        JobError::Running(..) | JobError::NotRunning(..) => ApiError::Conflict(e.to_string()),
        JobError::Unknown(_) => ApiError::NotFound(e.to_string()),
        JobError::State(e) => ApiError::internal(e),
    }
}

#[allow(clippy::too_many_arguments)]
fn run_job(
    kb: &KnowledgeBase,
    ds: &DataSourceConfig,
    ledger: &dyn Ledger,
    chunker: &dyn quarry_core::Chunker,
    settings: &Settings,
    job: &mut IngestionJob,
    work: &Work,
    stop: &AtomicBool,
) {
    let source = match source_for(ds, &settings.s3) {
        Ok(source) => source,
        Err(e) => {
            job.status = JobStatus::Failed;
            job.failure_reasons.push(e.to_string());
            job.updated_at = Utc::now();
            let _ = ledger.save_job(job);
            return;
        }
    };
    let embedder = CountingEmbedder {
        inner: kb.embedder.as_ref(),
        metrics: &settings.metrics,
    };
    let target = SyncTarget {
        data_source_id: ds.id.get_ref().as_str(),
        source: source.as_ref(),
        chunker,
        embedder: &embedder,
        store: kb.store.as_ref(),
        ledger,
        max_document_bytes: settings.max_document_bytes,
        parse_options: ds.parse_options(),
    };
    let holding = match crate::regression::hold(kb, job) {
        Ok(holding) => holding,
        Err(e) => {
            job.status = JobStatus::Failed;
            job.failure_reasons.push(format!("{e:#}"));
            job.updated_at = Utc::now();
            let _ = ledger.save_job(job);
            return;
        }
    };
    if holding {
        settings.held.refresh(kb);
    }
    match work {
        Work::Everything => run_sync(&target, job, stop, &()),
        Work::Keys(keys) => run_sync_keys(&target, job, keys, stop),
    }
    let result = crate::regression::after_job(kb, ledger, job, &settings.events);
    if result.as_ref().is_some_and(|r| r.regressed) {
        settings.metrics.add_regression();
    }
    if holding {
        crate::regression::release_or_keep(kb, job, result.as_ref());
        settings.held.refresh(kb);
    }
    let s = &job.statistics;
    let m = &settings.metrics;
    m.add_documents("new", s.number_of_new_documents_indexed);
    m.add_documents("modified", s.number_of_modified_documents_indexed);
    m.add_documents("metadata_modified", s.number_of_metadata_documents_modified);
    m.add_documents("deleted", s.number_of_documents_deleted);
    m.add_documents("failed", s.number_of_documents_failed);
    tracing::info!(job = %job.ingestion_job_id, status = ?job.status, "ingestion job finished");
}

/// Counts the chunks a job embeds, for `/metrics`.
struct CountingEmbedder<'a> {
    inner: &'a dyn quarry_core::Embedder,
    metrics: &'a Metrics,
}

impl quarry_core::TokenCounter for CountingEmbedder<'_> {
    fn count_tokens(&self, text: &str) -> usize {
        self.inner.count_tokens(text)
    }
    fn max_content_tokens(&self) -> usize {
        self.inner.max_content_tokens()
    }
}

impl quarry_core::Embedder for CountingEmbedder<'_> {
    fn dimension(&self) -> usize {
        self.inner.dimension()
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, quarry_core::EmbedError> {
        let vectors = self.inner.embed(texts)?;
        self.metrics.add_chunks_embedded(vectors.len());
        Ok(vectors)
    }
}
