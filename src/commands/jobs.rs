//! `quarry jobs KB`: the knowledge base's ingestion jobs, newest first.

use std::path::Path;
use std::process::ExitCode;

use quarry_ingest::{Ledger, SqliteLedger};

#[derive(clap::Args)]
pub struct JobsArgs {
    /// Knowledge base id or name.
    kb: String,
    /// Print the jobs as Bedrock's IngestionJob JSON, one per line.
    #[arg(long)]
    json: bool,
}

pub fn run(config_path: &Path, args: JobsArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config_file::load(config_path)?;
    let kb = config
        .knowledge_base(&args.kb)
        .ok_or_else(|| anyhow::anyhow!("no knowledge base {:?}", args.kb))?;
    // The ledger alone: listing jobs needs no model.
    let ledger: Box<dyn Ledger> = match &config.cluster {
        Some(cluster) => {
            let cluster = crate::cluster::Cluster::connect(cluster)?;
            Box::new(quarry_ingest::PgLedger::new(
                cluster.db.clone(),
                kb.id.get_ref().as_str(),
            ))
        }
        None => Box::new(SqliteLedger::open(
            &crate::knowledge_base::ledger_path_for(&config, kb),
        )?),
    };
    let jobs = ledger.jobs(None)?;
    if args.json {
        for job in &jobs {
            println!("{}", serde_json::to_string(job)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if jobs.is_empty() {
        println!("no ingestion jobs yet; run `quarry sync {}`", args.kb);
    } else {
        println!(
            "{:<10}  {:<10}  {:<11}  {:<24}  scanned  new  modified  metadata  deleted  failed",
            "job", "source", "status", "started"
        );
    }
    for job in jobs {
        let s = &job.statistics;
        println!(
            "{:<10}  {:<10}  {:<11}  {:<24}  {:>7}  {:>3}  {:>8}  {:>8}  {:>7}  {:>6}",
            job.ingestion_job_id,
            job.data_source_id,
            serde_json::to_value(job.status)?
                .as_str()
                .unwrap_or_default(),
            job.started_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            s.number_of_documents_scanned,
            s.number_of_new_documents_indexed,
            s.number_of_modified_documents_indexed,
            s.number_of_metadata_documents_modified,
            s.number_of_documents_deleted,
            s.number_of_documents_failed,
        );
        if let Some(r) = &job.regression {
            println!(
                "            regression set: {}",
                crate::regression::summary(r)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
