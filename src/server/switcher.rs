//! Builds planned switches of embedding models in the background (one thread per knowledge
//! base), swaps each in when built, and retries one that fails (an embedding server down)
//! with a growing pause. Started for every knowledge base with a planned switch when the
//! server starts, and when UpdateKnowledgeBase changes a model.

use std::sync::Arc;
use std::time::Duration;

use crate::generations::{self, IndexState, Interrupted, SwapOptions};

use super::state::AppState;

pub fn start_all(state: &Arc<AppState>) {
    for entry in state.registry.all() {
        start(state, entry.kb.id());
    }
}

/// Starts building `kb_id`'s planned switch, unless nothing is planned or it is being built.
pub fn start(state: &Arc<AppState>, kb_id: &str) {
    if state.registry.is_cluster() || !planned(state, kb_id) {
        return;
    }
    let Some(progress) = state
        .registry
        .begin_switch(kb_id, state.shutting_down.clone())
    else {
        return;
    };
    let shared = state.clone();
    let id = kb_id.to_owned();
    let spawned = std::thread::Builder::new()
        .name("quarry-model-switch".into())
        .spawn(move || {
            build(&shared, &id, &progress);
            shared.registry.end_switch(&id);
            // A plan made while this thread was ending gets a thread of its own.
            if !progress.stop.load(std::sync::atomic::Ordering::Relaxed) {
                start(&shared, &id);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, knowledge_base = kb_id, "could not start a model switch");
        state.registry.end_switch(kb_id);
    }
}

fn planned(state: &AppState, kb_id: &str) -> bool {
    state.registry.get_known(kb_id).is_ok_and(|e| {
        IndexState::load(&e.kb.dir, e.kb.config.embedding_model.get_ref())
            .is_ok_and(|s| s.building.is_some())
    })
}

fn build(state: &AppState, id: &str, progress: &generations::Progress) {
    let mut pause = Duration::from_secs(5);
    loop {
        if progress.stop.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let Ok(entry) = state.registry.get_known(id) else {
            return; // deleted
        };
        let kb = &entry.kb;
        let plan = match IndexState::load(&kb.dir, kb.config.embedding_model.get_ref()) {
            Ok(s) => s.building,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), knowledge_base = id, "cannot read the index generations; the model switch waits");
                None
            }
        };
        let Some(plan) = plan else { return };
        let target = plan.generation;
        let result = state.registry.embedder(&target.model).and_then(|embedder| {
            tracing::info!(knowledge_base = id, from = %kb.generation.model, to = %target.model, generation = target.number,
                "building the index for the new embedding model while the old one serves");
            let options = SwapOptions {
                data_source_ids: kb
                    .config
                    .data_sources
                    .iter()
                    .map(|d| d.id.get_ref().to_string())
                    .collect(),
                regression: kb.config.regression.as_ref(),
            };
            generations::run(kb, embedder, progress, &options)
        });
        match result {
            Ok(Some(next)) => {
                let chunks = progress.total.load(std::sync::atomic::Ordering::Relaxed);
                state.held.refresh(&next);
                if let Err(e) = state.registry.swapped(id, next) {
                    tracing::error!(error = %format!("{e:#}"), knowledge_base = id, "the new index is active but could not be served; restart the server");
                    return;
                }
                tracing::info!(knowledge_base = id, model = %target.model, generation = target.number, chunks,
                    "model switch done: the new index serves (the old one stays until `quarry gc`)");
                pause = Duration::from_secs(5);
            }
            Ok(None) => return,
            Err(e) => match e.downcast_ref::<Interrupted>() {
                Some(Interrupted::Stopped) => return,
                Some(Interrupted::Replanned) => {}
                None => {
                    tracing::warn!(error = %format!("{e:#}"), knowledge_base = id, retry_in_secs = pause.as_secs(),
                        "the model switch failed; the old index keeps serving and the build is tried again");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(300));
                }
            },
        }
    }
}
