//! HYBRID in cluster mode: each replica keeps its own BM25 index (the same tantivy index
//! one node has, so the same scores), kept in step from an ordered change log in the
//! cluster's database. [`LoggedStore`] writes the vectors and then appends the lexical change
//! to `quarry_lexical_log`; every replica's [`Follower`] applies the log in order to its
//! index. Appends take a transaction-scoped advisory lock, so the log's order is the order
//! in which changes committed and a reader never skips one still being written.
//!
//! A replica with no index yet (a new one, or its data directory deleted) rebuilds it from
//! the vector store and follows the log from where it stood before the rebuild; changes
//! made meanwhile are applied again, which is harmless (they replace by document).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use quarry_core::{Filter, Metadata, SearchHit, StoreError, StoredChunk, VectorStore};
use quarry_lexical::{LexicalIndex, LexicalOp};
use quarry_state::{PgConnection, StateError};
use serde::{Deserialize, Serialize};

/// One logged change: what the lexical index needs (ids, documents, text).
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum LoggedOp {
    Upsert {
        chunks: Vec<LoggedChunk>,
    },
    Replace {
        ds: String,
        key: String,
        chunks: Vec<LoggedChunk>,
    },
    Delete {
        ds: String,
        key: String,
    },
}

#[derive(Serialize, Deserialize)]
struct LoggedChunk {
    id: String,
    ds: String,
    key: String,
    text: String,
}

impl LoggedChunk {
    fn of(c: &StoredChunk) -> Self {
        Self {
            id: c.id.clone(),
            ds: c.data_source_id.clone(),
            key: c.document_key.clone(),
            text: c.text.clone(),
        }
    }

    fn stored(self) -> StoredChunk {
        StoredChunk {
            id: self.id,
            data_source_id: self.ds,
            document_key: self.key,
            source_uri: String::new(),
            text: self.text,
            span: 0..0,
            page: None,
            metadata: Default::default(),
            vector: Vec::new(),
        }
    }
}

impl LoggedOp {
    fn lexical(self) -> LexicalOp {
        let stored =
            |chunks: Vec<LoggedChunk>| chunks.into_iter().map(LoggedChunk::stored).collect();
        match self {
            LoggedOp::Upsert { chunks } => LexicalOp::Upsert(stored(chunks)),
            LoggedOp::Replace { ds, key, chunks } => LexicalOp::Replace {
                data_source_id: ds,
                document_key: key,
                chunks: stored(chunks),
            },
            LoggedOp::Delete { ds, key } => LexicalOp::Delete {
                data_source_id: ds,
                document_key: key,
            },
        }
    }
}

/// The vectors of a knowledge base in a cluster, with each change logged for the replicas'
/// lexical indexes.
pub struct LoggedStore {
    vectors: Arc<dyn VectorStore>,
    log: Arc<PgConnection>,
    kb_id: String,
}

impl LoggedStore {
    pub fn new(vectors: Arc<dyn VectorStore>, log: Arc<PgConnection>, kb_id: &str) -> Self {
        Self {
            vectors,
            log,
            kb_id: kb_id.to_owned(),
        }
    }

    fn append(&self, op: &LoggedOp) -> Result<(), StoreError> {
        let body = serde_json::to_string(op).map_err(|e| StoreError::Storage(e.to_string()))?;
        let kb = self.kb_id.clone();
        self.log
            .run(move |c| {
                let mut tx = c.transaction()?;
                tx.execute(
                    "SELECT pg_advisory_xact_lock(hashtext('quarry-lexical-log'))",
                    &[],
                )?;
                tx.execute(
                    "INSERT INTO quarry_lexical_log (kb_id, op) VALUES ($1, $2)",
                    &[&kb, &body],
                )?;
                tx.commit()?;
                Ok(())
            })
            .map_err(|e| StoreError::Storage(format!("the lexical change log: {e}")))
    }
}

impl VectorStore for LoggedStore {
    fn dimension(&self) -> usize {
        self.vectors.dimension()
    }

    fn upsert(&self, chunks: &[StoredChunk]) -> Result<(), StoreError> {
        self.vectors.upsert(chunks)?;
        if chunks.is_empty() {
            return Ok(());
        }
        self.append(&LoggedOp::Upsert {
            chunks: chunks.iter().map(LoggedChunk::of).collect(),
        })
    }

    fn delete_document(&self, ds: &str, key: &str) -> Result<usize, StoreError> {
        let removed = self.vectors.delete_document(ds, key)?;
        self.append(&LoggedOp::Delete {
            ds: ds.to_owned(),
            key: key.to_owned(),
        })?;
        Ok(removed)
    }

    fn replace_document(
        &self,
        ds: &str,
        key: &str,
        chunks: &[StoredChunk],
    ) -> Result<(), StoreError> {
        self.vectors.replace_document(ds, key, chunks)?;
        self.append(&LoggedOp::Replace {
            ds: ds.to_owned(),
            key: key.to_owned(),
            chunks: chunks.iter().map(LoggedChunk::of).collect(),
        })
    }

    fn set_document_metadata(
        &self,
        ds: &str,
        key: &str,
        metadata: &Metadata,
    ) -> Result<usize, StoreError> {
        self.vectors.set_document_metadata(ds, key, metadata)
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&Filter>,
    ) -> Result<Vec<SearchHit>, StoreError> {
        self.vectors.search(query, k, filter)
    }

    fn chunks(&self, ids: &[String]) -> Result<Vec<StoredChunk>, StoreError> {
        self.vectors.chunks(ids)
    }

    fn document_chunk_ids(&self, ds: &str, key: &str) -> Result<Vec<String>, StoreError> {
        self.vectors.document_chunk_ids(ds, key)
    }

    fn chunk_ids(&self) -> Result<Vec<String>, StoreError> {
        self.vectors.chunk_ids()
    }

    fn len(&self) -> Result<usize, StoreError> {
        self.vectors.len()
    }
}

/// How long logged changes are kept: a replica away for longer rebuilds its index from the
/// store instead of replaying them.
pub const KEEP_LOG: Duration = Duration::from_secs(24 * 3600);

/// Drops logged changes older than [`KEEP_LOG`].
pub fn trim(db: &PgConnection) -> Result<u64, StateError> {
    let keep = KEEP_LOG.as_secs_f64();
    db.run(move |c| {
        Ok(c.execute(
            "DELETE FROM quarry_lexical_log WHERE logged_at < now() - $1 * interval '1 second'",
            &[&keep],
        )?)
    })
}

/// The first change still in a knowledge base's log, if any.
fn oldest(db: &PgConnection, kb_id: &str) -> Result<Option<i64>, StateError> {
    let kb = kb_id.to_owned();
    db.run(move |c| {
        Ok(c.query_one(
            "SELECT min(seq) FROM quarry_lexical_log WHERE kb_id = $1",
            &[&kb],
        )?
        .get(0))
    })
}

/// The end of a knowledge base's log (0 when it has none).
fn head(db: &PgConnection, kb_id: &str) -> Result<i64, StateError> {
    let kb = kb_id.to_owned();
    db.run(move |c| {
        Ok(c.query_one(
            "SELECT coalesce(max(seq), 0) FROM quarry_lexical_log WHERE kb_id = $1",
            &[&kb],
        )?
        .get(0))
    })
}

/// Keeps one replica's lexical index of one knowledge base in step with the log.
pub struct Follower {
    kb_id: String,
    lexical: Arc<LexicalIndex>,
    db: Arc<PgConnection>,
    /// The last change applied, also kept in `position_file`.
    position: AtomicI64,
    position_file: PathBuf,
    /// The log's end when this replica opened the knowledge base: ready once reached.
    start_head: i64,
    stopped: AtomicBool,
}

/// Changes applied in one commit at most.
const BATCH: i64 = 500;

impl Follower {
    /// Opens the follower, rebuilding the index from the store when this replica has no
    /// record of how far it followed (a new replica, a deleted data directory).
    pub fn open(
        kb_id: &str,
        lexical: Arc<LexicalIndex>,
        vectors: &dyn VectorStore,
        db: Arc<PgConnection>,
        kb_dir: &std::path::Path,
    ) -> anyhow::Result<Self> {
        let position_file = kb_dir.join("lexical.position");
        let start_head = head(&db, kb_id)?;
        let known: Option<i64> = std::fs::read_to_string(&position_file)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        // An index that lost its contents (discarded as another version's) starts over too,
        // as does one whose next changes were trimmed from the log.
        let emptied = lexical.is_empty() && !vectors.is_empty()?;
        let trimmed = match (known, oldest(&db, kb_id)?) {
            (Some(p), Some(first)) => p + 1 < first,
            _ => false,
        };
        let position = match known {
            Some(p) if p <= start_head && !emptied && !trimmed => p,
            _ => {
                tracing::info!(
                    knowledge_base = kb_id,
                    "building this replica's lexical index from the vector store"
                );
                lexical.rebuild(vectors)?;
                write_position(&position_file, start_head)?;
                start_head
            }
        };
        Ok(Self {
            kb_id: kb_id.to_owned(),
            lexical,
            db,
            position: AtomicI64::new(position),
            position_file,
            start_head,
            stopped: AtomicBool::new(false),
        })
    }

    /// Applies what the log has beyond this replica's position; returns how many changes.
    pub fn catch_up(&self) -> anyhow::Result<usize> {
        let mut applied = 0;
        loop {
            let after = self.position.load(Ordering::Relaxed);
            let kb = self.kb_id.clone();
            let rows: Vec<(i64, String)> = self.db.run(move |c| {
                Ok(c.query(
                    "SELECT seq, op FROM quarry_lexical_log WHERE kb_id = $1 AND seq > $2
                     ORDER BY seq LIMIT $3",
                    &[&kb, &after, &BATCH],
                )?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect())
            })?;
            let Some(&(last, _)) = rows.last() else {
                return Ok(applied);
            };
            let ops = rows
                .iter()
                .map(|(_, op)| serde_json::from_str::<LoggedOp>(op).map(LoggedOp::lexical))
                .collect::<Result<Vec<_>, _>>()?;
            self.lexical.apply(&ops)?;
            write_position(&self.position_file, last)?;
            self.position.store(last, Ordering::Relaxed);
            applied += rows.len();
        }
    }

    /// Whether this replica has applied everything logged before it opened the knowledge base.
    pub fn caught_up(&self) -> bool {
        self.position.load(Ordering::Relaxed) >= self.start_head
    }

    /// How many logged changes this replica has yet to apply.
    pub fn lag(&self) -> i64 {
        head(&self.db, &self.kb_id)
            .map(|h| (h - self.position.load(Ordering::Relaxed)).max(0))
            .unwrap_or(0)
    }

    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// Follows the log on a thread of its own until stopped.
    pub fn spawn(self: &Arc<Self>) {
        let me = self.clone();
        let _ = std::thread::Builder::new()
            .name(format!("lexical-{}", self.kb_id))
            .spawn(move || {
                while !me.stopped.load(Ordering::Relaxed) {
                    match me.catch_up() {
                        Ok(0) => std::thread::sleep(Duration::from_millis(200)),
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(knowledge_base = %me.kb_id, error = %e, "could not follow the lexical change log; trying again");
                            std::thread::sleep(Duration::from_secs(1));
                        }
                    }
                }
            });
    }
}

fn write_position(path: &std::path::Path, position: i64) -> std::io::Result<()> {
    let tmp = path.with_extension("position.tmp");
    std::fs::write(&tmp, position.to_string())?;
    std::fs::rename(&tmp, path)
}
