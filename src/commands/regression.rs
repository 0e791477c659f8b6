//! `quarry regression KB`: the knowledge base's regression set scored now, against the
//! accepted baseline; `quarry accept KB JOB`: a job's scores become the baseline.

use std::path::Path;
use std::process::ExitCode;

use quarry_ingest::Ledger;

use crate::knowledge_base::KnowledgeBase;

#[derive(clap::Args)]
pub struct RegressionArgs {
    /// Knowledge base id or name.
    kb: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct AcceptArgs {
    /// Knowledge base id or name.
    kb: String,
    /// The ingestion job whose scores become the baseline.
    job: String,
}

fn single_node(config: &quarry_core::config::Config) -> anyhow::Result<()> {
    anyhow::ensure!(
        config.cluster.is_none(),
        "the regression guard runs on one node's jobs; this configuration is a cluster's"
    );
    Ok(())
}

pub fn run(config_path: &Path, args: RegressionArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config_file::load(config_path)?;
    single_node(&config)?;
    let kb = KnowledgeBase::open(&config, &args.kb)?;
    let Some(set) = kb.config.regression.clone() else {
        anyhow::bail!(
            "knowledge base {} has no regression set: add regression = {{ queries = \"regression.jsonl\" }} to it",
            kb.name()
        );
    };
    let scores = crate::regression::score(&kb, &set)?;
    let base = crate::regression::baseline(kb.ledger().as_ref(), "")?;
    if args.json {
        println!(
            "{}",
            crate::regression::scores_json(&scores, set.k, base.as_ref())
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} queries: recall@{} {:.3}, nDCG@10 {:.3}",
        scores.queries, set.k, scores.recall, scores.ndcg
    );
    match base
        .as_ref()
        .and_then(|j| j.regression.as_ref().map(|r| (j, r)))
    {
        Some((job, r)) => println!(
            "baseline (job {}): recall@{} {:.3}, nDCG@10 {:.3}",
            job.ingestion_job_id, r.k, r.recall_at_k, r.ndcg_at_10
        ),
        None => println!("no baseline yet: the next completed sync sets it"),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn accept(config_path: &Path, args: AcceptArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config_file::load(config_path)?;
    single_node(&config)?;
    let kb = &crate::server::registry::find_knowledge_base(&config, &args.kb)?;
    let ledger =
        quarry_ingest::SqliteLedger::open(&crate::knowledge_base::ledger_path_for(&config, kb))?;
    let mut job = ledger
        .job(&args.job)?
        .ok_or_else(|| anyhow::anyhow!("knowledge base {} has no job {}", args.kb, args.job))?;
    let Some(result) = job.regression.as_mut() else {
        anyhow::bail!("job {} has no regression scores to accept", args.job);
    };
    result.accepted = true;
    let summary = crate::regression::summary(result);
    ledger.save_job(&job)?;
    println!("job {}'s scores are the baseline now: {summary}", args.job);
    let dir = config.server.data_dir.join(kb.id.get_ref().as_str());
    match crate::generations::held::accept(&dir, &args.job)? {
        None if kb.regression.as_ref().is_some_and(|r| r.hold) => {
            println!("the live index serves (a running `quarry serve` follows within a second)")
        }
        None => {}
        Some(other) => println!(
            "the index is still held for job {other}: accept that job for the live index to serve"
        ),
    }
    Ok(ExitCode::SUCCESS)
}
