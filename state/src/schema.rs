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
    // 2: cluster mode: what each item came to, the ledger, jobs, knowledge bases made through
    // the API, sessions, the lexical change log, replicas, and access-key grants.
    "ALTER TABLE quarry_work_items ADD COLUMN outcome TEXT;
     CREATE TABLE quarry_ledger (
         kb_id TEXT NOT NULL,
         data_source_id TEXT NOT NULL,
         key TEXT NOT NULL,
         size BIGINT NOT NULL,
         version TEXT NOT NULL,
         content_hash TEXT NOT NULL,
         sidecar_version TEXT NOT NULL,
         sidecar_hash TEXT NOT NULL,
         embedded_metadata_hash TEXT NOT NULL,
         chunk_ids TEXT NOT NULL,
         pending BOOLEAN NOT NULL,
         PRIMARY KEY (kb_id, data_source_id, key)
     );
     CREATE TABLE quarry_jobs (
         job_id TEXT PRIMARY KEY,
         kb_id TEXT NOT NULL,
         data_source_id TEXT NOT NULL,
         kind TEXT NOT NULL,
         status TEXT NOT NULL,
         started_at TIMESTAMPTZ NOT NULL,
         record TEXT NOT NULL,
         documents_listed BIGINT NOT NULL DEFAULT 0,
         sidecars_listed BIGINT NOT NULL DEFAULT 0
     );
     CREATE UNIQUE INDEX quarry_jobs_one_running ON quarry_jobs (kb_id, data_source_id)
         WHERE status IN ('STARTING', 'IN_PROGRESS', 'STOPPING');
     CREATE INDEX quarry_jobs_by_source ON quarry_jobs (kb_id, data_source_id, started_at);
     CREATE TABLE quarry_pending_keys (
         kb_id TEXT NOT NULL,
         data_source_id TEXT NOT NULL,
         key TEXT NOT NULL,
         PRIMARY KEY (kb_id, data_source_id, key)
     );
     CREATE TABLE quarry_knowledge_bases (
         id TEXT PRIMARY KEY,
         name TEXT NOT NULL UNIQUE,
         config TEXT NOT NULL,
         created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
         updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
     );
     CREATE TABLE quarry_sessions (
         id TEXT PRIMARY KEY,
         owner TEXT NOT NULL,
         turns TEXT NOT NULL,
         updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
     );
     CREATE TABLE quarry_lexical_log (
         seq BIGSERIAL PRIMARY KEY,
         kb_id TEXT NOT NULL,
         op TEXT NOT NULL,
         logged_at TIMESTAMPTZ NOT NULL DEFAULT now()
     );
     CREATE INDEX quarry_lexical_log_by_kb ON quarry_lexical_log (kb_id, seq);
     CREATE TABLE quarry_replicas (
         name TEXT PRIMARY KEY,
         address TEXT NOT NULL,
         started_at TIMESTAMPTZ NOT NULL,
         heartbeat_at TIMESTAMPTZ NOT NULL,
         documents_processed BIGINT NOT NULL DEFAULT 0,
         lexical_lag BIGINT NOT NULL DEFAULT 0,
         ready BOOLEAN NOT NULL DEFAULT false
     );
     CREATE TABLE quarry_settings (
         name TEXT PRIMARY KEY,
         value TEXT NOT NULL
     );",
    // 3: Bedrock's clientToken, for idempotent Create* and StartIngestionJob.
    "CREATE TABLE quarry_client_tokens (
         scope TEXT NOT NULL,
         token TEXT NOT NULL,
         digest TEXT NOT NULL,
         resource TEXT NOT NULL,
         created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
         PRIMARY KEY (scope, token)
     );",
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
