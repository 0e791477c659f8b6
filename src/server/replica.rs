//! This replica's part in a cluster (`[cluster]`), on threads of its own:
//! - the **worker** claims documents of running ingestion jobs in batches (leases renewed
//!   while it works), processes them, and records what came of each;
//! - the **janitor** (every second) completes, stops and starts jobs, see
//!   [`crate::cluster::jobs`];
//! - the **heartbeat** (every 2 s) records this replica, its readiness, lag and work, for
//!   `quarry cluster status`, and picks up knowledge bases other replicas created or changed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use quarry_ingest::items::{ItemOutcome, PreparedItems, list_items, prepare_items, write_items};
use quarry_ingest::{PgLedger, SyncTarget};
use quarry_state::{Claim, WorkQueue};

use super::state::AppState;
use crate::cluster::Cluster;
use crate::cluster::jobs::{LISTING, outcome_word};
use crate::knowledge_base::source_for;

/// Starts the worker, the janitor and the heartbeat.
pub fn start(state: &Arc<AppState>, cluster: &Arc<Cluster>) -> anyhow::Result<()> {
    let worker_db = cluster.connection()?;
    let (s, c) = (state.clone(), cluster.clone());
    std::thread::Builder::new()
        .name("cluster-worker".into())
        .spawn(move || work(&s, &c, worker_db))?;
    let (s, c) = (state.clone(), cluster.clone());
    std::thread::Builder::new()
        .name("cluster-janitor".into())
        .spawn(move || {
            let mut last_beat: Option<Instant> = None;
            while !s.shutting_down.load(Ordering::Relaxed) {
                if let Some(jobs) = s.jobs.cluster()
                    && let Err(e) = jobs.tidy()
                {
                    tracing::warn!(error = %e, "the cluster's job janitor failed; trying again");
                }
                if last_beat.is_none_or(|t| t.elapsed() >= HEARTBEAT) {
                    last_beat = Some(Instant::now());
                    heartbeat(&s, &c);
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })?;
    Ok(())
}

/// How often a replica records itself and picks up other replicas' knowledge bases.
const HEARTBEAT: Duration = Duration::from_secs(2);

fn heartbeat(state: &AppState, cluster: &Cluster) {
    state.refresh_cluster();
    let lag = state.registry.lexical_lag();
    let ready = state.is_ready();
    let processed = state.metrics.items_processed() as i64;
    let (name, address) = (cluster.replica.clone(), state.address.clone());
    let beat = cluster.db.run(move |c| {
        c.execute(
            "INSERT INTO quarry_replicas (name, address, started_at, heartbeat_at,
                 documents_processed, lexical_lag, ready)
             VALUES ($1, $2, now(), now(), $3, $4, $5)
             ON CONFLICT (name) DO UPDATE SET address = EXCLUDED.address,
                 heartbeat_at = now(), documents_processed = EXCLUDED.documents_processed,
                 lexical_lag = EXCLUDED.lexical_lag, ready = EXCLUDED.ready",
            &[&name, &address, &processed, &lag, &ready],
        )?;
        Ok(())
    });
    if let Err(e) = beat {
        tracing::warn!(error = %e, "could not record this replica's heartbeat");
    }
}

/// At shutdown: this replica's claims go back to the queue at once (rather than when their
/// leases run out); a late finish of one is refused, so nothing is counted twice.
pub fn release(cluster: &Cluster) {
    let name = cluster.replica.clone();
    let _ = cluster.db.run(move |c| {
        c.execute(
            "UPDATE quarry_work_items SET state = 'queued', lease_until = NULL
             WHERE worker = $1 AND state = 'claimed'",
            &[&name],
        )?;
        c.execute("DELETE FROM quarry_replicas WHERE name = $1", &[&name])?;
        Ok(())
    });
}

/// Claims held by this replica's worker, renewed by its renewer until finished.
type Held = Arc<std::sync::Mutex<Vec<Claim>>>;

/// One batch of claimed items, made ready to write (on the look-ahead thread).
struct Batch {
    job_id: String,
    claims: Vec<Claim>,
    /// `Err`: the job's failure (an outage, a knowledge base gone).
    ready: Result<Option<Ready>, String>,
}

/// What writing a batch needs: its knowledge base, data source and prepared documents.
struct Ready {
    entry: Arc<super::registry::KbEntry>,
    ds_id: String,
    source: Box<dyn quarry_ingest::Source>,
    chunker: Box<dyn quarry_core::Chunker>,
    items: PreparedItems,
}

/// The worker: while it embeds and writes one batch, a look-ahead thread claims and prepares
/// the next (fetched, parsed, chunked), as a single node's sync overlaps the two.
fn work(state: &Arc<AppState>, cluster: &Arc<Cluster>, db: Arc<quarry_state::PgConnection>) {
    let Some(jobs) = state.jobs.cluster() else {
        return;
    };
    let held: Held = Default::default();
    let stop = Arc::new(AtomicBool::new(false));
    let renewer = {
        let (held, stop, cluster, state) =
            (held.clone(), stop.clone(), cluster.clone(), state.clone());
        std::thread::spawn(move || renew(&state, &cluster, &held, &stop))
    };
    let mut ahead: Option<std::thread::JoinHandle<Option<Batch>>> = None;
    while !state.shutting_down.load(Ordering::Relaxed) {
        let batch = match ahead.take() {
            Some(thread) => thread.join().ok().flatten(),
            None => next_batch(state, cluster, &db, &held),
        };
        let Some(batch) = batch else {
            std::thread::sleep(Duration::from_millis(250));
            continue;
        };
        let (s, c, d, h) = (state.clone(), cluster.clone(), db.clone(), held.clone());
        ahead = std::thread::Builder::new()
            .name("cluster-look-ahead".into())
            .spawn(move || next_batch(&s, &c, &d, &h))
            .ok();
        let job_id = batch.job_id.clone();
        if let Err(reason) = write_batch(state, jobs, &db, batch, &held) {
            tracing::error!(job = %job_id, %reason, "ingestion job failed");
            if let Err(e) = jobs.fail(&job_id, &reason) {
                tracing::warn!(error = %e, "could not record the job's failure");
            }
        }
    }
    if let Some(thread) = ahead {
        let _ = thread.join();
    }
    stop.store(true, Ordering::Relaxed);
    let _ = renewer.join();
}

/// Keeps the leases of every held claim alive.
fn renew(state: &AppState, cluster: &Cluster, held: &Held, stop: &AtomicBool) {
    let Some(jobs) = state.jobs.cluster() else {
        return;
    };
    let every = cluster.lease / 3;
    let mut last = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if last.elapsed() < every {
            continue;
        }
        last = Instant::now();
        let claims = held.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for claim in claims {
            let _ = jobs.queue().renew(&claim, cluster.lease);
        }
    }
}

fn hold(held: &Held, claims: &[Claim]) {
    held.lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(claims.iter().cloned());
}

fn release_held(held: &Held, claims: &[Claim]) {
    held.lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|h| !claims.contains(h));
}

/// Claims the next batch of any running job and prepares it; a listing item is done here
/// at once (it queues the job's documents).
fn next_batch(
    state: &AppState,
    cluster: &Cluster,
    db: &Arc<quarry_state::PgConnection>,
    held: &Held,
) -> Option<Batch> {
    let jobs = state.jobs.cluster()?;
    let running = match jobs.claimable() {
        Ok(running) => running,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the cluster's running jobs");
            return None;
        }
    };
    let (job_id, kb_id, ds_id, claims) =
        running.into_iter().find_map(|(job, kb, ds)| {
            match jobs
                .queue()
                .claim(&job, &cluster.replica, cluster.claim_batch, cluster.lease)
            {
                Ok(claims) if !claims.is_empty() => Some((job, kb, ds, claims)),
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "could not claim ingestion work");
                    None
                }
            }
        })?;
    hold(held, &claims);
    let ready = prepare_batch(state, db, &job_id, &kb_id, &ds_id, &claims);
    Some(Batch {
        job_id,
        claims,
        ready,
    })
}

fn prepare_batch(
    state: &AppState,
    db: &Arc<quarry_state::PgConnection>,
    job_id: &str,
    kb_id: &str,
    ds_id: &str,
    claims: &[Claim],
) -> Result<Option<Ready>, String> {
    let jobs = state.jobs.cluster().ok_or("not a cluster")?;
    let failed = |e: &dyn std::fmt::Display| e.to_string();
    let entry = state
        .registry
        .get(kb_id)
        .map_err(|_| format!("knowledge base {kb_id} no longer exists"))?;
    let ds = entry
        .kb
        .data_source(ds_id)
        .cloned()
        .ok_or_else(|| format!("data source {ds_id} no longer exists"))?;
    let chunker = entry.kb.chunker(&ds).map_err(|e| format!("{e:#}"))?;
    let source = source_for(&ds, &state.registry.config.s3).map_err(|e| e.to_string())?;
    let ledger = PgLedger::new(db.clone(), kb_id);
    let target = SyncTarget {
        data_source_id: ds_id,
        source: source.as_ref(),
        chunker: chunker.as_ref(),
        embedder: entry.kb.embedder.as_ref(),
        store: entry.kb.store.as_ref(),
        ledger: &ledger,
        max_document_bytes: state.registry.config.server.max_document_bytes,
        parse_options: ds.parse_options(),
    };
    let mut keys = Vec::with_capacity(claims.len());
    for claim in claims {
        if claim.key != LISTING {
            keys.push(claim.key.clone());
            continue;
        }
        let listed = list_items(&target).map_err(|e| failed(&e))?;
        jobs.queue()
            .enqueue(job_id, &listed.keys)
            .map_err(|e| failed(&e))?;
        jobs.record_listing(
            job_id,
            listed.documents_scanned,
            listed.metadata_documents_scanned,
        )
        .map_err(|e| failed(&e))?;
        jobs.queue()
            .finish(claim, "listed", None)
            .map_err(|e| failed(&e))?;
        tracing::info!(
            job = job_id,
            documents = listed.keys.len(),
            "listed the data source; its documents are queued for every replica"
        );
    }
    if keys.is_empty() {
        return Ok(None);
    }
    let items = prepare_items(&target, &keys).map_err(|e| failed(&e))?;
    Ok(Some(Ready {
        entry,
        ds_id: ds_id.to_owned(),
        source,
        chunker,
        items,
    }))
}

/// Embeds and writes a prepared batch and records what came of each item, once.
fn write_batch(
    state: &AppState,
    jobs: &crate::cluster::jobs::ClusterJobs,
    db: &Arc<quarry_state::PgConnection>,
    batch: Batch,
    held: &Held,
) -> Result<(), String> {
    let Batch {
        job_id,
        claims,
        ready,
    } = batch;
    let result = (|| -> Result<(), String> {
        let Some(ready) = ready? else {
            return Ok(());
        };
        let failed = |e: &dyn std::fmt::Display| e.to_string();
        let ledger = PgLedger::new(db.clone(), ready.entry.kb.id());
        let target = SyncTarget {
            data_source_id: &ready.ds_id,
            source: ready.source.as_ref(),
            chunker: ready.chunker.as_ref(),
            embedder: ready.entry.kb.embedder.as_ref(),
            store: ready.entry.kb.store.as_ref(),
            ledger: &ledger,
            max_document_bytes: state.registry.config.server.max_document_bytes,
            parse_options: ready
                .entry
                .kb
                .data_source(&ready.ds_id)
                .map(|d| d.parse_options())
                .unwrap_or_default(),
        };
        let reports = write_items(&target, ready.items).map_err(|e| failed(&e))?;
        let mut finished = 0;
        for report in reports {
            let Some(claim) = claims.iter().find(|c| c.key == report.key) else {
                continue;
            };
            let failure = match &report.outcome {
                ItemOutcome::Failed(reason) => Some(reason.as_str()),
                _ => None,
            };
            let word = outcome_word(&report.outcome, report.sidecar);
            // `false`: the lease ran out and another replica has the item; its outcome counts.
            if jobs
                .queue()
                .finish(claim, &word, failure)
                .map_err(|e| failed(&e))?
            {
                finished += 1;
            }
        }
        state.metrics.add_items_processed(finished);
        Ok(())
    })();
    release_held(held, &claims);
    if let Err(reason) = &result {
        tracing::debug!(job = %job_id, %reason, "a batch failed");
    }
    result
}
