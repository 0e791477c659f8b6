//! Ingestion jobs of a cluster. A job is a row of `quarry_jobs` (at most one running per
//! data source, by a unique index); its documents are work items of `quarry_work_items`
//! that any replica's [`super::worker`] claims under leases. A full sync starts as one item,
//! the listing, whose worker adds the documents as items. What came of each item is
//! recorded with it once, so the job's statistics count every document once, whoever did
//! it and however often.
//!
//! The janitor (every replica runs it, each step conditional on the row's state, so they
//! never disagree) writes a running job's statistics into its record, completes it when
//! every item is finished, marks it STOPPED once a stop has drained, and starts a job for
//! the keys change events reported while another ran.

use std::sync::Arc;

use chrono::Utc;
use quarry_ingest::sidecar::described_document;
use quarry_ingest::{IngestionJob, JobStatus, Statistics};
use quarry_state::{PgConnection, PgWorkQueue, StateError, WorkQueue};

/// The item that lists a full sync's source.
pub const LISTING: &str = "\u{1}listing";

/// States in which a job holds its data source.
const RUNNING: &str = "('STARTING', 'IN_PROGRESS', 'STOPPING')";

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{0} is already running on data source {1}")]
    Running(String, String),
    #[error("ingestion job {0} does not exist")]
    Unknown(String),
    #[error("ingestion job {0} is not running (status {1})")]
    NotRunning(String, String),
    #[error(transparent)]
    State(#[from] StateError),
}

fn status_word(s: JobStatus) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn bad(e: impl std::fmt::Display) -> StateError {
    StateError::Database(e.to_string())
}

pub struct ClusterJobs {
    db: Arc<PgConnection>,
    queue: PgWorkQueue,
    /// When this replica last dropped finished work items and old logged changes.
    trimmed: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How often a replica trims what the cluster no longer needs.
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

impl ClusterJobs {
    pub fn new(db: Arc<PgConnection>) -> Self {
        Self {
            queue: PgWorkQueue::over(db.clone()),
            db,
            trimmed: Default::default(),
        }
    }

    pub fn queue(&self) -> &PgWorkQueue {
        &self.queue
    }

    /// Starts a full sync of a data source, unless a job runs on it anywhere in the cluster.
    pub fn start(
        &self,
        kb_id: &str,
        ds_id: &str,
        description: Option<String>,
    ) -> Result<IngestionJob, JobError> {
        let mut job = IngestionJob::starting(kb_id, ds_id, description);
        job.status = JobStatus::InProgress;
        match self.insert(&job, "full", vec![LISTING.to_owned()])? {
            None => Ok(job),
            Some(running) => Err(JobError::Running(
                format!("ingestion job {running}"),
                ds_id.to_owned(),
            )),
        }
    }

    /// Inserts a job with its first items; `Some(id of the running job)` if one runs.
    fn insert(
        &self,
        job: &IngestionJob,
        kind: &str,
        items: Vec<String>,
    ) -> Result<Option<String>, StateError> {
        let record = serde_json::to_string(job).map_err(bad)?;
        let (id, kb, ds, kind, status) = (
            job.ingestion_job_id.clone(),
            job.knowledge_base_id.clone(),
            job.data_source_id.clone(),
            kind.to_owned(),
            status_word(job.status),
        );
        let started = job.started_at;
        self.db.run(move |c| {
            let mut tx = c.transaction()?;
            let inserted = tx.execute(
                &format!(
                    "INSERT INTO quarry_jobs (job_id, kb_id, data_source_id, kind, status,
                         started_at, record)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (kb_id, data_source_id) WHERE status IN {RUNNING} DO NOTHING"
                ),
                &[&id, &kb, &ds, &kind, &status, &started, &record],
            )?;
            if inserted == 0 {
                let running: String = tx
                    .query_one(
                        &format!(
                            "SELECT job_id FROM quarry_jobs
                             WHERE kb_id = $1 AND data_source_id = $2 AND status IN {RUNNING}"
                        ),
                        &[&kb, &ds],
                    )?
                    .get(0);
                return Ok(Some(running));
            }
            tx.execute(
                "INSERT INTO quarry_work_items (job_id, key) SELECT $1, unnest($2::text[])
                 ON CONFLICT DO NOTHING",
                &[&id, &items],
            )?;
            tx.commit()?;
            Ok(None)
        })
    }

    /// Syncs these keys of a data source: a job now, or, while one runs, when it ends.
    /// Sidecar keys stand for their documents.
    pub fn sync_keys(
        &self,
        kb_id: &str,
        ds_id: &str,
        keys: &[String],
    ) -> Result<Option<IngestionJob>, StateError> {
        let mut documents: Vec<String> = keys
            .iter()
            .map(|k| described_document(k).unwrap_or(k).to_owned())
            .collect();
        documents.sort_unstable();
        documents.dedup();
        let (kb, ds) = (kb_id.to_owned(), ds_id.to_owned());
        self.db.run(move |c| {
            c.execute(
                "INSERT INTO quarry_pending_keys (kb_id, data_source_id, key)
                 SELECT $1, $2, unnest($3::text[]) ON CONFLICT DO NOTHING",
                &[&kb, &ds, &documents],
            )?;
            Ok(())
        })?;
        self.start_pending(kb_id, ds_id)
    }

    /// Starts a job for a data source's pending keys, unless one runs (which then leaves
    /// them for the janitor to start when it ends).
    fn start_pending(&self, kb_id: &str, ds_id: &str) -> Result<Option<IngestionJob>, StateError> {
        let mut job = IngestionJob::starting(kb_id, ds_id, Some("change events".into()));
        job.status = JobStatus::InProgress;
        let record = serde_json::to_string(&job).map_err(bad)?;
        let (id, kb, ds, started) = (
            job.ingestion_job_id.clone(),
            kb_id.to_owned(),
            ds_id.to_owned(),
            job.started_at,
        );
        let started_one = self.db.run(move |c| {
            let mut tx = c.transaction()?;
            let inserted = tx.execute(
                &format!(
                    "INSERT INTO quarry_jobs (job_id, kb_id, data_source_id, kind, status,
                         started_at, record)
                     SELECT $1, $2, $3, 'keys', 'IN_PROGRESS', $4, $5
                     WHERE EXISTS (SELECT 1 FROM quarry_pending_keys
                                   WHERE kb_id = $2 AND data_source_id = $3)
                     ON CONFLICT (kb_id, data_source_id) WHERE status IN {RUNNING} DO NOTHING"
                ),
                &[&id, &kb, &ds, &started, &record],
            )?;
            if inserted == 0 {
                return Ok(false);
            }
            tx.execute(
                "WITH taken AS (DELETE FROM quarry_pending_keys
                                WHERE kb_id = $2 AND data_source_id = $3 RETURNING key)
                 INSERT INTO quarry_work_items (job_id, key) SELECT $1, key FROM taken
                 ON CONFLICT DO NOTHING",
                &[&id, &kb, &ds],
            )?;
            tx.commit()?;
            Ok(true)
        })?;
        Ok(started_one.then_some(job))
    }

    /// Asks a running job to stop: workers claim none of its items from now on.
    pub fn stop(&self, kb_id: &str, ds_id: &str, job_id: &str) -> Result<IngestionJob, JobError> {
        let mut job = self
            .record(job_id)?
            .filter(|j| j.knowledge_base_id == kb_id && j.data_source_id == ds_id)
            .ok_or_else(|| JobError::Unknown(job_id.to_owned()))?;
        let was = job.status;
        job.status = JobStatus::Stopping;
        job.updated_at = Utc::now();
        if !matches!(was, JobStatus::Starting | JobStatus::InProgress)
            || !self.transition(&job, &["STARTING", "IN_PROGRESS"])?
        {
            return Err(JobError::NotRunning(job_id.to_owned(), status_word(was)));
        }
        Ok(job)
    }

    /// Writes a job's record and status if its status is still one of `from`.
    fn transition(&self, job: &IngestionJob, from: &[&str]) -> Result<bool, StateError> {
        let record = serde_json::to_string(job).map_err(bad)?;
        let (id, status) = (job.ingestion_job_id.clone(), status_word(job.status));
        let from: Vec<String> = from.iter().map(|s| (*s).to_owned()).collect();
        self.db.run(move |c| {
            Ok(c.execute(
                "UPDATE quarry_jobs SET status = $2, record = $3
                 WHERE job_id = $1 AND status = ANY($4)",
                &[&id, &status, &record, &from],
            )? == 1)
        })
    }

    pub fn record(&self, job_id: &str) -> Result<Option<IngestionJob>, StateError> {
        let id = job_id.to_owned();
        let text: Option<String> = self.db.run(move |c| {
            Ok(
                c.query_opt("SELECT record FROM quarry_jobs WHERE job_id = $1", &[&id])?
                    .map(|r| r.get(0)),
            )
        })?;
        text.map(|t| serde_json::from_str(&t).map_err(bad))
            .transpose()
    }

    pub fn is_running(&self, kb_id: &str, ds_id: &str) -> Result<bool, StateError> {
        let (kb, ds) = (kb_id.to_owned(), ds_id.to_owned());
        self.db.run(move |c| {
            Ok(c.query_one(
                &format!(
                    "SELECT count(*) FROM quarry_jobs
                     WHERE kb_id = $1 AND data_source_id = $2 AND status IN {RUNNING}"
                ),
                &[&kb, &ds],
            )?
            .get::<_, i64>(0)
                > 0)
        })
    }

    /// Jobs whose items workers may claim: (job id, knowledge base id, data source id).
    pub fn claimable(&self) -> Result<Vec<(String, String, String)>, StateError> {
        self.db.run(|c| {
            Ok(c.query(
                "SELECT job_id, kb_id, data_source_id FROM quarry_jobs
                 WHERE status = 'IN_PROGRESS' ORDER BY started_at",
                &[],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
        })
    }

    /// The listing's counts, recorded by the worker that listed (in columns of their own,
    /// which the janitor reads and never writes, so neither loses the other's update).
    pub fn record_listing(
        &self,
        job_id: &str,
        documents: u64,
        sidecars: u64,
    ) -> Result<(), StateError> {
        let id = job_id.to_owned();
        self.db.run(move |c| {
            c.execute(
                "UPDATE quarry_jobs SET documents_listed = $2, sidecars_listed = $3
                 WHERE job_id = $1",
                &[&id, &(documents as i64), &(sidecars as i64)],
            )?;
            Ok(())
        })
    }

    /// A job failed for good (its store or embedding server is down): FAILED with the reason.
    pub fn fail(&self, job_id: &str, reason: &str) -> Result<(), StateError> {
        if let Some(mut job) = self.record(job_id)? {
            job.status = JobStatus::Failed;
            job.failure_reasons.push(reason.to_owned());
            job.updated_at = Utc::now();
            self.transition(&job, &["IN_PROGRESS", "STOPPING"])?;
        }
        Ok(())
    }

    /// Items of a job held under a lease that has not run out (a dead replica's do not
    /// count: a stop need not wait for them).
    fn live_claims(&self, job_id: &str) -> Result<i64, StateError> {
        let id = job_id.to_owned();
        self.db.run(move |c| {
            Ok(c.query_one(
                "SELECT count(*) FROM quarry_work_items
                 WHERE job_id = $1 AND state = 'claimed' AND lease_until > now()",
                &[&id],
            )?
            .get(0))
        })
    }

    /// One round of the janitor: see the module's documentation.
    pub fn tidy(&self) -> Result<(), StateError> {
        type Active = (String, String, String, i64, i64);
        let active: Vec<Active> = self.db.run(|c| {
            Ok(c.query(
                "SELECT job_id, kind, record, documents_listed, sidecars_listed FROM quarry_jobs
                 WHERE status IN ('IN_PROGRESS', 'STOPPING')",
                &[],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
            .collect())
        })?;
        for (job_id, kind, record, documents, sidecars) in active {
            let Ok(mut job) = serde_json::from_str::<IngestionJob>(&record) else {
                continue;
            };
            let counts = self.queue.counts(&job_id)?;
            let outcomes = self.queue.outcomes(&job_id)?;
            let was = status_word(job.status);
            let listed = (kind == "full").then_some((documents as u64, sidecars as u64));
            apply_outcomes(&mut job.statistics, &outcomes, listed);
            let failures = self.queue.failures(&job_id)?;
            job.failure_reasons
                .retain(|r| !failures.iter().any(|(_, f)| f == r));
            job.failure_reasons
                .extend(failures.into_iter().map(|(_, reason)| reason));
            job.updated_at = Utc::now();
            match job.status {
                JobStatus::InProgress if counts.queued == 0 && counts.claimed == 0 => {
                    job.status = JobStatus::Complete;
                }
                JobStatus::Stopping if self.live_claims(&job_id)? == 0 => {
                    job.status = JobStatus::Stopped;
                }
                _ => {}
            }
            let finished = matches!(job.status, JobStatus::Complete | JobStatus::Stopped);
            self.transition(&job, &[&was])?;
            if finished {
                tracing::info!(job = %job_id, status = ?job.status, "ingestion job finished");
                self.start_pending(&job.knowledge_base_id, &job.data_source_id)?;
            }
        }
        // Keys reported while nothing ran (a start that lost a race, a replica that died).
        let waiting: Vec<(String, String)> = self.db.run(|c| {
            Ok(c.query(
                "SELECT DISTINCT kb_id, data_source_id FROM quarry_pending_keys",
                &[],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
        })?;
        for (kb, ds) in waiting {
            self.start_pending(&kb, &ds)?;
        }
        let mut trimmed = self.trimmed.lock().unwrap_or_else(|p| p.into_inner());
        if trimmed.is_some_and(|t| t.elapsed() < TRIM_EVERY) {
            return Ok(());
        }
        *trimmed = Some(std::time::Instant::now());
        // A finished job's record keeps its statistics and reasons; its items can go.
        self.db.run(|c| {
            c.execute(
                "DELETE FROM quarry_work_items WHERE job_id IN (
                     SELECT job_id FROM quarry_jobs
                     WHERE status IN ('COMPLETE', 'STOPPED', 'FAILED')
                       AND started_at < now() - interval '1 hour')",
                &[],
            )?;
            Ok(())
        })?;
        crate::cluster::lexical_log::trim(&self.db)?;
        Ok(())
    }
}

/// The word an item's outcome is recorded under (`+sidecar` when it had one).
pub fn outcome_word(outcome: &quarry_ingest::items::ItemOutcome, sidecar: bool) -> String {
    use quarry_ingest::items::ItemOutcome as O;
    let word = match outcome {
        O::Unchanged => "unchanged",
        O::New => "new",
        O::Modified {
            metadata_changed: false,
        } => "modified",
        O::Modified {
            metadata_changed: true,
        } => "modified-metadata",
        O::MetadataOnly => "metadata",
        O::Deleted => "deleted",
        O::Absent => "absent",
        O::Failed(_) => "failed",
    };
    if sidecar {
        format!("{word}+sidecar")
    } else {
        word.to_owned()
    }
}

/// A job's statistics from its items' outcomes (a full sync's scanned counts come from its
/// listing, `listed`; a keyed job's from its items).
fn apply_outcomes(stats: &mut Statistics, outcomes: &[(String, u64)], listed: Option<(u64, u64)>) {
    *stats = Statistics::default();
    let keyed = listed.is_none();
    if let Some((documents, sidecars)) = listed {
        stats.number_of_documents_scanned = documents;
        stats.number_of_metadata_documents_scanned = sidecars;
    }
    for (word, n) in outcomes {
        let n = *n;
        let (base, sidecar) = match word.strip_suffix("+sidecar") {
            Some(base) => (base, true),
            None => (word.as_str(), false),
        };
        if keyed && !matches!(base, "deleted" | "absent" | "listed") {
            stats.number_of_documents_scanned += n;
            if sidecar {
                stats.number_of_metadata_documents_scanned += n;
            }
        }
        match base {
            "new" => stats.number_of_new_documents_indexed += n,
            "modified" => stats.number_of_modified_documents_indexed += n,
            "modified-metadata" => {
                stats.number_of_modified_documents_indexed += n;
                stats.number_of_metadata_documents_modified += n;
            }
            "metadata" => stats.number_of_metadata_documents_modified += n,
            "deleted" => stats.number_of_documents_deleted += n,
            "failed" => stats.number_of_documents_failed += n,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Another replica's handle on the cluster's jobs (a connection of its own).
    fn replica() -> ClusterJobs {
        let url = std::env::var("QUARRY_TEST_PG_URL").expect(
            "QUARRY_TEST_PG_URL is not set: run the tests with `make test`, which starts PostgreSQL",
        );
        let db = PgConnection::connect(&url).unwrap();
        db.run(quarry_state::schema::migrate).unwrap();
        ClusterJobs::new(Arc::new(db))
    }

    fn ids() -> (String, String) {
        let n = fastrand::u32(..);
        (format!("KB{n:08X}"), format!("DS{n:08X}"))
    }

    fn status(jobs: &ClusterJobs, id: &str) -> JobStatus {
        jobs.record(id).unwrap().unwrap().status
    }

    #[test]
    fn a_job_runs_once_per_data_source_and_completes_when_its_items_are_done() {
        let (a, b) = (replica(), replica());
        let (kb, ds) = ids();
        let job = a.start(&kb, &ds, None).unwrap();
        assert!(matches!(
            b.start(&kb, &ds, None),
            Err(JobError::Running(..))
        ));
        assert!(b.is_running(&kb, &ds).unwrap());
        let id = job.ingestion_job_id.clone();
        // The listing comes first; whoever lists queues the documents.
        let claims = b
            .queue()
            .claim(&id, "b", 8, std::time::Duration::from_secs(30))
            .unwrap();
        let [listing] = &claims[..] else {
            panic!("one listing item: {claims:?}")
        };
        assert_eq!(listing.key, LISTING);
        b.queue()
            .enqueue(&id, &["x.txt".into(), "y.txt".into()])
            .unwrap();
        b.record_listing(&id, 2, 1).unwrap();
        assert!(b.queue().finish(listing, "listed", None).unwrap());
        let claims = a
            .queue()
            .claim(&id, "a", 8, std::time::Duration::from_secs(30))
            .unwrap();
        assert_eq!(claims.len(), 2);
        a.tidy().unwrap();
        assert_eq!(
            status(&b, &id),
            JobStatus::InProgress,
            "items still claimed"
        );
        assert!(a.queue().finish(&claims[0], "new+sidecar", None).unwrap());
        assert!(
            a.queue()
                .finish(&claims[1], "failed", Some("s3://b/y.txt: bad PDF"))
                .unwrap()
        );
        b.tidy().unwrap();
        let done = b.record(&id).unwrap().unwrap();
        assert_eq!(done.status, JobStatus::Complete);
        assert_eq!(done.statistics.number_of_documents_scanned, 2);
        assert_eq!(done.statistics.number_of_metadata_documents_scanned, 1);
        assert_eq!(done.statistics.number_of_new_documents_indexed, 1);
        assert_eq!(done.statistics.number_of_documents_failed, 1);
        assert_eq!(
            done.failure_reasons,
            vec!["s3://b/y.txt: bad PDF".to_owned()]
        );
        assert!(!a.is_running(&kb, &ds).unwrap());
        a.start(&kb, &ds, None).unwrap();
    }

    #[test]
    fn a_stop_from_another_replica_drains_and_a_second_stop_is_refused() {
        let (a, b) = (replica(), replica());
        let (kb, ds) = ids();
        let id = a.start(&kb, &ds, None).unwrap().ingestion_job_id;
        let stopping = b.stop(&kb, &ds, &id).unwrap();
        assert_eq!(stopping.status, JobStatus::Stopping);
        assert!(a.claimable().unwrap().iter().all(|(j, _, _)| *j != id));
        a.tidy().unwrap();
        assert_eq!(status(&b, &id), JobStatus::Stopped);
        assert!(matches!(
            b.stop(&kb, &ds, &id),
            Err(JobError::NotRunning(..))
        ));
        assert!(matches!(
            b.stop(&kb, "OTHER", &id),
            Err(JobError::Unknown(_))
        ));
    }

    #[test]
    fn keys_reported_during_a_job_get_a_job_of_their_own_afterwards() {
        let (a, b) = (replica(), replica());
        let (kb, ds) = ids();
        let first = a.start(&kb, &ds, None).unwrap().ingestion_job_id;
        let keys = ["n.txt".to_owned(), "n.txt.metadata.json".to_owned()];
        assert!(
            b.sync_keys(&kb, &ds, &keys).unwrap().is_none(),
            "waits for the running job"
        );
        let lease = std::time::Duration::from_secs(30);
        for claim in a.queue().claim(&first, "a", 8, lease).unwrap() {
            a.queue().finish(&claim, "listed", None).unwrap();
        }
        b.tidy().unwrap();
        assert_eq!(status(&a, &first), JobStatus::Complete);
        let running: Vec<String> = a
            .claimable()
            .unwrap()
            .into_iter()
            .filter(|(_, k, d)| *k == kb && *d == ds)
            .map(|(j, _, _)| j)
            .collect();
        let [keyed] = &running[..] else {
            panic!("one keyed job: {running:?}")
        };
        let claims = a.queue().claim(keyed, "a", 8, lease).unwrap();
        let claimed: Vec<&str> = claims.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(claimed, ["n.txt"], "the sidecar stands for its document");
    }

    #[test]
    fn statistics_count_each_outcome_once() {
        let outcomes = vec![
            ("new".to_owned(), 3),
            ("new+sidecar".to_owned(), 1),
            ("modified-metadata+sidecar".to_owned(), 2),
            ("deleted".to_owned(), 1),
            ("failed".to_owned(), 1),
            ("listed".to_owned(), 1),
        ];
        let mut full = Statistics::default();
        apply_outcomes(&mut full, &outcomes, Some((7, 3)));
        assert_eq!(full.number_of_documents_scanned, 7);
        assert_eq!(full.number_of_new_documents_indexed, 4);
        assert_eq!(full.number_of_modified_documents_indexed, 2);
        assert_eq!(full.number_of_metadata_documents_modified, 2);
        assert_eq!(full.number_of_documents_deleted, 1);
        assert_eq!(full.number_of_documents_failed, 1);
        let mut keyed = Statistics::default();
        apply_outcomes(&mut keyed, &outcomes, None);
        assert_eq!(keyed.number_of_documents_scanned, 7);
        assert_eq!(keyed.number_of_metadata_documents_scanned, 3);
    }
}
