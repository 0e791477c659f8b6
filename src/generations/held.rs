//! Holding the index as it was while the regression guard judges a sync (a knowledge base
//! whose `regression` has `hold = true`): before the sync, a read-only copy of the vectors and
//! the lexical index is taken (`<kb dir>/held/`, or a table or collection whose name ends in
//! `_held`) and recorded as serving; Retrieve and RetrieveAndGenerate read it while the sync
//! writes the live index. When the sync's regression set does not regress, the live index
//! serves again; when it does, the copy keeps serving until a person accepts the job
//! (`quarry accept KB JOB`) or a later sync no longer regresses. The copy of a hold still in
//! force is kept for the next sync: it is the last index a person would accept.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;
use quarry_core::config::VectorStoreConfig;
use quarry_lexical::LexicalIndex;

use super::state::{Generation, Held, IndexState};
use super::store;
use crate::knowledge_base::{KnowledgeBase, open_store};

/// The generation number a held copy's handle carries: never the active one, so its store
/// refuses every write.
const HELD: u32 = u32::MAX;

pub fn location(config: &VectorStoreConfig, kb_dir: &Path) -> (VectorStoreConfig, PathBuf) {
    let mut config = config.clone();
    match &mut config {
        VectorStoreConfig::Hnsw { .. } => {}
        VectorStoreConfig::Pgvector { table, .. } => *table = format!("{table}_held"),
        VectorStoreConfig::Qdrant { collection, .. } => *collection = format!("{collection}_held"),
    }
    (config, kb_dir.join("held"))
}

/// Before a sync of a knowledge base that holds: its index copied as it is and recorded as
/// serving (a copy already held stays, for this job).
pub fn hold_for_job(kb: &KnowledgeBase, job_id: &str) -> anyhow::Result<()> {
    let mut state = IndexState::load(&kb.dir, kb.config.embedding_model.get_ref())?;
    if let Some(held) = &mut state.held {
        held.job_id = job_id.to_owned();
        return state.save(&kb.dir);
    }
    remove_copy(&kb.dir, &kb.config.vector_store)?;
    let (config, dir) = location(&kb.config.vector_store, &kb.dir);
    // No write lands while the copy is taken.
    let _alone = store::gate(&kb.dir, true)?;
    kb.store.flush()?;
    let copy =
        open_store(&config, &dir, kb.embedder.dimension()).context("opening the held copy")?;
    for batch in kb.store.chunk_ids()?.chunks(500) {
        copy.upsert(&kb.store.chunks(batch)?)?;
    }
    copy_dir(&kb.dir.join("lexical"), &dir.join("lexical"))?;
    state.held = Some(Held {
        job_id: job_id.to_owned(),
        since: Utc::now(),
        regressed: false,
    });
    state.save(&kb.dir)
}

/// After the job: a regression (`Some(true)`) keeps the copy serving; a judged job that did
/// not regress lets the live index serve; a job that was not judged keeps a hold that an
/// earlier job's regression put in force and ends one taken only for itself.
pub fn after_job(kb_dir: &Path, job_id: &str, regressed: Option<bool>) -> anyhow::Result<()> {
    let mut state = IndexState::load(kb_dir, "")?;
    let Some(held) = &mut state.held else {
        return Ok(());
    };
    match regressed {
        Some(true) => {
            held.regressed = true;
            held.job_id = job_id.to_owned();
        }
        None if held.regressed => {}
        _ => state.held = None,
    }
    state.save(kb_dir)
}

/// `quarry accept KB JOB`: the held job accepted, the live index serves. Returns the job a
/// hold still in force is for, when it is another.
pub fn accept(kb_dir: &Path, job_id: &str) -> anyhow::Result<Option<String>> {
    let mut state = IndexState::load(kb_dir, "")?;
    match &state.held {
        Some(h) if h.job_id == job_id => {
            state.held = None;
            state.save(kb_dir)?;
            Ok(None)
        }
        Some(h) => Ok(Some(h.job_id.clone())),
        None => Ok(None),
    }
}

/// A read-only handle on the held copy, serving in the live knowledge base's place.
pub fn open(kb: &KnowledgeBase) -> anyhow::Result<KnowledgeBase> {
    let (config, dir) = location(&kb.config.vector_store, &kb.dir);
    let vectors =
        open_store(&config, &dir, kb.embedder.dimension()).context("opening the held copy")?;
    let lexical = Arc::new(
        LexicalIndex::open(&dir.join("lexical"))
            .context("opening the held copy's lexical index")?,
    );
    KnowledgeBase::with_vectors(
        &kb.dir,
        kb.config.clone(),
        kb.embedder.clone(),
        Generation {
            number: HELD,
            model: kb.generation.model.clone(),
        },
        lexical,
        vectors,
    )
}

/// Removes a copy no hold needs.
pub fn remove_copy(kb_dir: &Path, config: &VectorStoreConfig) -> anyhow::Result<()> {
    let (config, dir) = location(config, kb_dir);
    super::gc::remove_store(&config, &dir)?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(dir: &Path, job: &str, regressed: bool) {
        let mut state = IndexState::initial("m");
        state.held = Some(Held {
            job_id: job.into(),
            since: Utc::now(),
            regressed,
        });
        state.save(dir).unwrap();
    }

    fn now_held(dir: &Path) -> Option<(String, bool)> {
        IndexState::load(dir, "m")
            .unwrap()
            .held
            .map(|h| (h.job_id, h.regressed))
    }

    #[test]
    fn a_hold_ends_when_its_job_passes_and_stays_while_jobs_regress() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        held(d, "J1", false);
        after_job(d, "J1", Some(false)).unwrap();
        assert_eq!(
            now_held(d),
            None,
            "a job that passes lets the live index serve"
        );

        held(d, "J1", false);
        after_job(d, "J1", Some(true)).unwrap();
        assert_eq!(now_held(d), Some(("J1".into(), true)));
        after_job(d, "J2", None).unwrap();
        assert_eq!(
            now_held(d),
            Some(("J1".into(), true)),
            "an unjudged job keeps a hold in force"
        );
        after_job(d, "J3", Some(true)).unwrap();
        assert_eq!(now_held(d), Some(("J3".into(), true)));
        assert_eq!(accept(d, "J1").unwrap(), Some("J3".into()));
        assert_eq!(accept(d, "J3").unwrap(), None);
        assert_eq!(now_held(d), None);

        held(d, "J4", false);
        after_job(d, "J4", None).unwrap();
        assert_eq!(
            now_held(d),
            None,
            "a hold taken for an unjudged job alone ends with it"
        );
    }
}
