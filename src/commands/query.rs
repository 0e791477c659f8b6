//! `quarry query KB "TEXT"`: ranked passages, or Bedrock's RetrieveResponse with `--json`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use quarry_core::Filter;
use quarry_retrieve::{RetrieveResponse, SearchType, retrieve};

use crate::knowledge_base::KnowledgeBase;

#[derive(clap::Args)]
pub struct QueryArgs {
    /// Knowledge base id or name.
    kb: String,
    /// The query text.
    text: String,
    /// How many passages (1..=100).
    #[arg(short, default_value_t = quarry_retrieve::DEFAULT_RESULTS)]
    k: usize,
    /// A Bedrock RetrievalFilter, as JSON: '{"equals": {"key": "team", "value": "hr"}}'.
    #[arg(long)]
    filter: Option<String>,
    /// Print Bedrock's RetrieveResponse JSON.
    #[arg(long)]
    json: bool,
    /// SEMANTIC (vectors) or HYBRID (vectors and BM25, fused).
    #[arg(long, default_value = "SEMANTIC", value_parser = ["SEMANTIC", "HYBRID"])]
    search_type: String,
}

/// A `--filter` argument: a Bedrock RetrievalFilter as JSON.
pub fn parse_filter(arg: Option<&str>) -> anyhow::Result<Option<Filter>> {
    arg.map(|f| -> anyhow::Result<Filter> {
        let json: serde_json::Value =
            serde_json::from_str(f).context("--filter is not valid JSON")?;
        Filter::from_json(&json).context("--filter")
    })
    .transpose()
}

pub fn run(config_path: &Path, args: QueryArgs) -> anyhow::Result<ExitCode> {
    let filter = parse_filter(args.filter.as_deref())?;
    let config = crate::config_file::load(config_path)?;
    let kb = KnowledgeBase::open(&config, &args.kb)?;
    let search_type = SearchType::parse(&args.search_type).unwrap_or_default();
    let results = retrieve(
        kb.embedder.as_ref(),
        kb.indexes(),
        &args.text,
        args.k,
        filter.as_ref(),
        search_type,
    )?;
    if args.json {
        let response = RetrieveResponse {
            retrieval_results: results,
            next_token: None,
        };
        println!("{}", serde_json::to_string_pretty(&response)?);
        return Ok(ExitCode::SUCCESS);
    }
    if results.is_empty() {
        println!("no passages found (has `quarry sync {}` run?)", args.kb);
    }
    for (rank, r) in results.iter().enumerate() {
        let page = r
            .metadata
            .get(quarry_core::metadata::PAGE_NUMBER)
            .map(|p| format!(", page {p}"))
            .unwrap_or_default();
        println!(
            "{}. score {:.4}  {}{page}",
            rank + 1,
            r.score,
            r.location.uri()
        );
        let snippet: String = r
            .content
            .text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let snippet: String = if snippet.chars().count() > 300 {
            snippet.chars().take(300).collect::<String>() + "…"
        } else {
            snippet
        };
        println!("   {snippet}\n");
    }
    Ok(ExitCode::SUCCESS)
}
