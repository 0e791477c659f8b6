//! The work queue of a cluster, in PostgreSQL: claims take free rows with
//! `FOR UPDATE SKIP LOCKED`, so replicas claiming at once never wait on, nor get, each
//! other's items; leases are measured on the database's clock, so replicas' clocks do not
//! matter. The table comes from [`crate::schema`].

use std::sync::Mutex;
use std::time::Duration;

use postgres::{Client, NoTls};

use super::{Claim, QueueCounts, WorkQueue, millis};
use crate::StateError;

/// The queue's table, made by migration 1 of [`crate::schema`].
const TABLE: &str = "quarry_work_items";

pub struct PgWorkQueue {
    db: Mutex<Client>,
}

impl PgWorkQueue {
    /// Connects and brings the database's schema up to date (see [`crate::schema`]).
    pub fn open(url: &str) -> Result<Self, StateError> {
        let mut db = Client::connect(url, NoTls)?;
        crate::schema::migrate(&mut db)?;
        Ok(Self { db: Mutex::new(db) })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Client> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl WorkQueue for PgWorkQueue {
    fn enqueue(&self, job_id: &str, keys: &[String]) -> Result<usize, StateError> {
        let t = TABLE;
        let added = self.db().execute(
            &format!(
                "INSERT INTO {t} (job_id, key) SELECT $1, unnest($2::text[])
                 ON CONFLICT (job_id, key) DO NOTHING"
            ),
            &[&job_id, &keys],
        )?;
        Ok(added as usize)
    }

    fn claim(
        &self,
        job_id: &str,
        worker: &str,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Claim>, StateError> {
        let t = TABLE;
        let rows = self.db().query(
            &format!(
                "UPDATE {t} SET state = 'claimed', worker = $2,
                        lease_until = now() + $4 * interval '1 millisecond', attempt = attempt + 1
                 WHERE (job_id, key) IN (
                     SELECT job_id, key FROM {t} WHERE job_id = $1
                       AND (state = 'queued' OR (state = 'claimed' AND lease_until < now()))
                     ORDER BY key LIMIT $3
                     FOR UPDATE SKIP LOCKED)
                 RETURNING key, attempt"
            ),
            &[
                &job_id,
                &worker,
                &i64::try_from(max).unwrap_or(i64::MAX),
                &(millis(lease) as f64),
            ],
        )?;
        let mut claims: Vec<Claim> = rows
            .iter()
            .map(|r| Claim {
                job_id: job_id.to_owned(),
                key: r.get(0),
                attempt: r.get(1),
            })
            .collect();
        claims.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(claims)
    }

    fn renew(&self, claim: &Claim, lease: Duration) -> Result<bool, StateError> {
        let t = TABLE;
        let changed = self.db().execute(
            &format!(
                "UPDATE {t} SET lease_until = now() + $4 * interval '1 millisecond'
                 WHERE job_id = $1 AND key = $2 AND attempt = $3 AND state = 'claimed'"
            ),
            &[
                &claim.job_id,
                &claim.key,
                &claim.attempt,
                &(millis(lease) as f64),
            ],
        )?;
        Ok(changed == 1)
    }

    fn finish(
        &self,
        claim: &Claim,
        outcome: &str,
        failure: Option<&str>,
    ) -> Result<bool, StateError> {
        let t = TABLE;
        let state = if failure.is_some() { "failed" } else { "done" };
        let changed = self.db().execute(
            &format!(
                "UPDATE {t} SET state = $4, failure = $5, outcome = $6, lease_until = NULL
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
    }

    fn outcomes(&self, job_id: &str) -> Result<Vec<(String, u64)>, StateError> {
        let t = TABLE;
        Ok(self
            .db()
            .query(
                &format!(
                    "SELECT outcome, COUNT(*) FROM {t}
                     WHERE job_id = $1 AND outcome IS NOT NULL GROUP BY outcome ORDER BY outcome"
                ),
                &[&job_id],
            )?
            .iter()
            .map(|r| (r.get(0), r.get::<_, i64>(1) as u64))
            .collect())
    }

    fn counts(&self, job_id: &str) -> Result<QueueCounts, StateError> {
        let t = TABLE;
        let mut counts = QueueCounts::default();
        for row in self.db().query(
            &format!("SELECT state, COUNT(*) FROM {t} WHERE job_id = $1 GROUP BY state"),
            &[&job_id],
        )? {
            counts.add(row.get::<_, &str>(0), row.get::<_, i64>(1) as u64);
        }
        Ok(counts)
    }

    fn failures(&self, job_id: &str) -> Result<Vec<(String, String)>, StateError> {
        let t = TABLE;
        Ok(self
            .db()
            .query(
                &format!(
                    "SELECT key, coalesce(failure, '') FROM {t}
                     WHERE job_id = $1 AND state = 'failed' ORDER BY key"
                ),
                &[&job_id],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }
}
