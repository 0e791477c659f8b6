//! The PostgreSQL + pgvector store (Bedrock's RDS/Aurora option): one table with a primary
//! key, a `vector(dimension)` column under an HNSW index (`vector_cosine_ops`), the chunk's
//! text, and its metadata as JSONB — Bedrock's system keys included, plus Quarry's
//! `x-quarry-document-key` and `x-quarry-span` — so filters run in SQL with Bedrock's
//! semantics ([`filter_sql`]). Column names follow Bedrock's RDS field mapping and can be
//! changed to use a table laid out for Bedrock.

mod filter_sql;
mod worker;

use std::collections::HashMap;

use postgres::types::ToSql;
use quarry_core::metadata::DATA_SOURCE_ID;
use quarry_core::{Filter, Metadata, SearchHit, StoreError, StoredChunk, VectorStore};
use serde_json::{Map, Value};

pub use self::filter_sql::{Condition, Param};
use self::worker::Worker;
use crate::metadata_document::{
    DOCUMENT_KEY, check_dimension, is_system_key, to_chunk, to_document,
};

/// Filtered searches whose filter passes at most this many chunks rank them exactly.
const EXACT_SEARCH_BELOW: usize = 20_000;

pub use quarry_core::config::PgFieldMapping as FieldMapping;

/// Where the store lives.
#[derive(Debug, Clone)]
pub struct PgVectorConfig {
    /// `postgres://user@host:port/database`.
    pub url: String,
    /// `table` or `schema.table`.
    pub table: String,
    pub password: Option<String>,
    pub fields: FieldMapping,
}

/// A plain SQL identifier, quoted.
fn identifier(name: &str) -> Result<String, StoreError> {
    let ok = |part: &str| {
        let mut chars = part.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && part.len() <= 63
    };
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() > 2 || !parts.iter().all(|p| ok(p)) {
        return Err(StoreError::Storage(format!(
            "{name:?} is not a plain SQL name (letters, digits and _, optionally schema.name)"
        )));
    }
    Ok(parts
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join("."))
}

/// The SQL the store runs, built once for its table and columns.
#[derive(Clone)]
struct Sql {
    table: String,
    id: String,
    vector: String,
    text: String,
    meta: String,
    /// The primary key column's type (`text`, `uuid`, ...), for casting ids into it.
    id_type: String,
}

impl Sql {
    /// Columns of a chunk row, in the order [`row_to_chunk`] reads them.
    fn columns(&self) -> String {
        format!(
            "replace({}::text, '-', ''), {}, {}, {}::text",
            self.id, self.text, self.meta, self.vector
        )
    }

    fn document(&self) -> String {
        format!(
            "{m} ->> '{DATA_SOURCE_ID}' = $1 AND {m} ->> '{DOCUMENT_KEY}' = $2",
            m = self.meta
        )
    }
}

pub struct PgVectorStore {
    worker: Worker,
    sql: Sql,
    dimension: usize,
}

impl PgVectorStore {
    /// Drops the table a configuration names, if it exists (a retired index's, by `quarry gc`).
    pub fn remove(config: &PgVectorConfig) -> Result<(), StoreError> {
        let mut pg: postgres::Config = config.url.parse().map_err(|e| {
            StoreError::Storage(format!("vector_store url is not a PostgreSQL URL: {e}"))
        })?;
        if let Some(p) = &config.password {
            pg.password(p);
        }
        let table = identifier(&config.table)?;
        Worker::connect(pg)?.run(move |c| c.batch_execute(&format!("DROP TABLE IF EXISTS {table}")))
    }

    /// Connects, and creates the extension, table and indexes when missing. A table whose
    /// vector column has another dimension is refused.
    pub fn open(config: &PgVectorConfig, dimension: usize) -> Result<Self, StoreError> {
        let mut pg: postgres::Config = config.url.parse().map_err(|e| {
            StoreError::Storage(format!("vector_store url is not a PostgreSQL URL: {e}"))
        })?;
        if let Some(p) = &config.password {
            pg.password(p);
        }
        let worker = Worker::connect(pg)?;
        let f = &config.fields;
        let mut sql = Sql {
            table: identifier(&config.table)?,
            id: identifier(&f.primary_key)?,
            vector: identifier(&f.vector)?,
            text: identifier(&f.text)?,
            meta: identifier(&f.metadata)?,
            id_type: String::new(),
        };
        let index_base = config.table.replace('.', "_");
        let s = sql.clone();
        let (id_type, vector_type) = worker.run(move |c| {
            // Two sessions creating the extension at once: one wins, the other sees a
            // unique violation for what now exists.
            if let Err(e) = c.batch_execute("CREATE EXTENSION IF NOT EXISTS vector")
                && e.code() != Some(&postgres::error::SqlState::UNIQUE_VIOLATION)
            {
                return Err(e);
            }
            // (one implicit transaction; the lock keeps replicas starting together from
            // racing on the same `IF NOT EXISTS`)
            c.batch_execute(&format!(
                "SELECT pg_advisory_xact_lock(hashtext('quarry-pgvector-ddl'));
                 CREATE TABLE IF NOT EXISTS {t} (
                     {id} text PRIMARY KEY,
                     {v} vector({dimension}) NOT NULL,
                     {x} text NOT NULL,
                     {m} jsonb NOT NULL
                 );
                 CREATE INDEX IF NOT EXISTS \"{index_base}_hnsw\" ON {t} USING hnsw ({v} vector_cosine_ops);
                 CREATE INDEX IF NOT EXISTS \"{index_base}_document\"
                     ON {t} (({m} ->> '{DATA_SOURCE_ID}'), ({m} ->> '{DOCUMENT_KEY}'));",
                t = s.table, id = s.id, v = s.vector, x = s.text, m = s.meta
            ))?;
            let type_of = |c: &mut postgres::Client, column: &str| -> Result<String, postgres::Error> {
                let column = column.trim_matches('"').to_owned();
                let row = c.query_one(
                    &format!("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = '{}'::regclass AND attname = $1", s.table),
                    &[&column],
                )?;
                row.try_get(0)
            };
            Ok((type_of(c, &s.id)?, type_of(c, &s.vector)?))
        })?;
        if vector_type != format!("vector({dimension})") {
            return Err(StoreError::Storage(format!(
                "table {} has a {vector_type} column {}, but the model's vectors have {dimension} dimensions",
                config.table, f.vector
            )));
        }
        sql.id_type = id_type;
        Ok(Self {
            worker,
            sql,
            dimension,
        })
    }
}

/// pgvector's text form of a vector.
fn vector_literal(v: &[f32]) -> String {
    let parts: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    format!("[{}]", parts.join(","))
}

fn row_to_chunk(row: &postgres::Row) -> Result<StoredChunk, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("PostgreSQL row: {what}"));
    let id: String = row.try_get(0).map_err(|_| corrupt("id"))?;
    let text: String = row.try_get(1).map_err(|_| corrupt("text"))?;
    let meta: Value = row.try_get(2).map_err(|_| corrupt("metadata"))?;
    let vector: String = row.try_get(3).map_err(|_| corrupt("vector"))?;
    let vector = vector
        .trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(|x| x.trim().parse::<f32>())
        .collect::<Result<Vec<f32>, _>>()
        .map_err(|_| corrupt("vector"))?;
    let m = meta
        .as_object()
        .ok_or_else(|| corrupt("metadata is not an object"))?;
    Ok(to_chunk(m, id, text, vector))
}

fn params(list: &[Param]) -> Vec<Box<dyn ToSql + Sync + Send>> {
    list.iter()
        .map(|p| -> Box<dyn ToSql + Sync + Send> {
            match p {
                Param::Text(s) => Box::new(s.clone()),
                Param::Json(v) => Box::new(v.clone()),
                Param::Number(n) => Box::new(*n),
                Param::JsonList(vs) => Box::new(vs.clone()),
            }
        })
        .collect()
}

impl VectorStore for PgVectorStore {
    fn dimension(&self) -> usize {
        self.dimension
    }

    fn upsert(&self, chunks: &[StoredChunk]) -> Result<(), StoreError> {
        for c in chunks {
            check_dimension(self.dimension, &c.vector)?;
        }
        let rows: Vec<(String, String, String, Value)> = chunks
            .iter()
            .map(|c| {
                (
                    c.id.clone(),
                    vector_literal(&c.vector),
                    c.text.clone(),
                    Value::Object(to_document(c)),
                )
            })
            .collect();
        let s = self.sql.clone();
        self.worker.run(move |c| {
            let mut tx = c.transaction()?;
            let stmt = tx.prepare(&format!(
                "INSERT INTO {t} ({id}, {v}, {x}, {m}) VALUES ($1::text::{ty}, $2::text::vector, $3, $4::jsonb)
                 ON CONFLICT ({id}) DO UPDATE SET {v} = EXCLUDED.{v}, {x} = EXCLUDED.{x}, {m} = EXCLUDED.{m}",
                t = s.table, id = s.id, v = s.vector, x = s.text, m = s.meta, ty = s.id_type
            ))?;
            for (id, vector, text, meta) in &rows {
                tx.execute(&stmt, &[id, vector, text, meta])?;
            }
            tx.commit()
        })
    }

    fn delete_document(
        &self,
        data_source_id: &str,
        document_key: &str,
    ) -> Result<usize, StoreError> {
        let (ds, key, s) = (
            data_source_id.to_owned(),
            document_key.to_owned(),
            self.sql.clone(),
        );
        self.worker.run(move |c| {
            let n = c.execute(
                &format!("DELETE FROM {} WHERE {}", s.table, s.document()),
                &[&ds, &key],
            )?;
            Ok(n as usize)
        })
    }

    fn set_document_metadata(
        &self,
        data_source_id: &str,
        document_key: &str,
        metadata: &Metadata,
    ) -> Result<usize, StoreError> {
        let (ds, key, s) = (
            data_source_id.to_owned(),
            document_key.to_owned(),
            self.sql.clone(),
        );
        let user: Map<String, Value> = metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect();
        self.worker.run(move |c| {
            let mut tx = c.transaction()?;
            let rows = tx.query(
                &format!(
                    "SELECT {id}::text, {m} FROM {t} WHERE {w}",
                    id = s.id,
                    m = s.meta,
                    t = s.table,
                    w = s.document()
                ),
                &[&ds, &key],
            )?;
            let update = tx.prepare(&format!(
                "UPDATE {t} SET {m} = $2::jsonb WHERE {id}::text = $1",
                t = s.table,
                m = s.meta,
                id = s.id
            ))?;
            for row in &rows {
                let id: String = row.get(0);
                let old: Value = row.get(1);
                let mut new = user.clone();
                if let Some(old) = old.as_object() {
                    for (k, v) in old.iter().filter(|(k, _)| is_system_key(k)) {
                        new.insert(k.clone(), v.clone());
                    }
                }
                tx.execute(&update, &[&id, &Value::Object(new)])?;
            }
            tx.commit()?;
            Ok(rows.len())
        })
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&Filter>,
    ) -> Result<Vec<SearchHit>, StoreError> {
        check_dimension(self.dimension, query)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let s = self.sql.clone();
        let condition = filter.map(|f| Condition::new(f, &s.meta, 2));
        let where_clause = condition
            .as_ref()
            .map(|c| format!("WHERE {}", c.sql))
            .unwrap_or_default();
        let mut values = params(condition.as_ref().map_or(&[][..], |c| &c.params[..]));
        values.insert(0, Box::new(vector_literal(query)));
        let sql = format!(
            "SELECT {cols}, 1 - ({v} <=> $1::text::vector) FROM {t} {where_clause} ORDER BY {v} <=> $1::text::vector LIMIT {k}",
            cols = s.columns(),
            v = s.vector,
            t = s.table
        );
        let ef = (4 * k).max(100);
        // The same condition numbered from $1, to count how many chunks pass.
        let count_passing = filter.map(|f| {
            let c = Condition::new(f, &s.meta, 1);
            let sql = format!(
                "SELECT count(*) FROM (SELECT 1 FROM {t} WHERE {w} LIMIT {limit}) passing",
                t = s.table,
                w = c.sql,
                limit = EXACT_SEARCH_BELOW + 1
            );
            (sql, params(&c.params))
        });
        let rows = self.worker.run(move |c| {
            let mut tx = c.transaction()?;
            let refs: Vec<&(dyn ToSql + Sync)> = values
                .iter()
                .map(|v| v.as_ref() as &(dyn ToSql + Sync))
                .collect();
            // A filter that passes few chunks ranks them exactly (no index scan), as the
            // HNSW store does; otherwise the index is walked iteratively until k rows pass
            // (pgvector 0.8's iterative scans).
            let exact = match &count_passing {
                Some((count, values)) => {
                    let refs: Vec<&(dyn ToSql + Sync)> = values
                        .iter()
                        .map(|v| v.as_ref() as &(dyn ToSql + Sync))
                        .collect();
                    let n: i64 = tx.query_one(count, &refs)?.get(0);
                    n as usize <= EXACT_SEARCH_BELOW
                }
                None => false,
            };
            if exact {
                tx.batch_execute(
                    "SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off;",
                )?;
            } else {
                tx.batch_execute(&format!(
                    "SET LOCAL hnsw.ef_search = {ef}; SET LOCAL hnsw.iterative_scan = strict_order;"
                ))?;
            }
            let rows = tx.query(&sql, &refs)?;
            tx.commit()?;
            Ok(rows)
        })?;
        rows.iter()
            .map(|r| {
                let score: f64 = r
                    .try_get(4)
                    .map_err(|_| StoreError::Corrupt("score".into()))?;
                Ok(SearchHit {
                    chunk: row_to_chunk(r)?,
                    score: score as f32,
                })
            })
            .collect()
    }

    fn chunks(&self, ids: &[String]) -> Result<Vec<StoredChunk>, StoreError> {
        let (wanted, s) = (ids.to_vec(), self.sql.clone());
        let rows = self.worker.run(move |c| {
            c.query(
                &format!(
                    "SELECT {} FROM {} WHERE replace({}::text, '-', '') = ANY($1)",
                    s.columns(),
                    s.table,
                    s.id
                ),
                &[&wanted],
            )
        })?;
        let mut by_id: HashMap<String, StoredChunk> = rows
            .iter()
            .map(|r| row_to_chunk(r).map(|c| (c.id.clone(), c)))
            .collect::<Result<_, _>>()?;
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    fn document_chunk_ids(
        &self,
        data_source_id: &str,
        document_key: &str,
    ) -> Result<Vec<String>, StoreError> {
        let (ds, key, s) = (
            data_source_id.to_owned(),
            document_key.to_owned(),
            self.sql.clone(),
        );
        self.worker.run(move |c| {
            let rows = c.query(
                &format!(
                    "SELECT replace({id}::text, '-', '') AS i FROM {t} WHERE {w} ORDER BY i",
                    id = s.id,
                    t = s.table,
                    w = s.document()
                ),
                &[&ds, &key],
            )?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn chunk_ids(&self) -> Result<Vec<String>, StoreError> {
        let s = self.sql.clone();
        self.worker.run(move |c| {
            let rows = c.query(
                &format!(
                    "SELECT replace({}::text, '-', '') AS i FROM {} ORDER BY i",
                    s.id, s.table
                ),
                &[],
            )?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn len(&self) -> Result<usize, StoreError> {
        let s = self.sql.clone();
        self.worker.run(move |c| {
            let n: i64 = c
                .query_one(&format!("SELECT count(*) FROM {}", s.table), &[])?
                .get(0);
            Ok(n as usize)
        })
    }
}
