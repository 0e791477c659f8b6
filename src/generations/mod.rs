//! Generations of a knowledge base's vector index, for switching its embedding model
//! without downtime. Changing the model (in `knowledge-bases.toml` or through
//! UpdateKnowledgeBase) plans a new generation ([`state`]); it is built in the background from
//! the stored chunk texts while the serving generation keeps answering and taking writes
//! ([`store`] notes them, [`build`] replays them), then swapped in at once ([`switch`]): the
//! generations record names it, and every handle of the old one refuses further writes. The
//! old generation stays on disk until `quarry gc` ([`gc`]). A build stopped or crashed resumes
//! from what its index already holds. [`held`] keeps a copy of the index serving while a sync
//! that the regression guard holds waits for a person.

pub mod build;
pub mod gc;
pub mod held;
pub mod state;
pub mod store;
pub mod switch;

use std::path::{Path, PathBuf};

use quarry_core::config::VectorStoreConfig;

pub use build::{Interrupted, Progress};
pub use state::{Generation, IndexState};
pub use switch::{SwapOptions, run};

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
