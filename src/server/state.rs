//! What every handler shares.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use quarry_generate::SessionStore;

use super::auth::Auth;
use super::jobs::JobManager;
use super::metrics::Metrics;
use super::registry::Registry;
use crate::rag::Generators;

pub struct AppState {
    pub registry: Registry,
    pub jobs: JobManager,
    pub auth: Auth,
    pub metrics: Arc<Metrics>,
    /// RetrieveAndGenerate's backends, by model name.
    pub generators: Generators,
    pub sessions: SessionStore,
    /// Set when the server is stopping, for threads that poll.
    pub shutting_down: AtomicBool,
}
