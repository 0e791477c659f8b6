//! The ledger of one node: one SQLite file per knowledge base.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::{Ledger, LedgerEntry, LedgerError};
use crate::job::IngestionJob;

const FORMAT_VERSION: i64 = 1;

pub struct SqliteLedger {
    db: Connection,
    path: String,
}

impl SqliteLedger {
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        let shown = path.display().to_string();
        let err = |e: &dyn std::fmt::Display| LedgerError {
            path: shown.clone(),
            message: e.to_string(),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
        }
        let db = Connection::open(path).map_err(|e| err(&e))?;
        db.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| err(&e))?;
        db.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS documents (
                 data_source_id TEXT NOT NULL,
                 key TEXT NOT NULL,
                 size INTEGER NOT NULL,
                 version TEXT NOT NULL,
                 content_hash TEXT NOT NULL,
                 sidecar_version TEXT NOT NULL,
                 sidecar_hash TEXT NOT NULL,
                 embedded_metadata_hash TEXT NOT NULL,
                 chunk_ids TEXT NOT NULL,
                 pending INTEGER NOT NULL,
                 PRIMARY KEY (data_source_id, key)
             );
             CREATE TABLE IF NOT EXISTS jobs (
                 ingestion_job_id TEXT PRIMARY KEY,
                 data_source_id TEXT NOT NULL,
                 started_at TEXT NOT NULL,
                 record TEXT NOT NULL
             );",
        )
        .map_err(|e| err(&e))?;
        let version: Option<i64> = db
            .query_row(
                "SELECT value FROM ledger_meta WHERE key = 'format_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| err(&e))?;
        match version {
            None => {
                db.execute(
                    "INSERT INTO ledger_meta VALUES ('format_version', ?1)",
                    [FORMAT_VERSION],
                )
                .map_err(|e| err(&e))?;
            }
            Some(FORMAT_VERSION) => {}
            Some(v) => {
                return Err(err(&format!(
                    "format version {v}; this build reads {FORMAT_VERSION}"
                )));
            }
        }
        Ok(Self { db, path: shown })
    }

    fn err(&self, e: impl std::fmt::Display) -> LedgerError {
        LedgerError {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }
}

impl Ledger for SqliteLedger {
    fn entries(&self, data_source_id: &str) -> Result<Vec<LedgerEntry>, LedgerError> {
        let mut stmt = self
            .db
            .prepare(
                "SELECT key, size, version, content_hash, sidecar_version, sidecar_hash,
                        embedded_metadata_hash, chunk_ids, pending
                 FROM documents WHERE data_source_id = ?1 ORDER BY key",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([data_source_id], |r| {
                let chunk_ids: String = r.get(7)?;
                Ok(LedgerEntry {
                    key: r.get(0)?,
                    size: r.get::<_, i64>(1)? as u64,
                    version: r.get(2)?,
                    content_hash: r.get(3)?,
                    sidecar_version: r.get(4)?,
                    sidecar_hash: r.get(5)?,
                    embedded_metadata_hash: r.get(6)?,
                    chunk_ids: serde_json::from_str(&chunk_ids).unwrap_or_default(),
                    pending: r.get::<_, i64>(8)? != 0,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn put(&self, data_source_id: &str, entry: &LedgerEntry) -> Result<(), LedgerError> {
        self.db
            .execute(
                "INSERT OR REPLACE INTO documents (data_source_id, key, size, version, content_hash,
                     sidecar_version, sidecar_hash, embedded_metadata_hash, chunk_ids, pending)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    data_source_id,
                    entry.key,
                    entry.size as i64,
                    entry.version,
                    entry.content_hash,
                    entry.sidecar_version,
                    entry.sidecar_hash,
                    entry.embedded_metadata_hash,
                    serde_json::to_string(&entry.chunk_ids).map_err(|e| self.err(e))?,
                    i64::from(entry.pending),
                ],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    fn mark_pending(&self, data_source_id: &str, key: &str) -> Result<(), LedgerError> {
        self.db
            .execute(
                "INSERT INTO documents (data_source_id, key, size, version, content_hash, sidecar_version,
                     sidecar_hash, embedded_metadata_hash, chunk_ids, pending)
                 VALUES (?1, ?2, 0, '', '', '', '', '', '[]', 1)
                 ON CONFLICT (data_source_id, key) DO UPDATE SET pending = 1",
                params![data_source_id, key],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    fn remove(&self, data_source_id: &str, key: &str) -> Result<(), LedgerError> {
        self.db
            .execute(
                "DELETE FROM documents WHERE data_source_id = ?1 AND key = ?2",
                params![data_source_id, key],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    fn save_job(&self, job: &IngestionJob) -> Result<(), LedgerError> {
        self.db
            .execute(
                "INSERT OR REPLACE INTO jobs (ingestion_job_id, data_source_id, started_at, record)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    job.ingestion_job_id,
                    job.data_source_id,
                    job.started_at.to_rfc3339(),
                    serde_json::to_string(job).map_err(|e| self.err(e))?
                ],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    fn job(&self, ingestion_job_id: &str) -> Result<Option<IngestionJob>, LedgerError> {
        let record: Option<String> = self
            .db
            .query_row(
                "SELECT record FROM jobs WHERE ingestion_job_id = ?1",
                [ingestion_job_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        record
            .map(|r| serde_json::from_str(&r).map_err(|e| self.err(e)))
            .transpose()
    }

    fn jobs(&self, data_source_id: Option<&str>) -> Result<Vec<IngestionJob>, LedgerError> {
        let mut stmt = self
            .db
            .prepare(
                "SELECT record FROM jobs WHERE ?1 IS NULL OR data_source_id = ?1
                 ORDER BY started_at DESC, rowid DESC",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([data_source_id], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        rows.map(|r| {
            let record = r.map_err(|e| self.err(e))?;
            serde_json::from_str(&record).map_err(|e| self.err(e))
        })
        .collect()
    }
}
