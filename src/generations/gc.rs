//! `quarry gc`: the indexes of generations a switch replaced (and of builds replaced before
//! they finished) removed.

use std::path::Path;

use quarry_core::config::VectorStoreConfig;

use super::state::{Generation, IndexState};
use super::{location, store};

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
    if state.held.is_none() && kb_dir.join("held").exists() {
        super::held::remove_copy(kb_dir, config)?;
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

pub fn remove_index(kb_dir: &Path, config: &VectorStoreConfig, number: u32) -> anyhow::Result<()> {
    let (config, dir) = location(config, kb_dir, number);
    remove_store(&config, &dir)?;
    if number != 0 && dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

/// Removes what a store configuration names: the embedded store's files under `dir`, a
/// table, a collection.
pub fn remove_store(config: &VectorStoreConfig, dir: &Path) -> anyhow::Result<()> {
    match config {
        VectorStoreConfig::Hnsw { .. } => {
            let hnsw = dir.join("hnsw");
            if hnsw.exists() {
                std::fs::remove_dir_all(&hnsw)?;
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
        }
    }
    Ok(())
}
