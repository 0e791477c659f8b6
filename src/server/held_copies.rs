//! The held copies serving in place of knowledge bases' live indexes (`crate::generations::held`):
//! opened when a hold begins and dropped when it ends — at once for the server's own jobs, and
//! within a second for holds a `quarry sync` or `quarry accept` in another process changed.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::generations::{IndexState, held};
use crate::knowledge_base::KnowledgeBase;

use super::registry::KbEntry;

#[derive(Default)]
pub struct HeldCopies {
    copies: RwLock<BTreeMap<String, Arc<KnowledgeBase>>>,
}

impl HeldCopies {
    /// What searches of `entry` read: its held copy while a hold is in force, else itself.
    pub fn reader(&self, entry: &KbEntry) -> Arc<KnowledgeBase> {
        let copies = self.copies.read().unwrap_or_else(|p| p.into_inner());
        match copies.get(entry.kb.id()) {
            // (a copy of another model's vectors never answers this model's queries)
            Some(copy) if copy.generation.model == entry.kb.generation.model => copy.clone(),
            _ => entry.kb.clone(),
        }
    }

    /// Opens or drops `kb`'s copy as its generations record says.
    pub fn refresh(&self, kb: &KnowledgeBase) {
        let held = IndexState::load(&kb.dir, kb.config.embedding_model.get_ref())
            .map(|s| s.held.is_some())
            .unwrap_or(false);
        let has = self
            .copies
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(kb.id());
        if held == has {
            return;
        }
        if !held {
            self.copies
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(kb.id());
            tracing::info!(knowledge_base = kb.id(), "the live index serves again");
            return;
        }
        match held::open(kb) {
            Ok(copy) => {
                self.copies
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(kb.id().to_owned(), Arc::new(copy));
                tracing::info!(
                    knowledge_base = kb.id(),
                    "the held copy of the index serves until the sync is judged or accepted"
                );
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), knowledge_base = kb.id(), "cannot open the held copy; the live index serves")
            }
        }
    }
}

/// Follows holds changed by other processes, once a second.
pub fn follow(state: Arc<super::state::AppState>) {
    let spawned = std::thread::Builder::new()
        .name("quarry-held-copies".into())
        .spawn(move || {
            while !state
                .shutting_down
                .load(std::sync::atomic::Ordering::Relaxed)
            {
                for entry in state.registry.all() {
                    if entry.kb.config.regression.as_ref().is_some_and(|r| r.hold) {
                        state.held.refresh(&entry.kb);
                    }
                }
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start following held copies");
    }
}
