//! The cluster's schema in PostgreSQL, versioned: `quarry_schema` records the version the
//! database is at; opening applies the migrations it lacks, in order, one replica at a time
//! (under an advisory lock); a database at a version newer than this build knows is refused
//! with a message saying so, rather than used by code that does not understand it.

use postgres::Client;

use crate::StateError;

/// What each version adds, in order: version N is `MIGRATIONS[N - 1]`.
const MIGRATIONS: &[&str] = &[
    // 1: the work queue of ingestion jobs.
    "CREATE TABLE quarry_work_items (
         job_id TEXT NOT NULL,
         key TEXT NOT NULL,
         state TEXT NOT NULL DEFAULT 'queued',
         worker TEXT,
         lease_until TIMESTAMPTZ,
         attempt BIGINT NOT NULL DEFAULT 0,
         failure TEXT,
         PRIMARY KEY (job_id, key)
     );
     CREATE INDEX quarry_work_items_claimable ON quarry_work_items (job_id, state, lease_until);",
];

/// The version this build brings a database to.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database to [`SCHEMA_VERSION`]; returns the version it was at.
pub fn migrate(db: &mut Client) -> Result<i64, StateError> {
    migrate_to(db, MIGRATIONS)
}

fn migrate_to(db: &mut Client, migrations: &[&str]) -> Result<i64, StateError> {
    let mut tx = db.transaction()?;
    // One replica at a time; the others then find the work done.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('quarry-state-schema'))",
        &[],
    )?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS quarry_schema (
             version BIGINT NOT NULL,
             migrated_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )?;
    let found: i64 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM quarry_schema", &[])?
        .get(0);
    let known = migrations.len() as i64;
    if found > known {
        return Err(StateError::NewerSchema { found, known });
    }
    for (i, migration) in migrations.iter().enumerate().skip(found as usize) {
        tx.batch_execute(migration)?;
        tx.execute(
            "INSERT INTO quarry_schema (version) VALUES ($1)",
            &[&(i as i64 + 1)],
        )?;
    }
    tx.commit()?;
    Ok(found)
}
