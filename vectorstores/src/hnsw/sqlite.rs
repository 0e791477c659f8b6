//! The durable copy of the chunks: one SQLite table, written in transactions, so a crash
//! leaves either the old or the new state of a batch.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use quarry_core::{Metadata, StoreError, StoredChunk};
use rusqlite::{Connection, OptionalExtension, params};

/// Bumped when the table layout changes; an older file is migrated or refused.
const FORMAT_VERSION: i64 = 1;

pub(crate) struct ChunkTable {
    db: Connection,
}

fn storage(e: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(e.to_string())
}

impl ChunkTable {
    pub fn open(path: &Path, dimension: usize) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| storage(format!("{}: {e}", dir.display())))?;
        }
        let db = Connection::open(path).map_err(|e| storage(format!("{}: {e}", path.display())))?;
        db.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS chunks (
                 chunk_id TEXT PRIMARY KEY,
                 data_source_id TEXT NOT NULL,
                 document_key TEXT NOT NULL,
                 source_uri TEXT NOT NULL,
                 text TEXT NOT NULL,
                 span_start INTEGER NOT NULL,
                 span_end INTEGER NOT NULL,
                 page INTEGER,
                 metadata TEXT NOT NULL,
                 vector BLOB NOT NULL
             );
             CREATE INDEX IF NOT EXISTS chunks_by_document ON chunks (data_source_id, document_key);
             CREATE TABLE IF NOT EXISTS changes (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 data_source_id TEXT NOT NULL,
                 document_key TEXT NOT NULL
             );",
        )
        .map_err(storage)?;
        for (key, value) in [
            ("format_version", FORMAT_VERSION),
            ("dimension", dimension as i64),
        ] {
            let stored: Option<i64> = db
                .query_row("SELECT value FROM store_meta WHERE key = ?1", [key], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(storage)?;
            match stored {
                None => {
                    db.execute(
                        "INSERT INTO store_meta (key, value) VALUES (?1, ?2)",
                        params![key, value],
                    )
                    .map_err(storage)?;
                }
                Some(v) if v == value => {}
                Some(v) if key == "dimension" => {
                    return Err(StoreError::WrongDimension {
                        expected: v as usize,
                        got: dimension,
                    });
                }
                Some(v) => {
                    return Err(StoreError::Corrupt(format!(
                        "{} has format version {v}; this build reads {FORMAT_VERSION}",
                        path.display()
                    )));
                }
            }
        }
        Ok(Self { db })
    }

    /// Every chunk without its text, for building the in-memory index.
    pub fn load_all(&self) -> Result<Vec<StoredChunk>, StoreError> {
        let mut stmt = self
            .db
            .prepare(
                "SELECT chunk_id, data_source_id, document_key, source_uri, span_start, span_end,
                        page, metadata, vector FROM chunks ORDER BY rowid",
            )
            .map_err(storage)?;
        let rows = stmt
            .query_map([], |r| row_to_chunk(r, String::new()))
            .map_err(storage)?;
        rows.map(|r| r.map_err(storage)?).collect()
    }

    /// The full-precision vectors of these chunks (those stored).
    pub fn load_vectors(&self, ids: &[String]) -> Result<HashMap<String, Vec<f32>>, StoreError> {
        let mut stmt = self
            .db
            .prepare_cached("SELECT vector FROM chunks WHERE chunk_id = ?1")
            .map_err(storage)?;
        let mut out = HashMap::with_capacity(ids.len());
        for id in ids {
            let blob: Option<Vec<u8>> = stmt
                .query_row([id], |r| r.get(0))
                .optional()
                .map_err(storage)?;
            if let Some(blob) = blob {
                out.insert(id.clone(), floats(&blob));
            }
        }
        Ok(out)
    }

    /// Calls `f` with every chunk's id and full-precision vector, in storage order, one at
    /// a time (a million vectors need not be held at once).
    pub fn each_vector(
        &self,
        mut f: impl FnMut(&str, &[f32]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut stmt = self
            .db
            .prepare("SELECT chunk_id, vector FROM chunks ORDER BY rowid")
            .map_err(storage)?;
        let mut rows = stmt.query([]).map_err(storage)?;
        while let Some(row) = rows.next().map_err(storage)? {
            let id = row.get_ref(0).and_then(|v| v.as_str().map_err(Into::into));
            let blob = row.get_ref(1).and_then(|v| v.as_blob().map_err(Into::into));
            f(id.map_err(storage)?, &floats(blob.map_err(storage)?))?;
        }
        Ok(())
    }

    /// Every chunk's id and full-precision vector, in storage order.
    pub fn all_vectors(&self) -> Result<Vec<(String, Vec<f32>)>, StoreError> {
        let mut stmt = self
            .db
            .prepare("SELECT chunk_id, vector FROM chunks ORDER BY rowid")
            .map_err(storage)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, floats(&r.get::<_, Vec<u8>>(1)?)))
            })
            .map_err(storage)?;
        rows.map(|r| r.map_err(storage)).collect()
    }

    pub fn load_chunks(&self, ids: &[String]) -> Result<HashMap<String, StoredChunk>, StoreError> {
        let mut stmt = self
            .db
            .prepare_cached(
                "SELECT chunk_id, data_source_id, document_key, source_uri, span_start, span_end,
                        page, metadata, vector, text FROM chunks WHERE chunk_id = ?1",
            )
            .map_err(storage)?;
        let mut out = HashMap::with_capacity(ids.len());
        for id in ids {
            let chunk = stmt
                .query_row([id], |r| {
                    let text: String = r.get(9)?;
                    row_to_chunk(r, text)
                })
                .optional()
                .map_err(storage)?;
            if let Some(chunk) = chunk {
                out.insert(id.clone(), chunk?);
            }
        }
        Ok(out)
    }

    pub fn upsert(&mut self, chunks: &[StoredChunk]) -> Result<(), StoreError> {
        let tx = self.db.transaction().map_err(storage)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO chunks (chunk_id, data_source_id, document_key, source_uri,
                         text, span_start, span_end, page, metadata, vector)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(storage)?;
            let mut documents: Vec<(&str, &str)> = chunks
                .iter()
                .map(|c| (c.data_source_id.as_str(), c.document_key.as_str()))
                .collect();
            documents.sort_unstable();
            documents.dedup();
            for (data_source_id, document_key) in documents {
                note_change(&tx, data_source_id, document_key)?;
            }
            for c in chunks {
                let vector: Vec<u8> = c.vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                stmt.execute(params![
                    c.id,
                    c.data_source_id,
                    c.document_key,
                    c.source_uri,
                    c.text,
                    c.span.start as i64,
                    c.span.end as i64,
                    c.page,
                    serde_json::to_string(&c.metadata).map_err(storage)?,
                    vector,
                ])
                .map_err(storage)?;
            }
        }
        tx.commit().map_err(storage)
    }

    pub fn delete_document(
        &mut self,
        data_source_id: &str,
        document_key: &str,
    ) -> Result<usize, StoreError> {
        let tx = self.db.transaction().map_err(storage)?;
        note_change(&tx, data_source_id, document_key)?;
        let removed = tx
            .execute(
                "DELETE FROM chunks WHERE data_source_id = ?1 AND document_key = ?2",
                params![data_source_id, document_key],
            )
            .map_err(storage)?;
        tx.commit().map_err(storage)?;
        Ok(removed)
    }

    pub fn set_document_metadata(
        &mut self,
        data_source_id: &str,
        document_key: &str,
        metadata: &Metadata,
    ) -> Result<usize, StoreError> {
        let tx = self.db.transaction().map_err(storage)?;
        note_change(&tx, data_source_id, document_key)?;
        let updated = tx
            .execute(
                "UPDATE chunks SET metadata = ?3 WHERE data_source_id = ?1 AND document_key = ?2",
                params![
                    data_source_id,
                    document_key,
                    serde_json::to_string(metadata).map_err(storage)?
                ],
            )
            .map_err(storage)?;
        tx.commit().map_err(storage)?;
        Ok(updated)
    }

    /// The last change noted in the change log (0 when none ever was).
    pub fn last_change(&self) -> Result<i64, StoreError> {
        // AUTOINCREMENT keeps the highest number ever given in sqlite_sequence, so the log
        // can be emptied without numbers coming back.
        let given: Option<i64> = self
            .db
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'changes'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(storage)?;
        Ok(given.unwrap_or(0))
    }

    /// The documents changed after change `seq`.
    pub fn changed_documents_since(
        &self,
        seq: i64,
    ) -> Result<HashSet<(String, String)>, StoreError> {
        let mut stmt = self
            .db
            .prepare("SELECT DISTINCT data_source_id, document_key FROM changes WHERE seq > ?1")
            .map_err(storage)?;
        let rows = stmt
            .query_map([seq], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(storage)?;
        rows.collect::<Result<_, _>>().map_err(storage)
    }

    /// Empties the change log up to `seq` (a saved graph holds those changes).
    pub fn forget_changes_through(&mut self, seq: i64) -> Result<(), StoreError> {
        let tx = self.db.transaction().map_err(storage)?;
        tx.execute("DELETE FROM changes WHERE seq <= ?1", [seq])
            .map_err(storage)?;
        tx.execute(
            "INSERT OR REPLACE INTO store_meta (key, value) VALUES ('changes_forgotten_through', ?1)",
            [seq],
        )
        .map_err(storage)?;
        tx.commit().map_err(storage)
    }

    /// The last change no longer in the log: a graph saved before it cannot be replayed.
    pub fn changes_forgotten_through(&self) -> Result<i64, StoreError> {
        let v: Option<i64> = self
            .db
            .query_row(
                "SELECT value FROM store_meta WHERE key = 'changes_forgotten_through'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(storage)?;
        Ok(v.unwrap_or(0))
    }

    /// Every chunk of these documents, without text.
    pub fn load_documents(
        &self,
        documents: &HashSet<(String, String)>,
    ) -> Result<Vec<StoredChunk>, StoreError> {
        let mut stmt = self
            .db
            .prepare_cached(
                "SELECT chunk_id, data_source_id, document_key, source_uri, span_start, span_end,
                        page, metadata, vector FROM chunks
                 WHERE data_source_id = ?1 AND document_key = ?2 ORDER BY rowid",
            )
            .map_err(storage)?;
        let mut out = Vec::new();
        for (data_source_id, document_key) in documents {
            let rows = stmt
                .query_map(params![data_source_id, document_key], |r| {
                    row_to_chunk(r, String::new())
                })
                .map_err(storage)?;
            for row in rows {
                out.push(row.map_err(storage)??);
            }
        }
        Ok(out)
    }

    pub fn len(&self) -> Result<usize, StoreError> {
        self.db
            .query_row("SELECT COUNT(*) FROM chunks", [], |r| r.get::<_, i64>(0))
            .map(|n| n as usize)
            .map_err(storage)
    }

    pub fn chunk_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .db
            .prepare("SELECT chunk_id FROM chunks ORDER BY chunk_id")
            .map_err(storage)?;
        let ids = stmt.query_map([], |r| r.get(0)).map_err(storage)?;
        ids.collect::<Result<Vec<String>, _>>().map_err(storage)
    }

    pub fn document_chunk_ids(
        &self,
        data_source_id: &str,
        document_key: &str,
    ) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .db
            .prepare_cached(
                "SELECT chunk_id FROM chunks WHERE data_source_id = ?1 AND document_key = ?2 ORDER BY chunk_id",
            )
            .map_err(storage)?;
        let ids = stmt
            .query_map(params![data_source_id, document_key], |r| r.get(0))
            .map_err(storage)?;
        ids.collect::<Result<Vec<String>, _>>().map_err(storage)
    }
}

/// Notes in the change log that a document changed (inside the caller's transaction).
fn note_change(
    tx: &rusqlite::Transaction<'_>,
    data_source_id: &str,
    document_key: &str,
) -> Result<(), StoreError> {
    tx.prepare_cached("INSERT INTO changes (data_source_id, document_key) VALUES (?1, ?2)")
        .and_then(|mut stmt| stmt.execute(params![data_source_id, document_key]))
        .map(drop)
        .map_err(storage)
}

fn row_to_chunk(
    r: &rusqlite::Row<'_>,
    text: String,
) -> rusqlite::Result<Result<StoredChunk, StoreError>> {
    let metadata: String = r.get(7)?;
    let vector: Vec<u8> = r.get(8)?;
    let chunk_id: String = r.get(0)?;
    let metadata = match serde_json::from_str::<Metadata>(&metadata) {
        Ok(m) => m,
        Err(e) => {
            return Ok(Err(StoreError::Corrupt(format!(
                "metadata of chunk {chunk_id}: {e}"
            ))));
        }
    };
    Ok(Ok(StoredChunk {
        id: chunk_id,
        data_source_id: r.get(1)?,
        document_key: r.get(2)?,
        source_uri: r.get(3)?,
        text,
        span: r.get::<_, i64>(4)? as usize..r.get::<_, i64>(5)? as usize,
        page: r.get(6)?,
        metadata,
        vector: floats(&vector),
    }))
}

fn floats(blob: &[u8]) -> Vec<f32> {
    blob.chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}
