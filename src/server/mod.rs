//! `quarry serve`: Bedrock's HTTP API (runtime and control plane) over the knowledge bases.
//!
//! CPU work never runs on the async runtime: query embedding goes through a bounded queue to
//! the encoder's own thread, searches run in `spawn_blocking`, ingestion jobs on threads of
//! their own.

mod auth;
mod client_tokens;
mod console;
mod encoder;
mod error;
mod grants;
pub mod held_copies;
mod jobs;
mod listener;
mod metrics;
pub mod registry;
mod replica;
mod routes;
mod schedule;
mod state;
pub mod switcher;
mod watchers;

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use quarry_core::config::Config;

use self::auth::{Auth, Principal};
use self::grants::{GrantStore, Grants};
use self::jobs::JobManager;
use self::listener::{Limits, Tls};
use self::metrics::Metrics;
use self::registry::Registry;
use self::state::AppState;

pub async fn serve(config: Config, listen: Option<String>) -> anyhow::Result<()> {
    let address = listen.unwrap_or_else(|| config.server.listen.clone());
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let local = listener.local_addr()?;
    let auth = Auth::from_config(
        &config.server,
        &config.s3.allowed_buckets,
        local.ip().is_loopback(),
    )?;
    let tls = match &config.server.tls {
        Some(t) => Some(Tls::load(t.cert.clone(), t.key.clone())?),
        None => None,
    };
    let metrics_listener = match &config.server.metrics_listen {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("metrics_listen: cannot listen on {address}"))?,
        ),
        None => None,
    };
    let limits = config.server.limits.clone();
    let metrics = Arc::new(Metrics::default());
    let cluster = match &config.cluster {
        Some(c) => {
            let c = c.clone();
            let cluster =
                tokio::task::spawn_blocking(move || crate::cluster::Cluster::connect(&c)).await??;
            eprintln!(
                "quarry: cluster mode: replica {} of the service in {}",
                cluster.replica,
                config
                    .cluster
                    .as_ref()
                    .map(|c| c.database_url.as_str())
                    .unwrap_or("")
            );
            Some(cluster)
        }
        None => None,
    };
    let events =
        crate::events::JobEvents::open(&config.server.data_dir, &config.server.event_sinks)?;
    let held = Arc::new(held_copies::HeldCopies::default());
    let jobs = JobManager::new(
        held.clone(),
        config.server.data_dir.clone(),
        config.server.max_document_bytes,
        config.s3.clone(),
        metrics.clone(),
        events,
        cluster
            .as_ref()
            .map(|c| crate::cluster::jobs::ClusterJobs::new(c.db.clone())),
    );
    let generators = crate::rag::Generators::from_config(&config)?;
    generators.warm_up_in_background();
    let rerankers = crate::rag::Rerankers::from_config(&config)?;
    let idle = std::time::Duration::from_secs(config.server.session_idle_minutes * 60);
    let sessions: Arc<dyn quarry_generate::Sessions> = match &cluster {
        Some(c) => Arc::new(crate::cluster::sessions::PgSessions::new(
            c.db.clone(),
            idle,
        )),
        None => Arc::new(quarry_generate::SessionStore::new(
            config.server.data_dir.join("sessions"),
            idle,
        )),
    };
    let registry = {
        let (metrics, cluster) = (metrics.clone(), cluster.clone());
        tokio::task::spawn_blocking(move || Registry::open(config, metrics, cluster)).await??
    };
    let grants = {
        let known: Vec<(String, String)> = registry
            .all()
            .iter()
            .map(|e| (e.kb.id().to_owned(), e.kb.name().to_owned()))
            .collect();
        let kept = match &cluster {
            Some(c) => GrantStore::Cluster(c.db.clone()),
            None => GrantStore::File(registry.config.server.data_dir.join("access-grants.json")),
        };
        let keys = registry.config.server.access_keys.clone();
        tokio::task::spawn_blocking(move || Grants::load(&keys, &known, kept)).await??
    };
    let client_tokens: Box<dyn client_tokens::ClientTokens> = match &cluster {
        Some(c) => Box::new(client_tokens::PgTokens(c.db.clone())),
        None => Box::new(client_tokens::FileTokens::new(
            registry.config.server.data_dir.join("client-tokens.json"),
        )),
    };
    let state = Arc::new(AppState {
        held,
        registry,
        client_tokens,
        jobs,
        auth,
        grants,
        metrics,
        generators,
        rerankers,
        sessions,
        shutting_down: Default::default(),
        address: local.to_string(),
        generation_slots: Arc::new(tokio::sync::Semaphore::new(
            limits.max_concurrent_generations,
        )),
        document_slots: Arc::new(tokio::sync::Semaphore::new(
            limits.max_concurrent_document_requests,
        )),
    });
    match &cluster {
        Some(c) => replica::start(&state, c)?,
        None => {
            resume_jobs(&state);
            switcher::start_all(&state);
            for entry in state.registry.all() {
                state.held.refresh(&entry.kb);
            }
            held_copies::follow(state.clone());
        }
    }
    tokio::spawn(schedule::run(state.clone(), cluster.clone()));
    watchers::start(&state);

    let api = routes::api().layer(middleware::from_fn_with_state(
        state.clone(),
        auth::authenticate,
    ));
    let mut app = Router::new()
        .merge(api)
        .merge(console::router())
        .route("/health/live", get(live))
        .route("/health/ready", get(ready));
    if let Some(metrics_listener) = metrics_listener {
        let metrics_app = Router::new()
            .route("/metrics", get(metrics_text))
            .with_state(state.clone());
        eprintln!(
            "quarry: /metrics on http://{}",
            metrics_listener.local_addr()?
        );
        tokio::spawn(async move {
            if let Err(e) = axum::serve(metrics_listener, metrics_app).await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        });
    } else {
        app = app.route("/metrics", get(metrics_text));
    }
    let app = app
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::guard_open_mode,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state.clone());
    if let Some(tls) = &tls {
        tls.reload_on_sighup()?;
    }

    if state.auth.is_open() {
        eprintln!(
            "quarry: authentication is OFF (no [[server.access_keys]] configured); serving on loopback only"
        );
    } else {
        eprintln!(
            "quarry: requests must be signed with AWS SigV4 (service \"bedrock\") by a configured access key"
        );
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!(
        "quarry: serving {} knowledge bases on {scheme}://{local}",
        state.registry.all().len()
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();

    let limits = Limits {
        max_connections: limits.max_connections.max(1),
        header_timeout: std::time::Duration::from_secs(limits.header_timeout_secs.max(1)),
    };
    let stopping = state.shutting_down.clone();
    listener::serve(listener, app, limits, tls, async move {
        shutdown_signal().await;
        // Generations and pollers see this at once; connections then get their grace.
        stopping.store(true, std::sync::atomic::Ordering::Relaxed);
    })
    .await;
    eprintln!("quarry: shutting down; stopping running ingestion jobs");
    let state_for_jobs = state.clone();
    tokio::task::spawn_blocking(move || state_for_jobs.jobs.shutdown()).await?;
    if let Some(cluster) = cluster {
        // This replica's documents go back to the others at once, not when leases run out.
        tokio::task::spawn_blocking(move || replica::release(&cluster)).await?;
    }
    Ok(())
}

fn resume_jobs(state: &AppState) {
    for (kb_id, ds_id) in state.jobs.take_resumable() {
        let Ok(entry) = state.registry.get(&kb_id) else {
            continue;
        };
        let Some(ds) = entry.kb.data_source(&ds_id).cloned() else {
            continue;
        };
        match state
            .jobs
            .start(entry.kb.clone(), ds, Some("resumed after restart".into()))
        {
            Ok(job) => {
                tracing::info!(job = %job.ingestion_job_id, data_source = %ds_id, "resumed an interrupted ingestion job")
            }
            Err(e) => {
                tracing::warn!(error = %e, data_source = %ds_id, "could not resume an interrupted ingestion job")
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// 200 while the process runs (unauthenticated, for load balancers and orchestrators).
async fn live() -> impl IntoResponse {
    (
        [("content-type", "application/json")],
        r#"{"status":"live"}"#,
    )
}

/// 200 once the server serves (its knowledge bases are open before it listens; in cluster
/// mode, once its lexical indexes have caught up with the change log); 503 before, and once
/// shutdown has begun, so a load balancer stops sending new requests while those in flight
/// finish.
async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let stopping = state
        .shutting_down
        .load(std::sync::atomic::Ordering::Relaxed);
    let (status, body) = if stopping {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            r#"{"status":"stopping"}"#,
        )
    } else if !state.is_ready() {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            r#"{"status":"catching up"}"#,
        )
    } else {
        (axum::http::StatusCode::OK, r#"{"status":"ready"}"#)
    };
    (status, [("content-type", "application/json")], body).into_response()
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// Every response gets a request id; every request is counted, timed and audited.
async fn observe(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let matched = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let path = req.uri().path().to_owned();
    let request_id = quarry_core::ids::random_uuid();
    let mut response = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-RequestId", v);
    }
    let operation = routes::operation(&method, matched.as_deref().unwrap_or(""));
    let status = response.status().as_u16();
    state
        .metrics
        .observe_request(operation, status, started.elapsed());
    if !matches!(operation, "Metrics" | "HealthLive" | "HealthReady") {
        let principal = response
            .extensions()
            .get::<Principal>()
            .map(|p| p.name().to_owned())
            .unwrap_or_else(|| "unauthenticated".into());
        let knowledge_base = path
            .strip_prefix("/knowledgebases/")
            .and_then(|r| r.split('/').next())
            .filter(|s| !s.is_empty())
            .unwrap_or("-");
        tracing::info!(
            target: "quarry::audit",
            request_id,
            principal,
            operation,
            knowledge_base,
            status,
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
    }
    response
}
