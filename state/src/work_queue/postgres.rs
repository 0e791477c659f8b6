//! The work queue of a cluster, in PostgreSQL: claims take free rows with
//! `FOR UPDATE SKIP LOCKED`, so replicas claiming at once never wait on, nor get, each
//! other's items; leases are measured on the database's clock, so replicas' clocks do not
//! matter. The table comes from [`crate::schema`].

use std::sync::Arc;
use std::time::Duration;

use postgres::Client;

use super::{Claim, QueueCounts, WorkQueue, millis};
use crate::{PgConnection, StateError};

/// The queue's table, made by migration 1 of [`crate::schema`].
const TABLE: &str = "quarry_work_items";

pub struct PgWorkQueue {
    db: Arc<PgConnection>,
}

impl PgWorkQueue {
    /// Connects and brings the database's schema up to date (see [`crate::schema`]).
    pub fn open(url: &str) -> Result<Self, StateError> {
        let db = PgConnection::connect(url)?;
        db.run(crate::schema::migrate)?;
        Ok(Self::over(Arc::new(db)))
    }

    /// The queue over a connection whose schema is up to date.
    pub fn over(db: Arc<PgConnection>) -> Self {
        Self { db }
    }

    /// Runs `f` with the connection, on its thread.
    fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StateError> + Send + 'static,
    ) -> Result<T, StateError> {
        self.db.run(f)
    }
}

impl WorkQueue for PgWorkQueue {
    fn enqueue(&self, job_id: &str, keys: &[String]) -> Result<usize, StateError> {
        let (job, keys) = (job_id.to_owned(), keys.to_vec());
        self.with(move |db| {
            let added = db.execute(
                &format!(
                    "INSERT INTO {TABLE} (job_id, key) SELECT $1, unnest($2::text[])
                     ON CONFLICT (job_id, key) DO NOTHING"
                ),
                &[&job, &keys],
            )?;
            Ok(added as usize)
        })
    }

    fn claim(
        &self,
        job_id: &str,
        worker: &str,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Claim>, StateError> {
        let (job, worker) = (job_id.to_owned(), worker.to_owned());
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let lease = millis(lease) as f64;
        self.with(move |db| {
            let rows = db.query(
                &format!(
                    "UPDATE {TABLE} SET state = 'claimed', worker = $2,
                            lease_until = now() + $4 * interval '1 millisecond', attempt = attempt + 1
                     WHERE (job_id, key) IN (
                         SELECT job_id, key FROM {TABLE} WHERE job_id = $1
                           AND (state = 'queued' OR (state = 'claimed' AND lease_until < now()))
                         ORDER BY key LIMIT $3
                         FOR UPDATE SKIP LOCKED)
                     RETURNING key, attempt"
                ),
                &[&job, &worker, &max, &lease],
            )?;
            let mut claims: Vec<Claim> = rows
                .iter()
                .map(|r| Claim {
                    job_id: job.clone(),
                    key: r.get(0),
                    attempt: r.get(1),
                })
                .collect();
            claims.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(claims)
        })
    }

    fn renew(&self, claim: &Claim, lease: Duration) -> Result<bool, StateError> {
        let claim = claim.clone();
        let lease = millis(lease) as f64;
        self.with(move |db| {
            let changed = db.execute(
                &format!(
                    "UPDATE {TABLE} SET lease_until = now() + $4 * interval '1 millisecond'
                     WHERE job_id = $1 AND key = $2 AND attempt = $3 AND state = 'claimed'"
                ),
                &[&claim.job_id, &claim.key, &claim.attempt, &lease],
            )?;
            Ok(changed == 1)
        })
    }

    fn finish(
        &self,
        claim: &Claim,
        outcome: &str,
        failure: Option<&str>,
    ) -> Result<bool, StateError> {
        let claim = claim.clone();
        let (outcome, failure) = (outcome.to_owned(), failure.map(str::to_owned));
        let state = if failure.is_some() { "failed" } else { "done" };
        self.with(move |db| {
            let changed = db.execute(
                &format!(
                    "UPDATE {TABLE} SET state = $4, failure = $5, outcome = $6, lease_until = NULL
                     WHERE job_id = $1 AND key = $2 AND attempt = $3 AND state = 'claimed'"
                ),
                &[
                    &claim.job_id,
                    &claim.key,
                    &claim.attempt,
                    &state,
                    &failure,
                    &outcome,
                ],
            )?;
            Ok(changed == 1)
        })
    }

    fn outcomes(&self, job_id: &str) -> Result<Vec<(String, u64)>, StateError> {
        let job = job_id.to_owned();
        self.with(move |db| {
            Ok(db
                .query(
                    &format!(
                        "SELECT outcome, COUNT(*) FROM {TABLE}
                         WHERE job_id = $1 AND outcome IS NOT NULL GROUP BY outcome ORDER BY outcome"
                    ),
                    &[&job],
                )?
                .iter()
                .map(|r| (r.get(0), r.get::<_, i64>(1) as u64))
                .collect())
        })
    }

    fn counts(&self, job_id: &str) -> Result<QueueCounts, StateError> {
        let job = job_id.to_owned();
        self.with(move |db| {
            let mut counts = QueueCounts::default();
            for row in db.query(
                &format!("SELECT state, COUNT(*) FROM {TABLE} WHERE job_id = $1 GROUP BY state"),
                &[&job],
            )? {
                counts.add(row.get::<_, &str>(0), row.get::<_, i64>(1) as u64);
            }
            Ok(counts)
        })
    }

    fn failures(&self, job_id: &str) -> Result<Vec<(String, String)>, StateError> {
        let job = job_id.to_owned();
        self.with(move |db| {
            Ok(db
                .query(
                    &format!(
                        "SELECT key, coalesce(failure, '') FROM {TABLE}
                         WHERE job_id = $1 AND state = 'failed' ORDER BY key"
                    ),
                    &[&job],
                )?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect())
        })
    }
}
