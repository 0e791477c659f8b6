//! Ingestion: sources (where documents come from), parsers (bytes to text), metadata
//! sidecars, the ledger of what was indexed, and the sync job that ties them together.
#![deny(unsafe_code)]

pub mod direct;
pub mod items;
pub mod job;
pub mod ledger;
pub mod lock;
#[cfg(feature = "s3")]
pub mod notifications;
pub mod parsers;
mod prepare;
pub mod sidecar;
pub mod sources;
pub mod sync;

pub use job::{IngestionJob, JobStatus, RegressionResult, Statistics};
pub use ledger::{Ledger, PgLedger, SqliteLedger};
pub use lock::DataSourceLock;
pub use sources::{LocalFolder, Source, SourceError, SourceObject};
#[cfg(feature = "s3")]
pub use sources::{S3Bucket, S3Location};
pub use sync::{Stage, SyncObserver, SyncTarget, run_sync, run_sync_keys};
