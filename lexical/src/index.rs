//! The BM25 index: one tantivy document per chunk (its id, its document, its analysed text).
//! Text and metadata stay in the vector store; a search returns chunk ids and BM25 scores.
//!
//! Writers are short-lived: each change takes the index's writer lock (waiting while another
//! process holds it), commits, lets merges finish and lets go, so a server and a CLI sync
//! can take turns on one knowledge base. A commit is atomic, and every change is an
//! idempotent replace by chunk id or document, so the sync's crash-safety rules (pending
//! marks, redo) hold here as they do for the vectors.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use quarry_core::{StoredChunk, VectorStore};
use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::query::BooleanQuery;
use tantivy::schema::{
    Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, TantivyError, Term};

use crate::analyzer::{ANALYZER, analyze, analyzer};

#[derive(Debug, thiserror::Error)]
pub enum LexicalError {
    #[error("lexical index: {0}")]
    Index(#[from] TantivyError),
    #[error("lexical index: {0}")]
    Io(#[from] std::io::Error),
    #[error("lexical index: another process has held its writer lock for over {0:?}")]
    Busy(Duration),
}

/// How long a writer waits for another process to finish its change.
const LOCK_WAIT: Duration = Duration::from_secs(60);
/// Memory for the single indexing thread of a writer (tantivy's floor is 15 MB).
const WRITER_MEMORY: usize = 32 << 20;

#[derive(Clone, Copy)]
struct Fields {
    chunk_id: Field,
    document: Field,
    text: Field,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let chunk_id = builder.add_text_field("chunk_id", STRING | STORED);
    let document = builder.add_text_field("document", STRING);
    let text = builder.add_text_field(
        "text",
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(ANALYZER)
                .set_index_option(IndexRecordOption::WithFreqs),
        ),
    );
    (
        builder.build(),
        Fields {
            chunk_id,
            document,
            text,
        },
    )
}

/// A chunk's document, as one indexed term.
fn document_term(field: Field, data_source_id: &str, document_key: &str) -> Term {
    Term::from_field_text(field, &format!("{data_source_id}\u{0}{document_key}"))
}

/// One change to the index, for [`LexicalIndex::apply`].
#[derive(Debug, Clone)]
pub enum LexicalOp {
    /// Index chunks, replacing any under the same ids.
    Upsert(Vec<StoredChunk>),
    /// Replace every chunk of a document.
    Replace {
        data_source_id: String,
        document_key: String,
        chunks: Vec<StoredChunk>,
    },
    /// Remove every chunk of a document.
    Delete {
        data_source_id: String,
        document_key: String,
    },
}

pub struct LexicalIndex {
    index: Index,
    /// Beside the index: present while changes are held back from it (see
    /// [`LexicalIndex::mark_pending`]).
    pending_marker: PathBuf,
    reader: IndexReader,
    fields: Fields,
    /// One writer at a time within this process; the index's lock file covers others.
    writing: Mutex<()>,
}

impl LexicalIndex {
    /// Opens (or creates) the index in `dir`. An index built with another schema or analyzer
    /// is discarded and starts empty; [`LexicalIndex::rebuild_if_stale`] refills it.
    pub fn open(dir: &Path) -> Result<Self, LexicalError> {
        let (schema, fields) = schema();
        fs_create(dir)?;
        let index = match Index::open_or_create(
            MmapDirectory::open(dir).map_err(io)?,
            schema.clone(),
        ) {
            Ok(index) => index,
            Err(TantivyError::SchemaError(_)) => {
                tracing::warn!(dir = %dir.display(), "lexical index built by another version; rebuilding it");
                std::fs::remove_dir_all(dir)?;
                fs_create(dir)?;
                Index::create_in_dir(dir, schema)?
            }
            Err(e) => return Err(e.into()),
        };
        index.tokenizers().register(ANALYZER, analyzer());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::OnCommitWithDelay)
            .try_into()?;
        Ok(Self {
            index,
            pending_marker: dir.with_extension("pending"),
            reader,
            fields,
            writing: Mutex::new(()),
        })
    }

    /// Records that changes already made to the vectors are held back from this index (a
    /// batch not yet applied). If the process dies before [`LexicalIndex::clear_pending`],
    /// the next open rebuilds the index from the store.
    pub fn mark_pending(&self) -> Result<(), LexicalError> {
        std::fs::write(&self.pending_marker, b"")?;
        Ok(())
    }

    /// Every held-back change has been applied.
    pub fn clear_pending(&self) -> Result<(), LexicalError> {
        match std::fs::remove_file(&self.pending_marker) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Applies changes in order, in one commit.
    pub fn apply(&self, ops: &[LexicalOp]) -> Result<(), LexicalError> {
        if ops.is_empty() {
            return Ok(());
        }
        self.change(|writer, f| {
            for op in ops {
                match op {
                    LexicalOp::Upsert(chunks) => {
                        for chunk in chunks {
                            writer.delete_term(Term::from_field_text(f.chunk_id, &chunk.id));
                        }
                        add_chunks(writer, f, chunks)?;
                    }
                    LexicalOp::Replace {
                        data_source_id,
                        document_key,
                        chunks,
                    } => {
                        writer.delete_term(document_term(f.document, data_source_id, document_key));
                        add_chunks(writer, f, chunks)?;
                    }
                    LexicalOp::Delete {
                        data_source_id,
                        document_key,
                    } => {
                        writer.delete_term(document_term(f.document, data_source_id, document_key));
                    }
                }
            }
            Ok(())
        })
    }

    /// Number of chunks indexed.
    pub fn len(&self) -> usize {
        self.reader.searcher().num_docs() as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Indexes chunks, replacing any already indexed under the same ids.
    pub fn upsert(&self, chunks: &[StoredChunk]) -> Result<(), LexicalError> {
        if chunks.is_empty() {
            return Ok(());
        }
        self.apply(&[LexicalOp::Upsert(chunks.to_vec())])
    }

    /// The chunks best matching `query` by BM25 (k1 1.2, b 0.75), best first, at most
    /// `limit`: chunk ids with their scores. A query of stop words alone matches nothing.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<(String, f32)>, LexicalError> {
        let mut terms: Vec<Term> = Vec::new();
        for word in analyze(query) {
            let term = Term::from_field_text(self.fields.text, &word);
            if !terms.contains(&term) {
                terms.push(term);
            }
        }
        if terms.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let searcher = self.reader.searcher();
        let query = BooleanQuery::new_multiterms_query(terms);
        let top = searcher.search(&query, &TopDocs::with_limit(limit).order_by_score())?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let doc: TantivyDocument = searcher.doc(address)?;
            if let Some(id) = doc.get_first(self.fields.chunk_id).and_then(|v| v.as_str()) {
                hits.push((id.to_owned(), score));
            }
        }
        Ok(hits)
    }

    /// Re-indexes every chunk of `store` when the two disagree on how many chunks there are
    /// (an index from before the lexical side existed, one discarded as stale, or one a crash
    /// left behind a restored store), or when changes held back from it were never applied.
    /// Returns whether it rebuilt.
    pub fn rebuild_if_stale(&self, store: &dyn VectorStore) -> Result<bool, RebuildError> {
        let stored = store.len().map_err(RebuildError::Store)?;
        let held_back = self.pending_marker.exists();
        if stored == self.len() && !held_back {
            return Ok(false);
        }
        if held_back {
            tracing::info!(
                "the lexical index missed changes held back when the last writer stopped"
            );
        }
        tracing::info!(
            chunks = stored,
            indexed = self.len(),
            "rebuilding the lexical index from the vector store"
        );
        self.rebuild(store)?;
        Ok(true)
    }

    /// Re-indexes every chunk of `store`, whatever the index held.
    pub fn rebuild(&self, store: &dyn VectorStore) -> Result<(), RebuildError> {
        let started = Instant::now();
        self.change(|writer, _| {
            writer.delete_all_documents()?;
            Ok(())
        })?;
        let ids = store.chunk_ids().map_err(RebuildError::Store)?;
        for batch in ids.chunks(2_000) {
            let chunks = store.chunks(batch).map_err(RebuildError::Store)?;
            self.upsert(&chunks)?;
        }
        self.clear_pending()?;
        tracing::info!(chunks = ids.len(), took = ?started.elapsed(), "lexical index rebuilt");
        Ok(())
    }

    /// Runs one change under the writer lock and commits it.
    fn change(
        &self,
        apply: impl FnOnce(&mut IndexWriter, Fields) -> Result<(), LexicalError>,
    ) -> Result<(), LexicalError> {
        let _turn = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let mut writer = self.writer()?;
        apply(&mut writer, self.fields)?;
        writer.commit()?;
        writer.wait_merging_threads()?;
        self.reader.reload()?;
        Ok(())
    }

    fn writer(&self) -> Result<IndexWriter, LexicalError> {
        let started = Instant::now();
        loop {
            match self.index.writer_with_num_threads(1, WRITER_MEMORY) {
                Ok(w) => return Ok(w),
                Err(TantivyError::LockFailure(..)) if started.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(TantivyError::LockFailure(..)) => return Err(LexicalError::Busy(LOCK_WAIT)),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Adds chunks to the index (after whatever deletes the caller queued).
fn add_chunks(
    writer: &mut IndexWriter,
    f: Fields,
    chunks: &[StoredChunk],
) -> Result<(), LexicalError> {
    for chunk in chunks {
        let mut doc = TantivyDocument::default();
        doc.add_text(f.chunk_id, &chunk.id);
        doc.add_text(
            f.document,
            format!("{}\u{0}{}", chunk.data_source_id, chunk.document_key),
        );
        doc.add_text(f.text, &chunk.text);
        writer.add_document(doc)?;
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error(transparent)]
    Lexical(#[from] LexicalError),
    #[error("reading the vector store: {0}")]
    Store(quarry_core::StoreError),
}

fn fs_create(dir: &Path) -> Result<(), LexicalError> {
    Ok(std::fs::create_dir_all(dir)?)
}

fn io(e: tantivy::directory::error::OpenDirectoryError) -> LexicalError {
    LexicalError::Io(std::io::Error::other(e.to_string()))
}
