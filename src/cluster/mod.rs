//! Cluster mode (`[cluster]`): this process is one replica of a service whose authoritative
//! state is in PostgreSQL. Every replica given the same database is the same service:
//! knowledge bases made through the API, ingestion jobs and their documents, the ledger,
//! sessions and access-key grants are rows there; the vectors are in pgvector or Qdrant; the
//! data directory holds only caches (the lexical index of each knowledge base, kept in step
//! from a change log in the database).
//!
//! - [`jobs`]: ingestion jobs as rows, their documents as work items that any replica claims
//!   under leases, statistics counted once per item; a janitor on every replica completes
//!   jobs, stops them, and starts jobs for change events that arrived while one ran.
//! - `server::replica`: this replica's share of the ingestion work, the janitor and the
//!   heartbeat.
//! - [`lexical_log`]: every write to a knowledge base's vectors appends its lexical change
//!   to an ordered log; each replica applies the log to its own BM25 index.
//! - [`knowledge_bases`], [`sessions`], [`settings`]: the rest of the shared state.
//! - [`status`]: heartbeats, and `quarry cluster status`.

pub mod jobs;
pub mod knowledge_bases;
pub mod lexical_log;
pub mod sessions;
pub mod settings;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use quarry_core::config::{ClusterConfig, VectorStoreConfig};
use quarry_state::{PgConfig, PgConnection};

/// This replica's handle on the cluster.
pub struct Cluster {
    /// Shared by the API's reads and writes of cluster state.
    pub db: Arc<PgConnection>,
    pub replica: String,
    pub lease: Duration,
    pub claim_batch: usize,
    config: ClusterConfig,
    pg: PgConfig,
}

impl Cluster {
    /// Connects and brings the schema up to date (refusing a newer one).
    pub fn connect(config: &ClusterConfig) -> anyhow::Result<Arc<Self>> {
        let mut pg: PgConfig = config
            .database_url
            .parse()
            .with_context(|| format!("[cluster] database_url {:?}", config.database_url))?;
        if let Some(var) = &config.password_env {
            let password = std::env::var(var)
                .with_context(|| format!("[cluster] password_env: {var} is not set"))?;
            pg.password(password);
        }
        let db = PgConnection::connect_with(pg.clone()).with_context(|| {
            format!(
                "connecting to the cluster's database {}",
                config.database_url
            )
        })?;
        let was = db.run(quarry_state::schema::migrate)?;
        if was < quarry_state::schema::SCHEMA_VERSION {
            tracing::info!(
                from = was,
                to = quarry_state::schema::SCHEMA_VERSION,
                "migrated the cluster's database"
            );
        }
        let replica = config.replica_name.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "replica".into());
            format!("{host}-{}", std::process::id())
        });
        Ok(Arc::new(Self {
            db: Arc::new(db),
            replica,
            lease: Duration::from_secs(config.lease_secs),
            claim_batch: config.claim_batch,
            config: config.clone(),
            pg,
        }))
    }

    /// Another connection to the cluster's database (for a thread that works on its own).
    pub fn connection(&self) -> anyhow::Result<Arc<PgConnection>> {
        Ok(Arc::new(PgConnection::connect_with(self.pg.clone())?))
    }

    /// Where a knowledge base made through the API keeps its vectors when it does not say:
    /// a pgvector table of its own in the cluster's database.
    pub fn default_store(&self, kb_id: &str) -> VectorStoreConfig {
        VectorStoreConfig::Pgvector {
            url: self.config.database_url.clone(),
            table: format!("quarry_kb_{}", kb_id.to_ascii_lowercase()),
            password_env: self.config.password_env.clone(),
            fields: Default::default(),
        }
    }
}
