//! What every handler shares.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::auth::Auth;
use super::jobs::JobManager;
use super::metrics::Metrics;
use super::registry::Registry;

pub struct AppState {
    pub registry: Registry,
    pub jobs: JobManager,
    pub auth: Auth,
    pub metrics: Arc<Metrics>,
    /// Set when the server is stopping, for threads that poll.
    pub shutting_down: AtomicBool,
}
