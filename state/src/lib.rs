//! State that several `quarry serve` replicas must share, each kind behind one trait with two
//! implementations: SQLite (one node, the data directory) and PostgreSQL (a cluster: every
//! replica given the same database is the same service). Every implementation passes the
//! shared suite in [`suite`], as the vector stores pass theirs.
//!
//! So far: [`WorkQueue`], the documents of an ingestion job handed out to workers under
//! leases (`SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL): a worker that dies loses its
//! leases when they expire and another finishes its documents; each document's outcome is
//! counted once. This is the groundwork of cluster mode; the server does not use it yet.
//!
//! On PostgreSQL the tables come from [`schema`]'s versioned migrations.
//!
//! Both implementations are blocking. The `postgres` client runs a runtime of its own, so
//! call them from plain threads (ingestion jobs run on those), never from async code.
#![forbid(unsafe_code)]

mod error;
mod pg_thread;
pub mod schema;
pub mod suite;
mod work_queue;

pub use error::StateError;
pub use pg_thread::{PgConfig, PgConnection};
pub use work_queue::{Claim, PgWorkQueue, QueueCounts, SqliteWorkQueue, WorkQueue};
