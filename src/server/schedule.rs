//! Data sources with a `sync_interval` are synced on that schedule, as a fallback for missed
//! change events. A tick finds due data sources and starts their jobs; one still running is
//! left alone until the next tick.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quarry_core::config::parse_interval;

use super::error::ApiError;
use super::state::AppState;

/// In cluster mode only the replica holding the scheduler's advisory lock fires schedules
/// (another takes over when its session ends), so each fires once per cluster.
pub async fn run(state: Arc<AppState>, cluster: Option<Arc<crate::cluster::Cluster>>) {
    let mut next: HashMap<(String, String), Instant> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let leader_db = match &cluster {
        Some(c) => match c.connection() {
            Ok(db) => Some(db),
            Err(e) => {
                tracing::warn!(error = %e, "no connection for the scheduler; schedules are left to other replicas");
                return;
            }
        },
        None => None,
    };
    loop {
        tick.tick().await;
        if let Some(db) = &leader_db {
            let db = db.clone();
            let leads = tokio::task::spawn_blocking(move || {
                db.run(|c| {
                    Ok(c.query_one(
                        "SELECT pg_try_advisory_lock(hashtext('quarry-scheduler'))",
                        &[],
                    )?
                    .get::<_, bool>(0))
                })
            })
            .await;
            if !matches!(leads, Ok(Ok(true))) {
                next.clear();
                continue;
            }
        }
        let now = Instant::now();
        for entry in state.registry.all() {
            for ds in &entry.kb.config.data_sources {
                let Some(interval) = ds.sync_interval.as_deref().and_then(parse_interval) else {
                    continue;
                };
                let key = (entry.kb.id().to_owned(), ds.id.get_ref().to_string());
                let due = *next.entry(key.clone()).or_insert(now + interval);
                if now < due {
                    continue;
                }
                next.insert(key, now + interval);
                let (state, kb, ds) = (state.clone(), entry.kb.clone(), ds.clone());
                let started = tokio::task::spawn_blocking(move || {
                    state.jobs.start(kb, ds, Some("scheduled".into()))
                })
                .await;
                match started {
                    Ok(Ok(job)) => {
                        tracing::info!(job = %job.ingestion_job_id, "started a scheduled ingestion job")
                    }
                    Ok(Err(ApiError::Conflict(_))) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "could not start a scheduled ingestion job")
                    }
                    Err(e) => tracing::warn!(error = %e, "the scheduler's task failed"),
                }
            }
        }
    }
}
