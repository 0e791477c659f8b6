//! The ledger: what each data source's last sync indexed (per document: size, version,
//! content hash, sidecar state, chunk ids), and the ingestion job records. On one node, one
//! SQLite file per knowledge base ([`SqliteLedger`]); in a cluster, tables in the cluster's
//! PostgreSQL database ([`PgLedger`]). Both pass the suite in [`suite`].
//!
//! A document is marked `pending` before its chunks are touched and `indexed` after, so a
//! sync interrupted at any point is finished by the next: pending documents are always
//! processed again.

mod postgres;
mod sqlite;
pub mod suite;

pub use self::postgres::PgLedger;
pub use self::sqlite::SqliteLedger;
use crate::job::IngestionJob;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub key: String,
    pub size: u64,
    pub version: String,
    pub content_hash: String,
    /// `size:version` of the sidecar object, or empty when there is none.
    pub sidecar_version: String,
    pub sidecar_hash: String,
    /// Hash of the attributes embedded with the text (`includeForEmbedding`).
    pub embedded_metadata_hash: String,
    pub chunk_ids: Vec<String>,
    pub pending: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("ledger {path}: {message}")]
pub struct LedgerError {
    pub(crate) path: String,
    pub(crate) message: String,
}

/// One knowledge base's ledger.
pub trait Ledger: Send {
    /// Every document of a data source, by key.
    fn entries(&self, data_source_id: &str) -> Result<Vec<LedgerEntry>, LedgerError>;

    /// One document.
    fn entry(&self, data_source_id: &str, key: &str) -> Result<Option<LedgerEntry>, LedgerError> {
        Ok(self
            .entries(data_source_id)?
            .into_iter()
            .find(|e| e.key == key))
    }

    fn put(&self, data_source_id: &str, entry: &LedgerEntry) -> Result<(), LedgerError>;

    /// Marks a document as being rewritten (creating a placeholder entry if it is new).
    fn mark_pending(&self, data_source_id: &str, key: &str) -> Result<(), LedgerError>;

    fn remove(&self, data_source_id: &str, key: &str) -> Result<(), LedgerError>;

    fn save_job(&self, job: &IngestionJob) -> Result<(), LedgerError>;

    /// One job by id.
    fn job(&self, ingestion_job_id: &str) -> Result<Option<IngestionJob>, LedgerError>;

    /// Jobs of a data source (all data sources when `None`), newest first.
    fn jobs(&self, data_source_id: Option<&str>) -> Result<Vec<IngestionJob>, LedgerError>;
}
