//! What every handler shares.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio::sync::Semaphore;

use quarry_generate::Sessions;

use super::auth::{Auth, Principal};
use super::error::ApiResult;
use super::grants::Grants;
use super::jobs::JobManager;
use super::metrics::Metrics;
use super::registry::{KbEntry, Registry};
use crate::rag::Generators;

pub struct AppState {
    /// Copies of indexes serving while the regression guard holds a sync.
    pub held: Arc<super::held_copies::HeldCopies>,
    pub registry: Registry,
    pub jobs: JobManager,
    pub auth: Auth,
    /// Which knowledge bases each access key may use, by id.
    pub grants: Grants,
    pub metrics: Arc<Metrics>,
    /// RetrieveAndGenerate's backends, by model name.
    pub generators: Generators,
    /// Reranking models, by name.
    pub rerankers: crate::rag::Rerankers,
    pub sessions: Arc<dyn Sessions>,
    /// Bedrock's `clientToken`s seen, for idempotent creates.
    pub client_tokens: Box<dyn super::client_tokens::ClientTokens>,
    /// Set when the server is stopping, for threads that poll (and generations, which stop).
    pub shutting_down: Arc<AtomicBool>,
    /// The address the API listens on (as replicas report it).
    pub address: String,
    /// Answers being generated at once (`[server.limits] max_concurrent_generations`).
    pub generation_slots: Arc<Semaphore>,
    /// Direct-ingestion requests worked on at once.
    pub document_slots: Arc<Semaphore>,
}

impl AppState {
    /// Picks up knowledge bases other replicas created, changed or deleted, and gives the
    /// access keys waiting for a new one's name its id.
    pub fn refresh_cluster(&self) {
        for (id, name) in self.registry.refresh_from_cluster() {
            if let Err(e) = self.grants.created(&id, &name) {
                tracing::warn!(error = %e, "could not record an access key's grant");
            }
        }
    }

    /// A place among the document requests worked on at once (direct ingestion, a
    /// document's chunks), or ThrottlingException when all are taken.
    pub fn document_slot(&self) -> ApiResult<tokio::sync::OwnedSemaphorePermit> {
        self.document_slots.clone().try_acquire_owned().map_err(|_| {
            super::error::ApiError::Throttling(format!(
                "{} document requests are being worked on already (max_concurrent_document_requests); retry later",
                self.registry.config.server.limits.max_concurrent_document_requests
            ))
        })
    }

    /// Serving, and (in cluster mode) caught up with the lexical change log.
    pub fn is_ready(&self) -> bool {
        !self
            .shutting_down
            .load(std::sync::atomic::Ordering::Relaxed)
            && self.registry.caught_up()
    }

    /// The knowledge base a request names (by id or name), if its caller may use it. The
    /// grant is checked before anything about the knowledge base is told: a caller without
    /// it gets the same refusal whether the knowledge base exists or not.
    pub fn knowledge_base(
        &self,
        principal: &Principal,
        id_or_name: &str,
    ) -> ApiResult<Arc<KbEntry>> {
        if self.registry.is_cluster() && self.registry.get_known(id_or_name).is_err() {
            // Another replica may have just created it.
            self.refresh_cluster();
        }
        match self.registry.get(id_or_name) {
            Ok(entry) if principal.allows(entry.kb.id()) => Ok(entry),
            Ok(_) => Err(principal.denied(id_or_name)),
            Err(e) if principal.is_unrestricted() => Err(e),
            Err(_) => Err(principal.denied(id_or_name)),
        }
    }
}
