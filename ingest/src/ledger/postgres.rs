//! The ledger of a cluster: one knowledge base's rows of the tables in the cluster's
//! PostgreSQL database (made by `quarry_state::schema`), so every replica reads and writes
//! the same ledger.

use std::sync::Arc;

use quarry_state::PgConnection;

use super::{Ledger, LedgerEntry, LedgerError};
use crate::job::IngestionJob;

pub struct PgLedger {
    db: Arc<PgConnection>,
    kb_id: String,
}

fn failed(e: impl std::fmt::Display) -> LedgerError {
    LedgerError {
        path: "in the cluster's database".into(),
        message: e.to_string(),
    }
}

impl PgLedger {
    /// The ledger of knowledge base `kb_id` over a connection whose schema is up to date.
    pub fn new(db: Arc<PgConnection>, kb_id: &str) -> Self {
        Self {
            db,
            kb_id: kb_id.to_owned(),
        }
    }

    fn query_entries(
        &self,
        data_source_id: &str,
        key: Option<&str>,
    ) -> Result<Vec<LedgerEntry>, LedgerError> {
        let (kb, ds, key) = (
            self.kb_id.clone(),
            data_source_id.to_owned(),
            key.map(str::to_owned),
        );
        self.db
            .run(move |db| {
                let rows = db.query(
                    "SELECT key, size, version, content_hash, sidecar_version, sidecar_hash,
                            embedded_metadata_hash, chunk_ids, pending
                     FROM quarry_ledger
                     WHERE kb_id = $1 AND data_source_id = $2 AND ($3::text IS NULL OR key = $3)
                     ORDER BY key",
                    &[&kb, &ds, &key],
                )?;
                Ok(rows
                    .iter()
                    .map(|r| LedgerEntry {
                        key: r.get(0),
                        size: r.get::<_, i64>(1) as u64,
                        version: r.get(2),
                        content_hash: r.get(3),
                        sidecar_version: r.get(4),
                        sidecar_hash: r.get(5),
                        embedded_metadata_hash: r.get(6),
                        chunk_ids: serde_json::from_str(r.get(7)).unwrap_or_default(),
                        pending: r.get(8),
                    })
                    .collect())
            })
            .map_err(failed)
    }
}

impl Ledger for PgLedger {
    fn entries(&self, data_source_id: &str) -> Result<Vec<LedgerEntry>, LedgerError> {
        self.query_entries(data_source_id, None)
    }

    fn entry(&self, data_source_id: &str, key: &str) -> Result<Option<LedgerEntry>, LedgerError> {
        Ok(self.query_entries(data_source_id, Some(key))?.pop())
    }

    fn put(&self, data_source_id: &str, entry: &LedgerEntry) -> Result<(), LedgerError> {
        let (kb, ds, e) = (self.kb_id.clone(), data_source_id.to_owned(), entry.clone());
        let chunk_ids = serde_json::to_string(&e.chunk_ids).map_err(failed)?;
        self.db
            .run(move |db| {
                db.execute(
                    "INSERT INTO quarry_ledger (kb_id, data_source_id, key, size, version,
                         content_hash, sidecar_version, sidecar_hash, embedded_metadata_hash,
                         chunk_ids, pending)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                     ON CONFLICT (kb_id, data_source_id, key) DO UPDATE SET
                         size = EXCLUDED.size, version = EXCLUDED.version,
                         content_hash = EXCLUDED.content_hash,
                         sidecar_version = EXCLUDED.sidecar_version,
                         sidecar_hash = EXCLUDED.sidecar_hash,
                         embedded_metadata_hash = EXCLUDED.embedded_metadata_hash,
                         chunk_ids = EXCLUDED.chunk_ids, pending = EXCLUDED.pending",
                    &[
                        &kb,
                        &ds,
                        &e.key,
                        &(e.size as i64),
                        &e.version,
                        &e.content_hash,
                        &e.sidecar_version,
                        &e.sidecar_hash,
                        &e.embedded_metadata_hash,
                        &chunk_ids,
                        &e.pending,
                    ],
                )?;
                Ok(())
            })
            .map_err(failed)
    }

    fn mark_pending(&self, data_source_id: &str, key: &str) -> Result<(), LedgerError> {
        let (kb, ds, key) = (
            self.kb_id.clone(),
            data_source_id.to_owned(),
            key.to_owned(),
        );
        self.db
            .run(move |db| {
                db.execute(
                    "INSERT INTO quarry_ledger (kb_id, data_source_id, key, size, version,
                         content_hash, sidecar_version, sidecar_hash, embedded_metadata_hash,
                         chunk_ids, pending)
                     VALUES ($1, $2, $3, 0, '', '', '', '', '', '[]', true)
                     ON CONFLICT (kb_id, data_source_id, key) DO UPDATE SET pending = true",
                    &[&kb, &ds, &key],
                )?;
                Ok(())
            })
            .map_err(failed)
    }

    fn remove(&self, data_source_id: &str, key: &str) -> Result<(), LedgerError> {
        let (kb, ds, key) = (
            self.kb_id.clone(),
            data_source_id.to_owned(),
            key.to_owned(),
        );
        self.db
            .run(move |db| {
                db.execute(
                    "DELETE FROM quarry_ledger WHERE kb_id = $1 AND data_source_id = $2 AND key = $3",
                    &[&kb, &ds, &key],
                )?;
                Ok(())
            })
            .map_err(failed)
    }

    fn save_job(&self, job: &IngestionJob) -> Result<(), LedgerError> {
        let record = serde_json::to_string(job).map_err(failed)?;
        let status = serde_json::to_value(job.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let (id, kb, ds, started) = (
            job.ingestion_job_id.clone(),
            self.kb_id.clone(),
            job.data_source_id.clone(),
            job.started_at.to_rfc3339(),
        );
        self.db
            .run(move |db| {
                db.execute(
                    "INSERT INTO quarry_jobs (job_id, kb_id, data_source_id, kind, status,
                         started_at, record)
                     VALUES ($1, $2, $3, 'full', $4, $5::text::timestamptz, $6)
                     ON CONFLICT (job_id) DO UPDATE SET status = EXCLUDED.status,
                         record = EXCLUDED.record",
                    &[&id, &kb, &ds, &status, &started, &record],
                )?;
                Ok(())
            })
            .map_err(failed)
    }

    fn job(&self, ingestion_job_id: &str) -> Result<Option<IngestionJob>, LedgerError> {
        let (kb, id) = (self.kb_id.clone(), ingestion_job_id.to_owned());
        let record: Option<String> = self
            .db
            .run(move |db| {
                Ok(db
                    .query_opt(
                        "SELECT record FROM quarry_jobs WHERE kb_id = $1 AND job_id = $2",
                        &[&kb, &id],
                    )?
                    .map(|r| r.get(0)))
            })
            .map_err(failed)?;
        record
            .map(|r| serde_json::from_str(&r).map_err(failed))
            .transpose()
    }

    fn jobs(&self, data_source_id: Option<&str>) -> Result<Vec<IngestionJob>, LedgerError> {
        let (kb, ds) = (self.kb_id.clone(), data_source_id.map(str::to_owned));
        let records: Vec<String> = self
            .db
            .run(move |db| {
                Ok(db
                    .query(
                        "SELECT record FROM quarry_jobs
                         WHERE kb_id = $1 AND ($2::text IS NULL OR data_source_id = $2)
                         ORDER BY started_at DESC, job_id DESC",
                        &[&kb, &ds],
                    )?
                    .iter()
                    .map(|r| r.get(0))
                    .collect())
            })
            .map_err(failed)?;
        records
            .iter()
            .map(|r| serde_json::from_str(r).map_err(failed))
            .collect()
    }
}
