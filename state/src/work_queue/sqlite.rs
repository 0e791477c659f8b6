//! The work queue of one node, in a SQLite file (WAL, so processes on the machine share it).

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, params};

use super::{Claim, QueueCounts, WorkQueue, millis};
use crate::StateError;

pub struct SqliteWorkQueue {
    db: Mutex<Connection>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0)
}

impl SqliteWorkQueue {
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let db = Connection::open(path)?;
        db.busy_timeout(Duration::from_secs(10))?;
        // Switching to WAL needs the file to itself and does not wait for a busy one: when
        // another process is opening it too, try again shortly (WAL then sticks to the file).
        let mut tries = 0;
        loop {
            match db.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)) {
                Ok(_) => break,
                Err(e) if tries < 100 && e.to_string().contains("locked") => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e.into()),
            }
        }
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS work_items (
                 job_id TEXT NOT NULL,
                 key TEXT NOT NULL,
                 state TEXT NOT NULL DEFAULT 'queued',
                 worker TEXT,
                 lease_until INTEGER,
                 attempt INTEGER NOT NULL DEFAULT 0,
                 failure TEXT,
                 outcome TEXT,
                 PRIMARY KEY (job_id, key)
             );
             CREATE INDEX IF NOT EXISTS work_items_claimable ON work_items (job_id, state, lease_until);",
        )?;
        Ok(Self { db: Mutex::new(db) })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl WorkQueue for SqliteWorkQueue {
    fn enqueue(&self, job_id: &str, keys: &[String]) -> Result<usize, StateError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let mut added = 0;
        {
            let mut insert =
                tx.prepare("INSERT OR IGNORE INTO work_items (job_id, key) VALUES (?1, ?2)")?;
            for key in keys {
                added += insert.execute(params![job_id, key])?;
            }
        }
        tx.commit()?;
        Ok(added)
    }

    fn claim(
        &self,
        job_id: &str,
        worker: &str,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Claim>, StateError> {
        let mut db = self.db();
        // IMMEDIATE: the write lock is taken before the read, so two processes cannot both
        // see the same item as free.
        let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let now = now_ms();
        let keys: Vec<String> = {
            let mut free = tx.prepare(
                "SELECT key FROM work_items WHERE job_id = ?1
                   AND (state = 'queued' OR (state = 'claimed' AND lease_until < ?2))
                 ORDER BY key LIMIT ?3",
            )?;
            free.query_map(
                params![job_id, now, i64::try_from(max).unwrap_or(i64::MAX)],
                |r| r.get(0),
            )?
            .collect::<Result<_, _>>()?
        };
        let mut claims = Vec::with_capacity(keys.len());
        for key in keys {
            let attempt: i64 = tx.query_row(
                "UPDATE work_items SET state = 'claimed', worker = ?3, lease_until = ?4,
                        attempt = attempt + 1
                 WHERE job_id = ?1 AND key = ?2 RETURNING attempt",
                params![job_id, key, worker, now + millis(lease)],
                |r| r.get(0),
            )?;
            claims.push(Claim {
                job_id: job_id.to_owned(),
                key,
                attempt,
            });
        }
        tx.commit()?;
        Ok(claims)
    }

    fn renew(&self, claim: &Claim, lease: Duration) -> Result<bool, StateError> {
        let changed = self.db().execute(
            "UPDATE work_items SET lease_until = ?4
             WHERE job_id = ?1 AND key = ?2 AND attempt = ?3 AND state = 'claimed'",
            params![
                claim.job_id,
                claim.key,
                claim.attempt,
                now_ms() + millis(lease)
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
        let state = if failure.is_some() { "failed" } else { "done" };
        let changed = self.db().execute(
            "UPDATE work_items SET state = ?4, failure = ?5, outcome = ?6, lease_until = NULL
             WHERE job_id = ?1 AND key = ?2 AND attempt = ?3 AND state = 'claimed'",
            params![
                claim.job_id,
                claim.key,
                claim.attempt,
                state,
                failure,
                outcome
            ],
        )?;
        Ok(changed == 1)
    }

    fn outcomes(&self, job_id: &str) -> Result<Vec<(String, u64)>, StateError> {
        let db = self.db();
        let mut rows = db.prepare(
            "SELECT outcome, COUNT(*) FROM work_items
             WHERE job_id = ?1 AND outcome IS NOT NULL GROUP BY outcome ORDER BY outcome",
        )?;
        let found = rows
            .query_map(params![job_id], |r| {
                Ok((r.get(0)?, r.get::<_, i64>(1)? as u64))
            })?
            .collect::<Result<_, _>>()?;
        Ok(found)
    }

    fn counts(&self, job_id: &str) -> Result<QueueCounts, StateError> {
        let db = self.db();
        let mut counts = QueueCounts::default();
        let mut rows =
            db.prepare("SELECT state, COUNT(*) FROM work_items WHERE job_id = ?1 GROUP BY state")?;
        let found = rows.query_map(params![job_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        for row in found {
            let (state, n) = row?;
            counts.add(&state, n as u64);
        }
        Ok(counts)
    }

    fn failures(&self, job_id: &str) -> Result<Vec<(String, String)>, StateError> {
        let db = self.db();
        let mut rows = db.prepare(
            "SELECT key, failure FROM work_items WHERE job_id = ?1 AND state = 'failed' ORDER BY key",
        )?;
        let found = rows
            .query_map(params![job_id], |r| {
                Ok((
                    r.get(0)?,
                    r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                ))
            })?
            .collect::<Result<_, _>>()?;
        Ok(found)
    }
}
