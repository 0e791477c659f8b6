//! The retrieval regression guard: a knowledge base's regression set (queries with the
//! documents they must find) scored after every sync — recall@k and nDCG@10 over documents —
//! and compared with the last accepted job's scores; a fall of more than the margin marks the
//! job as a regression (in its record, as a job event, in `/metrics` and `quarry jobs`).
//! `quarry regression KB` scores it on demand; `quarry accept KB JOB` makes a job's scores
//! the baseline.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use quarry_core::config::RegressionConfig;
use quarry_ingest::{IngestionJob, JobStatus, Ledger, RegressionResult};
use quarry_retrieve::{SearchType, metrics, retrieve};
use serde::Deserialize;
use serde_json::json;

use crate::knowledge_base::KnowledgeBase;

/// One line of a regression set.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    query: String,
    /// Document keys (relative paths, S3 keys, custom ids) or source URIs.
    documents: Vec<String>,
}

fn cases(path: &Path) -> anyhow::Result<Vec<Case>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the regression set {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let case: Case = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not a regression case", path.display(), i + 1))?;
        anyhow::ensure!(
            !case.documents.is_empty(),
            "{}:{}: a case needs at least one document",
            path.display(),
            i + 1
        );
        out.push(case);
    }
    anyhow::ensure!(
        !out.is_empty(),
        "the regression set {} is empty",
        path.display()
    );
    Ok(out)
}

/// Scores: mean recall@k and nDCG@10 over the set's queries.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Scores {
    pub queries: usize,
    pub recall: f64,
    pub ndcg: f64,
}

/// Runs the set against the knowledge base as it is now (its default search, SEMANTIC).
pub fn score(kb: &KnowledgeBase, config: &RegressionConfig) -> anyhow::Result<Scores> {
    let cases = cases(&config.queries)?;
    let depth = config.k.max(10);
    let (mut recall, mut ndcg) = (0.0, 0.0);
    for case in &cases {
        let results = retrieve(
            kb.embedder.as_ref(),
            kb.indexes(),
            &case.query,
            depth,
            None,
            SearchType::default(),
        )?;
        // Each result as the expected document it is (by key or URI), once per document.
        let mut ranked: Vec<String> = Vec::new();
        for r in &results {
            let uri = r
                .metadata
                .get(quarry_core::metadata::SOURCE_URI)
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            let name = case
                .documents
                .iter()
                .find(|d| uri == d.as_str() || uri.ends_with(&format!("/{d}")))
                .cloned()
                .unwrap_or_else(|| uri.to_owned());
            if !ranked.contains(&name) {
                ranked.push(name);
            }
        }
        let relevant: HashMap<String, u32> =
            case.documents.iter().map(|d| (d.clone(), 1)).collect();
        recall += metrics::recall_at(config.k, &ranked, &relevant);
        ndcg += metrics::ndcg_at(10, &ranked, &relevant);
    }
    let n = cases.len() as f64;
    Ok(Scores {
        queries: cases.len(),
        recall: recall / n,
        ndcg: ndcg / n,
    })
}

/// The job the next one is compared with: the newest scored job that did not regress, or
/// that a person accepted.
pub fn baseline(ledger: &dyn Ledger, except: &str) -> anyhow::Result<Option<IngestionJob>> {
    Ok(ledger.jobs(None)?.into_iter().find(|j| {
        j.ingestion_job_id != except
            && j.regression
                .as_ref()
                .is_some_and(|r| !r.regressed || r.accepted)
    }))
}

/// Scores the set after `job` and records the result on it.
pub fn judge(
    kb: &KnowledgeBase,
    config: &RegressionConfig,
    ledger: &dyn Ledger,
    job: &mut IngestionJob,
) -> anyhow::Result<RegressionResult> {
    let scores = score(kb, config)?;
    let base = baseline(ledger, &job.ingestion_job_id)?;
    let base_scores = base.as_ref().and_then(|j| j.regression.clone());
    let regressed = base_scores.as_ref().is_some_and(|b| {
        scores.recall < b.recall_at_k - config.margin || scores.ndcg < b.ndcg_at_10 - config.margin
    });
    let result = RegressionResult {
        queries: scores.queries,
        k: config.k,
        recall_at_k: scores.recall,
        ndcg_at_10: scores.ndcg,
        baseline_job_id: base.map(|j| j.ingestion_job_id),
        baseline_recall_at_k: base_scores.as_ref().map(|b| b.recall_at_k),
        baseline_ndcg_at_10: base_scores.as_ref().map(|b| b.ndcg_at_10),
        regressed,
        accepted: false,
    };
    job.regression = Some(result.clone());
    Ok(result)
}

/// After a job that completed: judges it, saves the record and tells the event sinks.
/// Failures to score are logged; the job stands.
pub fn after_job(
    kb: &KnowledgeBase,
    ledger: &dyn Ledger,
    job: &mut IngestionJob,
    events: &crate::events::JobEvents,
) -> Option<RegressionResult> {
    let config = kb.config.regression.as_ref()?;
    if job.status != JobStatus::Complete {
        return None;
    }
    match judge(kb, config, ledger, job) {
        Ok(result) => {
            if let Err(e) = ledger.save_job(job) {
                tracing::warn!(error = %e, "could not record the regression result");
            }
            if result.regressed {
                tracing::warn!(
                    job = %job.ingestion_job_id,
                    recall = result.recall_at_k,
                    ndcg = result.ndcg_at_10,
                    "the regression set scores lower than the accepted baseline"
                );
            }
            events.emit(crate::events::regression_event(job, &result));
            Some(result)
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "the regression set could not be scored");
            None
        }
    }
}

/// Before a job of a knowledge base whose regression set holds: the index copied to serve
/// meanwhile (`crate::generations::held`). Returns whether it holds.
pub fn hold(kb: &KnowledgeBase, job: &IngestionJob) -> anyhow::Result<bool> {
    if !kb.config.regression.as_ref().is_some_and(|r| r.hold) {
        return Ok(false);
    }
    crate::generations::held::hold_for_job(kb, &job.ingestion_job_id)
        .context("could not hold the index as it was before the job")?;
    Ok(true)
}

/// After a held job: a regression not accepted keeps the copy serving; otherwise the live
/// index serves again (see `crate::generations::held::after_job`).
pub fn release_or_keep(kb: &KnowledgeBase, job: &IngestionJob, result: Option<&RegressionResult>) {
    let regressed = result.map(|r| r.regressed && !r.accepted);
    match crate::generations::held::after_job(&kb.dir, &job.ingestion_job_id, regressed) {
        Ok(()) if regressed == Some(true) => tracing::warn!(
            job = %job.ingestion_job_id,
            "the index as it was before this job keeps serving until `quarry accept {} {}`",
            kb.name(),
            job.ingestion_job_id
        ),
        Ok(()) => {}
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "could not record the end of the hold")
        }
    }
}

/// `recall@10 0.800 (was 1.000), nDCG@10 0.631 (was 0.920): REGRESSED` for `quarry jobs`.
pub fn summary(r: &RegressionResult) -> String {
    let was = |v: Option<f64>| v.map(|v| format!(" (was {v:.3})")).unwrap_or_default();
    let verdict = match (r.regressed, r.accepted) {
        (true, true) => "REGRESSED, accepted",
        (true, false) => "REGRESSED",
        _ => "ok",
    };
    format!(
        "recall@{} {:.3}{}, nDCG@10 {:.3}{}: {verdict}",
        r.k,
        r.recall_at_k,
        was(r.baseline_recall_at_k),
        r.ndcg_at_10,
        was(r.baseline_ndcg_at_10)
    )
}

/// The JSON `quarry regression --json` prints.
pub fn scores_json(scores: &Scores, k: usize, base: Option<&IngestionJob>) -> serde_json::Value {
    let b = base.and_then(|j| j.regression.as_ref());
    json!({
        "queries": scores.queries,
        "k": k,
        "recallAtK": scores.recall,
        "ndcgAt10": scores.ndcg,
        "baselineJobId": base.map(|j| j.ingestion_job_id.clone()),
        "baselineRecallAtK": b.map(|r| r.recall_at_k),
        "baselineNdcgAt10": b.map(|r| r.ndcg_at_10),
    })
}
