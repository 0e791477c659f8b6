//! A switch's build and swap: the new generation filled from the serving one's chunks, the
//! writes made meanwhile replayed, running jobs waited for, then the record changed at once.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::Utc;
use quarry_core::Embedder;
use quarry_ingest::DataSourceLock;

use super::build::{self, Interrupted, Progress};
use super::state::{self, IndexState};
use super::{location, store};
use crate::knowledge_base::{KnowledgeBase, open_store};

/// Which data sources' jobs are waited for before a swap, and the regression set scored on
/// both indexes.
pub struct SwapOptions<'a> {
    pub data_source_ids: Vec<String>,
    pub regression: Option<&'a quarry_core::config::RegressionConfig>,
}

/// Builds the planned generation of `serving`'s knowledge base with `embedder` (the new
/// model) and swaps it in. Returns the knowledge base opened on its new generation, or None
/// when nothing was planned.
pub fn run(
    serving: &KnowledgeBase,
    embedder: Arc<dyn Embedder>,
    progress: &Progress,
    options: &SwapOptions<'_>,
) -> anyhow::Result<Option<KnowledgeBase>> {
    let dir = &serving.dir;
    let state = IndexState::load(dir, serving.config.embedding_model.get_ref())?;
    let Some(building) = state.building.clone() else {
        return Ok(None);
    };
    if state.active != serving.generation {
        bail!(
            "this handle serves generation {}, not the active {}",
            serving.generation.number,
            state.active.number
        );
    }
    let target = building.generation.clone();
    // One builder at a time (a `quarry switch` beside a `quarry serve` that builds it).
    let _builder = match builder_lock(dir)? {
        Some(lock) => lock,
        None => bail!(
            "generation {} is being built by another process (a running `quarry serve` builds switches itself)",
            target.number
        ),
    };
    let (config, store_dir) = location(&serving.config.vector_store, dir, target.number);
    let to = open_store(&config, &store_dir, embedder.dimension())
        .with_context(|| format!("opening the index of generation {}", target.number))?;
    let check = || -> Result<(), Interrupted> {
        if progress.stop.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Interrupted::Stopped);
        }
        match IndexState::load(dir, "") {
            Ok(s) if s.building.as_ref().map(|b| &b.generation) == Some(&target) => Ok(()),
            Ok(_) => Err(Interrupted::Replanned),
            Err(_) => Ok(()),
        }
    };
    // Writes that began before the plan was recorded (and so were not noted) land first.
    drop(store::gate(dir, true)?);
    build::fill(
        serving.store.as_ref(),
        to.as_ref(),
        embedder.as_ref(),
        progress,
        &check,
    )?;
    let log = store::dirty_log_path(dir, target.number);
    // Replays what was written meanwhile until little is left, then waits for running jobs.
    let mut offset = 0;
    let _locks = loop {
        check()?;
        let end = {
            let _alone = store::gate(dir, true)?;
            store::read_dirty(&log, offset)?
        };
        build::replay(
            serving.store.as_ref(),
            to.as_ref(),
            embedder.as_ref(),
            &end.0,
        )?;
        offset = end.1;
        if let Some(locks) = lock_all(dir, &options.data_source_ids)? {
            break locks;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    let _alone = store::gate(dir, true)?;
    // (another process may have built and swapped the same plan meanwhile)
    check()?;
    let (rest, _) = store::read_dirty(&log, offset)?;
    build::replay(
        serving.store.as_ref(),
        to.as_ref(),
        embedder.as_ref(),
        &rest,
    )?;
    let (old_len, new_len) = (serving.store.len()?, to.len()?);
    if old_len != new_len {
        bail!(
            "the new index holds {new_len} chunks, the serving one {old_len}; the build goes on at the next start"
        );
    }
    let next = KnowledgeBase::with_vectors(
        dir,
        serving.config.clone(),
        embedder,
        target.clone(),
        serving.lexical.clone(),
        to,
    )?;
    let regression = match options.regression {
        Some(r) => match (
            crate::regression::score(serving, r),
            crate::regression::score(&next, r),
        ) {
            (Ok(old), Ok(new)) => Some(state::SwitchRegression { old, new }),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "the regression set could not be scored on both indexes");
                None
            }
        },
        None => None,
    };
    let with_metadata = embed_metadata_again(serving, &options.data_source_ids)?;
    if with_metadata > 0 {
        tracing::info!(
            documents = with_metadata,
            "documents whose metadata is embedded with their text (includeForEmbedding) were embedded without it; the next sync embeds them again with it"
        );
    }
    let mut state = IndexState::load(dir, "")?;
    let from = state.active.clone();
    state.retired.push(state::Retired {
        generation: from.clone(),
        retired_at: Utc::now(),
    });
    state.active = target.clone();
    state.building = None;
    // A copy of the old model's index cannot answer the new model's queries.
    state.held = None;
    state.last_switch = Some(state::SwitchRecord {
        from,
        to: target,
        started_at: building.started_at,
        swapped_at: Utc::now(),
        chunks: new_len,
        documents_to_embed_again: with_metadata,
        regression,
    });
    state.save(dir)?;
    let _ = std::fs::remove_file(&log);
    Ok(Some(next))
}

/// The stored chunks hold a document's text without the metadata lines that were embedded
/// with it (`includeForEmbedding`), so the new model embedded the text alone: such documents'
/// ledger entries are marked so that the next sync reads their metadata again and embeds them
/// with it. Returns how many.
fn embed_metadata_again(kb: &KnowledgeBase, data_source_ids: &[String]) -> anyhow::Result<usize> {
    let ledger = kb.open_ledger()?;
    let mut marked = 0;
    for ds in data_source_ids {
        for mut entry in ledger.entries(ds)? {
            if entry.embedded_metadata_hash.is_empty() {
                continue;
            }
            entry.embedded_metadata_hash.clear();
            entry.sidecar_version.clear();
            ledger.put(ds, &entry)?;
            marked += 1;
        }
    }
    Ok(marked)
}

fn builder_lock(dir: &Path) -> anyhow::Result<Option<std::fs::File>> {
    std::fs::create_dir_all(dir.join("locks"))?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join("locks").join("switch-build.lock"))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// Every data source's job lock, or None if a job holds one.
fn lock_all(dir: &Path, ids: &[String]) -> anyhow::Result<Option<Vec<DataSourceLock>>> {
    let mut locks = Vec::new();
    for id in ids {
        match DataSourceLock::try_acquire(dir, id, "(the swap of a model switch)")? {
            Ok(lock) => locks.push(lock),
            Err(_) => return Ok(None),
        }
    }
    Ok(Some(locks))
}
