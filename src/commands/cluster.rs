//! `quarry cluster status`: the replicas of the cluster this configuration names, from the
//! cluster's database (no replica need be running here).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

#[derive(clap::Subcommand)]
pub enum ClusterCommand {
    /// Replicas (heartbeats, readiness, leases, lexical lag) and running jobs.
    Status {
        /// As one JSON object.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(config_path: &Path, command: ClusterCommand) -> anyhow::Result<ExitCode> {
    let config = crate::config_file::load(config_path)?;
    let cluster = config
        .cluster
        .as_ref()
        .context("this configuration has no [cluster] section: it runs as a single node")?;
    let cluster = crate::cluster::Cluster::connect(cluster)?;
    let ClusterCommand::Status { json } = command;
    let status = crate::cluster::status::read(&cluster.db)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("schema version {}", status.schema_version);
    println!(
        "{:<28} {:<22} {:>6} {:>6} {:>7} {:>10} {:>9}",
        "REPLICA", "ADDRESS", "BEAT", "READY", "LEASES", "PROCESSED", "LEX LAG"
    );
    for r in &status.replicas {
        println!(
            "{:<28} {:<22} {:>5.0}s {:>6} {:>7} {:>10} {:>9}",
            r.name,
            r.address,
            r.seconds_since_heartbeat,
            if r.ready { "yes" } else { "no" },
            r.leases,
            r.documents_processed,
            r.lexical_lag
        );
    }
    if status.running_jobs.is_empty() {
        println!("no ingestion job running");
    }
    for j in &status.running_jobs {
        println!(
            "job {} ({} / {}): {}, {} queued, {} claimed, {} finished",
            j.ingestion_job_id,
            j.knowledge_base_id,
            j.data_source_id,
            j.status,
            j.queued,
            j.claimed,
            j.finished
        );
    }
    Ok(ExitCode::SUCCESS)
}
