//! Knowledge bases made through the API, as rows of the cluster's database (their
//! configuration in the shape of `knowledge-bases.toml`), so a knowledge base created,
//! changed or deleted through one replica is so on all.

use chrono::{DateTime, Utc};
use quarry_core::config::KnowledgeBaseConfig;
use quarry_state::{PgConnection, StateError};

/// One row.
pub struct Row {
    pub config: KnowledgeBaseConfig,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a write met.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("a knowledge base named {0} already exists")]
    NameTaken(String),
    #[error(transparent)]
    State(#[from] StateError),
}

fn toml_of(config: &KnowledgeBaseConfig) -> Result<String, StateError> {
    toml::to_string(config).map_err(|e| StateError::Database(e.to_string()))
}

pub fn all(db: &PgConnection) -> Result<Vec<Row>, StateError> {
    let rows: Vec<(String, DateTime<Utc>, DateTime<Utc>)> = db.run(|c| {
        Ok(c.query(
            "SELECT config, created_at, updated_at FROM quarry_knowledge_bases ORDER BY id",
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
    })?;
    let mut out = Vec::with_capacity(rows.len());
    for (text, created_at, updated_at) in rows {
        match toml::from_str::<KnowledgeBaseConfig>(&text) {
            Ok(config) => out.push(Row {
                config,
                created_at,
                updated_at,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "a knowledge base in the cluster's database is unreadable; skipped")
            }
        }
    }
    Ok(out)
}

fn name_taken(e: &postgres::Error) -> bool {
    e.as_db_error().is_some_and(|d| d.code().code() == "23505")
}

/// Records a new knowledge base; names are unique across the cluster.
pub fn insert(
    db: &PgConnection,
    config: &KnowledgeBaseConfig,
) -> Result<DateTime<Utc>, WriteError> {
    write(
        db,
        config,
        "INSERT INTO quarry_knowledge_bases (id, name, config) VALUES ($1, $2, $3)
         RETURNING created_at",
    )
}

/// Replaces a knowledge base's configuration.
pub fn update(
    db: &PgConnection,
    config: &KnowledgeBaseConfig,
) -> Result<DateTime<Utc>, WriteError> {
    write(
        db,
        config,
        "UPDATE quarry_knowledge_bases SET name = $2, config = $3, updated_at = now()
         WHERE id = $1 RETURNING updated_at",
    )
}

/// Runs `statement` (`$1` id, `$2` name, `$3` configuration; returning a time) unless the
/// name is another knowledge base's name or id (ids and names both find a knowledge base).
fn write(
    db: &PgConnection,
    config: &KnowledgeBaseConfig,
    statement: &'static str,
) -> Result<DateTime<Utc>, WriteError> {
    let (id, name, body) = (
        config.id.get_ref().to_string(),
        config.name.get_ref().clone(),
        toml_of(config)?,
    );
    let taken_name = name.clone();
    let outcome: Result<DateTime<Utc>, ()> = db.run(move |c| {
        let clash: i64 = c
            .query_one(
                "SELECT count(*) FROM quarry_knowledge_bases
                 WHERE id <> $2 AND (id = $1 OR name = $1)",
                &[&name, &id],
            )?
            .get(0);
        if clash > 0 {
            return Ok(Err(()));
        }
        match c.query_one(statement, &[&id, &name, &body]) {
            Ok(r) => Ok(Ok(r.get(0))),
            Err(e) if name_taken(&e) => Ok(Err(())),
            Err(e) => Err(e.into()),
        }
    })?;
    outcome.map_err(|()| WriteError::NameTaken(taken_name))
}

/// Removes a knowledge base and what the cluster kept for it: its ledger, jobs, change log
/// and, when it was the cluster's own pgvector table, that table.
pub fn delete(db: &PgConnection, id: &str, own_table: Option<String>) -> Result<(), StateError> {
    let id = id.to_owned();
    db.run(move |c| {
        let mut tx = c.transaction()?;
        tx.execute("DELETE FROM quarry_knowledge_bases WHERE id = $1", &[&id])?;
        tx.execute("DELETE FROM quarry_ledger WHERE kb_id = $1", &[&id])?;
        tx.execute("DELETE FROM quarry_lexical_log WHERE kb_id = $1", &[&id])?;
        tx.execute("DELETE FROM quarry_pending_keys WHERE kb_id = $1", &[&id])?;
        if let Some(table) = own_table {
            // Our own name (quarry_kb_<id>), never a user's: safe to quote as is.
            tx.batch_execute(&format!("DROP TABLE IF EXISTS \"{table}\""))?;
        }
        tx.commit()?;
        Ok(())
    })
}
