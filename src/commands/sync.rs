//! `quarry sync KB`: an ingestion job per data source.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use quarry_ingest::lock::Holder;
use quarry_ingest::{DataSourceLock, IngestionJob, JobStatus, Ledger, SyncTarget, run_sync};

use crate::knowledge_base::{KnowledgeBase, source_for};
use crate::progress::SyncProgress;

#[derive(clap::Args)]
pub struct SyncArgs {
    /// Knowledge base id or name.
    kb: String,
    /// Only this data source (id or name).
    #[arg(long)]
    data_source: Option<String>,
    /// Print each finished job as Bedrock's IngestionJob JSON.
    #[arg(long)]
    json: bool,
    /// Also print documents/s, MB/s and the share of time per stage.
    #[arg(long)]
    timings: bool,
}

pub fn run(config_path: &Path, args: SyncArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config_file::load(config_path)?;
    if config.cluster.is_some() {
        anyhow::bail!(
            "this configuration is a cluster's ([cluster]): start ingestion jobs through any replica's API (StartIngestionJob), which shares them among the replicas and keeps every replica's lexical index in step"
        );
    }
    let kb = KnowledgeBase::open(&config, &args.kb)?;
    let sources = match &args.data_source {
        Some(ds) => vec![kb.data_source(ds).cloned().ok_or_else(|| {
            anyhow::anyhow!("knowledge base {} has no data source {ds:?}", kb.name())
        })?],
        None => kb.config.data_sources.clone(),
    };
    if sources.is_empty() {
        anyhow::bail!(
            "knowledge base {} has no data sources",
            kb.config.name.get_ref()
        );
    }
    let events =
        crate::events::JobEvents::open(&config.server.data_dir, &config.server.event_sinks)?;
    let mut all_ok = true;
    let stop = stop_on_ctrl_c();
    for ds in sources {
        if ds.kind == quarry_core::config::DataSourceKind::Custom {
            eprintln!(
                "{}: a custom data source receives its documents through the API; nothing to sync",
                ds.name
            );
            continue;
        }
        let chunker = kb.chunker(&ds)?;
        let source = source_for(&ds, &config.s3)?;
        let mut job = IngestionJob::starting(kb.id(), ds.id.get_ref().as_str(), None);
        let _lock = match DataSourceLock::try_acquire(
            &kb.dir,
            ds.id.get_ref().as_str(),
            &job.ingestion_job_id,
        )? {
            Ok(lock) => lock,
            Err(Holder(holder)) => {
                eprintln!(
                    "error: ConflictException: {holder} is already running on data source {}; try again when it has finished",
                    ds.name
                );
                all_ok = false;
                continue;
            }
        };
        kb.check_current()?;
        let ledger = crate::events::EventingLedger::new(kb.open_ledger()?, events.clone());
        ledger.save_job(&job)?;
        let target = SyncTarget {
            data_source_id: ds.id.get_ref().as_str(),
            source: source.as_ref(),
            chunker: chunker.as_ref(),
            embedder: kb.embedder.as_ref(),
            store: kb.store.as_ref(),
            ledger: &ledger,
            max_document_bytes: config.server.max_document_bytes,
            parse_options: ds.parse_options(),
        };
        let holding = crate::regression::hold(&kb, &job)?;
        let progress = SyncProgress::new(&ds.name);
        let started = std::time::Instant::now();
        run_sync(&target, &mut job, &stop, &progress);
        progress.finish();
        let regression = crate::regression::after_job(&kb, &ledger, &mut job, &events);
        if holding {
            crate::regression::release_or_keep(&kb, &job, regression.as_ref());
        }
        all_ok &= job.status == JobStatus::Complete;
        if args.json {
            println!("{}", serde_json::to_string(&job)?);
        } else {
            print_summary(&job, &ds.name, started.elapsed(), kb.store.len()?);
            if let Some(r) = &regression {
                println!("  regression set: {}", crate::regression::summary(r));
                if holding && r.regressed && !r.accepted {
                    println!(
                        "  the index as it was before this job keeps serving until `quarry accept {} {}`",
                        kb.name(),
                        job.ingestion_job_id
                    );
                }
            }
        }
        if args.timings {
            let s = &job.statistics;
            let indexed =
                s.number_of_new_documents_indexed + s.number_of_modified_documents_indexed;
            eprintln!("  {}", progress.timings(indexed, started.elapsed()));
            if let Some(url) = remote_url(&config, kb.config.embedding_model.get_ref()) {
                eprintln!(
                    "  (embed is time waiting on the embedding server {url}; the next documents were fetched and parsed meanwhile)"
                );
            }
        }
    }
    if !config.server.event_sinks.is_empty() && !events.drain(std::time::Duration::from_secs(30)) {
        eprintln!(
            "some job events are not delivered yet: they stay queued in {} for the next `quarry serve` or `quarry sync`",
            config
                .server
                .data_dir
                .join("events")
                .join("outbox")
                .display()
        );
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A flag set by Ctrl-C: the job stops after the document it is on, and says STOPPED.
fn stop_on_ctrl_c() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        if runtime.block_on(tokio::signal::ctrl_c()).is_ok() {
            eprintln!("\nstopping after the current document…");
            flag.store(true, Ordering::Relaxed);
        }
    });
    stop
}

fn print_summary(job: &IngestionJob, name: &str, took: std::time::Duration, chunks: usize) {
    let s = &job.statistics;
    println!(
        "{name}: ingestion job {} {} in {:.1}s\n  scanned {} documents and {} metadata files: {} new, {} modified, {} metadata updated, {} deleted, {} failed\n  the knowledge base now holds {chunks} chunks",
        job.ingestion_job_id,
        serde_json::to_value(job.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        took.as_secs_f64(),
        s.number_of_documents_scanned,
        s.number_of_metadata_documents_scanned,
        s.number_of_new_documents_indexed,
        s.number_of_modified_documents_indexed,
        s.number_of_metadata_documents_modified,
        s.number_of_documents_deleted,
        s.number_of_documents_failed,
    );
    for reason in &job.failure_reasons {
        println!("  failed: {reason}");
    }
}

/// The embedding server a model is on, if it is a remote one.
fn remote_url(config: &quarry_core::config::Config, model: &str) -> Option<String> {
    use quarry_core::config::ModelConfig;
    match config.models.get(model)? {
        ModelConfig::OpenaiEmbeddings(r) | ModelConfig::Tei(r) => Some(r.base_urls.join(", ")),
        _ => None,
    }
}
