//! Switching a knowledge base's embedding model without downtime. Changing the model (in
//! `knowledge-bases.toml` or through UpdateKnowledgeBase) plans a new generation of the vector
//! index ([`state`]); it is built in the background from the stored chunk texts while the
//! serving generation keeps answering and taking writes ([`store`] notes them, [`build`]
//! replays them), then swapped in at once: the generations record names it, and every
//! handle of the old one refuses further writes. The old generation stays on disk until
//! `quarry gc`. A build stopped or crashed resumes from what its index already holds.

pub mod build;
pub mod state;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::Utc;
use quarry_core::Embedder;
use quarry_core::config::VectorStoreConfig;
use quarry_ingest::DataSourceLock;

pub use build::{Interrupted, Progress};
pub use state::{Generation, IndexState};

use crate::knowledge_base::{KnowledgeBase, open_store};

/// Where a generation's vectors live: generation 0 where the configuration says; later ones
/// under `<kb dir>/generations/N` (the embedded store), or in a table or collection whose name
/// ends in `_gN`.
pub fn location(
    config: &VectorStoreConfig,
    kb_dir: &Path,
    number: u32,
) -> (VectorStoreConfig, PathBuf) {
    if number == 0 {
        return (config.clone(), kb_dir.to_owned());
    }
    let mut config = config.clone();
    match &mut config {
        VectorStoreConfig::Hnsw { .. } => {}
        VectorStoreConfig::Pgvector { table, .. } => *table = format!("{table}_g{number}"),
        VectorStoreConfig::Qdrant { collection, .. } => {
            *collection = format!("{collection}_g{number}")
        }
    }
    (config, kb_dir.join("generations").join(number.to_string()))
}

/// The model whose vectors serve a knowledge base: its generations record's, after planning
/// a switch to the model its configuration now names (recorded at once). A knowledge base
/// without a record gets one naming `serving_if_unrecorded` (its model until now), so a later
/// change of the configured model is known as one.
pub fn serving_model(
    kb_dir: &Path,
    serving_if_unrecorded: &str,
    configured_model: &str,
) -> anyhow::Result<String> {
    let recorded = state::path(kb_dir).exists();
    let mut state = IndexState::load(kb_dir, serving_if_unrecorded)?;
    if !recorded {
        state.save(kb_dir)?;
    }
    if state.plan(configured_model) {
        state.save(kb_dir)?;
        match &state.building {
            Some(b) => tracing::info!(
                dir = %kb_dir.display(),
                from = %state.active.model,
                to = %b.generation.model,
                generation = b.generation.number,
                "the embedding model changed: a new index will be built while the old one serves"
            ),
            None => {
                tracing::info!(dir = %kb_dir.display(), "the planned model switch was dropped: the configured model serves already")
            }
        }
    }
    Ok(state.active.model)
}

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
    let mut state = IndexState::load(dir, "")?;
    let from = state.active.clone();
    state.retired.push(state::Retired {
        generation: from.clone(),
        retired_at: Utc::now(),
    });
    state.active = target.clone();
    state.building = None;
    state.last_switch = Some(state::SwitchRecord {
        from,
        to: target,
        started_at: building.started_at,
        swapped_at: Utc::now(),
        chunks: new_len,
        regression,
    });
    state.save(dir)?;
    let _ = std::fs::remove_file(&log);
    Ok(Some(next))
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

/// Removes the indexes of retired generations; returns what was removed.
pub fn gc(kb_dir: &Path, config: &VectorStoreConfig) -> anyhow::Result<Vec<Generation>> {
    let mut state = IndexState::load(kb_dir, "")?;
    let mut removed = Vec::new();
    // Also a build that was replaced before it finished leaves an index behind.
    let mut numbers: Vec<(Generation, bool)> = state
        .retired
        .iter()
        .map(|r| (r.generation.clone(), true))
        .collect();
    if let Ok(entries) = std::fs::read_dir(kb_dir.join("generations")) {
        for e in entries.flatten() {
            if let Some(n) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok())
                && n != state.active.number
                && state
                    .building
                    .as_ref()
                    .is_none_or(|b| b.generation.number != n)
                && !numbers.iter().any(|(g, _)| g.number == n)
            {
                numbers.push((
                    Generation {
                        number: n,
                        model: String::from("(abandoned build)"),
                    },
                    false,
                ));
            }
        }
    }
    for (generation, retired) in numbers {
        remove_index(kb_dir, config, generation.number)?;
        let _ = std::fs::remove_file(store::dirty_log_path(kb_dir, generation.number));
        if retired {
            state
                .retired
                .retain(|r| r.generation.number != generation.number);
            state.save(kb_dir)?;
        }
        removed.push(generation);
    }
    Ok(removed)
}

fn remove_index(kb_dir: &Path, config: &VectorStoreConfig, number: u32) -> anyhow::Result<()> {
    let (config, dir) = location(config, kb_dir, number);
    match &config {
        VectorStoreConfig::Hnsw { .. } => {
            if number == 0 {
                let hnsw = dir.join("hnsw");
                if hnsw.exists() {
                    std::fs::remove_dir_all(&hnsw)?;
                }
            } else if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
        }
        VectorStoreConfig::Pgvector {
            url,
            table,
            password_env,
            fields,
        } => {
            let password = password_env.as_deref().map(std::env::var).transpose()?;
            quarry_vectorstores::PgVectorStore::remove(&quarry_vectorstores::PgVectorConfig {
                url: url.clone(),
                table: table.clone(),
                password,
                fields: fields.clone(),
            })?;
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
        }
        VectorStoreConfig::Qdrant {
            url,
            collection,
            api_key_env,
            ..
        } => {
            let api_key = api_key_env.as_deref().map(std::env::var).transpose()?;
            quarry_vectorstores::QdrantStore::remove(&quarry_vectorstores::QdrantConfig {
                url: url.clone(),
                collection: collection.clone(),
                api_key,
                shard_number: None,
                replication_factor: None,
            })?;
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
        }
    }
    Ok(())
}
